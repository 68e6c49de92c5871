"""The arrays behind `PLAIDStore`: windows, compressed tokens, inverted lists, search stages.

An `Index` is immutable once published: writers build a new one (appends write past the
lengths a published index reads, in arrays it shares) and readers keep the one they took.
Before training, tokens are kept exactly (`vectors`); after, as centroid ids (`codes`) and
packed residuals (`residuals`). The inverted lists map each centroid to the windows that
have a token there (one entry per distinct centroid and window) for the tokens up to
`listed`; tokens appended later are scanned directly until the lists are rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from maxsim.scoring import segment_scores
from maxsim.stores.base import Record
from maxsim.stores.codec import ResidualCodec

GROWTH = 1.5
DECODE_BLOCK_TOKENS = 65_536
WINDOW_BYTES = 8 + 4 + 4 + 4


@dataclass(frozen=True)
class Knobs:
    """Search settings: centroids probed per query token, windows kept after each stage."""

    nprobe: int
    candidates: int | None
    rerank: int | None


@dataclass(frozen=True)
class Index:
    """One consistent state of a store (see the module docstring)."""

    codec: ResidualCodec | None
    vectors: np.ndarray
    codes: np.ndarray
    residuals: np.ndarray
    tokens: int
    starts: np.ndarray
    lengths: np.ndarray
    owners: np.ndarray
    chunks: np.ndarray
    windows: int
    alive: np.ndarray
    records: list[Record]
    list_offsets: np.ndarray
    list_windows: np.ndarray
    listed: int
    trained_tokens: int

    @classmethod
    def empty(cls, dim: int) -> Index:
        ints = np.zeros(0, dtype=np.int32)
        return cls(
            codec=None,
            vectors=np.zeros((0, dim), dtype=np.float32),
            codes=np.zeros(0, dtype=np.uint16),
            residuals=np.zeros((0, 0), dtype=np.uint8),
            tokens=0,
            starts=np.zeros(0, dtype=np.int64),
            lengths=ints,
            owners=ints,
            chunks=ints,
            windows=0,
            alive=np.zeros(0, dtype=bool),
            records=[],
            list_offsets=np.zeros(1, dtype=np.int64),
            list_windows=ints,
            listed=0,
            trained_tokens=0,
        )

    # ------------------------------------------------------------------ reading

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    def live_windows(self) -> np.ndarray:
        """Ids of windows whose document is stored."""
        return np.flatnonzero(self.alive[self.owners[: self.windows]])

    def live_tokens(self) -> int:
        windows = self.live_windows()
        return int(self.lengths[windows].sum())

    def decode(self, tokens: np.ndarray) -> torch.Tensor:
        """Float32 vectors of the given token rows."""
        if self.codec is None:
            return torch.from_numpy(np.take(self.vectors, tokens, axis=0))
        codes = np.take(self.codes, tokens)
        return self.codec.decode(codes, np.take(self.residuals, tokens, axis=0))

    def token_rows(self, windows: np.ndarray) -> np.ndarray:
        """The token rows of `windows`, window after window."""
        lengths = self.lengths[windows].astype(np.int64)
        if not len(lengths):
            return np.zeros(0, dtype=np.int64)
        offsets = np.cumsum(lengths) - lengths
        rows = np.arange(int(lengths.sum()), dtype=np.int64)
        return rows - np.repeat(offsets, lengths) + np.repeat(self.starts[windows], lengths)

    def window_vectors(self, windows: np.ndarray) -> Iterator[torch.Tensor]:
        for window in windows:
            start = int(self.starts[window])
            yield self.decode(np.arange(start, start + int(self.lengths[window])))

    def exact_scores(self, queries: list[torch.Tensor], windows: np.ndarray) -> np.ndarray:
        """MaxSim [windows, queries] on the (decoded) vectors, a block of windows at a time."""
        result = np.empty((len(windows), len(queries)), dtype=np.float32)
        lengths = self.lengths[windows].astype(np.int64)
        done = 0
        for block in _blocks(windows, lengths, DECODE_BLOCK_TOKENS):
            block_lengths = lengths[done : done + len(block)]
            block_starts = np.cumsum(block_lengths) - block_lengths
            matrix = self.decode(self.token_rows(block))
            result[done : done + len(block)] = segment_scores(
                queries, matrix, block_starts, block_lengths
            )
            done += len(block)
        return result

    def candidates(self, query: torch.Tensor, eligible: np.ndarray, knobs: Knobs) -> np.ndarray:
        """Windows worth exact scoring for `query` (PLAID stages 1 and 2).

        Stage 1 scores the windows found in the probed centroids' lists by their tokens
        in those centroids; stage 2 scores the best `candidates` of them by the centroids
        of all their tokens; the best `rerank` go on to exact scoring.
        """
        assert self.codec is not None
        centroid_scores = (query @ self.codec.centroids.T).numpy()
        probes = min(knobs.nprobe, centroid_scores.shape[1])
        top = torch.from_numpy(centroid_scores).topk(probes, dim=1).indices.numpy()
        probed = np.unique(top)
        windows, centroids = self._listed(probed)
        keep = eligible[windows]
        windows, centroids = windows[keep], centroids[keep]
        if not len(windows):
            return windows
        windows = _limit(windows, centroids, centroid_scores, knobs.candidates)
        if knobs.rerank is None or len(windows) <= knobs.rerank:
            return windows
        codes = np.take(self.codes, self.token_rows(windows)).astype(np.int64)
        lengths = self.lengths[windows]
        approximate = _window_sums(np.take(centroid_scores, codes, axis=1), lengths)
        return windows[_top(approximate, knobs.rerank)]

    def _listed(self, probed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(window, centroid) entries of the probed centroids: lists, then unlisted tokens."""
        begins, ends = self.list_offsets[probed], self.list_offsets[probed + 1]
        counts = ends - begins
        positions = np.arange(int(counts.sum()), dtype=np.int64)
        positions += np.repeat(begins - (np.cumsum(counts) - counts), counts)
        windows = self.list_windows[positions].astype(np.int64)
        centroids = np.repeat(probed, counts)
        if self.listed < self.tokens:
            table = np.zeros(len(self.list_offsets) - 1, dtype=bool)
            table[probed] = True
            codes = self.codes[self.listed : self.tokens].astype(np.int64)
            hit = np.flatnonzero(table[codes])
            owners = np.searchsorted(self.starts[: self.windows], hit + self.listed, "right") - 1
            windows = np.concatenate([windows, owners])
            centroids = np.concatenate([centroids, codes[hit]])
        return windows, centroids

    # ------------------------------------------------------------------ writing

    def appended(
        self,
        records: list[Record],
        windows: list[list[torch.Tensor]],
        replaced: list[int],
    ) -> Index:
        """A new index with `records` appended and the slots in `replaced` retired."""
        flat = [vectors for document in windows for vectors in document]
        stacked = torch.cat(flat).float()
        lengths = np.array([vectors.shape[0] for vectors in flat], dtype=np.int64)
        count = len(stacked)
        if self.codec is None:
            vectors = _room(self.vectors, self.tokens, count)
            vectors[self.tokens : self.tokens + count] = stacked.numpy()
            codes, residuals = self.codes, self.residuals
        else:
            new_codes, new_residuals = self.codec.encode(stacked)
            vectors = self.vectors
            codes = _room(self.codes, self.tokens, count)
            residuals = _room(self.residuals, self.tokens, count)
            codes[self.tokens : self.tokens + count] = new_codes
            residuals[self.tokens : self.tokens + count] = new_residuals
        first_slot = len(self.records)
        owners = [first_slot + i for i, document in enumerate(windows) for _ in document]
        chunks = [chunk for document in windows for chunk in range(len(document))]
        alive = np.zeros(first_slot + len(records), dtype=bool)
        alive[:first_slot] = self.alive
        alive[replaced] = False
        alive[first_slot:] = True
        return replace(
            self,
            vectors=vectors,
            codes=codes,
            residuals=residuals,
            tokens=self.tokens + count,
            starts=_put(self.starts, self.windows, self.tokens + np.cumsum(lengths) - lengths),
            lengths=_put(self.lengths, self.windows, lengths),
            owners=_put(self.owners, self.windows, owners),
            chunks=_put(self.chunks, self.windows, chunks),
            windows=self.windows + len(flat),
            alive=alive,
            records=self.records + records,
        )

    def retired(self, slots: list[int]) -> Index:
        alive = self.alive.copy()
        alive[slots] = False
        return replace(self, alive=alive)

    def compacted(self, codec: ResidualCodec | None, trained_tokens: int) -> Index:
        """The live documents only, encoded with `codec`, with fresh inverted lists."""
        slots = self.live_slots()
        windows = self.live_windows()
        new_slot = np.full(len(self.records), -1, dtype=np.int64)
        new_slot[slots] = np.arange(len(slots))
        lengths = self.lengths[windows].astype(np.int64)
        total = int(lengths.sum())
        dim = self.vectors.shape[1]
        if codec is None:
            vectors = self.vectors[self.token_rows(windows)]
            codes = np.zeros(0, dtype=np.uint16)
            residuals = np.zeros((0, 0), dtype=np.uint8)
        elif codec is self.codec:
            rows = self.token_rows(windows)
            vectors = np.zeros((0, dim), dtype=np.float32)
            codes, residuals = self.codes[rows], self.residuals[rows]
        else:
            vectors = np.zeros((0, dim), dtype=np.float32)
            codes = np.empty(total, dtype=codec.code_dtype)
            residuals = np.empty((total, codec.packed_bytes), dtype=np.uint8)
            done = 0
            for block in _blocks(windows, lengths, DECODE_BLOCK_TOKENS):
                rows = self.token_rows(block)
                codes[done : done + len(rows)], residuals[done : done + len(rows)] = codec.encode(
                    self.decode(rows)
                )
                done += len(rows)
        compact = Index(
            codec=codec,
            vectors=vectors,
            codes=codes,
            residuals=residuals,
            tokens=total,
            starts=np.cumsum(lengths) - lengths,
            lengths=lengths.astype(np.int32),
            owners=new_slot[self.owners[windows]].astype(np.int32),
            chunks=self.chunks[windows].astype(np.int32),
            windows=len(windows),
            alive=np.ones(len(slots), dtype=bool),
            records=[self.records[slot] for slot in slots],
            list_offsets=np.zeros(1, dtype=np.int64),
            list_windows=np.zeros(0, dtype=np.int32),
            listed=0,
            trained_tokens=trained_tokens,
        )
        return compact.relisted()

    def relisted(self) -> Index:
        """The index with inverted lists covering every token.

        The tokens since `listed` belong to windows after every listed one, so their
        (centroid, window) entries go at the end of each centroid's list: the lists
        already built are moved, not sorted again.
        """
        if self.codec is None:
            return replace(self, listed=self.tokens)
        centroids = len(self.codec.centroids)
        first_window = int(np.searchsorted(self.starts[: self.windows], self.listed))
        lengths = self.lengths[first_window : self.windows]
        window_of_token = np.repeat(np.arange(first_window, self.windows, dtype=np.int64), lengths)
        stride = max(self.windows, 1)
        keys = self.codes[self.listed : self.tokens].astype(np.int64) * stride
        keys += window_of_token
        keys.sort()
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
        new_centroids, new_windows = np.divmod(keys, stride)
        new_counts = np.bincount(new_centroids, minlength=centroids)
        old_counts = (
            np.diff(self.list_offsets) if self.listed else np.zeros(centroids, dtype=np.int64)
        )
        offsets = np.concatenate([[0], np.cumsum(old_counts + new_counts)]).astype(np.int64)
        merged = np.empty(int(offsets[-1]), dtype=np.int32)
        moved = offsets[:-1] - (np.cumsum(old_counts) - old_counts)
        old_positions = np.arange(len(self.list_windows), dtype=np.int64)
        merged[old_positions + np.repeat(moved, old_counts)] = self.list_windows
        new_positions = np.arange(len(keys), dtype=np.int64)
        new_positions += np.repeat(
            offsets[:-1] + old_counts - (np.cumsum(new_counts) - new_counts), new_counts
        )
        merged[new_positions] = new_windows
        return replace(self, list_offsets=offsets, list_windows=merged, listed=self.tokens)

    # ------------------------------------------------------------------ accounting

    def token_bytes(self) -> int:
        """Bytes one stored token takes: float32 before training, code + residual after."""
        if self.codec is None:
            return self.vectors.shape[1] * self.vectors.itemsize
        return self.codes.itemsize + self.residuals.shape[1]

    def shared_bytes(self) -> int:
        """Bytes of the inverted lists, the codec and the document flags."""
        codec = 0 if self.codec is None else sum(a.nbytes for a in self.codec.arrays().values())
        listed = self.list_offsets.nbytes + self.list_windows.nbytes
        return listed + codec + self.alive.nbytes

    def bytes_allocated(self) -> int:
        arrays = [self.vectors, self.codes, self.residuals, self.starts, self.lengths]
        arrays += [self.owners, self.chunks]
        return sum(array.nbytes for array in arrays) + self.shared_bytes()


def _limit(
    windows: np.ndarray, centroids: np.ndarray, centroid_scores: np.ndarray, limit: int | None
) -> np.ndarray:
    """Distinct windows of the (window, centroid) entries; the best `limit` of them by the
    summed best entry score of each query row."""
    order = np.argsort(windows, kind="stable")
    windows = windows[order]
    first = np.flatnonzero(np.r_[True, windows[1:] != windows[:-1]])
    unique = windows[first]
    if limit is None or len(unique) <= limit:
        return unique
    scores = np.take(centroid_scores, centroids[order], axis=1)
    approximate = _window_sums(scores, np.diff(np.r_[first, len(windows)]))
    return unique[_top(approximate, limit)]


def _window_sums(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per segment of columns (`lengths` long each) of [rows, columns] scores: the sum over
    rows of each row's maximum in the segment."""
    offsets = np.cumsum(lengths) - lengths
    return np.maximum.reduceat(scores, offsets, axis=1).sum(axis=0)


def _top(values: np.ndarray, count: int) -> np.ndarray:
    if count >= len(values):
        return np.arange(len(values))
    return np.argpartition(-values, count - 1)[:count]


def _blocks(windows: np.ndarray, lengths: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    ends = np.cumsum(lengths)
    first = 0
    while first < len(windows):
        base = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, base + rows, "right")), first + 1)
        yield windows[first:last]
        first = last


def _room(array: np.ndarray, used: int, extra: int) -> np.ndarray:
    """`array`, or a copy with more rows when it lacks room or is read-only (memory-mapped)."""
    if used + extra <= len(array) and array.flags.writeable:
        return array
    capacity = max(used + extra, int(len(array) * GROWTH))
    grown = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown


def _put(array: np.ndarray, used: int, values: np.ndarray | list[int]) -> np.ndarray:
    grown = _room(array, used, len(values))
    grown[used : used + len(values)] = values
    return grown
