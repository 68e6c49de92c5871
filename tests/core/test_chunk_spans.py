"""Chunked stores record each window's character span; hits give the window's text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

import maxsim
from maxsim.testing import FakeColBERT

FIXTURES = Path(__file__).parents[1] / "fixtures"
TEXT = "  alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu. "


def chunked_store() -> maxsim.LateInteractionStore:
    store = maxsim.LateInteractionStore(FakeColBERT(), chunk_size=4, chunk_overlap=1)
    store.add([TEXT, "short text"], ids=["long", "short"], metadatas=[{"n": 1}, {"n": 2}])
    return store


def test_hit_gives_the_matching_window_and_its_span() -> None:
    [hit] = chunked_store().search("theta iota", k=1)
    assert hit.id == "long" and hit.text == TEXT
    assert hit.span is not None
    assert hit.window_text == TEXT[hit.span[0] : hit.span[1]]
    assert "theta iota" in hit.window_text
    assert len(hit.window_text.split()) <= 4


def test_window_spans_cover_exactly_the_encoded_tokens() -> None:
    model = FakeColBERT()
    [windows] = model.encode_document_chunks([TEXT], 4, 1)
    [spans] = model.document_window_spans([TEXT], 4, 1)
    assert len(spans) == len(windows) > 1
    for vectors, (start, end) in zip(windows, spans, strict=True):
        np.testing.assert_array_equal(model.encode_documents([TEXT[start:end]])[0], vectors)


def test_real_tokenizer_window_spans_hold_the_window_tokens() -> None:
    model = maxsim.ColBERT.from_pretrained(str(FIXTURES / "jina-colbert-v2-tiny"))
    text = "Zürich liegt am See. " * 12 + " The river Limmat flows north."
    spans = model.document_window_spans([text], 16, 4)
    assert spans is not None
    content = model._content_ids([text.strip()])[0]
    window = 16 - model._frame_overhead(False)
    assert len(spans[0]) == len(range(0, len(content) - 4, window - 4))
    for index, (start, end) in enumerate(spans[0]):
        expected = content[index * (window - 4) : index * (window - 4) + window]
        assert text[start:end].split() == model.tokenizer.decode(expected).split()


def test_spans_survive_save_load_and_compaction(tmp_path: Path) -> None:
    store = chunked_store()
    before = store.search("theta iota", k=2)
    store.save(tmp_path)
    loaded = maxsim.LateInteractionStore.load(tmp_path, FakeColBERT())
    assert [(hit.id, hit.span) for hit in loaded.search("theta iota", k=2)] == [
        (hit.id, hit.span) for hit in before
    ]
    loaded.add(["filler " * 30] * 3, ids=["x", "y", "z"])
    loaded.delete(["x", "y", "z", "short"])
    [hit] = loaded.search("theta iota", k=1)
    assert (hit.id, hit.span) == (before[0].id, before[0].span)


def test_unchunked_and_vector_only_documents_have_no_span() -> None:
    store = maxsim.LateInteractionStore(FakeColBERT())
    store.add([TEXT], ids=["a"])
    [hit] = store.search("theta", k=1)
    assert hit.span is None and hit.window_text == TEXT
    chunked = maxsim.LateInteractionStore(FakeColBERT(), chunk_size=4, chunk_overlap=1)
    chunked.add_embeddings([np.ones((3, 16), np.float32)], texts=["vectors"], ids=["v"])
    [hit] = chunked.search("vectors", k=1)
    assert hit.span is None and hit.window_text == "vectors"


def test_corrupt_spans_array_is_refused(tmp_path: Path) -> None:
    chunked_store().save(tmp_path)
    [vectors_file] = tmp_path.glob("vectors-*.safetensors")
    arrays = load_file(str(vectors_file))
    arrays["spans"] = arrays["spans"][:, :1].contiguous()
    save_file(arrays, str(vectors_file))
    with pytest.raises(ValueError, match="spans array"):
        maxsim.LateInteractionStore.load(tmp_path, FakeColBERT())
