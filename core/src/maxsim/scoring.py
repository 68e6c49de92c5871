"""Exact MaxSim between multi-vector queries and documents. Pure functions, no model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

QUERY_ROWS_PER_BLOCK = 1024
DOCUMENTS_PER_BLOCK = 1024
SEGMENT_BLOCK_ROWS = 4096

Matrices = Sequence[Any]


def scores(queries: Matrices, documents: Matrices, *, normalize: bool = False) -> np.ndarray:
    """MaxSim of every query against every document, as float32 [len(queries), len(documents)].

    `score(q, d) = sum_i max_j q_i . d_j` over the rows of each [rows, dim] array or
    tensor. Each document is multiplied on its own, so no document is padded to another's
    length and padding never takes part in the max; memory stays bounded by one block
    of [documents, query rows] maxima. `normalize=True` divides by each query's rows.

    Example:
        >>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)]
        >>> d = [np.array([[1.0, 0.0]], np.float32), np.array([[-1.0, 0.0]], np.float32)]
        >>> scores(q, d).tolist()
        [[1.0, -1.0]]
        >>> scores(q, d, normalize=True).tolist()
        [[0.5, -0.5]]

    Raises:
        TypeError: `queries` or `documents` is not a sequence of arrays.
        ValueError: an item is not 2-D, has no rows, or its dim differs from the first.
    """
    query_items = as_matrices(queries, "queries")
    document_items = as_matrices(documents, "documents")
    if query_items and document_items:
        dim = query_items[0].shape[1]
        check_dims(query_items, "queries", dim, "the first query")
        check_dims(document_items, "documents", dim, "the first query")
    result = np.zeros((len(query_items), len(document_items)), dtype=np.float32)
    if not query_items or not document_items:
        return result
    for start, stop in _query_blocks([item.shape[0] for item in query_items]):
        block = query_items[start:stop]
        result[start:stop] = _score_block(block, document_items).T
    if normalize:
        result /= np.array([[item.shape[0]] for item in query_items], dtype=np.float32)
    return result


def _score_block(queries: list[torch.Tensor], documents: list[torch.Tensor]) -> np.ndarray:
    """[documents, queries] MaxSim for a block of queries stacked into one matrix."""
    device = queries[0].device
    stacked, row_starts = _stack(queries, device)
    stacked = stacked.T.contiguous()
    result = np.empty((len(documents), len(queries)), dtype=np.float32)
    for start in range(0, len(documents), DOCUMENTS_PER_BLOCK):
        chunk = documents[start : start + DOCUMENTS_PER_BLOCK]
        best = torch.empty((len(chunk), stacked.shape[1]), device=device)
        for row, document in enumerate(chunk):
            torch.amax(torch.mm(document.to(device), stacked), dim=0, out=best[row])
        result[start : start + len(chunk)] = np.add.reduceat(best.cpu().numpy(), row_starts, axis=1)
    return result


def _stack(queries: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """Queries' rows in one float32 matrix on `device`, and where each query's rows start."""
    stacked = torch.cat([query.to(device) for query in queries])
    return stacked, np.cumsum([0] + [query.shape[0] for query in queries[:-1]])


def _query_blocks(row_counts: list[int]) -> list[tuple[int, int]]:
    """Consecutive query ranges holding at most QUERY_ROWS_PER_BLOCK rows (at least one query)."""
    blocks: list[tuple[int, int]] = []
    start, rows = 0, 0
    for index, count in enumerate(row_counts):
        if index > start and rows + count > QUERY_ROWS_PER_BLOCK:
            blocks.append((start, index))
            start, rows = index, 0
        rows += count
    blocks.append((start, len(row_counts)))
    return blocks


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


def segment_scores(
    queries: list[torch.Tensor], matrix: torch.Tensor, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """MaxSim of each query against row segments of one token matrix: [segments, queries].

    Segment i is `matrix[starts[i] : starts[i] + lengths[i]]` (any dtype; computed in
    float32 a block of about SEGMENT_BLOCK_ROWS rows at a time). Segments that are
    consecutive in the matrix are scored as one slice; others are gathered block by
    block, so memory stays bounded.
    """
    stacked, row_starts = _stack(queries, matrix.device)
    result = np.empty((len(starts), len(queries)), dtype=np.float32)
    for first, last in _segment_blocks(lengths, SEGMENT_BLOCK_ROWS):
        block_starts, block_lengths = starts[first:last], lengths[first:last]
        rows = _gather_rows(matrix, block_starts, block_lengths).float()
        similarities = torch.mm(stacked, rows.T).cpu().numpy()
        offsets = np.cumsum(block_lengths) - block_lengths
        best = np.maximum.reduceat(similarities, offsets, axis=1)
        result[first:last] = np.add.reduceat(best, row_starts, axis=0).T
    return result


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


def _gather_rows(matrix: torch.Tensor, starts: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    """The rows of the segments, a view when they lie back to back in `matrix`."""
    if np.array_equal(starts[1:], starts[:-1] + lengths[:-1]):
        return matrix[int(starts[0]) : int(starts[-1] + lengths[-1])]
    return torch.cat([matrix[int(s) : int(s + n)] for s, n in zip(starts, lengths, strict=True)])
