"""Argument checks shared by the public API: clear errors that name the argument."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_texts(texts: Any, argument: str) -> list[str]:
    """`texts` as a list of non-empty strings, or a TypeError/ValueError naming the bad item."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(
            f"{argument} must be a list of strings, got {type(texts).__name__}; "
            "wrap a single text in a list"
        )
    for position, text in enumerate(texts):
        check_text(text, f"{argument}[{position}]")
    return list(texts)


def check_text(text: Any, argument: str) -> str:
    """`text` if it is a string of valid Unicode with some non-space content."""
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{argument} is empty or whitespace only; pass text with some content")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{argument} holds an unpaired surrogate; send valid Unicode") from None
    return text


def check_positive_int(value: Any, argument: str, minimum: int = 1) -> int:
    """`value` if it is an int >= `minimum` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, got {value}")
    return value
