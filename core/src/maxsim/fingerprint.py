"""Checkpoint fingerprints: the same config and weights give the same id, wherever they lie.

A store records its model's fingerprint, so a store built from a hub id opens with the
same checkpoint copied to a folder, and an adapter handed a checkpoint name together
with a store can tell, before loading anything, that the store's model is that one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from maxsim.late_interaction import LateInteractionEncoder

WEIGHT_SUFFIXES = (".safetensors", ".bin")
SKIPPED_FOLDERS = ("onnx", "openvino")
CONFIG_KEYS_IGNORED = ("_name_or_path", "transformers_version")
CHUNK_BYTES = 1 << 20


def checkpoint_fingerprint(folder: Path) -> str:
    """Hex digest of `config.json` (its content, not its formatting or recorded path) and
    of the weight files in `folder` and its subfolders (safetensors where a folder has
    them, else .bin); other files (READMEs, ONNX exports) do not count.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "config.json").write_text('{"hidden_size": 8}')
        >>> _ = (folder / "model.safetensors").write_bytes(b"weights")
        >>> first = checkpoint_fingerprint(folder)
        >>> _ = (folder / "README.md").write_text("notes")
        >>> _ = (folder / "config.json").write_text('{"hidden_size": 8, "_name_or_path": "x"}')
        >>> checkpoint_fingerprint(folder) == first
        True
    """
    digest = hashlib.blake2b(digest_size=16)
    config_path = folder / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        for key in CONFIG_KEYS_IGNORED:
            config.pop(key, None)
        digest.update(json.dumps(config, sort_keys=True).encode())
    for path in _weight_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _weight_files(folder: Path) -> list[Path]:
    files = []
    for directory in sorted({path.parent for path in folder.rglob("*") if path.is_file()}):
        parts = directory.relative_to(folder).parts
        if any(part.startswith(".") or part in SKIPPED_FOLDERS for part in parts):
            continue
        for suffix in WEIGHT_SUFFIXES:
            found = sorted(directory.glob(f"*{suffix}"))
            if found:
                files += found
                break
    return files


def same_model(model: str | LateInteractionEncoder, encoder: LateInteractionEncoder) -> bool:
    """Whether `model` (an encoder, or a checkpoint name or folder, which is not loaded)
    is the checkpoint `encoder` was loaded from: compared by fingerprint where both have
    one, else by name."""
    if model is encoder:
        return True
    if isinstance(model, LateInteractionEncoder):
        if model.fingerprint is None or encoder.fingerprint is None:
            return model.name == encoder.name and model.dim == encoder.dim
        return model.fingerprint == encoder.fingerprint and model.dim == encoder.dim
    if encoder.fingerprint is None:
        return model == encoder.name
    from maxsim.checkpoints import resolve_folder

    return checkpoint_fingerprint(resolve_folder(model)) == encoder.fingerprint
