"""Stores know their model by the fingerprint of its config and weights, not its path."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import maxsim
from maxsim.fingerprint import checkpoint_fingerprint, same_model
from maxsim.testing import FakeColBERT

TINY = Path(__file__).parents[1] / "fixtures" / "jina-colbert-v2-tiny"


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny checkpoint copied with extra files nobody loads, and one with other weights."""
    same = tmp_path_factory.mktemp("same") / "checkpoint"
    shutil.copytree(TINY, same)
    (same / "README.md").write_text("a copy")
    (same / "onnx").mkdir()
    (same / "onnx" / "model.bin").write_bytes(b"onnx export")
    other = tmp_path_factory.mktemp("other") / "checkpoint"
    shutil.copytree(TINY, other)
    weights = bytearray((other / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (other / "model.safetensors").write_bytes(bytes(weights))
    return same, other


def test_fingerprint_follows_config_and_weights_not_the_folder(copies: tuple[Path, Path]) -> None:
    same, other = copies
    assert checkpoint_fingerprint(same) == checkpoint_fingerprint(TINY)
    assert checkpoint_fingerprint(other) != checkpoint_fingerprint(TINY)


def test_store_saved_with_one_copy_loads_with_another(
    copies: tuple[Path, Path], tmp_path: Path
) -> None:
    same, other = copies
    model = maxsim.ColBERT.from_pretrained(str(TINY))
    store = maxsim.LateInteractionStore(model)
    store.add(["Berlin is a city in Germany."], ids=["berlin"])
    store.save(tmp_path)
    loaded = maxsim.LateInteractionStore.load(tmp_path, maxsim.ColBERT.from_pretrained(str(same)))
    assert [hit.id for hit in loaded.search("Berlin")] == ["berlin"]
    with pytest.raises(ValueError, match="was saved with model"):
        maxsim.LateInteractionStore.load(tmp_path, maxsim.ColBERT.from_pretrained(str(other)))


def test_same_model_checks_a_name_without_loading_it(
    copies: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    same, other = copies
    model = maxsim.ColBERT.from_pretrained(str(TINY))

    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a second model was loaded")

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", no_loading)
    assert same_model(str(same), model)
    assert not same_model(str(other), model)
    assert same_model(FakeColBERT(dim=16), FakeColBERT(dim=16))
    assert not same_model(FakeColBERT(dim=16), FakeColBERT(dim=8))


def test_adapters_take_a_name_of_the_stores_checkpoint_without_loading_it(
    copies: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_maxsim import ColBERTVectorStore as LangChainStore
    from llama_index.vector_stores.maxsim import ColBERTVectorStore as LlamaIndexStore

    same, other = copies
    store = maxsim.LateInteractionStore(maxsim.ColBERT.from_pretrained(str(TINY)))
    store.add(["Berlin is a city in Germany."], ids=["berlin"])

    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a second model was loaded")

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", no_loading)
    for adapter in (LangChainStore, LlamaIndexStore):
        assert adapter(model=str(same), store=store).model is store.model
        with pytest.raises(ValueError, match="model"):
            adapter(model=str(other), store=store)
