"""maxsim.scores against a plain double loop, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maxsim
from maxsim import scoring


def reference_scores(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    result = np.zeros((len(queries), len(documents)))
    for i, query in enumerate(queries):
        for j, document in enumerate(documents):
            total = 0.0
            for query_row in query:
                total += max(float(np.dot(query_row, document_row)) for document_row in document)
            result[i, j] = total
    return result


@st.composite
def multivectors(draw: st.DrawFn) -> tuple[list[np.ndarray], list[np.ndarray]]:
    dim = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shift = draw(st.sampled_from([0.0, -3.0]))
    query_rows = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    document_rows = draw(st.lists(st.integers(1, 9), min_size=1, max_size=6))
    queries = [rng.standard_normal((rows, dim)).astype(np.float32) for rows in query_rows]
    documents = [
        (rng.standard_normal((rows, dim)) + shift).astype(np.float32) for rows in document_rows
    ]
    return queries, documents


@settings(max_examples=80, deadline=None)
@given(multivectors())
def test_matches_double_loop(data: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    queries, documents = data
    np.testing.assert_allclose(
        maxsim.scores(queries, documents),
        reference_scores(queries, documents),
        rtol=1e-5,
        atol=1e-4,
    )


def test_all_negative_similarities_are_not_clipped_by_padding() -> None:
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    short = np.array([[-0.5, 0.0]], dtype=np.float32)
    long = np.array([[-0.9, 0.0], [-0.8, 0.0], [-0.7, 0.0]], dtype=np.float32)
    result = maxsim.scores([query], [long, short])
    np.testing.assert_allclose(result, [[-0.7, -0.5]], atol=1e-6)


def test_single_row_documents_and_normalize() -> None:
    queries = [np.eye(4, dtype=np.float32)[:3]]
    documents = [np.eye(4, dtype=np.float32)[i : i + 1] for i in range(4)]
    np.testing.assert_allclose(maxsim.scores(queries, documents), [[1, 1, 1, 0]])
    np.testing.assert_allclose(
        maxsim.scores(queries, documents, normalize=True), [[1 / 3, 1 / 3, 1 / 3, 0]], atol=1e-7
    )


def test_blocks_give_the_same_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    queries = [rng.standard_normal((rows, 16)).astype(np.float32) for rows in (5, 32, 7, 12)]
    documents = [
        rng.standard_normal((rows, 16)).astype(np.float32) for rows in rng.integers(1, 40, 25)
    ]
    whole = maxsim.scores(queries, documents)
    monkeypatch.setattr(scoring, "QUERY_ROWS_PER_BLOCK", 10)
    monkeypatch.setattr(scoring, "SEGMENT_BLOCK_ROWS", 8)
    np.testing.assert_allclose(maxsim.scores(queries, documents), whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(whole, reference_scores(queries, documents), rtol=1e-5, atol=1e-4)


def test_accepts_tensors_float16_and_3d_batches() -> None:
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((2, 4, 8)).astype(np.float32)
    documents = [rng.standard_normal((rows, 8)).astype(np.float32) for rows in (3, 5)]
    expected = reference_scores(list(queries), documents)
    np.testing.assert_allclose(
        maxsim.scores(torch.from_numpy(queries), [torch.from_numpy(d) for d in documents]),
        expected,
        rtol=1e-5,
    )
    half = maxsim.scores(queries, [d.astype(np.float16) for d in documents])
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, expected, atol=0.05)


def test_empty_inputs_give_empty_matrix() -> None:
    assert maxsim.scores([], [np.ones((2, 3), dtype=np.float32)]).shape == (0, 1)
    assert maxsim.scores([np.ones((2, 3), dtype=np.float32)], []).shape == (1, 0)


@pytest.mark.parametrize(
    ("queries", "documents", "error", "message"),
    [
        ("text", [np.ones((1, 2))], TypeError, "queries must be a list"),
        (None, [np.ones((1, 2))], TypeError, "queries must be a list"),
        ([np.ones((1, 2))], [[1.0, 2.0]], TypeError, r"documents\[0\] must be a numpy array"),
        ([np.ones(2)], [np.ones((1, 2))], ValueError, r"queries\[0\] must be 2-D"),
        (
            [np.ones((1, 2))],
            [np.ones((1, 2)), np.ones((2, 2, 2))],
            ValueError,
            r"documents\[1\] must be 2-D",
        ),
        (
            [np.ones((1, 2))],
            [np.ones((1, 2)), np.ones((3, 4))],
            ValueError,
            r"documents\[1\] has dim 4",
        ),
        (
            [np.ones((1, 2)), np.ones((1, 3))],
            [np.ones((1, 2))],
            ValueError,
            r"queries\[1\] has dim 3",
        ),
        ([np.ones((1, 2))], [np.ones((0, 2))], ValueError, r"documents\[0\] has no rows"),
        (
            [np.ones((1, 2)), np.array([[np.nan, 1.0]])],
            [np.ones((1, 2))],
            ValueError,
            r"queries\[1\] contains NaN or infinite values",
        ),
        (
            [np.array([[np.inf, 1.0]])],
            [np.ones((1, 2))],
            ValueError,
            r"queries\[0\] contains NaN or infinite values",
        ),
        (
            [np.ones((1, 2))],
            [np.ones((1, 2)), np.ones((3, 2)), np.array([[0.0, 1.0], [np.nan, 0.0]])],
            ValueError,
            r"documents\[2\] contains NaN or infinite values",
        ),
    ],
)
def test_bad_inputs_name_the_item(
    queries: object, documents: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        maxsim.scores(queries, documents)  # type: ignore[arg-type]
