"""The integration README's Python examples run in order, offline: the tiny checkpoint
(loaded once) stands in for the hub model and Qdrant's local mode for a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import maxsim

README = Path(__file__).parents[2] / "integrations" / "llama-index" / "README.md"


def test_readme_examples_run(
    tiny_model: maxsim.ColBERT, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("qdrant_client")
    loaded: list[str] = []

    def from_pretrained(name: str, **kwargs: object) -> maxsim.ColBERT:
        loaded.append(name)
        return tiny_model

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", from_pretrained)
    offline = {'QdrantClient(url="http://localhost:6333")': 'QdrantClient(":memory:")'}
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks):
        for online, local in offline.items():
            block = block.replace(online, local)
        exec(compile(block, f"{README}:block{number}", "exec"), namespace)
    assert (tmp_path / "storage" / "default__vector_store.json" / "store.json").is_file()
    assert (tmp_path / "colbert-retriever" / "retriever.json").is_file()
    assert set(loaded) == {"jinaai/jina-colbert-v2"}
