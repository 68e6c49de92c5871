"""What the three LangChain classes share: store and model checks, conversions."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.documents import Document

from maxsim import Hit, Record
from maxsim.stores import DocumentStore

STORE_OPTIONS = ("dtype", "chunk_size", "chunk_overlap")


def check_store(store: Any) -> DocumentStore:
    """`store` if it is a maxsim store, else a TypeError that says what to pass."""
    if not isinstance(store, DocumentStore):
        raise TypeError(
            "store must be a maxsim store (a maxsim.stores.DocumentStore such as "
            f"LateInteractionStore), got {type(store).__name__}"
        )
    return store


def split_store_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the `LateInteractionStore` options (dtype, chunk_size, ...)."""
    return {key: kwargs.pop(key) for key in STORE_OPTIONS if key in kwargs}


def check_no_options(kwargs: dict[str, Any], where: str) -> None:
    """A TypeError naming the first keyword argument `where` does not take."""
    if kwargs:
        name = next(iter(kwargs))
        raise TypeError(f"{where} got an unexpected keyword argument {name!r}")


def new_id() -> str:
    """A fresh document id, as the stores make them (uuid4 hex)."""
    return uuid.uuid4().hex


def record_document(record: Record) -> Document:
    """A stored record as a Document (a record stored from vectors only has empty text)."""
    return Document(id=record.id, page_content=record.text or "", metadata=record.metadata)


def hit_document(hit: Hit, *, with_scores: bool) -> Document:
    """A search hit as a Document, optionally with "score" and "normalized_score" in metadata.

    A hit on a window of a chunked document holds that window's text, with the
    document's id, the window number and its character span in the document's text in
    metadata ("document_id", "chunk", "span").
    """
    metadata = dict(hit.metadata)
    if with_scores:
        metadata["score"] = hit.score
        metadata["normalized_score"] = hit.normalized_score
    if hit.span is not None:
        metadata.update(document_id=hit.id, chunk=hit.chunk, span=list(hit.span))
    return Document(id=hit.id, page_content=hit.window_text or "", metadata=metadata)
