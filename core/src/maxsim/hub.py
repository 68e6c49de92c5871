"""Fetch from the Hugging Face hub only the files a checkpoint's layout reads.

The top-level layout and tokenizer files come first; `modules.json` (when there is one)
names the Transformer and Dense folders that are fetched next. Weights are
safetensors, with `pytorch_model.bin` fetched only for a folder that has none, so ONNX,
OpenVINO and other exported variants never download.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LAYOUT_FILES = (
    "config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "artifact.metadata",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "vocab.json",
)
TOKENIZER_SETTINGS = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "merges.txt",
)
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors")
LOCAL_FOLDER_FIX = "pass a local checkpoint folder"
LEGACY_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin")


def read_modules(folder: Path) -> list[dict[str, Any]]:
    """The sentence-transformers modules of `folder/modules.json`, in order."""
    path = folder / "modules.json"
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    if not isinstance(modules, list) or not all(isinstance(item, dict) for item in modules):
        raise ValueError(f"{path} must hold a JSON list of module objects")
    return sorted(modules, key=lambda module: int(module.get("idx", 0)))


def module_paths(folder: Path, kind: str) -> list[str]:
    """Paths of the `modules.json` entries whose type ends with `kind` ("Dense", ...)."""
    return [
        str(module.get("path", ""))
        for module in read_modules(folder)
        if str(module.get("type", "")).endswith(kind)
    ]


def download(repo_id: str) -> Path:
    """The snapshot folder of `repo_id` holding the files its layout needs.

    Raises:
        OSError: the hub cannot be reached (and the files are not cached) or has no such repo.
    """
    from huggingface_hub import snapshot_download

    def fetch(names: list[str]) -> Path:
        try:
            return Path(snapshot_download(repo_id, allow_patterns=names))
        except Exception as error:
            raise OSError(
                f"could not download {repo_id!r} from the Hugging Face hub "
                f"({_reason(error)}); check the name and the network, or {LOCAL_FOLDER_FIX}"
            ) from error

    folder = fetch([*LAYOUT_FILES, *TOKENIZER_FILES, *TOKENIZER_SETTINGS])
    encoder_folders, dense_folders = [""], []
    if (folder / "modules.json").is_file():
        encoder_folders = module_paths(folder, "Transformer")[:1] or [""]
        dense_folders = module_paths(folder, "Dense")
    extra = [
        _inside(path, name)
        for path in encoder_folders
        if path
        for name in (*LAYOUT_FILES, *TOKENIZER_FILES, *TOKENIZER_SETTINGS)
    ]
    extra += [_inside(path, "config.json") for path in dense_folders]
    weight_folders = [*encoder_folders, *dense_folders]
    folder = fetch(
        [*extra, *(_inside(path, name) for path in weight_folders for name in SAFETENSORS)]
    )
    legacy = [path for path in weight_folders if not any((folder / path).glob("*.safetensors"))]
    if legacy:
        folder = fetch([_inside(path, name) for path in legacy for name in LEGACY_WEIGHTS])
    return folder


def _inside(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name


def _reason(error: Exception) -> str:
    """One line on why a download failed, without the hub's multi-line advice."""
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    if isinstance(error, RepositoryNotFoundError):
        return "no such repository, or it is private or gated"
    if isinstance(error, LocalEntryNotFoundError):
        return "the hub cannot be reached and the files are not in the local cache"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
