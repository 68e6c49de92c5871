"""The package surface: exports, typing marker, and the README's examples."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore

import langchain_maxsim
import maxsim

README = Path(__file__).parents[2] / "integrations" / "langchain" / "README.md"


def test_exports_are_pinned() -> None:
    assert langchain_maxsim.__all__ == ["ColBERTReranker", "ColBERTRetriever", "ColBERTVectorStore"]
    assert issubclass(langchain_maxsim.ColBERTRetriever, BaseRetriever)
    assert issubclass(langchain_maxsim.ColBERTReranker, BaseDocumentCompressor)
    assert issubclass(langchain_maxsim.ColBERTVectorStore, VectorStore)


def test_package_is_typed() -> None:
    assert resources.files("langchain_maxsim").joinpath("py.typed").is_file()


def test_readme_examples_run(
    tiny_model: maxsim.ColBERT,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each block runs on its own, the tiny checkpoint standing in for the hub model and
    Qdrant's local mode for a server (as the root README's test does)."""
    pytest.importorskip("qdrant_client")
    load = maxsim.ColBERT.from_pretrained

    def offline(name: str = "jinaai/jina-colbert-v2", **options: Any) -> maxsim.ColBERT:
        return tiny_model if name == "jinaai/jina-colbert-v2" else load(name, **options)

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", offline)
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 4
    for number, block in enumerate(blocks):
        block = block.replace(
            'QdrantClient(url="http://localhost:6333")', 'QdrantClient(":memory:")'
        )
        exec(compile(block, f"{README}:block{number}", "exec"), {})
    output = capsys.readouterr().out
    assert "330 metres." in output  # the chain's answer
