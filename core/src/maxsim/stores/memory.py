"""`LateInteractionStore`: exact MaxSim search over token vectors held in memory."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from maxsim.late_interaction import LateInteractionEncoder
from maxsim.scoring import segment_scores
from maxsim.stores import persistence
from maxsim.stores.base import DTYPES, DocumentStore, Hit, Record, check_dtype, check_ids

SEGMENT_ARRAYS = ("starts", "lengths", "owners", "chunks", "span_starts", "span_ends")
NO_SPAN = -1
LAYOUT = persistence.Layout(
    format="maxsim.LateInteractionStore",
    version=1,
    arrays={
        "vectors": ((np.float16, np.float32), 2),
        "lengths": ((np.int64,), 1),
        "owners": ((np.int64,), 1),
        "chunks": ((np.int64,), 1),
    },
    settings={
        **persistence.MODEL_SETTINGS,
        **persistence.CHUNK_SETTINGS,
        "dtype": str,
    },
)
GROWTH = 1.5
COMPACT_WHEN_DEAD = 0.25


@dataclass(frozen=True)
class MemoryUsage:
    """Bytes the store holds: token vectors, per-window index arrays, spare capacity."""

    documents: int
    tokens: int
    vector_bytes: int
    index_bytes: int
    allocated_bytes: int

    @property
    def bytes_per_token(self) -> float:
        """Vector and index bytes per stored token (spare capacity not counted)."""
        return (self.vector_bytes + self.index_bytes) / self.tokens if self.tokens else 0.0


@dataclass(frozen=True)
class _Snapshot:
    """What one search reads; writers publish a new one instead of changing this."""

    vectors: torch.Tensor
    starts: np.ndarray
    lengths: np.ndarray
    owners: np.ndarray
    chunks: np.ndarray
    span_starts: np.ndarray
    span_ends: np.ndarray
    alive: np.ndarray
    records: list[Record]

    def live_records(self) -> list[Record]:
        """Records not deleted, in insertion order (the shared list may run past `alive`)."""
        return [self.records[slot] for slot in np.flatnonzero(self.alive)]

    def live_windows(self) -> tuple[list[Record], list[list[torch.Tensor]], list[np.ndarray]]:
        """Live records and, for each, its windows' vectors (views into `vectors`) and
        their character spans ([windows, 2], NO_SPAN where unknown)."""
        live = np.flatnonzero(self.alive)
        windows: dict[int, list[torch.Tensor]] = {int(slot): [] for slot in live}
        segments: dict[int, list[int]] = {int(slot): [] for slot in live}
        for segment, (owner, start, length) in enumerate(
            zip(self.owners, self.starts, self.lengths, strict=True)
        ):
            if int(owner) in windows:
                windows[int(owner)].append(self.vectors[int(start) : int(start + length)])
                segments[int(owner)].append(segment)
        spans = [
            np.stack([self.span_starts[positions], self.span_ends[positions]], axis=1)
            for positions in segments.values()
        ]
        return [self.records[slot] for slot in windows], list(windows.values()), spans


class LateInteractionStore(DocumentStore):
    """Documents as token vectors in one contiguous matrix, searched with exact MaxSim.

    Args:
        model: the encoder for documents and queries (`maxsim.ColBERT`, `FakeColBERT`).
        dtype: "float16" (default, half the memory) or "float32" for stored vectors.
        chunk_size: store documents longer than this many tokens as overlapping windows,
            each scored on its own; a hit reports the best window. None truncates them.
        chunk_overlap: tokens shared by consecutive windows.

    Searches may run while other threads add or delete: each sees a consistent snapshot.

    Example:
        >>> from maxsim import LateInteractionStore
        >>> from maxsim.testing import FakeColBERT
        >>> store = LateInteractionStore(FakeColBERT())
        >>> store.add(["red apples", "blue sky"], metadatas=[{"kind": "fruit"}, {}], ids=["a", "b"])
        ['a', 'b']
        >>> [hit.id for hit in store.search("apples", k=1)]
        ['a']
        >>> [hit.id for hit in store.search("sky", filter={"kind": "fruit"})]
        ['a']
    """

    format = LAYOUT.format
    keeps_window_spans = True

    def __init__(
        self,
        model: LateInteractionEncoder,
        *,
        dtype: str | torch.dtype = "float16",
        chunk_size: int | None = None,
        chunk_overlap: int = 64,
    ) -> None:
        super().__init__(model, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        self.dtype = check_dtype(dtype)
        self._lock = threading.Lock()
        self._clear_arrays()
        self._publish()

    def _clear_arrays(self) -> None:
        self._vectors = torch.empty((0, self.model.dim), dtype=self.dtype)
        self._tokens = 0
        self._segments = 0
        self._segment_arrays = {name: np.empty(0, dtype=np.int64) for name in SEGMENT_ARRAYS}
        self._alive = np.empty(0, dtype=bool)
        self._records: list[Record] = []
        self._slots: dict[str, int] = {}
        self._dead_tokens = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Record]:
        return (_copied(record) for record in self._snapshot.live_records())

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many went."""
        ids = check_ids(ids)
        with self._lock:
            slots = [self._slots.pop(value) for value in set(ids) if value in self._slots]
            self._retire(slots)
            self._compact_if_worthwhile()
            self._publish()
        return len(slots)

    def get(self, ids: Sequence[str]) -> list[Record]:
        """Stored records for `ids` in the given order; unknown ids are skipped."""
        ids = check_ids(ids)
        with self._lock:
            found = [self._records[self._slots[value]] for value in ids if value in self._slots]
        return [_copied(record) for record in found]

    def get_vectors(self, ids: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Per stored id of `ids`, its windows' vectors as float32 arrays, in window order."""
        ids = check_ids(ids)
        with self._lock:
            snapshot = self._view()
            slots = {value: self._slots[value] for value in ids if value in self._slots}
        wanted = np.flatnonzero(np.isin(snapshot.owners, list(slots.values())))
        windows: dict[int, list[np.ndarray]] = {}
        for segment in wanted[np.lexsort((snapshot.chunks[wanted], snapshot.owners[wanted]))]:
            start, length = int(snapshot.starts[segment]), int(snapshot.lengths[segment])
            rows = snapshot.vectors[start : start + length].to(torch.float32).numpy()
            windows.setdefault(int(snapshot.owners[segment]), []).append(rows)
        return {value: windows[slot] for value, slot in slots.items()}

    def clear(self) -> None:
        """Remove every document."""
        with self._lock:
            self._clear_arrays()
            self._publish()

    def memory_usage(self) -> MemoryUsage:
        """Bytes held for vectors and index arrays; `.bytes_per_token` sums them per token."""
        with self._lock:
            snapshot = self._view()
            item = self._vectors.element_size()
            allocated = self._vectors.numel() * item + sum(
                array.nbytes for array in self._segment_arrays.values()
            )
        live = snapshot.alive[snapshot.owners]
        tokens = int(snapshot.lengths[live].sum())
        index_per_segment = len(SEGMENT_ARRAYS) * np.dtype(np.int64).itemsize
        return MemoryUsage(
            documents=int(snapshot.alive.sum()),
            tokens=tokens,
            vector_bytes=tokens * self.model.dim * item,
            index_bytes=int(live.sum()) * index_per_segment,
            allocated_bytes=allocated,
        )

    def save(self, path: str | Path) -> None:
        """Write the store to folder `path` atomically (safetensors + JSON, never pickle).

        A crash mid-save leaves the previous save loadable.
        """
        records, windows, spans = self._snapshot.live_windows()
        flat = [vectors for document in windows for vectors in document]
        arrays = {
            "vectors": torch.cat(flat).numpy()
            if flat
            else np.empty((0, self.model.dim), dtype=str(self.dtype).removeprefix("torch.")),
            "lengths": np.array([vectors.shape[0] for vectors in flat], dtype=np.int64),
            "owners": np.array(
                [owner for owner, document in enumerate(windows) for _ in document],
                dtype=np.int64,
            ),
            "chunks": np.array(
                [chunk for document in windows for chunk in range(len(document))], dtype=np.int64
            ),
            "spans": np.concatenate([np.empty((0, 2), np.int64), *spans]),
        }
        settings = {
            **persistence.model_settings(self.model),
            "dtype": str(self.dtype).removeprefix("torch."),
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
        }
        persistence.save(Path(path), LAYOUT, arrays, settings, records)

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: LateInteractionEncoder,
        *,
        force: bool = False,
        **options: Any,
    ) -> LateInteractionStore:
        """Read a store written by `save`; the model must match unless forced: the same
        checkpoint (by the fingerprint of its config and weights, wherever it was loaded
        from; by name for a store saved without one) and always the same dim.

        `options` are refused: the saved settings decide how the store is built.

        Raises:
            FileNotFoundError: `path` holds no saved store.
            ValueError: a corrupt or truncated file (named), or a model mismatch.
        """
        if options:
            raise TypeError(f"LateInteractionStore.load takes no options {sorted(options)}")
        saved = persistence.load(Path(path), LAYOUT)
        settings = saved.settings
        persistence.check_model(path, settings, model, force)
        saved.inconsistent(_problems(saved))
        store = cls(
            model,
            dtype=settings["dtype"],
            chunk_size=settings["chunk_size"],
            chunk_overlap=settings["chunk_overlap"],
        )
        store._adopt(saved, _saved_spans(Path(path), saved))
        return store

    def _adopt(self, saved: persistence.SavedStore, spans: np.ndarray) -> None:
        """Take a loaded store's arrays as they are: they already form one compact matrix."""
        arrays = saved.arrays
        lengths = np.array(arrays["lengths"])
        with self._lock:
            self._vectors = torch.from_numpy(np.array(arrays["vectors"])).to(self.dtype)
            self._tokens = self._vectors.shape[0]
            self._segments = len(lengths)
            self._segment_arrays = {
                "starts": np.cumsum(lengths) - lengths,
                "lengths": lengths,
                "owners": np.array(arrays["owners"]),
                "chunks": np.array(arrays["chunks"]),
                "span_starts": spans[:, 0].copy(),
                "span_ends": spans[:, 1].copy(),
            }
            self._records = list(saved.records)
            self._slots = {record.id: slot for slot, record in enumerate(self._records)}
            self._alive = np.ones(len(self._records), dtype=bool)
            self._publish()

    def _insert(
        self,
        ids: list[str],
        texts: list[str | None],
        metadatas: list[dict[str, Any]],
        windows: list[list[torch.Tensor]],
        spans: list[list[tuple[int, int]]] | None = None,
    ) -> None:
        records = [Record(*fields) for fields in zip(ids, texts, metadatas, strict=True)]
        if spans is None:
            window_spans = [np.full((len(document), 2), NO_SPAN, np.int64) for document in windows]
        else:
            window_spans = [np.array(document, np.int64).reshape(-1, 2) for document in spans]
        with self._lock:
            self._append_documents(records, windows, window_spans)
            self._compact_if_worthwhile()
            self._publish()

    def _append_documents(
        self, records: list[Record], windows: list[list[torch.Tensor]], spans: list[np.ndarray]
    ) -> None:
        """Append documents (replacing stored ones with the same id) with their windows'
        spans; caller holds the lock. The vectors are stacked first, so a failure leaves
        the store as it was.
        """
        flat = [vectors for document in windows for vectors in document]
        if not flat:
            return
        stacked = torch.cat(flat).to(self.dtype)
        lengths = np.array([vectors.shape[0] for vectors in flat], dtype=np.int64)
        self._reserve(len(stacked), len(flat), len(records))
        self._retire([self._slots[r.id] for r in records if r.id in self._slots])
        owners: list[int] = []
        for record, document in zip(records, windows, strict=True):
            slot = len(self._records)
            self._records.append(record)
            self._slots[record.id] = slot
            self._alive[slot] = True
            owners += [slot] * len(document)
        first, last = self._segments, self._segments + len(flat)
        arrays = self._segment_arrays
        arrays["starts"][first:last] = self._tokens + np.cumsum(lengths) - lengths
        arrays["lengths"][first:last] = lengths
        arrays["owners"][first:last] = owners
        arrays["chunks"][first:last] = [
            chunk for document in windows for chunk in range(len(document))
        ]
        flat_spans = np.concatenate(spans)
        arrays["span_starts"][first:last] = flat_spans[:, 0]
        arrays["span_ends"][first:last] = flat_spans[:, 1]
        self._vectors[self._tokens : self._tokens + len(stacked)] = stacked
        self._tokens += len(stacked)
        self._segments = last

    def _retire(self, slots: list[int]) -> None:
        """Mark slots deleted on a fresh `alive` array (published snapshots keep theirs)."""
        if not slots:
            return
        alive = self._alive.copy()
        alive[slots] = False
        self._alive = alive
        owners = self._segment_arrays["owners"][: self._segments]
        lengths = self._segment_arrays["lengths"][: self._segments]
        self._dead_tokens += int(lengths[np.isin(owners, slots)].sum())

    def _reserve(self, tokens: int, segments: int, documents: int) -> None:
        """Room for more rows, segments and slots; grown arrays are new objects, so
        snapshots taken before keep reading their own."""
        if self._tokens + tokens > self._vectors.shape[0]:
            capacity = max(self._tokens + tokens, int(self._vectors.shape[0] * GROWTH))
            grown = torch.empty((capacity, self.model.dim), dtype=self.dtype)
            grown[: self._tokens] = self._vectors[: self._tokens]
            self._vectors = grown
        if self._segments + segments > len(self._segment_arrays["starts"]):
            capacity = max(
                self._segments + segments, int(len(self._segment_arrays["starts"]) * GROWTH)
            )
            for name, array in self._segment_arrays.items():
                grown_array = np.zeros(capacity, dtype=np.int64)
                grown_array[: self._segments] = array[: self._segments]
                self._segment_arrays[name] = grown_array
        alive = np.zeros(len(self._records) + documents, dtype=bool)
        alive[: len(self._alive)] = self._alive
        self._alive = alive

    def _compact_if_worthwhile(self) -> None:
        """Rebuild without deleted documents once they hold a quarter of the rows."""
        if self._dead_tokens <= COMPACT_WHEN_DEAD * self._tokens:
            return
        records, windows, spans = self._view().live_windows()
        self._clear_arrays()
        self._append_documents(records, windows, spans)

    def _view(self) -> _Snapshot:
        arrays = self._segment_arrays
        count = self._segments
        return _Snapshot(
            vectors=self._vectors,
            starts=arrays["starts"][:count],
            lengths=arrays["lengths"][:count],
            owners=arrays["owners"][:count],
            chunks=arrays["chunks"][:count],
            span_starts=arrays["span_starts"][:count],
            span_ends=arrays["span_ends"][:count],
            alive=self._alive[: len(self._records)],
            records=self._records,
        )

    def _publish(self) -> None:
        self._snapshot = self._view()

    def _search_vectors(self, queries: list[torch.Tensor], k: int, filter: Any) -> list[list[Hit]]:
        snapshot = self._snapshot
        records = snapshot.records
        candidates = snapshot.alive.copy()
        if filter is not None:
            for slot in np.flatnonzero(candidates):
                candidates[slot] = bool(filter(MappingProxyType(records[slot].metadata)))
        segments = np.flatnonzero(candidates[snapshot.owners])
        if not len(segments):
            return [[] for _ in queries]
        window_scores = segment_scores(
            queries, snapshot.vectors, snapshot.starts[segments], snapshot.lengths[segments]
        )
        owners = snapshot.owners[segments]
        results = []
        for column, query in enumerate(queries):
            slots, values, best = _best_windows(owners, window_scores[:, column])
            order = np.lexsort((slots, -values))[:k]
            rows = query.shape[0]
            results.append(
                [
                    Hit(
                        id=records[slots[i]].id,
                        score=float(values[i]),
                        normalized_score=float(values[i]) / rows,
                        text=records[slots[i]].text,
                        metadata=copy.deepcopy(records[slots[i]].metadata),
                        chunk=int(snapshot.chunks[segments[best[i]]]),
                        span=_span(snapshot, int(segments[best[i]])),
                    )
                    for i in order
                ]
            )
        return results


def _copied(record: Record) -> Record:
    """The record with its own copy of the metadata, so callers cannot change the store."""
    return Record(record.id, record.text, copy.deepcopy(record.metadata))


def _best_windows(
    owners: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document slot (sorted), its best window's score and that window's position."""
    order = np.lexsort((-values, owners))
    owners, values = owners[order], values[order]
    first = np.ones(len(owners), dtype=bool)
    first[1:] = owners[1:] != owners[:-1]
    return owners[first], values[first], order[first]


def _problems(saved: persistence.SavedStore) -> list[str]:
    """What in a loaded store's arrays disagrees with its manifest."""
    arrays, settings = saved.arrays, saved.settings
    vectors, lengths, owners = arrays["vectors"], arrays["lengths"], arrays["owners"]
    documents = len(saved.records)
    problems = []
    if settings["dtype"] not in DTYPES or vectors.dtype != np.dtype(settings["dtype"]):
        problems.append(f"vectors are {vectors.dtype}, not {settings['dtype']!r}")
    if vectors.shape[1] != settings["dim"]:
        problems.append(f"vectors have shape {vectors.shape}, dim {settings['dim']}")
    return problems + persistence.window_problems(
        vectors.shape[0], lengths, owners, arrays["chunks"], documents
    )


def _span(snapshot: _Snapshot, segment: int) -> tuple[int, int] | None:
    start, end = int(snapshot.span_starts[segment]), int(snapshot.span_ends[segment])
    return None if start == NO_SPAN else (start, end)


def _saved_spans(path: Path, saved: persistence.SavedStore) -> np.ndarray:
    """The saved windows' spans ([windows, 2] int64; NO_SPAN rows for a store saved
    before spans were kept), or a ValueError naming the folder."""
    windows = len(saved.arrays["lengths"])
    spans = saved.arrays.get("spans")
    if spans is None:
        return np.full((windows, 2), NO_SPAN, np.int64)
    if spans.dtype != np.int64 or tuple(spans.shape) != (windows, 2):
        raise ValueError(
            f"{path}: the spans array is {spans.dtype} {tuple(spans.shape)}, not int64 "
            f"({windows}, 2); the store is corrupt, save it again from its source"
        )
    values = np.array(spans)
    unknown = values[:, 0] == NO_SPAN
    if bool(((values[:, 0] > values[:, 1]) & ~unknown).any() or (values[~unknown] < 0).any()):
        raise ValueError(f"{path}: the spans array holds a span that ends before it starts")
    return values
