"""`QdrantStore`: the `LateInteractionStore` API on a Qdrant multivector collection."""

from __future__ import annotations

import json
import math
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from maxsim.filters import MetadataFilter, compile_filter
from maxsim.late_interaction import LateInteractionEncoder
from maxsim.stores.base import DocumentStore, Hit, Record, check_ids
from maxsim.stores.persistence import MANIFEST, write_atomically

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models

FORMAT_VERSION = 1
SECRET_OPTIONS = ("api_key", "auth_token_provider")
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "maxsim.stores.qdrant")
UPSERT_ROWS = 8192
SCROLL_PAGE = 256
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _models() -> Any:
    """`qdrant_client.models`, imported on first use."""
    try:
        from qdrant_client import models
    except ImportError as error:
        raise ImportError(
            'QdrantStore needs the qdrant-client package: pip install "maxsim[qdrant]"'
        ) from error
    return models


def point_id(document_id: str, chunk: int) -> str:
    """The Qdrant point id (a uuid5) of window `chunk` of document `document_id`."""
    return str(uuid.uuid5(NAMESPACE, f"{document_id}#{chunk}"))


class QdrantStore(DocumentStore):
    """Documents as Qdrant multivector points, searched with MaxSim inside Qdrant.

    The same methods as `LateInteractionStore`, on a collection of a local (embedded)
    or remote Qdrant. Token vectors go in as they come from the model; the collection
    compares them by dot product summed with MAX_SIM, so scores equal maxsim's.

    Args:
        model: the encoder for documents and queries (`maxsim.ColBERT`, `FakeColBERT`).
        client: a `qdrant_client.QdrantClient`, embedded (`":memory:"`, `path=...`) or
            connected to a server (`url=...`).
        collection_name: the collection to use; created with the model's dim when
            missing and `create` is true. An existing one must hold an unnamed MAX_SIM
            multivector of dot products with the model's dim.
        chunk_size: store documents longer than this many tokens as overlapping windows,
            one point each; a hit reports the best window. None truncates them.
        chunk_overlap: tokens shared by consecutive windows.
        create: create the collection when it is missing (else raise ValueError).

    Each window is a point with id `point_id(document_id, chunk)` and payload
    `{"document_id", "chunk", "metadata"}`, plus `"text"` on window 0. Iteration
    order is Qdrant's (by point id). Local mode scores every point; a server searches
    the collection's index (HNSW: approximate) as for any Qdrant query.

    Filters are the dict grammar of `maxsim.filters`, run by Qdrant on
    `metadata.<field>` with Qdrant's rules where they differ: a list field matches a
    value when any element does (an empty list counts as missing for `$exists`), an
    int matches int values only, and ranges take numbers. A callable cannot be sent.

    Example:
        >>> from qdrant_client import QdrantClient
        >>> from maxsim.stores import QdrantStore
        >>> from maxsim.testing import FakeColBERT
        >>> store = QdrantStore(FakeColBERT(), QdrantClient(":memory:"), "docs")
        >>> store.add(["red apples", "blue sky"], metadatas=[{"kind": "fruit"}, {}], ids=["a", "b"])
        ['a', 'b']
        >>> [hit.id for hit in store.search("apples", k=1)]
        ['a']
        >>> [hit.id for hit in store.search("sky", filter={"kind": "fruit"})]
        ['a']
        >>> server = QdrantClient(url="http://localhost:6333")  # doctest: +SKIP
    """

    format = "maxsim.QdrantStore"
    supports_callable_filters = False

    def __init__(
        self,
        model: LateInteractionEncoder,
        client: QdrantClient,
        collection_name: str,
        *,
        chunk_size: int | None = None,
        chunk_overlap: int = 64,
        create: bool = True,
    ) -> None:
        self._models = _models()
        if not isinstance(collection_name, str) or not collection_name:
            raise TypeError(f"collection_name must be a non-empty string, got {collection_name!r}")
        super().__init__(model, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        self.client = client
        self.collection_name = collection_name
        if client.collection_exists(collection_name):
            self._check_collection()
        elif create:
            self._create_collection()
        else:
            raise ValueError(
                f"Qdrant collection {collection_name!r} does not exist; pass create=True "
                "to create it"
            )

    def _create_collection(self) -> None:
        m = self._models
        self.client.create_collection(
            self.collection_name,
            vectors_config=m.VectorParams(
                size=self.model.dim,
                distance=m.Distance.DOT,
                multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
            ),
        )
        # A server uses these for deletes, counts and grouping; local mode warns and ignores.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for field, schema in (
                ("document_id", m.PayloadSchemaType.KEYWORD),
                ("chunk", m.PayloadSchemaType.INTEGER),
            ):
                self.client.create_payload_index(self.collection_name, field, schema, wait=True)

    def _check_collection(self) -> None:
        m = self._models
        name = self.collection_name
        params = self.client.get_collection(name).config.params.vectors
        if not isinstance(params, m.VectorParams):
            raise ValueError(
                f"Qdrant collection {name!r} has named vectors; QdrantStore needs a collection "
                "with one unnamed multivector (let it create a new collection)"
            )
        if params.size != self.model.dim:
            raise ValueError(
                f"Qdrant collection {name!r} holds vectors of size {params.size}, but model "
                f"{self.model.name!r} has dim {self.model.dim}; use another collection or the "
                "model it was filled with"
            )
        comparator = params.multivector_config and params.multivector_config.comparator
        if comparator != m.MultiVectorComparator.MAX_SIM or params.distance != m.Distance.DOT:
            raise ValueError(
                f"Qdrant collection {name!r} compares vectors by {params.distance} without "
                "MAX_SIM multivectors; QdrantStore needs Distance.DOT with "
                "MultiVectorComparator.MAX_SIM (let it create a new collection)"
            )

    def __len__(self) -> int:
        return int(
            self.client.count(
                self.collection_name, count_filter=self._first_windows(), exact=True
            ).count
        )

    def __iter__(self) -> Iterator[Record]:
        return (_record(point.payload) for point in self._scroll(self._first_windows()))

    def _scroll(self, scroll_filter: Any, *, with_vectors: bool = False) -> Iterator[Any]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection_name,
                scroll_filter=scroll_filter,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            yield from points
            if offset is None:
                return

    def get_where(self, filter: MetadataFilter | None = None) -> list[Record]:
        """The stored records matching `filter`, selected by Qdrant with its rules (as
        `search` does)."""
        condition = self._first_windows()
        query_filter = self._prepare_filter(filter)
        if query_filter is not None:
            condition = self._models.Filter(must=[condition, query_filter])
        return [_record(point.payload) for point in self._scroll(condition)]

    def delete_where(self, filter: MetadataFilter) -> int:
        """Remove the documents matching `filter` (Qdrant's rules, as `search`) with one
        filtered delete inside Qdrant; returns how many went."""
        if filter is None:
            raise ValueError("delete_where needs a filter; call clear() to remove everything")
        query_filter = self._prepare_filter(filter)
        count = self.client.count(
            self.collection_name,
            count_filter=self._models.Filter(must=[self._first_windows(), query_filter]),
            exact=True,
        ).count
        self._delete_where(query_filter)
        return int(count)

    def get_vectors(self, ids: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Per stored id of `ids`, its windows' vectors as float32 arrays, in window order."""
        unique = list(dict.fromkeys(check_ids(ids)))
        if not unique:
            return {}
        windows: dict[str, dict[int, np.ndarray]] = {}
        for point in self._scroll(
            self._models.Filter(must=[self._documents(unique)]), with_vectors=True
        ):
            payload = point.payload or {}
            windows.setdefault(payload["document_id"], {})[int(payload["chunk"])] = np.asarray(
                point.vector, dtype=np.float32
            )
        return {
            value: [chunks[chunk] for chunk in sorted(chunks)]
            for value in unique
            if (chunks := windows.get(value))
        }

    def save(self, path: str | Path) -> None:
        """Write to folder `path` how to reach this collection (the client's options, less
        credentials, and the collection name); the documents stay in Qdrant.

        Raises:
            ValueError: the client is Qdrant's in-memory mode, which nothing can reopen.
        """
        options = {
            key: value
            for key, value in self.client.init_options.items()
            if key not in SECRET_OPTIONS and value is not None
        }
        if options.get("location") == ":memory:":
            raise ValueError(
                "a QdrantStore on QdrantClient(':memory:') cannot be reopened; use a server "
                "(url=...) or local storage (path=...) to save it"
            )
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": self.format,
            "format_version": FORMAT_VERSION,
            "collection_name": self.collection_name,
            "client": options,
            "settings": {
                "model": self.model.name,
                "dim": self.model.dim,
                "chunk_size": self.chunk_size,
                "chunk_overlap": self.chunk_overlap,
            },
        }
        write_atomically(folder / MANIFEST, json.dumps(manifest, ensure_ascii=False))

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: LateInteractionEncoder,
        *,
        force: bool = False,
        client: QdrantClient | None = None,
    ) -> QdrantStore:
        """Reconnect to the collection that `save` described in folder `path`.

        Args:
            client: the client to use; by default one made from the saved options (pass
                one to add credentials such as `api_key`).

        Raises:
            FileNotFoundError: `path` holds no manifest.
            ValueError: a malformed manifest, or a model other than the saved one (name
                and dim) unless `force`.
        """
        manifest_path = Path(path) / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{path} holds no saved store ({MANIFEST} is missing)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            settings = manifest["settings"]
            name, options = manifest["collection_name"], manifest["client"]
            if manifest["format"] != cls.format or not isinstance(options, dict):
                raise ValueError(f"format {manifest['format']!r}")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{manifest_path} is not a saved QdrantStore: {error}") from error
        if settings["dim"] != model.dim or (settings["model"] != model.name and not force):
            raise ValueError(
                f"{path} was saved with model {settings['model']!r} (dim {settings['dim']}), "
                f"not {model.name!r} (dim {model.dim}); load it with that model, or pass "
                "force=True to use a different model of the same dim"
            )
        if client is None:
            from qdrant_client import QdrantClient

            client = QdrantClient(**options)
        return cls(
            model,
            client,
            name,
            chunk_size=settings["chunk_size"],
            chunk_overlap=settings["chunk_overlap"],
            create=False,
        )

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many went."""
        unique = list(dict.fromkeys(check_ids(ids)))
        if not unique:
            return 0
        found = self.client.retrieve(
            self.collection_name,
            [point_id(value, 0) for value in unique],
            with_payload=False,
            with_vectors=False,
        )
        if found:
            self._delete_where(self._documents(unique))
        return len(found)

    def get(self, ids: Sequence[str]) -> list[Record]:
        """Stored records for `ids` in the given order; unknown ids are skipped."""
        ids = check_ids(ids)
        if not ids:
            return []
        points = self.client.retrieve(
            self.collection_name,
            list(dict.fromkeys(point_id(value, 0) for value in ids)),
            with_payload=True,
            with_vectors=False,
        )
        found = {point.payload["document_id"]: point.payload for point in points if point.payload}
        return [_record(found[value]) for value in ids if value in found]

    def clear(self) -> None:
        """Remove every document."""
        self._delete_where(self._models.Filter())

    def _prepare_filter(self, filter: MetadataFilter | None) -> Any:
        """Qdrant runs the filter itself: a dict becomes a payload filter; no callables.

        A list-valued metadata field matches a value when any element does (Qdrant's
        rule), and range operators compare numbers only.
        """
        return to_qdrant_filter(filter)

    def _insert(
        self,
        ids: list[str],
        texts: list[str | None],
        metadatas: list[dict[str, Any]],
        windows: list[list[torch.Tensor]],
    ) -> None:
        """Upsert every window, then drop windows left over from longer old versions."""
        m = self._models
        batch: list[Any] = []
        rows = 0
        for document_id, text, metadata, document in zip(
            ids, texts, metadatas, windows, strict=True
        ):
            for chunk, vectors in enumerate(document):
                payload: dict[str, Any] = {
                    "document_id": document_id,
                    "chunk": chunk,
                    "metadata": metadata,
                }
                if chunk == 0:
                    payload["text"] = text
                batch.append(
                    m.PointStruct(
                        id=point_id(document_id, chunk),
                        vector=vectors.detach().to("cpu", torch.float32).tolist(),
                        payload=payload,
                    )
                )
                rows += vectors.shape[0]
                if rows >= UPSERT_ROWS:
                    self.client.upsert(self.collection_name, batch, wait=True)
                    batch, rows = [], 0
        if batch:
            self.client.upsert(self.collection_name, batch, wait=True)
        by_count: dict[int, list[str]] = {}
        for document_id, document in zip(ids, windows, strict=True):
            by_count.setdefault(len(document), []).append(document_id)
        for count, owners in by_count.items():
            stale = m.FieldCondition(key="chunk", range=m.Range(gte=count))
            self._delete_where(m.Filter(must=[self._documents(owners), stale]))

    def _delete_where(self, condition: Any) -> None:
        m = self._models
        selector = condition if isinstance(condition, m.Filter) else m.Filter(must=[condition])
        self.client.delete(self.collection_name, m.FilterSelector(filter=selector), wait=True)

    def _documents(self, ids: list[str]) -> Any:
        m = self._models
        return m.FieldCondition(key="document_id", match=m.MatchAny(any=ids))

    def _first_windows(self) -> Any:
        m = self._models
        return m.Filter(must=[m.FieldCondition(key="chunk", match=m.MatchValue(value=0))])

    def _search_vectors(
        self, queries: list[torch.Tensor], k: int, query_filter: Any
    ) -> list[list[Hit]]:
        m = self._models
        vectors = [query.detach().to("cpu", torch.float32).tolist() for query in queries]
        if self.chunk_size is None:
            responses = self.client.query_batch_points(
                self.collection_name,
                requests=[
                    m.QueryRequest(query=vector, filter=query_filter, limit=k, with_payload=True)
                    for vector in vectors
                ],
            )
            results = [response.points for response in responses]
        else:
            results = [
                [
                    group.hits[0]
                    for group in self.client.query_points_groups(
                        self.collection_name,
                        query=vector,
                        group_by="document_id",
                        group_size=1,
                        limit=k,
                        query_filter=query_filter,
                        with_payload=True,
                    ).groups
                ]
                for vector in vectors
            ]
        found = [[(point.payload or {}, point.score) for point in points] for points in results]
        texts = self._first_window_texts(
            {p["document_id"] for hits in found for p, _ in hits if p["chunk"] != 0}
        )
        return [
            [_hit(payload, score, query.shape[0], texts) for payload, score in hits]
            for query, hits in zip(queries, found, strict=True)
        ]

    def _first_window_texts(self, ids: set[str]) -> dict[str, str | None]:
        """The texts of documents whose best window was not window 0 (held there)."""
        if not ids:
            return {}
        points = self.client.retrieve(
            self.collection_name,
            [point_id(value, 0) for value in sorted(ids)],
            with_payload=["document_id", "text"],
            with_vectors=False,
        )
        return {p.payload["document_id"]: p.payload.get("text") for p in points if p.payload}


def _hit(payload: dict[str, Any], score: float, rows: int, texts: dict[str, str | None]) -> Hit:
    document_id = payload["document_id"]
    chunk = int(payload["chunk"])
    return Hit(
        id=document_id,
        score=float(score),
        normalized_score=float(score) / rows,
        text=payload.get("text") if chunk == 0 else texts.get(document_id),
        metadata=payload.get("metadata") or {},
        chunk=chunk,
    )


def _record(payload: Mapping[str, Any] | None) -> Record:
    payload = payload or {}
    return Record(payload["document_id"], payload.get("text"), payload.get("metadata") or {})


def to_qdrant_filter(filter: MetadataFilter | None) -> models.Filter | None:
    """A `qdrant_client.models.Filter` on `metadata.<field>` for a maxsim dict filter.

    Example:
        >>> to_qdrant_filter({"year": {"$gte": 2020}}).must[0].range.gte
        2020.0

    Raises:
        TypeError: `filter` is a callable (it cannot run inside Qdrant) or not a dict.
        ValueError: an unknown operator (as `maxsim.filters`), a range on a non-number,
            equality with a list or dict, or a non-finite number.
    """
    if filter is None:
        return None
    compile_filter(filter)
    if not isinstance(filter, Mapping):
        raise TypeError(
            "QdrantStore cannot send a callable filter to Qdrant; use a dict filter "
            'such as {"lang": "de", "year": {"$gte": 2020}} (see maxsim.filters)'
        )
    if not filter:
        return None
    return _translate(filter, _models())


def _translate(filter: Mapping[str, Any], m: Any) -> models.Filter:
    return m.Filter(must=[_entry(key, condition, m) for key, condition in filter.items()])


def _entry(key: str, condition: Any, m: Any) -> Any:
    if key == "$and":
        return m.Filter(must=[_translate(part, m) for part in condition])
    if key == "$or":
        if not condition:
            return _nothing(m)
        return m.Filter(should=[_translate(part, m) for part in condition])
    if isinstance(condition, Mapping) and any(str(op).startswith("$") for op in condition):
        checks = [_comparison(key, op, target, m) for op, target in condition.items()]
        return checks[0] if len(checks) == 1 else m.Filter(must=checks)
    return _comparison(key, "$eq", condition, m)


def _comparison(key: str, operator: str, target: Any, m: Any) -> Any:
    path = _path(key)
    if operator == "$eq":
        return _equals(key, path, target, m)
    if operator == "$ne":
        return m.Filter(must_not=[_equals(key, path, target, m)])
    if operator == "$in":
        return _any_of(key, path, list(target), m)
    if operator == "$nin":
        return m.Filter(must_not=[_any_of(key, path, list(target), m)])
    if operator == "$exists":
        present = m.Filter(
            should=[
                m.IsNullCondition(is_null=m.PayloadField(key=path)),
                m.Filter(must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key=path))]),
            ]
        )
        return present if target else m.Filter(must_not=[present])
    if not _is_number(target):
        raise ValueError(
            f"filter on {key!r}: Qdrant applies {operator} to numbers only, got {target!r}"
        )
    _check_finite(key, target)
    return m.FieldCondition(key=path, range=m.Range(**{operator[1:]: target}))


def _equals(key: str, path: str, value: Any, m: Any) -> Any:
    if value is None:
        return m.IsNullCondition(is_null=m.PayloadField(key=path))
    if isinstance(value, (bool, int, str)):
        return m.FieldCondition(key=path, match=m.MatchValue(value=value))
    if isinstance(value, float):
        _check_finite(key, value)
        return m.FieldCondition(key=path, range=m.Range(gte=value, lte=value))
    raise ValueError(
        f"filter on {key!r}: Qdrant cannot compare with {type(value).__name__} {value!r}; "
        "use a str, int, float, bool or None (a list field matches when any element does)"
    )


def _any_of(key: str, path: str, values: list[Any], m: Any) -> Any:
    strings: list[str] = []
    integers: list[int] = []
    conditions: list[Any] = []
    for value in values:
        if isinstance(value, str):
            strings.append(value)
        elif _is_number(value) and isinstance(value, int):
            integers.append(value)
        else:
            conditions.append(_equals(key, path, value, m))
    conditions += [
        m.FieldCondition(key=path, match=m.MatchAny(any=group))
        for group in (strings, integers)
        if group
    ]
    if not conditions:
        return _nothing(m)
    return conditions[0] if len(conditions) == 1 else m.Filter(should=conditions)


def _nothing(m: Any) -> Any:
    """A condition no point meets (an empty filter meets every point)."""
    return m.Filter(must_not=[m.Filter()])


def _path(key: str) -> str:
    """The payload path of metadata field `key`, quoted when it holds other characters."""
    if _PLAIN_KEY.fullmatch(key):
        return f"metadata.{key}"
    if '"' in key:
        raise ValueError(f"filter on {key!r}: Qdrant cannot filter on a field name with '\"'")
    return f'metadata."{key}"'


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_finite(key: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"filter on {key!r}: Qdrant needs finite numbers, got {value!r}")
