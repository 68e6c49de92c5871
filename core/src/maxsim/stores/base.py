"""What the stores share: record types, argument checks and the `DocumentStore` base."""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch

from maxsim.filters import MetadataFilter, compile_filter
from maxsim.late_interaction import LateInteractionEncoder
from maxsim.scoring import as_matrices, check_dims, check_finite, is_finite, non_finite_error
from maxsim.validation import check_positive_int, check_texts

DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Record:
    """A stored document: its id, text (None when stored from vectors only) and metadata."""

    id: str
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result: raw MaxSim `score`, `normalized_score` (score / query rows) and the
    window of a chunked document that matched (`chunk`, 0 when not chunked).

    `span` is that window's character span `(start, end)` in `text` where the store
    recorded it (chunked documents added as text), else None; `window_text` is the
    window's text (the whole `text` when there is no span). With float16 storage a
    normalized score can pass 1.0 by about 1e-4 (rounding).

    Example:
        >>> hit = Hit("a", 2.0, 0.5, "red apples and blue sky", {}, chunk=1, span=(15, 23))
        >>> hit.window_text
        'blue sky'
    """

    id: str
    score: float
    normalized_score: float
    text: str | None
    metadata: dict[str, Any]
    chunk: int = 0
    span: tuple[int, int] | None = None

    @property
    def window_text(self) -> str | None:
        """The text of the window that matched: `text[span[0]:span[1]]`, or `text`."""
        if self.span is None or self.text is None:
            return self.text
        return self.text[self.span[0] : self.span[1]]


def check_ids(ids: Any, argument: str = "ids") -> list[str]:
    """`ids` as a list of non-empty strings."""
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise TypeError(f"{argument} must be a list of strings; wrap a single id in a list")
    for position, value in enumerate(ids):
        if not isinstance(value, str):
            raise TypeError(f"{argument}[{position}] must be a string, got {value!r}")
        if not value:
            raise ValueError(f"{argument}[{position}] is empty; ids must be non-empty strings")
    return list(ids)


def prepare_batch(count: int, metadatas: Any, ids: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Checked ids (new uuid4 hex where missing) and metadata dicts for `count` documents.

    Raises:
        ValueError: lengths differ from `count`, an id repeats, or metadata is not JSON.
        TypeError: an id is not a string, or metadata is not a dict.
    """
    if ids is None:
        ids = [uuid.uuid4().hex for _ in range(count)]
    ids = check_ids(ids)
    if len(ids) != count:
        raise ValueError(f"ids has {len(ids)} items but there are {count} documents")
    seen: set[str] = set()
    for position, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"ids[{position}] repeats {value!r}; ids in one call must be unique")
        seen.add(value)
    if metadatas is None:
        return ids, [{} for _ in range(count)]
    if isinstance(metadatas, (str, dict)) or not isinstance(metadatas, Sequence):
        raise TypeError("metadatas must be a list of dicts, one per document")
    if len(metadatas) != count:
        raise ValueError(f"metadatas has {len(metadatas)} items but there are {count} documents")
    return ids, [check_metadata(item, f"metadatas[{i}]") for i, item in enumerate(metadatas)]


def check_metadata(metadata: Any, argument: str) -> dict[str, Any]:
    """A copy of `metadata` if it is a dict with string keys that JSON can store exactly."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"{argument} must be a dict, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{argument} cannot be stored as JSON ({error}); use str, int, float, bool, "
            "None, lists and dicts"
        ) from error
    copy: dict[str, Any] = json.loads(encoded)
    if copy != metadata:
        raise ValueError(f"{argument} does not survive JSON unchanged; use string keys and lists")
    return copy


def check_embeddings(embeddings: Any, dim: int) -> list[list[torch.Tensor]]:
    """Each document's windows as float32 CPU tensors: a [rows, dim] array is one window.

    Raises:
        TypeError / ValueError naming the item that is not a finite [rows, dim] array.
    """
    if isinstance(embeddings, (str, bytes)) or not isinstance(
        embeddings, (Sequence, np.ndarray, torch.Tensor)
    ):
        raise TypeError("embeddings must be a list of [rows, dim] arrays, one per document")
    documents = []
    for position, item in enumerate(embeddings):
        argument = f"embeddings[{position}]"
        windows = [item] if isinstance(item, (np.ndarray, torch.Tensor)) else item
        if not isinstance(windows, Sequence) or not windows:
            raise TypeError(f"{argument} must be a [rows, dim] array or a list of them")
        matrices = [matrix.cpu() for matrix in as_matrices(windows, argument)]
        check_dims(matrices, argument, dim, "the store's model")
        if not all(is_finite(matrix) for matrix in matrices):
            raise non_finite_error(argument)
        documents.append(matrices)
    return documents


def check_dtype(dtype: Any) -> torch.dtype:
    if dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")


class DocumentStore(ABC):
    """The front half every store shares: argument checks, encoding, search entry points.

    Subclasses keep the documents (`_insert`, `_search_vectors`, `delete`, `get`, ...)
    and may restrict filters (`_prepare_filter`). Adapters and the command line use this
    interface only, so any store plugs into them:

    - `format`: the name `save` writes into the folder's manifest, by which
      `maxsim.stores.load_store` picks the class to `load` it with;
    - `supports_callable_filters`: whether `filter` may be a callable on the metadata
      (True in memory). A store without it (Qdrant) takes filter dicts only and applies
      its engine's rules, under which a list field matches when any of its items does.
    - `keeps_window_spans`: whether `_insert` takes `spans=` (each window's character
      span, for chunked documents added as text) and reports them in `Hit.span`.
    """

    format: ClassVar[str]
    supports_callable_filters: ClassVar[bool] = True
    keeps_window_spans: ClassVar[bool] = False

    def __init__(
        self, model: LateInteractionEncoder, *, chunk_size: int | None, chunk_overlap: int
    ) -> None:
        if not isinstance(model, LateInteractionEncoder):
            raise TypeError(
                "model must be a maxsim encoder (maxsim.ColBERT, maxsim.RemoteColBERT or "
                f"maxsim.testing.FakeColBERT), got {type(model).__name__}"
            )
        if chunk_size is not None:
            model.check_chunking(chunk_size, chunk_overlap)  # refused unless supports_chunking
        self.model = model
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[Record]: ...

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many went."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[Record]:
        """Stored records for `ids` in the given order; unknown ids are skipped."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every document."""

    @abstractmethod
    def get_vectors(self, ids: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Per stored id of `ids`, its windows' token vectors as float32 [rows, dim]
        arrays, in window order; unknown ids are left out."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the store (or, for a store kept by a server, how to reach it) to folder
        `path`, whose manifest names `format`."""

    @classmethod
    @abstractmethod
    def load(
        cls, path: str | Path, model: LateInteractionEncoder, *, force: bool = False
    ) -> DocumentStore:
        """Open what `save` wrote to `path`; `model` must be the one it was built with
        (name and dim) unless `force`."""

    def get_where(self, filter: MetadataFilter | None = None) -> list[Record]:
        """The stored records whose metadata matches `filter` (every record for None),
        by the same rules as `search` on this store."""
        predicate = self._prepare_filter(filter)
        if predicate is None:
            return list(self)
        return [record for record in self if predicate(MappingProxyType(record.metadata))]

    def delete_where(self, filter: MetadataFilter) -> int:
        """Remove the documents whose metadata matches `filter` (the rules of `search`);
        returns how many went.

        Raises:
            ValueError: `filter` is None (`clear()` removes every document).
        """
        if filter is None:
            raise ValueError("delete_where needs a filter; call clear() to remove everything")
        ids = [record.id for record in self.get_where(filter)]
        return self.delete(ids) if ids else 0

    @abstractmethod
    def _insert(
        self,
        ids: list[str],
        texts: list[str | None],
        metadatas: list[dict[str, Any]],
        windows: list[list[torch.Tensor]],
    ) -> None:
        """Store checked documents, each as one or more windows of vectors (upsert)."""

    @abstractmethod
    def _search_vectors(self, queries: list[torch.Tensor], k: int, filter: Any) -> list[list[Hit]]:
        """The `k` best documents per query, given what `_prepare_filter` returned."""

    def _prepare_filter(self, filter: MetadataFilter | None) -> Any:
        """Check `filter` up front (before any encoding); the default compiles it."""
        return compile_filter(filter)

    def add(
        self,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Encode and store texts; an id already stored is replaced. Returns the ids.

        Raises:
            TypeError / ValueError: bad texts, mismatched lengths, repeated ids, metadata
                that is not a JSON-serialisable dict. Nothing is stored then.
        """
        texts = check_texts(texts, "texts")
        ids, metadatas = prepare_batch(len(texts), metadatas, ids)
        options: dict[str, Any] = {}
        if self.chunk_size is None:
            encoded = self.model.encode_documents(
                texts, batch_size, show_progress_bar, as_tensor=True
            )
            windows = [[vectors] for vectors in encoded]
        else:
            if self.keeps_window_spans:
                options["spans"] = self.model.document_window_spans(
                    texts, self.chunk_size, self.chunk_overlap
                )
            windows = self.model.encode_document_chunks(
                texts,
                self.chunk_size,
                self.chunk_overlap,
                batch_size,
                show_progress_bar,
                as_tensor=True,
            )
        for position, document in enumerate(windows):
            if any(vectors.shape[0] == 0 for vectors in document):
                raise ValueError(
                    f"texts[{position}] leaves no token vectors (only punctuation?); "
                    "pass text with words in it"
                )
        self._insert(ids, list(texts), metadatas, windows, **options)
        return ids

    def add_embeddings(
        self,
        embeddings: Sequence[Any],
        texts: Sequence[str] | None = None,
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Store vectors computed elsewhere: per document a [rows, dim] array, or a list
        of them (windows). Returns the ids; an id already stored is replaced."""
        windows = check_embeddings(embeddings, self.model.dim)
        if texts is not None:
            texts = check_texts(texts, "texts")
            if len(texts) != len(windows):
                raise ValueError(f"texts has {len(texts)} items but embeddings has {len(windows)}")
        ids, metadatas = prepare_batch(len(windows), metadatas, ids)
        stored_texts: list[str | None] = list(texts) if texts is not None else [None] * len(ids)
        self._insert(ids, stored_texts, metadatas, windows)
        return ids

    def search(self, query: str, k: int = 10, *, filter: MetadataFilter | None = None) -> list[Hit]:
        """The `k` best documents for `query` by MaxSim, best first.

        `filter` (a dict, see `maxsim.filters`, or a callable on the metadata where the
        store allows it) selects the documents before scoring.
        """
        return self.search_many([query], k, filter=filter)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, *, filter: MetadataFilter | None = None
    ) -> list[list[Hit]]:
        """`search` for several queries at once."""
        queries = check_texts(queries, "queries")
        check_positive_int(k, "k")
        prepared = self._prepare_filter(filter)
        if not queries:
            return []
        encoded = self.model.encode_queries(queries, as_tensor=True)
        return self._search_vectors(encoded, k, prepared)

    def search_embeddings(
        self, queries: Sequence[Any], k: int = 10, *, filter: MetadataFilter | None = None
    ) -> list[list[Hit]]:
        """`search_many` for query vectors computed elsewhere ([rows, dim] each)."""
        check_positive_int(k, "k")
        matrices = as_matrices(queries, "queries")
        check_dims(matrices, "queries", self.model.dim, "the store's model")
        check_finite(matrices, "queries")
        prepared = self._prepare_filter(filter)
        if not matrices:
            return []
        return self._search_vectors(matrices, k, prepared)
