"""Store folders on disk: arrays in safetensors, everything else in JSON; never pickle.

A folder holds `store.json` and the `vectors-<generation>.safetensors` file it names.
`save` writes the arrays under a new generation first and then replaces `store.json`
atomically, so a crash at any point leaves a complete store (old or new) behind.
`load` memory-maps the arrays (read-only numpy arrays backed by the file), so opening
a large store costs little more than reading its JSON.

Each store class describes its files with a `Layout`: its format name and version, the
arrays it needs (dtype and number of dimensions) and its settings (JSON types).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maxsim.late_interaction import LateInteractionEncoder
from maxsim.stores.base import Record

MANIFEST = "store.json"
ARRAYS_NAME = re.compile(r"vectors-[0-9a-f]{32}\.safetensors")
HEADER_BYTES = 8
MAX_HEADER_BYTES = 100_000_000
SAFETENSORS_DTYPES = {
    "F16": np.float16,
    "F32": np.float32,
    "I64": np.int64,
    "I32": np.int32,
    "U16": np.uint16,
    "U8": np.uint8,
}
MODEL_SETTINGS: dict[str, Any] = {"model": str, "dim": int}
CHUNK_SETTINGS: dict[str, Any] = {"chunk_size": (int, type(None)), "chunk_overlap": int}


@dataclass(frozen=True)
class Layout:
    """What a store class writes: format name and version, arrays, settings.

    `arrays` maps each required array to its allowed dtypes and number of dimensions;
    `settings` maps each required setting to its allowed JSON types.
    """

    format: str
    version: int
    arrays: dict[str, tuple[tuple[type, ...], int]]
    settings: dict[str, Any]


@dataclass
class SavedStore:
    """A checked store folder: settings, memory-mapped arrays, records."""

    settings: dict[str, Any]
    arrays: dict[str, np.ndarray]
    records: list[Record]
    arrays_path: Path

    def inconsistent(self, problems: list[str]) -> None:
        """Raise a ValueError naming the arrays file when `problems` is not empty."""
        if problems:
            raise ValueError(
                f"{self.arrays_path} is inconsistent with its manifest: {'; '.join(problems)}"
            )


def model_settings(model: LateInteractionEncoder) -> dict[str, Any]:
    """The settings every store saves about its model."""
    return {
        "model": model.name,
        "fingerprint": model.fingerprint,
        "dim": model.dim,
        "query_length": model.query_length,
        "document_length": model.document_length,
    }


def check_model(
    path: str | Path, settings: dict[str, Any], model: LateInteractionEncoder, force: bool
) -> None:
    """Refuse a model of another dim, or of another checkpoint unless `force`: compared by
    the fingerprint of config and weights (wherever the checkpoint was loaded from), by
    name for a store saved without one."""
    if settings["dim"] != model.dim or (not _saved_by(settings, model, path) and not force):
        raise ValueError(
            f"{path} was saved with model {settings['model']!r} (dim {settings['dim']}), "
            f"not {model.name!r} (dim {model.dim}); load it with that model, or pass "
            "force=True to use a different model of the same dim"
        )


def _saved_by(settings: dict[str, Any], model: LateInteractionEncoder, path: str | Path) -> bool:
    """Whether the store's settings name `model`'s checkpoint."""
    saved = settings.get("fingerprint")
    if saved is not None and not isinstance(saved, str):
        raise ValueError(f"{path}: the manifest's fingerprint is {saved!r}, not a string")
    if saved is None or model.fingerprint is None:
        return bool(settings["model"] == model.name)
    return saved == model.fingerprint


def window_problems(
    rows: int, lengths: np.ndarray, owners: np.ndarray, chunks: np.ndarray, documents: int
) -> list[str]:
    """What is wrong with saved windows (`lengths`, `owners`, `chunks`) over `rows` token
    rows and `documents` records."""
    problems = []
    if int(lengths.sum(dtype=np.int64)) != rows or bool((lengths <= 0).any()):
        problems.append("window lengths do not add up to the stored rows")
    if len(owners) != len(lengths) or len(chunks) != len(lengths):
        problems.append("window arrays differ in length")
    elif len(owners) and (int(owners.min()) < 0 or int(owners.max()) >= documents):
        problems.append("a window belongs to no stored document")
    elif not np.bincount(owners, minlength=documents).all():
        problems.append("a stored document has no vectors")
    return problems


def save(
    folder: Path,
    layout: Layout,
    arrays: dict[str, np.ndarray],
    settings: dict[str, Any],
    records: list[Record],
) -> None:
    """Write a new generation of arrays, point `store.json` at it, drop the previous one.

    Only the generation the old manifest named is deleted, and only when that name is a
    plain `vectors-<hex>.safetensors` file in `folder`, so a concurrent save never removes
    the file another save just wrote and a doctored manifest cannot delete anything else.
    """
    folder.mkdir(parents=True, exist_ok=True)
    previous = _previous_arrays(folder)
    arrays_name = f"vectors-{uuid.uuid4().hex}.safetensors"
    arrays_path = folder / arrays_name
    write_safetensors(arrays_path, arrays)
    manifest = {
        "format": layout.format,
        "format_version": layout.version,
        "vectors_file": arrays_name,
        "settings": settings,
        "records": [asdict(record) for record in records],
    }
    write_atomically(folder / MANIFEST, json.dumps(manifest, ensure_ascii=False))
    if previous is not None and previous != arrays_name:
        (folder / previous).unlink(missing_ok=True)


def write_safetensors(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` in the safetensors format and fsync it, streaming each
    array's buffer to the file (safetensors' own writer holds a copy of everything)."""
    names = {np.dtype(dtype): name for name, dtype in SAFETENSORS_DTYPES.items()}
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    header: dict[str, Any] = {}
    offset = 0
    for name, array in contiguous.items():
        header[name] = {
            "dtype": names[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as file:
        file.write(len(encoded).to_bytes(HEADER_BYTES, "little"))
        file.write(encoded)
        file.flush()
        for array in contiguous.values():
            array.tofile(file)
        file.flush()
        os.fsync(file.fileno())


def _previous_arrays(folder: Path) -> str | None:
    """The arrays file the current manifest names, if it is a plain generation file name."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        name = manifest["vectors_file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and ARRAYS_NAME.fullmatch(name) else None


def read_manifest(folder: Path) -> dict[str, Any]:
    """The JSON object in `folder/store.json`, or an error naming the file."""
    path = folder / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no saved store ({MANIFEST} is missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is corrupt or truncated: {error}") from error
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a maxsim store manifest")
    return manifest


def load(folder: Path, layout: Layout) -> SavedStore:
    """Read and check a store folder written with `layout`.

    Raises:
        FileNotFoundError: no `store.json` (or the arrays it names) in `folder`.
        ValueError: a corrupt, truncated or inconsistent file, named in the message.
    """
    manifest_path = folder / MANIFEST
    manifest = read_manifest(folder)
    found = manifest.get("format")
    if found != layout.format:
        raise ValueError(
            f"{manifest_path} holds a {found!r} store, not {layout.format!r}; open it with "
            "maxsim.stores.load_store or that class's load"
        )
    if manifest.get("format_version") != layout.version:
        raise ValueError(
            f"{manifest_path} has format version {manifest.get('format_version')!r}; this "
            f"maxsim reads version {layout.version}"
        )
    name = manifest.get("vectors_file")
    if not isinstance(name, str) or not ARRAYS_NAME.fullmatch(name):
        raise ValueError(
            f"{manifest_path} names arrays file {name!r}, not a vectors-<hex>.safetensors "
            "file in the same folder"
        )
    arrays_path = folder / name
    if not arrays_path.is_file():
        raise FileNotFoundError(f"{arrays_path} named by {manifest_path} is missing")
    settings = manifest.get("settings")
    if not isinstance(settings, dict):
        raise ValueError(f"{manifest_path} has malformed records or settings: no settings dict")
    _check_settings(manifest_path, settings, layout.settings)
    records = _records(manifest_path, manifest.get("records"))
    arrays = _map_arrays(arrays_path)
    _check_arrays(arrays_path, arrays, layout.arrays)
    return SavedStore(settings, arrays, records, arrays_path)


def _check_settings(path: Path, settings: dict[str, Any], types: dict[str, Any]) -> None:
    unset = [name for name in types if name not in settings]
    if unset:
        raise ValueError(f"{path} lacks settings {unset}")
    for name, allowed in types.items():
        value = settings[name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and allowed is not bool):
            raise ValueError(f"{path}: setting {name!r} has the wrong type ({value!r})")


def _records(path: Path, items: Any) -> list[Record]:
    if not isinstance(items, list):
        raise ValueError(f"{path} has malformed records or settings: records is not a list")
    records = []
    for position, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not item["id"]
            or not isinstance(item.get("text"), (str, type(None)))
        ):
            raise ValueError(f"{path} has malformed records or settings: records[{position}]")
        metadata = {} if item.get("metadata") is None else item["metadata"]
        if not isinstance(metadata, dict):
            raise ValueError(
                f"{path} has malformed records or settings: records[{position}].metadata "
                "is not a dict"
            )
        records.append(Record(item["id"], item["text"], metadata))
    if len({record.id for record in records}) != len(records):
        raise ValueError(f"{path} is inconsistent: a document id appears twice")
    return records


def _refuse_constant(name: str) -> None:
    """Refuse NaN and Infinity, which Python's json reads but metadata may not hold (a
    parsed manifest then holds only what `check_metadata` lets into a store)."""
    raise ValueError(f"{name} is not a JSON number")


def _map_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file as read-only memory maps, after checking its header."""
    size = path.stat().st_size
    try:
        with path.open("rb") as file:
            header_size = int.from_bytes(file.read(HEADER_BYTES), "little")
            if size < HEADER_BYTES or header_size > min(size - HEADER_BYTES, MAX_HEADER_BYTES):
                raise ValueError("the header runs past the end of the file")
            header = json.loads(file.read(header_size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        header.pop("__metadata__", None)
        data_start = HEADER_BYTES + header_size
        arrays = {}
        end = 0
        for name, entry in header.items():
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(int(n) for n in entry["shape"])
            begin, stop = (int(n) for n in entry["data_offsets"])
            if stop - begin != math.prod(shape) * np.dtype(dtype).itemsize or begin < 0:
                raise ValueError(f"array {name!r} has offsets that do not match its shape")
            if data_start + stop > size:
                raise ValueError(f"array {name!r} runs past the end of the file")
            end = max(end, stop)
            arrays[name] = _mapped(path, dtype, shape, data_start + begin)
        if data_start + end != size:
            raise ValueError("the file has bytes no array accounts for")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as error:
        raise ValueError(f"{path} is corrupt or truncated: {error}") from error
    return arrays


def _mapped(path: Path, dtype: type, shape: tuple[int, ...], offset: int) -> np.ndarray:
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape))


def _check_arrays(
    path: Path, arrays: dict[str, np.ndarray], specs: dict[str, tuple[tuple[type, ...], int]]
) -> None:
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}")
    for name, (dtypes, ndim) in specs.items():
        array = arrays[name]
        if array.dtype not in [np.dtype(dtype) for dtype in dtypes] or array.ndim != ndim:
            raise ValueError(
                f"{path}: array {name!r} is {array.dtype} with shape {array.shape}; expected "
                f"{ndim}-D {' or '.join(np.dtype(d).name for d in dtypes)}"
            )


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
