"""`PLAIDStore`: ColBERTv2 residual compression with PLAID candidate generation, in memory."""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch

from maxsim.late_interaction import LateInteractionEncoder
from maxsim.scoring import as_matrices, check_dims
from maxsim.stores import persistence
from maxsim.stores.base import DocumentStore, Hit, Record, check_ids
from maxsim.stores.codec import (
    CENTROID_ARRAYS,
    ResidualCodec,
    centroid_count,
    check_nbits,
    sample_size,
)
from maxsim.stores.memory import MemoryUsage, _best_windows, _copied
from maxsim.stores.plaid_index import WINDOW_BYTES, Index, Knobs
from maxsim.validation import check_positive_int

logger = logging.getLogger("maxsim")

RELIST_FRACTION = 0.25
RELIST_MIN_TOKENS = 65_536
COMPACT_WHEN_DEAD = 0.25
KNOBS = ("nprobe", "candidates", "rerank", "min_train_tokens", "rebuild_factor")
LAYOUT = persistence.Layout(
    format="maxsim.PLAIDStore",
    version=2,
    arrays={
        "vectors": ((np.float32,), 2),
        "codes": ((np.uint16, np.int32), 1),
        "residuals": ((np.uint8,), 2),
        "lengths": ((np.int32,), 1),
        "owners": ((np.int32,), 1),
        "chunks": ((np.int32,), 1),
        "list_offsets": ((np.int64,), 1),
        "list_windows": ((np.int32,), 1),
        "centroids": ((np.float32,), 2),
        "coarse": ((np.float32,), 2),
        "groups": ((np.int64,), 1),
        "cutoffs": ((np.float32,), 1),
        "weights": ((np.float32,), 1),
    },
    settings={
        **persistence.MODEL_SETTINGS,
        **persistence.CHUNK_SETTINGS,
        "nbits": int,
        "trained": bool,
        "normalized": bool,
        "trained_tokens": int,
        "nprobe": int,
        "candidates": (int, type(None)),
        "rerank": (int, type(None)),
        "min_train_tokens": int,
        "rebuild_factor": (int, float),
    },
)


class PLAIDStore(DocumentStore):
    """Documents as compressed token vectors (ColBERTv2 residuals), searched PLAID-style.

    Each token is kept as its nearest centroid's id plus its residual in `nbits` bits per
    dimension (dim x nbits / 8 bytes: 32 at dim 128 and nbits 2, against 256 for float16).
    A search probes the `nprobe` centroids nearest each query token, takes the windows
    listed under them, keeps the best `candidates` by the probed centroids' scores and the
    best `rerank` of those by all their tokens' centroids, and scores the survivors with
    exact MaxSim on their decompressed vectors. `candidates` / `rerank` None keep all.

    Until `min_train_tokens` tokens are stored, vectors are kept exactly and searched
    exactly; the store then trains its centroids (k-means) by itself. Documents added
    later are encoded with the trained centroids and found at once; once the store holds
    `rebuild_factor` times the tokens it was trained for, it retrains (`rebuild`). For a
    large collection call `train` with a sample first: rebuilding re-encodes the stored,
    already compressed vectors. Filters leaving few windows are scored exactly, and a
    search returns `k` hits whenever `k` documents match.

    Searches may run while one thread writes: each sees a consistent snapshot, also
    while a rebuild runs. Needs faiss for training (`pip install "maxsim[index]"`).

    Args:
        model: the encoder for documents and queries.
        nbits: bits per dimension of a residual: 1, 2 or 4.
        nprobe: centroids probed per query token.
        candidates: windows kept after the probed-centroid scores (None: all).
        rerank: windows decompressed and scored exactly (None: all).
        min_train_tokens: tokens stored before the centroids are trained.
        rebuild_factor: growth since training (in tokens) that triggers a rebuild.
        chunk_size / chunk_overlap: windows of long documents, as `LateInteractionStore`.

    Example:
        >>> from maxsim import PLAIDStore
        >>> from maxsim.testing import FakeColBERT
        >>> store = PLAIDStore(FakeColBERT(), nbits=2)
        >>> store.add(["red apples", "blue sky"], metadatas=[{"kind": "fruit"}, {}], ids=["a", "b"])
        ['a', 'b']
        >>> [hit.id for hit in store.search("apples", k=1)]
        ['a']
        >>> [hit.id for hit in store.search("sky", filter={"kind": "fruit"})]
        ['a']
    """

    format: ClassVar[str] = LAYOUT.format
    supports_callable_filters: ClassVar[bool] = True

    def __init__(
        self,
        model: LateInteractionEncoder,
        nbits: int = 2,
        *,
        nprobe: int = 4,
        candidates: int | None = 1024,
        rerank: int | None = 128,
        min_train_tokens: int = 16_384,
        rebuild_factor: float = 4.0,
        chunk_size: int | None = None,
        chunk_overlap: int = 64,
    ) -> None:
        super().__init__(model, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        _require_faiss()
        self.nbits = check_nbits(nbits)
        self.nprobe = check_positive_int(nprobe, "nprobe")
        self.candidates = _optional_count(candidates, "candidates")
        self.rerank = _optional_count(rerank, "rerank")
        self.min_train_tokens = check_positive_int(min_train_tokens, "min_train_tokens")
        if isinstance(rebuild_factor, bool) or not isinstance(rebuild_factor, (int, float)):
            raise TypeError("rebuild_factor must be a number above 1, such as 4.0")
        if not rebuild_factor > 1:
            raise ValueError(f"rebuild_factor must be above 1, got {rebuild_factor}")
        self.rebuild_factor = float(rebuild_factor)
        self._lock = threading.Lock()
        self._publish(Index.empty(model.dim))

    def _publish(self, index: Index) -> None:
        """Make `index` the one searches read and index its live slots by id (caller holds
        the lock, or owns the store). Appends and deletes that keep the slot numbers update
        `_slots` in place instead: rebuilding it costs a pass over every document."""
        self._slots = {index.records[slot].id: int(slot) for slot in index.live_slots()}
        self._index = index

    @property
    def trained(self) -> bool:
        """Whether the centroids are trained (else vectors are kept and searched exactly)."""
        return self._index.codec is not None

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Record]:
        index = self._index
        return (_copied(index.records[slot]) for slot in index.live_slots())

    def get(self, ids: Sequence[str]) -> list[Record]:
        """Stored records for `ids` in the given order; unknown ids are skipped."""
        ids = check_ids(ids)
        with self._lock:
            index, slots = self._index, self._slots
            found = [index.records[slots[value]] for value in ids if value in slots]
        return [_copied(record) for record in found]

    def get_vectors(self, ids: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Per stored id, its windows' (decompressed) vectors as float32 [rows, dim] arrays."""
        ids = check_ids(ids)
        with self._lock:
            index, slots = self._index, dict(self._slots)
        owners = index.owners[: index.windows]
        result = {}
        for value in ids:
            if value in slots:
                windows = np.flatnonzero(owners == slots[value])
                result[value] = [vectors.numpy() for vectors in index.window_vectors(windows)]
        return result

    def memory_usage(self) -> MemoryUsage:
        """Bytes held for tokens (codes + residuals) and index arrays (windows, inverted
        lists, centroids); `.bytes_per_token` sums them per live token."""
        index = self._index
        windows = index.live_windows()
        tokens = int(index.lengths[windows].sum())
        return MemoryUsage(
            documents=len(index.live_slots()),
            tokens=tokens,
            vector_bytes=tokens * index.token_bytes(),
            index_bytes=len(windows) * WINDOW_BYTES + index.shared_bytes(),
            allocated_bytes=index.bytes_allocated(),
        )

    # ------------------------------------------------------------------ writing

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many went."""
        ids = check_ids(ids)
        with self._lock:
            slots = [self._slots[value] for value in set(ids) if value in self._slots]
            if slots:
                index = self._index.retired(slots)
                if index.tokens - index.live_tokens() > COMPACT_WHEN_DEAD * index.tokens:
                    self._publish(index.compacted(index.codec, index.trained_tokens))
                else:
                    self._index = index
                    for value in set(ids):
                        self._slots.pop(value, None)
        return len(slots)

    def clear(self) -> None:
        """Remove every document (the trained centroids go too)."""
        with self._lock:
            self._publish(Index.empty(self.model.dim))

    def _insert(
        self,
        ids: list[str],
        texts: list[str | None],
        metadatas: list[dict[str, Any]],
        windows: list[list[torch.Tensor]],
    ) -> None:
        records = [Record(*fields) for fields in zip(ids, texts, metadatas, strict=True)]
        with self._lock:
            replaced = [self._slots[value] for value in ids if value in self._slots]
            first_slot = len(self._index.records)
            index = self._index.appended(records, windows, replaced)
            if index.tokens - index.listed > max(RELIST_FRACTION * index.listed, RELIST_MIN_TOKENS):
                index = index.relisted()
            self._index = index
            self._slots.update((value, first_slot + i) for i, value in enumerate(ids))
            self._retrain_if_due()

    def _retrain_if_due(self) -> None:
        """Train once enough tokens are stored, rebuild once grown by `rebuild_factor`."""
        index = self._index
        live = index.live_tokens()
        due = (
            live >= self.min_train_tokens
            if index.codec is None
            else live >= self.rebuild_factor * index.trained_tokens
        )
        if not due:
            return
        try:
            self._train(None, live)
        except Exception:
            logger.warning("PLAIDStore: training failed; kept the previous index", exc_info=True)

    def rebuild(self) -> None:
        """Retrain the centroids on the stored vectors and re-encode every document.

        Searches keep using the previous index until the new one is complete; if this
        fails, the store is left as it was.
        """
        with self._lock:
            index = self._index
            if not len(index.live_slots()):
                return
            self._train(None, index.live_tokens())

    def train(self, sample: Any, tokens: int | None = None) -> None:
        """Train the centroids on `sample` ([rows, dim] token vectors representative of the
        collection) and re-encode what is stored.

        Args:
            sample: the vectors k-means runs on (a few tens per centroid suffice).
            tokens: the collection size the centroids are for (default: stored or sample
                tokens, whichever is more); the store rebuilds at `rebuild_factor` times it.
        """
        [matrix] = as_matrices([sample], "sample")
        check_dims([matrix], "sample", self.model.dim, "the store's model")
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("sample contains NaN or infinite values")
        if tokens is not None:
            check_positive_int(tokens, "tokens")
        with self._lock:
            planned = max(tokens or 0, len(matrix), self._index.live_tokens())
            self._train(matrix, planned)

    def _train(self, sample: torch.Tensor | None, tokens: int) -> None:
        """New centroids for `tokens` tokens, from `sample` or the stored vectors; publish."""
        index = self._index
        centroids = centroid_count(tokens)
        if sample is None:
            windows = index.live_windows()
            rows = index.token_rows(windows)
            chosen = np.random.default_rng(len(rows)).permutation(len(rows))
            sample = index.decode(np.sort(rows[chosen[: sample_size(centroids)]]))
        codec = ResidualCodec.train(sample, centroids, self.nbits)
        self._publish(index.compacted(codec, tokens))

    # ------------------------------------------------------------------ searching

    def _search_vectors(self, queries: list[torch.Tensor], k: int, filter: Any) -> list[list[Hit]]:
        for position, query in enumerate(queries):
            if not bool(torch.isfinite(query).all()):
                raise ValueError(f"queries[{position}] contains NaN or infinite values")
        index = self._index
        eligible_slots = index.alive.copy()
        if filter is not None:
            for slot in np.flatnonzero(eligible_slots):
                eligible_slots[slot] = bool(filter(MappingProxyType(index.records[slot].metadata)))
        eligible = eligible_slots[index.owners[: index.windows]]
        windows = np.flatnonzero(eligible)
        matching = int(eligible_slots.sum())
        if not len(windows):
            return [[] for _ in queries]
        if index.codec is None or (self.rerank is not None and len(windows) <= self.rerank):
            scores = index.exact_scores(queries, windows)
            return [_hits(index, windows, scores[:, i], k, len(q)) for i, q in enumerate(queries)]
        knobs = Knobs(self.nprobe, self.candidates, self.rerank)
        results = []
        for query in queries:
            chosen = index.candidates(query, eligible, knobs)
            hits = _hits(index, chosen, index.exact_scores([query], chosen)[:, 0], k, len(query))
            if len(hits) < min(k, matching):
                all_scores = index.exact_scores([query], windows)[:, 0]
                hits = _hits(index, windows, all_scores, k, len(query))
            results.append(hits)
        return results

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write the store to folder `path` atomically (safetensors + JSON, never pickle);
        deleted documents are left out. A crash mid-save leaves the previous save loadable."""
        with self._lock:
            index = self._index
            if index.live_tokens() < index.tokens:
                index = index.compacted(index.codec, index.trained_tokens)
                self._publish(index)
            elif index.listed < index.tokens:
                index = index.relisted()
                self._index = index
        settings = {
            **persistence.model_settings(self.model),
            "nbits": self.nbits,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "trained": index.codec is not None,
            "normalized": index.codec is not None and index.codec.normalized,
            "trained_tokens": index.trained_tokens,
            **{name: getattr(self, name) for name in KNOBS},
        }
        persistence.save(Path(path), LAYOUT, _arrays(index), settings, index.records)

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: LateInteractionEncoder,
        *,
        force: bool = False,
        **options: Any,
    ) -> PLAIDStore:
        """Open a store written by `save` (arrays memory-mapped); the model must match
        (name and dim) unless `force`. `options` override the search settings
        (nprobe, candidates, rerank, min_train_tokens, rebuild_factor).

        Raises:
            FileNotFoundError: `path` holds no saved store.
            ValueError: a corrupt, truncated or inconsistent file (named), or a model mismatch.
            TypeError: an unknown option.
        """
        unknown = sorted(set(options) - set(KNOBS))
        if unknown:
            raise TypeError(f"PLAIDStore.load got unknown options {unknown}; use {KNOBS}")
        saved = persistence.load(Path(path), LAYOUT)
        settings = saved.settings
        persistence.check_model(path, settings, model, force)
        store = cls(
            model,
            nbits=settings["nbits"],
            chunk_size=settings["chunk_size"],
            chunk_overlap=settings["chunk_overlap"],
            **{name: options.get(name, settings[name]) for name in KNOBS},
        )
        store._publish(_index_from(saved))
        return store


def _require_faiss() -> None:
    try:
        import faiss  # noqa: F401
    except ImportError as error:
        raise ImportError(
            'PLAIDStore trains its centroids with faiss; pip install "maxsim[index]"'
        ) from error


def _optional_count(value: Any, argument: str) -> int | None:
    return None if value is None else check_positive_int(value, argument)


def _hits(index: Index, windows: np.ndarray, scores: np.ndarray, k: int, rows: int) -> list[Hit]:
    """The `k` best documents among scored windows (each document's best window)."""
    if not len(windows):
        return []
    owners = index.owners[windows].astype(np.int64)
    slots, values, best = _best_windows(owners, scores)
    chunks = index.chunks[windows][best]
    order = np.lexsort((slots, -values))[:k]
    return [
        Hit(
            id=index.records[slots[i]].id,
            score=float(values[i]),
            normalized_score=float(values[i]) / rows,
            text=index.records[slots[i]].text,
            metadata=copy.deepcopy(index.records[slots[i]].metadata),
            chunk=int(chunks[i]),
        )
        for i in order
    ]


def _arrays(index: Index) -> dict[str, np.ndarray]:
    """A compact index as the named arrays `LAYOUT` lists."""
    dim = index.vectors.shape[1]
    codec: dict[str, np.ndarray]
    if index.codec is None:
        codec = {
            "centroids": np.zeros((0, dim), np.float32),
            "coarse": np.zeros((0, dim), np.float32),
            "groups": np.zeros(1, np.int64),
            "cutoffs": np.zeros(0, np.float32),
            "weights": np.zeros(0, np.float32),
        }
        residuals = np.zeros((0, 0), np.uint8)
    else:
        codec = index.codec.arrays()
        residuals = index.residuals[: index.tokens]
    return {
        "vectors": index.vectors[: index.tokens if index.codec is None else 0],
        "codes": index.codes[: index.tokens],
        "residuals": residuals,
        "lengths": index.lengths[: index.windows],
        "owners": index.owners[: index.windows],
        "chunks": index.chunks[: index.windows],
        "list_offsets": index.list_offsets,
        "list_windows": index.list_windows,
        **codec,
    }


def _index_from(saved: persistence.SavedStore) -> Index:
    """The index a checked save describes, on its memory-mapped arrays."""
    arrays, settings = saved.arrays, saved.settings
    codec = (
        ResidualCodec.from_arrays(
            {name: arrays[name] for name in CENTROID_ARRAYS},
            settings["nbits"],
            settings["normalized"],
        )
        if settings["trained"]
        else None
    )
    saved.inconsistent(_problems(saved, codec))
    lengths = arrays["lengths"]
    tokens = int(lengths.sum(dtype=np.int64))
    return Index(
        codec=codec,
        vectors=arrays["vectors"],
        codes=arrays["codes"],
        residuals=arrays["residuals"],
        tokens=tokens,
        starts=np.cumsum(lengths, dtype=np.int64) - lengths,
        lengths=lengths,
        owners=arrays["owners"],
        chunks=arrays["chunks"],
        windows=len(lengths),
        alive=np.ones(len(saved.records), dtype=bool),
        records=saved.records,
        list_offsets=arrays["list_offsets"],
        list_windows=arrays["list_windows"],
        listed=tokens,
        trained_tokens=settings["trained_tokens"],
    )


def _problems(saved: persistence.SavedStore, codec: ResidualCodec | None) -> list[str]:
    """What in a loaded PLAID store's arrays disagrees with its manifest."""
    arrays, settings = saved.arrays, saved.settings
    lengths, owners = arrays["lengths"], arrays["owners"]
    documents, dim = len(saved.records), settings["dim"]
    problems = []
    if settings["nbits"] not in (1, 2, 4):
        problems.append(f"nbits is {settings['nbits']}")
        return problems
    if codec is None:
        rows = arrays["vectors"].shape[0]
        centroids = 0
        if arrays["vectors"].shape[1] != dim or len(arrays["codes"]) or len(arrays["residuals"]):
            problems.append("an untrained store must hold exact vectors only")
    else:
        problems += codec.problems()
        rows = len(arrays["codes"])
        centroids = len(codec.centroids)
        if codec.dim != dim or arrays["residuals"].shape != (
            rows,
            math.ceil(dim * codec.nbits / 8),
        ):
            problems.append(f"centroids or residuals do not fit dim {dim}")
        elif rows and int(arrays["codes"].max()) >= centroids:
            problems.append("a token names a centroid that does not exist")
    problems += persistence.window_problems(rows, lengths, owners, arrays["chunks"], documents)
    offsets, listed = arrays["list_offsets"], arrays["list_windows"]
    if codec is not None and (
        len(offsets) != centroids + 1
        or offsets[0] != 0
        or offsets[-1] != len(listed)
        or bool((np.diff(offsets) < 0).any())
    ):
        problems.append("inverted list offsets do not fit the centroids")
    elif len(listed) and (int(listed.min()) < 0 or int(listed.max()) >= len(lengths)):
        problems.append("an inverted list names a window that does not exist")
    return problems
