"""Store folders on disk: arrays in safetensors, everything else in JSON; never pickle.

A folder holds `store.json` and the `vectors-<generation>.safetensors` file it names.
`save` writes the arrays under a new generation first and then replaces `store.json`
atomically, so a crash at any point leaves a complete store (old or new) behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from maxsim.stores.base import DTYPES, Record, check_metadata

FORMAT = "maxsim.LateInteractionStore"
FORMAT_VERSION = 1
MANIFEST = "store.json"
SAVED_ARRAYS = ("vectors", "lengths", "owners", "chunks")
REQUIRED_SETTINGS = ("model", "dim", "dtype", "chunk_size", "chunk_overlap")


@dataclass
class SavedStore:
    settings: dict[str, Any]
    arrays: dict[str, torch.Tensor]
    records: list[Record]


def save(
    folder: Path, arrays: dict[str, torch.Tensor], settings: dict[str, Any], records: list[Record]
) -> None:
    """Write a new generation of arrays, point `store.json` at it, drop the previous one.

    Only the generation the old manifest named is deleted, so a concurrent save never
    removes the file another save just wrote.
    """
    folder.mkdir(parents=True, exist_ok=True)
    previous = _previous_vectors(folder)
    vectors_name = f"vectors-{uuid.uuid4().hex}.safetensors"
    vectors_path = folder / vectors_name
    save_file({name: tensor.contiguous() for name, tensor in arrays.items()}, str(vectors_path))
    _fsync(vectors_path)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vectors_file": vectors_name,
        "settings": settings,
        "records": [asdict(record) for record in records],
    }
    write_atomically(folder / MANIFEST, json.dumps(manifest, ensure_ascii=False))
    if previous is not None and previous != vectors_name:
        (folder / previous).unlink(missing_ok=True)


def _previous_vectors(folder: Path) -> str | None:
    """The arrays file the current manifest names, if it can be read."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        name = manifest["vectors_file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and name.startswith("vectors-") else None


def load(folder: Path) -> SavedStore:
    """Read and check a store folder.

    Raises:
        FileNotFoundError: no `store.json` (or the arrays it names) in `folder`.
        ValueError: a corrupt, truncated or inconsistent file, named in the message.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(f"{folder} holds no saved store ({MANIFEST} is missing)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{manifest_path} is corrupt or truncated: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path} is not a maxsim store manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path} has format version {manifest.get('format_version')!r}; this "
            f"maxsim reads version {FORMAT_VERSION}"
        )
    vectors_path = folder / str(manifest.get("vectors_file", ""))
    if not vectors_path.is_file() or vectors_path.parent != folder:
        raise FileNotFoundError(f"{vectors_path} named by {manifest_path} is missing")
    try:
        arrays = load_file(str(vectors_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{vectors_path} is corrupt or truncated: {error}") from error
    try:
        records = [
            Record(str(item["id"]), item["text"], check_metadata(item["metadata"], "metadata"))
            for item in manifest["records"]
        ]
        settings = manifest["settings"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{manifest_path} has malformed records or settings: {error}") from error
    _check_consistent(vectors_path, arrays, settings, records)
    return SavedStore(settings, arrays, records)


def _check_consistent(
    path: Path, arrays: dict[str, torch.Tensor], settings: dict[str, Any], records: list[Record]
) -> None:
    missing = [name for name in SAVED_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}")
    unset = [name for name in REQUIRED_SETTINGS if name not in settings]
    if unset:
        raise ValueError(f"{path.parent / MANIFEST} lacks settings {unset}")
    if DTYPES.get(settings["dtype"]) != arrays["vectors"].dtype:
        raise ValueError(
            f"{path} holds {arrays['vectors'].dtype} vectors, not {settings['dtype']!r}"
        )
    chunk_size, overlap = settings["chunk_size"], settings["chunk_overlap"]
    if not (chunk_size is None or isinstance(chunk_size, int)) or not isinstance(overlap, int):
        raise ValueError(f"{path.parent / MANIFEST} has malformed chunk settings")
    vectors, lengths, owners = arrays["vectors"], arrays["lengths"], arrays["owners"]
    documents = len(records)
    problems = []
    if len({record.id for record in records}) != documents:
        problems.append("a document id appears twice")
    if vectors.ndim != 2 or vectors.shape[1] != settings.get("dim"):
        problems.append(f"vectors have shape {tuple(vectors.shape)}, dim {settings.get('dim')}")
    if int(lengths.sum()) != vectors.shape[0] or bool((lengths <= 0).any()):
        problems.append("window lengths do not add up to the stored rows")
    if len(owners) != len(lengths) or len(arrays["chunks"]) != len(lengths):
        problems.append("window arrays differ in length")
    if len(owners) and (int(owners.min()) < 0 or int(owners.max()) >= documents):
        problems.append("a window belongs to no stored document")
    elif len(torch.unique(owners)) != documents:
        problems.append("a stored document has no vectors")
    if problems:
        raise ValueError(f"{path} is inconsistent with its manifest: {'; '.join(problems)}")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (temporary file, fsync, rename, fsync folder)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _fsync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())
