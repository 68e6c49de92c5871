"""`ColBERTVectorStore`: a LlamaIndex vector store on a maxsim late-interaction store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    DEFAULT_PERSIST_DIR,
    DEFAULT_PERSIST_FNAME,
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from llama_index.vector_stores.maxsim.filters import Dialect, combine, to_maxsim_filter
from llama_index.vector_stores.maxsim.nodes import hit_node
from maxsim import LateInteractionEncoder, LateInteractionStore, Record, load_encoder
from maxsim.fingerprint import same_model
from maxsim.stores import DocumentStore, load_store

NODE_ID_KEY = "_node_id"
NODE_CONTENT_KEY = "_node_content"
REF_DOC_ID_KEY = "ref_doc_id"


class ColBERTVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store that searches nodes by ColBERT MaxSim with maxsim.

    It keeps the text and encodes both nodes and queries with its own late-interaction
    model: `is_embedding_query` is False, so LlamaIndex never embeds the query, and node
    embeddings handed to `add` are ignored. Similarities are the normalized MaxSim
    (`maxsim.Hit.normalized_score`: MaxSim divided by the query's token rows, in [-1, 1]
    for cosine models, so `SimilarityPostprocessor(similarity_cutoff=...)` works for any
    query length); the raw MaxSim is in each node's metadata as "maxsim_score". A hit on
    a window of a chunked store's document is a node holding that window's text, with
    "document_id", "chunk" and "span" in its metadata (left out of embed and LLM text).

    Args:
        model: a checkpoint name or folder (loaded with `maxsim.ColBERT.from_pretrained`)
            or a maxsim encoder; may be left out when `store` is given.
        store: an existing maxsim store (`maxsim.LateInteractionStore`,
            `maxsim.PLAIDStore`, `maxsim.stores.QdrantStore`: any `DocumentStore`);
            None creates an empty in-memory `LateInteractionStore` for `model`.
        batch_size: documents per encoding batch in `add`.
        model_kwargs: keyword arguments for `ColBERT.from_pretrained` (dim, device, ...).

    Each node is stored under its `node_id`; the text encoded is
    `node.get_content(metadata_mode=MetadataMode.EMBED)`, the metadata is the node's plus
    the LlamaIndex fields needed to rebuild it (`_node_content`, `ref_doc_id`, ...).
    `query` takes `query_str`, `similarity_top_k`, `node_ids` / `doc_ids` (None or an
    empty list: no restriction) and `filters` (every LlamaIndex operator; see
    `llama_index.vector_stores.maxsim.filters`); only the default query mode exists.

    Example:
        >>> from llama_index.core.schema import TextNode
        >>> from llama_index.core.vector_stores import VectorStoreQuery
        >>> from llama_index.vector_stores.maxsim import ColBERTVectorStore
        >>> from maxsim.testing import FakeColBERT
        >>> vector_store = ColBERTVectorStore(model=FakeColBERT())
        >>> vector_store.add([
        ...     TextNode(id_="apples", text="Red apples grow on trees.", metadata={"year": 2024}),
        ...     TextNode(id_="sky", text="The sky is blue.", metadata={"year": 2021}),
        ... ])
        ['apples', 'sky']
        >>> vector_store.query(VectorStoreQuery(query_str="red apples", similarity_top_k=1)).ids
        ['apples']

        Under a `VectorStoreIndex` no embedding model runs: the index wants one at
        construction, but with `is_embedding_query=False` it is never called on queries,
        and nodes added through the vector store are not embedded either.

        >>> from llama_index.core import VectorStoreIndex
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> index = VectorStoreIndex.from_vector_store(
        ...     vector_store, embed_model=MockEmbedding(embed_dim=1)
        ... )
        >>> retriever = index.as_retriever(similarity_top_k=1)
        >>> [hit.node.node_id for hit in retriever.retrieve("blue sky")]
        ['sky']

        Persist the in-memory store to a folder and load it again:

        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> vector_store.persist(folder)
        >>> loaded = ColBERTVectorStore.from_persist_path(folder, model=FakeColBERT())
        >>> [node.get_content() for node in loaded.get_nodes(["sky"])]
        ['The sky is blue.']
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    batch_size: int = Field(default=32, gt=0, description="Documents per encoding batch.")
    model_name: str = Field(default="", description="Name of the maxsim encoder.")

    _store: DocumentStore = PrivateAttr()

    def __init__(
        self,
        model: str | LateInteractionEncoder | None = None,
        store: DocumentStore | None = None,
        *,
        batch_size: int = 32,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if store is None:
            if model is None:
                raise ValueError("ColBERTVectorStore needs a model, or a store to search")
            store = LateInteractionStore(load_encoder(model, **(model_kwargs or {})))
        elif not isinstance(store, DocumentStore):
            raise TypeError(
                "store must be a maxsim store (a maxsim.stores.DocumentStore such as "
                f"LateInteractionStore), got {type(store).__name__}"
            )
        elif model is not None and not same_model(model, store.model):
            raise ValueError(
                "store was built with another model (compared by the checkpoint's config "
                f"and weights); leave model out to use the store's ({store.model.name!r})"
            )
        # mypy sees the base class's fields only (no pydantic plugin here).
        super().__init__(  # type: ignore[call-arg]
            batch_size=batch_size, model_name=store.model.name, **kwargs
        )
        self._store = store

    @classmethod
    def class_name(cls) -> str:
        return "ColBERTVectorStore"

    @property
    def client(self) -> DocumentStore:
        """The maxsim store underneath (a `maxsim.stores.DocumentStore`)."""
        return self._store

    @property
    def model(self) -> LateInteractionEncoder:
        """The encoder of nodes and queries."""
        return self._store.model

    @property
    def _dialect(self) -> Dialect:
        return "memory" if self._store.supports_callable_filters else "qdrant"

    # ----------------------------------------------------------------- writing

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Encode and store nodes (their `embedding` is ignored); returns their ids.

        A node whose id is stored already is replaced; within one call the last node
        with an id wins.

        Raises:
            ValueError: a node without text to encode, or metadata that JSON cannot hold.
        """
        nodes = list(nodes)
        latest = {node.node_id: node for node in nodes}
        texts, metadatas = [], []
        for node in latest.values():
            text = node.get_content(metadata_mode=MetadataMode.EMBED)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"node {node.node_id!r} has no text to encode; ColBERTVectorStore "
                    "stores text nodes"
                )
            metadata = node_to_metadata_dict(node, remove_text=False, flat_metadata=False)
            metadata[NODE_ID_KEY] = node.node_id
            texts.append(text)
            metadatas.append(metadata)
        if texts:
            self._store.add(
                texts, metadatas=metadatas, ids=list(latest), batch_size=self.batch_size
            )
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the nodes of source document `ref_doc_id`."""
        self._store.delete_where({REF_DOC_ID_KEY: ref_doc_id})

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id and/or filters (both given: the listed nodes that match);
        with neither, every node, as in LlamaIndex's own stores.

        Unlike `query`, an empty `node_ids` list deletes nothing. Filters are applied by
        the store, with its rules (as in `query`).
        """
        if node_ids is None and filters is None:
            self._store.clear()
        elif filters is None:
            self._store.delete(list(dict.fromkeys(node_ids or [])))
        elif node_ids is None:
            self._store.delete_where(to_maxsim_filter(filters, dialect=self._dialect) or {})
        else:
            ids = [record.id for record in self._records(node_ids, filters)]
            if ids:
                self._store.delete(ids)

    def clear(self) -> None:
        """Delete every node."""
        self._store.clear()

    # ----------------------------------------------------------------- reading

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Stored nodes: those of `node_ids` (in that order, unknown ids skipped), or all
        of them, keeping those that match `filters`."""
        return [_to_node(record) for record in self._records(node_ids, filters)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The `similarity_top_k` best nodes for `query.query_str` by MaxSim.

        Raises:
            ValueError: no `query_str`, a mode other than default, a `similarity_top_k`
                below 1, or filters that the store cannot apply.
        """
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(
                f"ColBERTVectorStore supports the default query mode only, got {query.mode!r}"
            )
        if not query.query_str or not query.query_str.strip():
            raise ValueError(
                "ColBERTVectorStore encodes the query text itself: VectorStoreQuery.query_str "
                "must be a non-empty string (query_embedding is ignored)"
            )
        top_k = query.similarity_top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"similarity_top_k must be a positive integer, got {top_k!r}")
        restrictions: list[Any] = []
        if query.node_ids:
            restrictions.append({NODE_ID_KEY: {"$in": list(query.node_ids)}})
        if query.doc_ids:
            restrictions.append({REF_DOC_ID_KEY: {"$in": list(query.doc_ids)}})
        restrictions.append(to_maxsim_filter(query.filters, dialect=self._dialect))
        hits = self._store.search(query.query_str, k=top_k, filter=combine(restrictions))
        return VectorStoreQueryResult(
            nodes=[hit_node(_to_node(Record(hit.id, hit.text, hit.metadata)), hit) for hit in hits],
            similarities=[hit.normalized_score for hit in hits],
            ids=[hit.id for hit in hits],
        )

    # ------------------------------------------------------------------- async

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aget_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    # ------------------------------------------------------------- persistence

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Save the store to the folder `persist_path` with its own `save` (safetensors
        + JSON in memory; a `QdrantStore` writes how to reconnect to its collection).

        `StorageContext.persist(dir)` calls this with `dir/default__vector_store.json`,
        which becomes a folder.

        Raises:
            NotImplementedError: `fs` is a filesystem other than the local one.
        """
        _check_local(fs)
        self._store.save(persist_path)

    @classmethod
    def from_persist_path(
        cls,
        persist_path: str,
        model: str | LateInteractionEncoder,
        fs: Any = None,
        *,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTVectorStore:
        """Load a store saved by `persist`, whichever kind it is; `model` must be the one
        it was built with."""
        _check_local(fs)
        store = load_store(persist_path, load_encoder(model, **(model_kwargs or {})))
        return cls(store=store, **kwargs)

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str = DEFAULT_PERSIST_DIR,
        namespace: str = "default",
        *,
        model: str | LateInteractionEncoder,
        fs: Any = None,
        **kwargs: Any,
    ) -> ColBERTVectorStore:
        """Load the store that `StorageContext.persist(persist_dir)` saved."""
        path = os.path.join(persist_dir, f"{namespace}__{DEFAULT_PERSIST_FNAME}")
        return cls.from_persist_path(path, model=model, fs=fs, **kwargs)

    # ----------------------------------------------------------------- helpers

    def _records(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> list[Record]:
        """The records of `node_ids` (all when None) that the store finds for `filters`."""
        condition = to_maxsim_filter(filters, dialect=self._dialect)
        if node_ids is None:
            return self._store.get_where(condition)
        records = self._store.get(list(node_ids))
        if condition is None:
            return records
        matching = {record.id for record in self._store.get_where(condition)}
        return [record for record in records if record.id in matching]


def _to_node(record: Record) -> BaseNode:
    """The LlamaIndex node stored as `record` (a plain TextNode for records that were
    stored with maxsim directly)."""
    if NODE_CONTENT_KEY in record.metadata:
        return metadata_dict_to_node(record.metadata)
    return TextNode(id_=record.id, text=record.text or "", metadata=dict(record.metadata))


def _check_local(fs: Any) -> None:
    if fs is None:
        return
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(fs, LocalFileSystem):
        raise NotImplementedError(
            f"ColBERTVectorStore persists to the local filesystem only, got {type(fs).__name__}"
        )
