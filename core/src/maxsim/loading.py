"""`load_encoder`: what the adapters, the CLI and the server accept as a model."""

from __future__ import annotations

from typing import Any

from maxsim.encoder import ColBERT
from maxsim.late_interaction import LateInteractionEncoder
from maxsim.remote import RemoteColBERT

URL_SCHEMES = ("http://", "https://")


def load_encoder(model: str | LateInteractionEncoder, /, **options: Any) -> LateInteractionEncoder:
    """`model` itself when it is a maxsim encoder; an http(s):// URL as `RemoteColBERT`;
    any other string (a checkpoint name or folder) as `ColBERT.from_pretrained`.

    `options` go to the class that is made: `dim`, `device`, ... for a checkpoint;
    `api_key`, `model`, `dim`, ... for a URL.

    Example:
        >>> from maxsim.testing import FakeColBERT
        >>> fake = FakeColBERT()
        >>> load_encoder(fake) is fake
        True
        >>> load_encoder("http://127.0.0.1:8080/v1", dim=64).base_url
        'http://127.0.0.1:8080/v1'

    Raises:
        TypeError: `model` is neither an encoder nor a non-empty string.
    """
    if isinstance(model, LateInteractionEncoder):
        return model
    if isinstance(model, str) and model.strip():
        if model.strip().lower().startswith(URL_SCHEMES):
            return RemoteColBERT(base_url=model.strip(), **options)
        return ColBERT.from_pretrained(model, **options)
    raise TypeError(
        "model must be a maxsim encoder (maxsim.ColBERT, maxsim.RemoteColBERT, "
        "maxsim.testing.FakeColBERT), an http(s):// URL of a Jina-compatible API, or a "
        f"checkpoint name or folder for maxsim.ColBERT.from_pretrained, got {type(model).__name__}"
    )
