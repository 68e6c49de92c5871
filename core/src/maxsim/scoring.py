"""Exact MaxSim between multi-vector queries and documents. Pure functions, no model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from maxsim.workers import run_in_workers

QUERY_ROWS_PER_BLOCK = 1024
SEGMENT_BLOCK_ROWS = 4096

Matrices = Sequence[Any]
RowsOf = Callable[[int, int], torch.Tensor]


def scores(queries: Matrices, documents: Matrices, *, normalize: bool = False) -> np.ndarray:
    """MaxSim of every query against every document, as float32 [len(queries), len(documents)].

    `score(q, d) = sum_i max_j q_i . d_j` over the rows of each [rows, dim] array or
    tensor. Documents are packed back to back, a few thousand rows per matrix product,
    and each document's maximum is taken over its own rows only: nothing is padded.
    Memory stays bounded by one block of documents against one block of query rows.
    `normalize=True` divides by each query's rows.

    Example:
        >>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)]
        >>> d = [np.array([[1.0, 0.0]], np.float32), np.array([[-1.0, 0.0]], np.float32)]
        >>> scores(q, d).tolist()
        [[1.0, -1.0]]
        >>> scores(q, d, normalize=True).tolist()
        [[0.5, -0.5]]

    Raises:
        TypeError: `queries` or `documents` is not a sequence of arrays.
        ValueError: an item is not 2-D, has no rows, or its dim differs from the first;
            a query holds NaN or infinite values, or a document does and spoils a score.
    """
    query_items = as_matrices(queries, "queries")
    document_items = as_matrices(documents, "documents")
    if query_items and document_items:
        dim = query_items[0].shape[1]
        check_dims(query_items, "queries", dim, "the first query")
        check_dims(document_items, "documents", dim, "the first query")
    check_finite(query_items, "queries")
    if not query_items or not document_items:
        return np.zeros((len(query_items), len(document_items)), dtype=np.float32)
    lengths = np.array([item.shape[0] for item in document_items], dtype=np.int64)
    by_document = _segment_maxsim(
        query_items, lambda first, last: _concat(document_items[first:last]), lengths
    )
    for position in np.flatnonzero(~np.isfinite(by_document).all(axis=1)):
        if not is_finite(document_items[position]):
            raise non_finite_error(f"documents[{position}]")
    result = np.ascontiguousarray(by_document.T)
    if normalize:
        result /= np.array([[item.shape[0]] for item in query_items], dtype=np.float32)
    return result


def segment_scores(
    queries: list[torch.Tensor], matrix: torch.Tensor, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """MaxSim of each query against row segments of one token matrix: [segments, queries].

    Segment i is `matrix[starts[i] : starts[i] + lengths[i]]` (any dtype; computed in
    float32). Segments that are consecutive in the matrix are scored as one slice;
    others are gathered block by block, so memory stays bounded.
    """
    return _segment_maxsim(
        queries,
        lambda first, last: _gather_rows(matrix, starts[first:last], lengths[first:last]),
        lengths,
    )


def _segment_maxsim(
    queries: list[torch.Tensor], rows_of: RowsOf, lengths: np.ndarray
) -> np.ndarray:
    """[segments, queries] MaxSim, where `rows_of(first, last)` gives segments first..last-1
    back to back.

    Work is cut into blocks of about SEGMENT_BLOCK_ROWS segment rows (a longer segment is
    a block of its own) against at most QUERY_ROWS_PER_BLOCK query rows (at least one
    query), one matrix product each, run by single-threaded workers.
    """
    device = queries[0].device
    query_blocks = [_stack(queries[start:stop], device) for start, stop in _query_blocks(queries)]
    query_starts = np.cumsum([0] + [len(block[1]) for block in query_blocks])
    result = np.empty((len(lengths), len(queries)), dtype=np.float32)

    def score(block: tuple[int, int]) -> None:
        first, last = block
        rows = rows_of(first, last).to(device=device, dtype=torch.float32)
        segment_lengths = lengths[first:last]
        offsets = np.cumsum(segment_lengths) - segment_lengths
        for (stacked, row_starts), start in zip(query_blocks, query_starts[:-1], strict=True):
            similarities = torch.mm(rows, stacked).cpu().numpy()
            best = np.maximum.reduceat(similarities, offsets, axis=0)
            result[first:last, start : start + len(row_starts)] = np.add.reduceat(
                best, row_starts, axis=1
            )

    blocks = _segment_blocks(lengths, SEGMENT_BLOCK_ROWS)
    if device.type == "cpu":
        run_in_workers(score, blocks)
    else:
        for block in blocks:
            score(block)
    return result


def _stack(queries: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """Queries' rows as one float32 [dim, rows] matrix on `device`, and where each starts."""
    stacked = torch.cat([query.to(device) for query in queries]).T.contiguous()
    return stacked, np.cumsum([0] + [query.shape[0] for query in queries[:-1]])


def _query_blocks(queries: list[torch.Tensor]) -> list[tuple[int, int]]:
    """Consecutive query ranges holding at most QUERY_ROWS_PER_BLOCK rows (at least one query)."""
    blocks: list[tuple[int, int]] = []
    start, rows = 0, 0
    for index, query in enumerate(queries):
        if index > start and rows + query.shape[0] > QUERY_ROWS_PER_BLOCK:
            blocks.append((start, index))
            start, rows = index, 0
        rows += query.shape[0]
    blocks.append((start, len(queries)))
    return blocks


def _segment_blocks(lengths: np.ndarray, block_rows: int) -> list[tuple[int, int]]:
    """Consecutive segment ranges of about `block_rows` rows (at least one segment each)."""
    ends = np.cumsum(lengths)
    blocks, first = [], 0
    while first < len(lengths):
        offset = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, offset + block_rows, side="right")), first + 1)
        blocks.append((first, last))
        first = last
    return blocks


def _concat(items: list[torch.Tensor]) -> torch.Tensor:
    return items[0] if len(items) == 1 else torch.cat([item.to(items[0].device) for item in items])


def _gather_rows(matrix: torch.Tensor, starts: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    """The rows of the segments, a view when they lie back to back in `matrix`."""
    if np.array_equal(starts[1:], starts[:-1] + lengths[:-1]):
        return matrix[int(starts[0]) : int(starts[-1] + lengths[-1])]
    return torch.cat([matrix[int(s) : int(s + n)] for s, n in zip(starts, lengths, strict=True)])


def as_matrices(items: Any, argument: str) -> list[torch.Tensor]:
    """`items` as a list of float32 2-D tensors with rows, or an error naming the bad item."""
    if isinstance(items, (str, bytes)) or not isinstance(
        items, (Sequence, np.ndarray, torch.Tensor)
    ):
        raise TypeError(
            f"{argument} must be a list of [rows, dim] arrays or tensors, "
            f"got {type(items).__name__}"
        )
    matrices = []
    for position, item in enumerate(items):
        if not isinstance(item, (np.ndarray, torch.Tensor)):
            raise TypeError(
                f"{argument}[{position}] must be a numpy array or torch tensor, "
                f"got {type(item).__name__}"
            )
        if item.ndim != 2:
            raise ValueError(
                f"{argument}[{position}] must be 2-D [rows, dim], got shape {tuple(item.shape)}"
            )
        if item.shape[0] == 0:
            raise ValueError(f"{argument}[{position}] has no rows; every item needs at least one")
        matrices.append(torch.as_tensor(item).detach().float())
    return matrices


def check_dims(items: list[torch.Tensor], argument: str, dim: int, reference: str) -> None:
    """Raise ValueError naming the first item whose dim is not `dim` (that of `reference`)."""
    for position, item in enumerate(items):
        if item.shape[1] != dim:
            raise ValueError(
                f"{argument}[{position}] has dim {item.shape[1]} but {reference} has dim "
                f"{dim}; encode queries and documents with the same model and dim"
            )


def check_finite(items: list[torch.Tensor], argument: str) -> None:
    """Raise ValueError naming the first item that holds NaN or infinite values."""
    for position, item in enumerate(items):
        if not is_finite(item):
            raise non_finite_error(f"{argument}[{position}]")


def non_finite_error(name: str) -> ValueError:
    """The error for vectors `name` that hold NaN or infinite values."""
    return ValueError(
        f"{name} contains NaN or infinite values; check the model or code that made these vectors"
    )


def is_finite(item: torch.Tensor) -> bool:
    """True when `item` holds no NaN or infinite value."""
    if item.device.type == "cpu":
        return bool(np.isfinite(item.numpy()).all())
    return bool(torch.isfinite(item).all())
