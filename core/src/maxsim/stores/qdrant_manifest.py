"""What `QdrantStore` keeps outside Qdrant: store.json (how to reconnect), and reading
collections written by the older single-vector layout (for `QdrantStore.migrate`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxsim.stores.loading import saved_format
from maxsim.stores.persistence import MANIFEST, write_atomically
from maxsim.stores.qdrant_filters import qdrant_models

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

FORMAT_VERSION = 1
CONNECTION_OPTIONS = ("location", "url", "host", "port", "grpc_port", "prefer_grpc", "https")
REQUIRED = ("collection_name", "connection", "settings")
REQUIRED_SETTINGS = ("model", "dim", "first_stage", "candidates", "chunk_size", "chunk_overlap")
LegacyDocument = tuple[str, "str | None", dict[str, Any], list[np.ndarray]]


def connection(client: QdrantClient) -> dict[str, Any]:
    """The `QdrantClient` arguments that reach `client`'s data again, secrets left out.

    Raises:
        ValueError: `client` is in-memory, so nothing else can reach its data.
    """
    options = client.init_options
    if options.get("location") == ":memory:":
        raise ValueError(
            'cannot save a QdrantStore on QdrantClient(":memory:"): its data lives only in '
            "this process; use a Qdrant server (QdrantClient(url=...)) or a local folder "
            "(QdrantClient(path=...))"
        )
    saved = {name: options[name] for name in CONNECTION_OPTIONS if options.get(name) is not None}
    if options.get("prefix") is not None:
        saved["prefix"] = options["prefix"]
    if options.get("path") is not None:
        saved["path"] = str(Path(options["path"]).resolve())
    return saved


def save(
    folder: Path,
    format: str,
    collection_name: str,
    connection: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    """Write `folder`/store.json atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": format,
        "format_version": FORMAT_VERSION,
        "collection_name": collection_name,
        "connection": connection,
        "settings": settings,
    }
    write_atomically(folder / MANIFEST, json.dumps(manifest, indent=1))


def load(folder: Path, format: str) -> dict[str, Any]:
    """The checked manifest in `folder`.

    Raises:
        FileNotFoundError: no store.json in `folder`.
        ValueError: a corrupt manifest, another store's, or another format version.
    """
    found = saved_format(folder)
    if found != format:
        raise ValueError(
            f"{folder} holds a {found!r} store, not {format!r}; open it with load_store"
        )
    path = folder / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {manifest.get('format_version')!r}; this maxsim "
            f"reads version {FORMAT_VERSION}"
        )
    missing = [key for key in REQUIRED if key not in manifest]
    settings = manifest.get("settings")
    if not isinstance(settings, dict) or not isinstance(manifest.get("connection"), dict):
        missing.append("settings/connection as objects")
    else:
        missing += [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    return manifest


def connect(saved: dict[str, Any], options: dict[str, Any]) -> QdrantClient:
    """A new `QdrantClient` from a saved connection plus `options` (api_key=, ...)."""
    from qdrant_client import QdrantClient

    return QdrantClient(**{**saved, **options})


def legacy_message(name: str, params: Any) -> str:
    """Why a collection with one unnamed vector cannot be opened, and what to do."""
    m = qdrant_models()
    config = params.multivector_config
    if config is not None and config.comparator == m.MultiVectorComparator.MAX_SIM:
        return (
            f"Qdrant collection {name!r} was made by an older QdrantStore (one unnamed "
            "multivector, no first stage, no versions); copy it into this layout with "
            f"QdrantStore.migrate(model, client, {name!r}, {name + '-v2'!r}), then use the "
            "new collection"
        )
    return (
        f"Qdrant collection {name!r} holds single vectors ({params.distance}), not a "
        "QdrantStore collection; use another collection name"
    )


def legacy_documents(client: QdrantClient, name: str, page: int) -> Iterator[list[LegacyDocument]]:
    """Documents of an older QdrantStore's collection, `page` at a time: id, text,
    metadata and windows (float32 [rows, dim], in order).

    Raises:
        ValueError: `name` is not such a collection.
    """
    m = qdrant_models()
    config = client.get_collection(name).config
    params = config.params.vectors
    if not isinstance(params, m.VectorParams) or (config.metadata or {}).get("maxsim"):
        raise ValueError(f"Qdrant collection {name!r} is not an older QdrantStore collection")
    if params.multivector_config is None:
        raise ValueError(legacy_message(name, params))
    first = m.Filter(must=[m.FieldCondition(key="chunk", match=m.MatchValue(value=0))])
    offset = None
    while True:
        heads, offset = client.scroll(
            name, scroll_filter=first, limit=page, offset=offset, with_payload=True
        )
        payloads = [head.payload or {} for head in heads]
        if payloads:
            windows = _legacy_windows(client, name, [p["document_id"] for p in payloads], page)
            yield [
                (
                    p["document_id"],
                    p.get("text"),
                    p.get("metadata") or {},
                    windows[p["document_id"]],
                )
                for p in payloads
            ]
        if offset is None:
            return


def _legacy_windows(
    client: QdrantClient, name: str, ids: list[str], page: int
) -> dict[str, list[np.ndarray]]:
    """Each document's windows in chunk order."""
    m = qdrant_models()
    owned = m.Filter(must=[m.FieldCondition(key="document_id", match=m.MatchAny(any=ids))])
    windows: dict[str, dict[int, np.ndarray]] = {value: {} for value in ids}
    offset = None
    while True:
        points, offset = client.scroll(
            name,
            scroll_filter=owned,
            limit=page,
            offset=offset,
            with_payload=["document_id", "chunk"],
            with_vectors=True,
        )
        for point in points:
            payload = point.payload or {}
            windows[payload["document_id"]][int(payload["chunk"])] = np.asarray(
                point.vector, dtype=np.float32
            )
        if offset is None:
            return {value: [found[c] for c in sorted(found)] for value, found in windows.items()}
