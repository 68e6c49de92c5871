"""Hub ids download only the files their layout reads (a fake hub, no network).

`huggingface_hub.snapshot_download` is replaced by a function that serves a local folder
the way the hub filters `allow_patterns`, and records every file it hands out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import load_file

import maxsim

PYLATE = Path(__file__).resolve().parents[1] / "fixtures" / "pylate-default"
TOKENIZER = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
]
EXPORTS = {
    "onnx/model.onnx": b"onnx",
    "onnx/model_quantized.onnx": b"onnx",
    "onnx/config.json": b"{}",
    "openvino/openvino_model.xml": b"<xml/>",
    "openvino/openvino_model.bin": b"bin",
    "openvino/openvino_model.json": b"{}",
    "README.md": b"# model card\n",
}


class FakeHub:
    """Serves `repo` for any repo id into `cache`, recording what was requested."""

    def __init__(self, repo: Path, cache: Path) -> None:
        self.repo, self.cache = repo, cache
        self.requests: list[list[str]] = []
        self.served: set[str] = set()

    def snapshot_download(self, repo_id: str, *, allow_patterns: Any = None, **_: Any) -> str:
        self.requests.append(list(allow_patterns))
        files = [path.relative_to(self.repo).as_posix() for path in self.repo.rglob("*")]
        for name in filter_repo_objects(files, allow_patterns=allow_patterns):
            if (self.repo / name).is_file():
                (self.cache / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.repo / name, self.cache / name)
                self.served.add(name)
        return str(self.cache)


def _with_exports(repo: Path, extra: dict[str, bytes]) -> None:
    for name, data in {**EXPORTS, **extra}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)


def _serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path) -> FakeHub:
    import huggingface_hub

    hub = FakeHub(repo, tmp_path / "cache")
    hub.cache.mkdir()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    return hub


def test_pylate_repo_fetches_its_modules_and_safetensors_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = shutil.copytree(PYLATE, tmp_path / "repo")
    (repo / "pylate_outputs.safetensors").unlink()
    _with_exports(
        repo,
        {"pytorch_model.bin": b"legacy", "1_Dense/pytorch_model.bin": b"legacy"},
    )
    hub = _serve(monkeypatch, tmp_path, repo)
    model = maxsim.ColBERT.from_pretrained("someone/tiny-pylate", device="cpu")
    expected = {
        "config.json",
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
        *TOKENIZER,
        "model.safetensors",
        "1_Dense/config.json",
        "1_Dense/model.safetensors",
    }
    assert hub.served == expected
    local = maxsim.ColBERT.from_pretrained(str(PYLATE), device="cpu")
    [got] = model.encode_queries(["red city"])
    [want] = local.encode_queries(["red city"])
    np.testing.assert_array_equal(got, want)


def test_stanford_repo_without_safetensors_falls_back_to_pytorch_model_bin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in TOKENIZER:
        shutil.copyfile(PYLATE / name, repo / name)
    config = json.loads((PYLATE / "config.json").read_text(encoding="utf-8"))
    (repo / "config.json").write_text(json.dumps({**config, "architectures": ["HF_ColBERT"]}))
    metadata = {"query_maxlen": 16, "doc_maxlen": 24, "query_token_id": "[unused0]"}
    (repo / "artifact.metadata").write_text(json.dumps(metadata))
    state = {f"bert.{key}": value for key, value in load_file(PYLATE / "model.safetensors").items()}
    state["linear.weight"] = torch.randn(8, config["hidden_size"])
    torch.save(state, repo / "pytorch_model.bin")
    _with_exports(repo, {})
    hub = _serve(monkeypatch, tmp_path, repo)
    model = maxsim.ColBERT.from_pretrained("someone/tiny-stanford", device="cpu")
    assert (model.layout, model.dim, model.document_length) == ("stanford", 8, 24)
    assert hub.served == {"config.json", "artifact.metadata", *TOKENIZER, "pytorch_model.bin"}
    safetensors_request = next(i for i, r in enumerate(hub.requests) if "model.safetensors" in r)
    legacy_request = next(i for i, r in enumerate(hub.requests) if "pytorch_model.bin" in r)
    assert safetensors_request < legacy_request


def test_unreachable_hub_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(repo_id: str, **_: Any) -> str:
        raise LocalEntryNotFoundError("An error happened while trying to locate the files.\n...")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match="cannot be reached") as error:
        maxsim.ColBERT.from_pretrained("someone/unreachable", device="cpu")
    message = str(error.value)
    assert "\n" not in message and message.count("pass a local checkpoint folder") == 1
