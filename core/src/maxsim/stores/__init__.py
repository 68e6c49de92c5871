"""Late-interaction stores: in memory, exact (`LateInteractionStore`) or compressed
(`PLAIDStore`), and on Qdrant (`QdrantStore`).

Every store is a `DocumentStore`; `load_store` opens a saved folder with the class that
saved it.
"""

from __future__ import annotations

from typing import Any

from maxsim.stores.base import DocumentStore, Hit, Record
from maxsim.stores.loading import load_store
from maxsim.stores.memory import LateInteractionStore, MemoryUsage
from maxsim.stores.plaid import PLAIDStore

__all__ = [
    "DocumentStore",
    "Hit",
    "LateInteractionStore",
    "MemoryUsage",
    "PLAIDStore",
    "QdrantStore",
    "Record",
    "load_store",
]


def __getattr__(name: str) -> Any:
    if name == "QdrantStore":
        from maxsim.stores.qdrant import QdrantStore

        return QdrantStore
    raise AttributeError(f"module 'maxsim.stores' has no attribute {name!r}")
