"""Open a saved store folder with the class its manifest names."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from maxsim.late_interaction import LateInteractionEncoder
from maxsim.stores.base import DocumentStore
from maxsim.stores.persistence import MANIFEST, read_manifest

STORE_CLASSES = {
    "maxsim.LateInteractionStore": ("maxsim.stores.memory", "LateInteractionStore"),
    "maxsim.PLAIDStore": ("maxsim.stores.plaid", "PLAIDStore"),
    "maxsim.QdrantStore": ("maxsim.stores.qdrant", "QdrantStore"),
}


def saved_format(path: str | Path) -> str:
    """The `format` named by the manifest in folder `path`.

    Raises:
        FileNotFoundError: `path` holds no manifest.
        ValueError: the manifest is corrupt or names no store class maxsim knows.
    """
    manifest_path = Path(path) / MANIFEST
    manifest = read_manifest(Path(path))
    name = manifest.get("format")
    if name not in STORE_CLASSES:
        raise ValueError(
            f"{manifest_path} names store format {name!r}; this maxsim opens "
            f"{sorted(STORE_CLASSES)}"
        )
    return str(name)


def store_class(format: str) -> type[DocumentStore]:
    """The store class saved under `format` (its optional extra imported on demand)."""
    module, name = STORE_CLASSES[format]
    cls: type[DocumentStore] = getattr(importlib.import_module(module), name)
    return cls


def load_store(path: str | Path, model: LateInteractionEncoder, **options: Any) -> DocumentStore:
    """Open the store saved in folder `path`, whichever class saved it.

    `options` go to that class's `load` (`force=True`, or `client=` for Qdrant).

    Example:
        >>> import tempfile
        >>> from maxsim import LateInteractionStore
        >>> from maxsim.stores import load_store
        >>> from maxsim.testing import FakeColBERT
        >>> model = FakeColBERT()
        >>> store = LateInteractionStore(model)
        >>> store.add(["red apples"], ids=["a"])
        ['a']
        >>> folder = tempfile.mkdtemp()
        >>> store.save(folder)
        >>> type(load_store(folder, model)).__name__
        'LateInteractionStore'

    Raises:
        FileNotFoundError: `path` holds no saved store.
        ValueError: a corrupt manifest, an unknown format, or what that class's `load` raises.
    """
    return store_class(saved_format(path)).load(path, model, **options)
