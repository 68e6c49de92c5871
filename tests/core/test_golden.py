"""Parity with the reference stack on the tiny jina-colbert-v2 checkpoint (see the spec)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import maxsim

VECTOR_TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-3


def test_query_token_ids_match(
    tiny_model: maxsim.ColBERT, golden: dict[str, Any], golden_arrays: dict[str, np.ndarray]
) -> None:
    ids = tiny_model.tokenize(golden["queries"], is_query=True)
    np.testing.assert_array_equal(np.array(ids), golden_arrays["query_input_ids"])
    assert all(row[1] == golden["query_marker_id"] for row in ids)


def test_document_token_ids_match(
    tiny_model: maxsim.ColBERT, golden: dict[str, Any], golden_arrays: dict[str, np.ndarray]
) -> None:
    ids = tiny_model.tokenize(golden["documents"], is_query=False)
    for i, row in enumerate(ids):
        np.testing.assert_array_equal(
            row, golden_arrays[f"document_{i}_input_ids"], err_msg=f"document {i}"
        )
        assert row[1] == golden["document_marker_id"]
    assert [len(row) for row in ids] == golden["documents_tokens"]


def test_skiplist_and_lengths(tiny_model: maxsim.ColBERT, golden: dict[str, Any]) -> None:
    assert sorted(tiny_model.rules.skiplist_ids) == golden["skiplist_token_ids"]
    assert tiny_model.query_length == golden["query_length"]
    assert tiny_model.document_length == golden["document_length"]
    assert tiny_model.dim == 128


@pytest.mark.parametrize("batch_size", [32, 1, 4])
def test_vectors_and_scores_match(
    tiny_model: maxsim.ColBERT,
    golden: dict[str, Any],
    golden_arrays: dict[str, np.ndarray],
    batch_size: int,
) -> None:
    queries = tiny_model.encode_queries(golden["queries"], batch_size=batch_size)
    documents = tiny_model.encode_documents(golden["documents"], batch_size=batch_size)
    for i, vectors in enumerate(queries):
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(
            vectors, golden_arrays["query_embeddings"][i], atol=VECTOR_TOLERANCE, rtol=0
        )
    for i, vectors in enumerate(documents):
        expected = golden_arrays[f"document_{i}_embeddings"]
        assert vectors.shape == expected.shape, f"document {i} kept rows"
        np.testing.assert_allclose(vectors, expected, atol=VECTOR_TOLERANCE, rtol=0)
    np.testing.assert_allclose(
        maxsim.scores(queries, documents), golden_arrays["scores"], atol=SCORE_TOLERANCE, rtol=0
    )


def test_kept_rows_follow_skiplist(
    tiny_model: maxsim.ColBERT, golden: dict[str, Any], golden_arrays: dict[str, np.ndarray]
) -> None:
    skiplist = set(golden["skiplist_token_ids"])
    for i, text in enumerate(golden["documents"]):
        ids = golden_arrays[f"document_{i}_input_ids"]
        kept = golden_arrays[f"document_{i}_kept"].astype(bool)
        np.testing.assert_array_equal(kept, [token not in skiplist for token in ids])
        assert tiny_model.encode_documents([text])[0].shape[0] == kept.sum()


def test_matryoshka_cut_renormalises(
    tiny_model: maxsim.ColBERT, golden: dict[str, Any], golden_arrays: dict[str, np.ndarray]
) -> None:
    cut = maxsim.ColBERT.from_pretrained(tiny_model.name, dim=64)
    [query] = cut.encode_queries(golden["queries"][:1])
    full = golden_arrays["query_embeddings"][0][:, :64]
    expected = full / np.linalg.norm(full, axis=1, keepdims=True)
    assert query.shape == (32, 64)
    np.testing.assert_allclose(query, expected, atol=VECTOR_TOLERANCE, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
