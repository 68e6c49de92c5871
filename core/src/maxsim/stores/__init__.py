"""Late-interaction stores: in memory (`LateInteractionStore`) and on Qdrant (`QdrantStore`)."""

from __future__ import annotations

from typing import Any

from maxsim.stores.base import DocumentStore, Hit, Record
from maxsim.stores.memory import LateInteractionStore, MemoryUsage

__all__ = [
    "DocumentStore",
    "Hit",
    "LateInteractionStore",
    "MemoryUsage",
    "QdrantStore",
    "Record",
]


def __getattr__(name: str) -> Any:
    if name == "QdrantStore":
        from maxsim.stores.qdrant import QdrantStore

        return QdrantStore
    raise AttributeError(f"module 'maxsim.stores' has no attribute {name!r}")
