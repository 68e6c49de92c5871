"""Types and argument checks shared by the stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Record:
    """A stored document: its id, text (None when stored from vectors only) and metadata."""

    id: str
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result: raw MaxSim `score`, `normalized_score` (score / query rows) and the
    window of a chunked document that matched (`chunk`, 0 when not chunked)."""

    id: str
    score: float
    normalized_score: float
    text: str | None
    metadata: dict[str, Any]
    chunk: int = 0


def check_ids(ids: Any, argument: str = "ids") -> list[str]:
    """`ids` as a list of non-empty strings."""
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise TypeError(f"{argument} must be a list of strings; wrap a single id in a list")
    for position, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{argument}[{position}] must be a non-empty string, got {value!r}")
    return list(ids)


def prepare_batch(count: int, metadatas: Any, ids: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Checked ids (new uuid4 hex where missing) and metadata dicts for `count` documents.

    Raises:
        ValueError: lengths differ from `count`, an id repeats, or metadata is not JSON.
        TypeError: an id is not a string, or metadata is not a dict.
    """
    if ids is None:
        ids = [uuid.uuid4().hex for _ in range(count)]
    ids = check_ids(ids)
    if len(ids) != count:
        raise ValueError(f"ids has {len(ids)} items but there are {count} documents")
    seen: set[str] = set()
    for position, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"ids[{position}] repeats {value!r}; ids in one call must be unique")
        seen.add(value)
    if metadatas is None:
        return ids, [{} for _ in range(count)]
    if isinstance(metadatas, (str, dict)) or not isinstance(metadatas, Sequence):
        raise TypeError("metadatas must be a list of dicts, one per document")
    if len(metadatas) != count:
        raise ValueError(f"metadatas has {len(metadatas)} items but there are {count} documents")
    return ids, [check_metadata(item, f"metadatas[{i}]") for i, item in enumerate(metadatas)]


def check_metadata(metadata: Any, argument: str) -> dict[str, Any]:
    """A copy of `metadata` if it is a dict with string keys that JSON can store exactly."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"{argument} must be a dict, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{argument} cannot be stored as JSON ({error}); use str, int, float, bool, "
            "None, lists and dicts"
        ) from error
    copy: dict[str, Any] = json.loads(encoded)
    if copy != metadata:
        raise ValueError(f"{argument} does not survive JSON unchanged; use string keys and lists")
    return copy


def check_embeddings(embeddings: Any, dim: int) -> list[list[torch.Tensor]]:
    """Each document's windows as float32 tensors: a [rows, dim] array is one window.

    Raises:
        TypeError / ValueError naming the item that is not a finite [rows, dim] array.
    """
    if isinstance(embeddings, (str, bytes)) or not isinstance(
        embeddings, (Sequence, np.ndarray, torch.Tensor)
    ):
        raise TypeError("embeddings must be a list of [rows, dim] arrays, one per document")
    documents = []
    for position, item in enumerate(embeddings):
        windows = [item] if isinstance(item, (np.ndarray, torch.Tensor)) else item
        if not isinstance(windows, Sequence) or not windows:
            raise TypeError(f"embeddings[{position}] must be a [rows, dim] array or a list of them")
        documents.append([_check_matrix(w, f"embeddings[{position}]", dim) for w in windows])
    return documents


def _check_matrix(matrix: Any, argument: str, dim: int) -> torch.Tensor:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().float().numpy()
    if not isinstance(matrix, np.ndarray):
        raise TypeError(f"{argument} must be a numpy array or torch tensor")
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
        raise ValueError(
            f"{argument} has shape {array.shape}; expected [rows >= 1, {dim}] "
            "to match the store's model"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return torch.from_numpy(array)


def check_dtype(dtype: Any) -> torch.dtype:
    if dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
