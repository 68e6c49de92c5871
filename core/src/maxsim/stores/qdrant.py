"""`QdrantStore`: the `DocumentStore` API on a Qdrant collection, searched in two stages."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from maxsim.filters import MetadataFilter
from maxsim.late_interaction import LateInteractionEncoder
from maxsim.stores import persistence, qdrant_manifest
from maxsim.stores.base import DocumentStore, Hit, Record, check_ids
from maxsim.stores.first_stage import FirstStage, as_first_stage, from_settings
from maxsim.stores.qdrant_filters import qdrant_models, to_qdrant_filter
from maxsim.validation import check_positive_int

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = ["QdrantStore", "point_id", "to_qdrant_filter"]

logger = logging.getLogger("maxsim")
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "maxsim.stores.qdrant")
TOKENS = "tokens"
LAYOUT = 2
UPSERT_ROWS = 8192
SCROLL_PAGE = 256
RESERVED_OPTIONS = ("collection_name", "vectors_config", "metadata")
HIT_FIELDS = ("document_id", "chunk", "version")
PAYLOAD_INDEXES = (
    ("document_id", "keyword"),
    ("chunk", "integer"),
    ("version", "integer"),
    ("live", "bool"),
)


def point_id(document_id: str, version: int, chunk: int) -> str:
    """The Qdrant point id (a uuid5) of window `chunk` of one version of a document."""
    return str(uuid.uuid5(NAMESPACE, f"{document_id}#{version}#{chunk}"))


class QdrantStore(DocumentStore):
    """Documents as Qdrant points, found by a first-stage vector and ranked by MaxSim.

    Each window of a document is a point holding its token vectors (a MAX_SIM
    multivector named "tokens", stored without an HNSW graph: `m=0`) and, unless
    `first_stage=None`, one first-stage vector. A search is one `query_points` call:
    Qdrant's HNSW index on the first-stage vector `prefetch`es `candidates` points, and
    MaxSim over their token vectors ranks them; hits are grouped by document id, so a
    document stored as several windows comes back once, with its best window.

    Args:
        model: the encoder for documents and queries (`maxsim.ColBERT`, `FakeColBERT`).
        client: a `qdrant_client.QdrantClient`, embedded (`":memory:"`, `path=...`) or
            connected to a server or cluster (`url=...`).
        collection_name: the collection; created when missing and `create` is true.
        first_stage: "mean" (default: the mean of the token vectors, `dim` floats;
            for collections past ~100k points), "muvera" (a MUVERA encoding from
            fastembed, 5,120 floats, `pip install "maxsim[muvera]"`), a
            `maxsim.stores.first_stage.Muvera(...)` / `MeanPooling()`, or None: every
            search scores every matching point exactly (below ~100k points). See the
            README for measured recall. An existing collection must have been made with
            the same first stage.
        candidates: points the first stage hands to MaxSim per search (at least `k`).
        chunk_size: `add` stores documents longer than this many tokens as overlapping
            windows, one point each. None truncates them.
        chunk_overlap: tokens shared by consecutive windows.
        create: create the collection when it is missing (else raise ValueError).
        dtype: how a new collection stores token vectors: "float32", or "float16"
            (half the bytes; scores move by about 1e-3).
        on_disk: keep the token vectors on disk (memory-mapped) rather than in RAM.
        collection_options: more `create_collection` arguments for a new collection,
            such as `shard_number`, `replication_factor`, `on_disk_payload`,
            `quantization_config` or `optimizers_config` (see the README's recipe).

    Updates are all-or-nothing per call: a new version of each document is written
    invisibly (payload `live=False`, its own point ids), then published in one request
    that marks it live and deletes older versions. Searches, `get`, iteration and
    `get_vectors` read live points only, so a failed `add` leaves the previous version
    whole and searchable, and a reader never combines two versions' windows, text and
    metadata in one hit. While the publishing request runs a reader may see the old or
    the new version of a document (each whole); `get` then reports the newer one. What
    a failure leaves behind stays invisible and goes with the next write of those ids.
    Write one id from one process at a time: Qdrant has no transactions across points.

    Filters are the dict grammar of `maxsim.filters`, run by Qdrant in both stages on
    `metadata.<field>`, with Qdrant's rules where they differ: a list field matches a
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

    format: ClassVar[str] = "maxsim.QdrantStore"
    supports_callable_filters: ClassVar[bool] = False

    def __init__(
        self,
        model: LateInteractionEncoder,
        client: QdrantClient,
        collection_name: str,
        *,
        first_stage: FirstStage | str | None = "mean",
        candidates: int = 256,
        chunk_size: int | None = None,
        chunk_overlap: int = 64,
        create: bool = True,
        dtype: str = "float32",
        on_disk: bool = False,
        collection_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._models = qdrant_models()
        if not isinstance(collection_name, str) or not collection_name:
            raise TypeError(f"collection_name must be a non-empty string, got {collection_name!r}")
        super().__init__(model, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        self.first_stage = as_first_stage(first_stage)
        self.candidates = check_positive_int(candidates, "candidates")
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        self.client = client
        self.collection_name = collection_name
        self._version_lock = threading.Lock()
        self._last_version = 0
        if client.collection_exists(collection_name):
            self._check_collection()
        elif create:
            self._create_collection(dtype, on_disk, dict(collection_options or {}))
        else:
            raise ValueError(
                f"Qdrant collection {collection_name!r} does not exist; pass create=True "
                "to create it"
            )

    def _create_collection(self, dtype: str, on_disk: bool, options: dict[str, Any]) -> None:
        m = self._models
        reserved = [name for name in RESERVED_OPTIONS if name in options]
        if reserved:
            raise ValueError(
                f"collection_options cannot set {reserved}: QdrantStore chooses the vectors "
                "and metadata (use first_stage= and on_disk=)"
            )
        dim = self.model.dim
        vectors = {
            TOKENS: m.VectorParams(
                size=dim,
                distance=m.Distance.DOT,
                multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
                hnsw_config=m.HnswConfigDiff(m=0),
                datatype=m.Datatype(dtype),
                on_disk=on_disk or None,
            )
        }
        if self.first_stage is not None:
            vectors[self.first_stage.kind] = m.VectorParams(
                size=self.first_stage.size(dim), distance=m.Distance(self.first_stage.distance)
            )
        # Every update deletes the replaced version's points: vacuum segments sooner.
        options.setdefault("optimizers_config", m.OptimizersConfigDiff(deleted_threshold=0.1))
        self.client.create_collection(
            self.collection_name,
            vectors_config=vectors,
            metadata={"maxsim": self._settings()},
            **options,
        )
        # A server uses these for filters, deletes and grouping; local mode warns and ignores.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for field, schema in PAYLOAD_INDEXES:
                self.client.create_payload_index(
                    self.collection_name, field, m.PayloadSchemaType(schema), wait=True
                )

    def _settings(self) -> dict[str, Any]:
        return {
            "layout": LAYOUT,
            "model": self.model.name,
            "dim": self.model.dim,
            "first_stage": None if self.first_stage is None else self.first_stage.settings(),
        }

    def _check_collection(self) -> None:
        name = self.collection_name
        config = self.client.get_collection(name).config
        settings = (config.metadata or {}).get("maxsim")
        if isinstance(config.params.vectors, self._models.VectorParams) and settings is None:
            raise ValueError(qdrant_manifest.legacy_message(name, config.params.vectors))
        if not isinstance(settings, dict) or settings.get("layout") != LAYOUT:
            raise ValueError(
                f"Qdrant collection {name!r} was not made by this QdrantStore (no maxsim "
                f"layout {LAYOUT} in its metadata); use another collection name"
            )
        if settings.get("dim") != self.model.dim:
            raise ValueError(
                f"Qdrant collection {name!r} holds vectors of dim {settings.get('dim')}, but "
                f"model {self.model.name!r} has dim {self.model.dim}; use another collection "
                "or the model it was filled with"
            )
        stored = from_settings(settings.get("first_stage"))
        if stored != self.first_stage:
            wanted = "None" if stored is None else repr(stored)
            raise ValueError(
                f"Qdrant collection {name!r} was made with first_stage={wanted}; pass that "
                "(a first stage must match the vectors stored), or use another collection"
            )

    @classmethod
    def migrate(
        cls,
        model: LateInteractionEncoder,
        client: QdrantClient,
        source: str,
        target: str,
        **options: Any,
    ) -> QdrantStore:
        """Copy a collection made by an older QdrantStore (one unnamed multivector) into
        a new collection `target` of this layout; `source` is left as it was.

        `options` go to `QdrantStore(...)` for the new collection (`first_stage=`,
        `collection_options=`...). Returns the new store; delete `source` once it is
        checked: `client.delete_collection(source)`.
        """
        store = cls(model, client, target, **options)
        for page in qdrant_manifest.legacy_documents(client, source, SCROLL_PAGE):
            ids = [document_id for document_id, _, _, _ in page]
            texts = [text for _, text, _, _ in page]
            metadatas = [metadata for _, _, metadata, _ in page]
            windows = [[torch.tensor(w) for w in document] for _, _, _, document in page]
            store._insert(ids, texts, metadatas, windows)
        return store

    def save(self, path: str | Path) -> None:
        """Write folder `path`/store.json: how to reconnect to this collection.

        The documents stay in Qdrant; secrets (api_key, headers) are never written, pass
        them to `load`. An in-memory client cannot be reconnected to.

        Raises:
            ValueError: the client is `QdrantClient(":memory:")`.
        """
        qdrant_manifest.save(
            Path(path),
            self.format,
            self.collection_name,
            qdrant_manifest.connection(self.client),
            {
                **self._settings(),
                "candidates": self.candidates,
                "chunk_size": self.chunk_size,
                "chunk_overlap": self.chunk_overlap,
            },
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: LateInteractionEncoder,
        *,
        force: bool = False,
        client: QdrantClient | None = None,
        **options: Any,
    ) -> QdrantStore:
        """Reconnect to the collection a `save` described; the model must match (name
        and dim) unless forced.

        Args:
            client: use this client instead of the saved connection.
            options: `QdrantClient` arguments (`api_key=`, `timeout=`...) when `client` is
                None; `candidates=` changes the saved candidates limit.

        Raises:
            FileNotFoundError: `path` holds no store.json.
            ValueError: a corrupt manifest, another format, or a model mismatch.
        """
        manifest = qdrant_manifest.load(Path(path), cls.format)
        settings = manifest["settings"]
        persistence.check_model(path, settings, model, force)
        candidates = options.pop("candidates", settings["candidates"])
        if client is None:
            client = qdrant_manifest.connect(manifest["connection"], options)
        elif options:
            raise TypeError(f"load got client= and client options {sorted(options)}; pass one")
        return cls(
            model,
            client,
            manifest["collection_name"],
            first_stage=from_settings(settings["first_stage"]),
            candidates=candidates,
            chunk_size=settings["chunk_size"],
            chunk_overlap=settings["chunk_overlap"],
            create=False,
        )

    def __len__(self) -> int:
        count = self.client.count(
            self.collection_name, count_filter=self._first_windows(), exact=True
        )
        return int(count.count)

    def __iter__(self) -> Iterator[Record]:
        for point in self._scroll(self._first_windows()):
            yield _record(point.payload)

    def get(self, ids: Sequence[str]) -> list[Record]:
        """Stored records for `ids` in the given order; unknown ids are skipped."""
        ids = check_ids(ids)
        if not ids:
            return []
        found = self._latest(self._scroll(self._first_windows(self._documents(ids))))
        return [_record(found[value].payload) for value in ids if value in found]

    def get_where(self, filter: MetadataFilter | None = None) -> list[Record]:
        """Records whose metadata passes `filter`, by Qdrant's rules (as `search`)."""
        condition = self._prepare_filter(filter)
        found = self._latest(self._scroll(self._first_windows(condition)))
        return [_record(point.payload) for point in found.values()]

    def get_vectors(self, ids: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Per stored id, its windows' token vectors as float32 [rows, dim] arrays."""
        ids = check_ids(ids)
        if not ids:
            return {}
        versions: dict[str, tuple[int, dict[int, np.ndarray]]] = {}
        for point in self._scroll(
            self._live(self._documents(ids)), vectors=True, payload=HIT_FIELDS
        ):
            payload = point.payload or {}
            document_id, version = payload["document_id"], int(payload["version"])
            held = versions.get(document_id)
            if held is None or held[0] < version:
                held = versions[document_id] = (version, {})
            if held[0] == version:
                vectors = point.vector[TOKENS] if isinstance(point.vector, dict) else point.vector
                held[1][int(payload["chunk"])] = np.asarray(vectors, dtype=np.float32)
        result = {}
        for value in dict.fromkeys(ids):
            if value in versions:
                windows = versions[value][1]
                result[value] = [windows[chunk] for chunk in sorted(windows)]
        return result

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many went."""
        unique = list(dict.fromkeys(check_ids(ids)))
        if not unique:
            return 0
        documents = self._documents(unique)
        found = self._latest(self._scroll(self._first_windows(documents), payload=HIT_FIELDS))
        if found:
            self._delete_where(documents)
        return len(found)

    def delete_where(self, filter: MetadataFilter) -> int:
        """Remove the documents whose metadata passes `filter` (Qdrant's rules, as
        `search`: a list field matches when any item does), with one Qdrant filter
        delete. Returns how many went.

        Raises:
            ValueError: `filter` is None (use `clear()` to remove everything).
        """
        if filter is None:
            raise ValueError("delete_where needs a filter; use clear() to remove everything")
        condition = self._prepare_filter(filter)
        count = self.client.count(
            self.collection_name, count_filter=self._first_windows(condition), exact=True
        ).count
        if count:
            self._delete_where(condition if condition is not None else self._models.Filter())
        return int(count)

    def clear(self) -> None:
        """Remove every document."""
        self._delete_where(self._models.Filter())

    def _prepare_filter(self, filter: MetadataFilter | None) -> Any:
        """Qdrant runs the filter itself: a dict becomes a payload filter; no callables."""
        return to_qdrant_filter(filter)

    def _insert(
        self,
        ids: list[str],
        texts: list[str | None],
        metadatas: list[dict[str, Any]],
        windows: list[list[torch.Tensor]],
    ) -> None:
        """Write a new version invisibly, then publish it and drop older versions."""
        if not ids:
            return
        m = self._models
        version = self._next_version()
        documents = self._documents(ids)
        written = m.Filter(
            must=[documents, m.FieldCondition(key="version", match=m.MatchValue(value=version))]
        )
        try:
            for batch in self._batches(ids, texts, metadatas, windows, version):
                self.client.upsert(self.collection_name, batch, wait=True)
        except BaseException:
            self._discard(written, len(ids))
            raise
        older = m.FieldCondition(key="version", range=m.Range(lt=version))
        self.client.batch_update_points(
            self.collection_name,
            [
                m.SetPayloadOperation(
                    set_payload=m.SetPayload(payload={"live": True}, filter=written)
                ),
                m.DeleteOperation(
                    delete=m.FilterSelector(filter=m.Filter(must=[documents, older]))
                ),
            ],
            wait=True,
        )

    def _batches(
        self,
        ids: list[str],
        texts: list[str | None],
        metadatas: list[dict[str, Any]],
        windows: list[list[torch.Tensor]],
        version: int,
    ) -> Iterator[list[Any]]:
        """Points of the new version (not live yet), in batches of about UPSERT_ROWS rows."""
        m = self._models
        batch: list[Any] = []
        rows = 0
        for document_id, text, metadata, document in zip(
            ids, texts, metadatas, windows, strict=True
        ):
            for chunk, tensor in enumerate(document):
                matrix = tensor.detach().to("cpu", torch.float32).numpy()
                payload: dict[str, Any] = {
                    "document_id": document_id,
                    "chunk": chunk,
                    "version": version,
                    "live": False,
                    "metadata": metadata,
                }
                if chunk == 0:
                    payload["text"] = text
                vectors: dict[str, Any] = {TOKENS: matrix.tolist()}
                if self.first_stage is not None:
                    vectors[self.first_stage.kind] = self.first_stage.document(matrix).tolist()
                point = point_id(document_id, version, chunk)
                batch.append(m.PointStruct(id=point, vector=vectors, payload=payload))
                rows += matrix.shape[0]
                if rows >= UPSERT_ROWS:
                    yield batch
                    batch, rows = [], 0
        if batch:
            yield batch

    def _next_version(self) -> int:
        """A version number (microseconds) above every one this store handed out."""
        with self._version_lock:
            self._last_version = max(time.time_ns() // 1000, self._last_version + 1)
            return self._last_version

    def _discard(self, written: Any, documents: int) -> None:
        """Remove an unfinished version; if that fails too it stays invisible."""
        try:
            self._delete_where(written)
        except Exception:
            logger.warning(
                "QdrantStore: could not remove an unfinished update of %d documents; it "
                "stays invisible and goes with the next write of those ids",
                documents,
                exc_info=True,
            )

    def _delete_where(self, condition: Any) -> None:
        m = self._models
        selector = condition if isinstance(condition, m.Filter) else m.Filter(must=[condition])
        self.client.delete(self.collection_name, m.FilterSelector(filter=selector), wait=True)

    def _documents(self, ids: list[str]) -> Any:
        m = self._models
        return m.FieldCondition(key="document_id", match=m.MatchAny(any=list(dict.fromkeys(ids))))

    def _live(self, *conditions: Any) -> Any:
        """Points of published versions that meet every condition (None skipped)."""
        m = self._models
        live = m.FieldCondition(key="live", match=m.MatchValue(value=True))
        return m.Filter(must=[live, *(c for c in conditions if c is not None)])

    def _first_windows(self, *conditions: Any) -> Any:
        m = self._models
        return self._live(m.FieldCondition(key="chunk", match=m.MatchValue(value=0)), *conditions)

    def _scroll(
        self, condition: Any, vectors: bool = False, payload: Sequence[str] | None = None
    ) -> Iterator[Any]:
        """Every point meeting `condition`, with the `payload` fields (None: all)."""
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection_name,
                scroll_filter=condition,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True if payload is None else list(payload),
                with_vectors=[TOKENS] if vectors else False,
            )
            yield from points
            if offset is None:
                return

    @staticmethod
    def _latest(points: Iterator[Any]) -> dict[str, Any]:
        """Per document id, the point of its newest version (while an update publishes,
        a reader can see both)."""
        found: dict[str, Any] = {}
        for point in points:
            payload = point.payload or {}
            held = found.get(payload["document_id"])
            if held is None or held.payload["version"] < payload["version"]:
                found[payload["document_id"]] = point
        return found

    def _search_vectors(
        self, queries: list[torch.Tensor], k: int, query_filter: Any
    ) -> list[list[Hit]]:
        visible = self._live(query_filter)
        matrices = [query.detach().to("cpu", torch.float32).numpy() for query in queries]
        if self.first_stage is None:
            best = [self._exact_best(matrix, k, visible) for matrix in matrices]
        else:
            best = self._two_stage_best(self.first_stage, matrices, k, visible)
        payloads = self._hit_payloads([point for points in best for point in points])
        # A point deleted since the query has no payload left: its hit is dropped.
        return [
            [
                _hit(point, payloads, matrix.shape[0])
                for point in points
                if str(point.id) in payloads
            ]
            for matrix, points in zip(matrices, best, strict=True)
        ]

    def _exact_best(self, matrix: np.ndarray, k: int, visible: Any) -> list[Any]:
        """Each of the `k` best documents' best window, every matching point scored."""
        groups = self.client.query_points_groups(
            self.collection_name,
            query=matrix.tolist(),
            using=TOKENS,
            query_filter=visible,
            group_by="document_id",
            group_size=1,
            limit=k,
            with_payload=list(HIT_FIELDS),
        ).groups
        return [group.hits[0] for group in groups]

    def _two_stage_best(
        self, first_stage: FirstStage, matrices: list[np.ndarray], k: int, visible: Any
    ) -> list[list[Any]]:
        """Per query, one `query_points` request: the first stage prefetches `candidates`
        points, MaxSim ranks them; then each document's best window, `k` documents.

        Grouping happens here rather than in Qdrant: a server's group-by multiplies the
        prefetch limit by `k` and repeats the query to fill groups.
        """
        m = self._models
        limit = max(self.candidates, k)
        requests = [
            m.QueryRequest(
                prefetch=m.Prefetch(
                    query=first_stage.query(matrix).tolist(),
                    using=first_stage.kind,
                    limit=limit,
                    filter=visible,
                ),
                query=matrix.tolist(),
                using=TOKENS,
                filter=visible,
                limit=limit,
                with_payload=list(HIT_FIELDS),
            )
            for matrix in matrices
        ]
        responses = self.client.query_batch_points(self.collection_name, requests=requests)
        best = []
        for response in responses:
            ranked: dict[str, Any] = {}
            for point in response.points:
                ranked.setdefault((point.payload or {})["document_id"], point)
            best.append(list(ranked.values())[:k])
        return best

    def _hit_payloads(self, points: list[Any]) -> dict[str, dict[str, Any]]:
        """Full payloads of the hits' windows and of their documents' window 0 (text)."""
        wanted = {str(point.id) for point in points}
        wanted |= {
            point_id(p.payload["document_id"], p.payload["version"], 0)
            for p in points
            if p.payload["chunk"]
        }
        if not wanted:
            return {}
        found = self.client.retrieve(
            self.collection_name, sorted(wanted), with_payload=True, with_vectors=False
        )
        return {str(point.id): point.payload or {} for point in found}


def _hit(point: Any, payloads: dict[str, dict[str, Any]], rows: int) -> Hit:
    document_id, version = point.payload["document_id"], point.payload["version"]
    chunk = int(point.payload["chunk"])
    payload = payloads[str(point.id)]
    first = payload if chunk == 0 else payloads.get(point_id(document_id, version, 0), {})
    return Hit(
        id=document_id,
        score=float(point.score),
        normalized_score=float(point.score) / rows,
        text=first.get("text"),
        metadata=payload.get("metadata") or {},
        chunk=chunk,
    )


def _record(payload: Mapping[str, Any] | None) -> Record:
    payload = payload or {}
    return Record(payload["document_id"], payload.get("text"), payload.get("metadata") or {})
