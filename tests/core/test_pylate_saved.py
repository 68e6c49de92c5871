"""Folders saved by PyLate itself load and reproduce PyLate's own vectors.

tests/fixtures/pylate-* were written by `pylate.models.ColBERT(...).save(path)` (see
tests/fixtures/README.md); `pylate_outputs.safetensors` holds what PyLate computed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import maxsim

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FOLDERS = ["pylate-default", "pylate-custom-prefixes", "pylate-modernbert"]
TEXTS = {"query": "queries", "document": "documents"}


def _outputs(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    texts = json.loads((folder / "pylate_outputs.json").read_text(encoding="utf-8"))
    return load_file(folder / "pylate_outputs.safetensors"), texts


def _load(folder: Path) -> maxsim.ColBERT:
    return maxsim.ColBERT.from_pretrained(str(folder), device="cpu")


@pytest.fixture(scope="module", params=FOLDERS)
def saved(request: pytest.FixtureRequest) -> tuple[Path, maxsim.ColBERT]:
    folder = FIXTURES / request.param
    return folder, _load(folder)


def test_the_fixture_holds_prefixes_as_pylate_adds_them() -> None:
    added = json.loads((FIXTURES / "pylate-default" / "added_tokens.json").read_text())
    settings = json.loads(
        (FIXTURES / "pylate-default" / "config_sentence_transformers.json").read_text()
    )
    assert (settings["query_prefix"], settings["document_prefix"]) == ("[Q] ", "[D] ")
    assert set(added) == {"[Q] ", "[D] "}


@pytest.mark.parametrize("side", ["query", "document"])
def test_token_ids_match_pylate(saved: tuple[Path, maxsim.ColBERT], side: str) -> None:
    folder, model = saved
    arrays, texts = _outputs(folder)
    ids = model.tokenize(texts[TEXTS[side]], is_query=side == "query")
    expected = [arrays[f"{side}_ids_{i}"].tolist() for i in range(len(ids))]
    assert ids == expected


def test_vectors_match_pylate(saved: tuple[Path, maxsim.ColBERT]) -> None:
    folder, model = saved
    arrays, texts = _outputs(folder)
    assert model.layout == "pylate"
    for side, encode in (("query", model.encode_queries), ("document", model.encode_documents)):
        actual = encode(texts[TEXTS[side]], batch_size=3)
        for index, vectors in enumerate(actual):
            expected = arrays[f"{side}_{index}"]
            assert vectors.shape == expected.shape
            np.testing.assert_allclose(vectors, expected, atol=1e-4, rtol=0)


def test_custom_prefixes_and_settings_are_read() -> None:
    model = _load(FIXTURES / "pylate-custom-prefixes")
    added = json.loads((FIXTURES / "pylate-custom-prefixes" / "added_tokens.json").read_text())
    assert model.rules.query_prefix_ids == (added["<query>"],)
    assert model.rules.document_prefix_ids == (model.tokenizer.convert_tokens_to_ids("[unused1]"),)
    assert (model.query_length, model.document_length, model.dim) == (12, 20, 8)
    assert model.rules.attend_to_expansion


def test_modernbert_folder_is_shaped_like_gte_moderncolbert() -> None:
    folder = FIXTURES / "pylate-modernbert"
    model = _load(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    saved = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    added = {token["content"]: token["id"] for token in saved["added_tokens"]}
    assert type(model._backbone.model).__name__ == "ModernBertModel"
    assert model.rules.query_prefix_ids == (added["[Q] "],)
    assert model.rules.document_prefix_ids == (added["[D] "],)
    arrays, _ = _outputs(folder)
    longest = max(len(arrays[f"document_ids_{i}"]) for i in range(4))
    assert longest > config["local_attention"]  # the sliding-window layers matter


def _with_prefixes(tmp_path: Path, query_prefix: str, document_prefix: str) -> Path:
    folder = shutil.copytree(FIXTURES / "pylate-default", tmp_path / "model")
    settings_file = folder / "config_sentence_transformers.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    settings |= {"query_prefix": query_prefix, "document_prefix": document_prefix}
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    return folder


def test_prefix_matches_the_added_token_without_its_trailing_space(tmp_path: Path) -> None:
    model = _load(_with_prefixes(tmp_path, "[Q]", "[D]"))
    reference = _load(FIXTURES / "pylate-default")
    assert model.rules.query_prefix_ids == reference.rules.query_prefix_ids
    assert model.rules.document_prefix_ids == reference.rules.document_prefix_ids


def test_a_prefix_that_is_no_token_is_inserted_as_its_tokenization(tmp_path: Path) -> None:
    model = _load(_with_prefixes(tmp_path, "search query: ", "document"))
    [query] = model.tokenize(["red city"], is_query=True)
    words = ["[CLS]", "search", "query", ":", "red", "city", "[SEP]"]
    assert query[: len(words)] == model.tokenizer.convert_tokens_to_ids(words)
    assert len(query) == model.query_length
    [document] = model.tokenize(["red city"], is_query=False)
    assert document == model.tokenizer.convert_tokens_to_ids(
        ["[CLS]", "document", "red", "city", "[SEP]"]
    )


def test_a_prefix_the_tokenizer_cannot_spell_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no prefix token 'zebra ") as error:
        _load(_with_prefixes(tmp_path, "zebra ", "[D] "))
    assert "trailing space" in str(error.value)


def test_tensor_outputs_are_ordinary_tensors(saved: tuple[Path, maxsim.ColBERT]) -> None:
    _, model = saved
    [query] = model.encode_queries(["red city"], as_tensor=True)
    [document] = model.encode_documents(["the red city"], as_tensor=True)
    assert not query.is_inference() and not document.is_inference()
    query.mul_(2.0)
    weights = document.clone().requires_grad_()
    (query @ weights.T).amax(dim=1).sum().backward()
    assert weights.grad is not None and weights.grad.shape == document.shape
