"""`ColBERTRetriever`: a LlamaIndex retriever that searches nodes by ColBERT MaxSim."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters, VectorStoreQuery

from llama_index.vector_stores.maxsim import ColBERTVectorStore
from maxsim import LateInteractionEncoder, load_encoder
from maxsim.stores import DocumentStore

SETTINGS_FILE = "retriever.json"


class ColBERTRetriever(BaseRetriever):
    """Retrieve the nodes whose text best matches the query by ColBERT MaxSim.

    The nodes live in a `ColBERTVectorStore` (by default on an in-memory
    `maxsim.LateInteractionStore`): node ids are the store ids, the node text (with the
    metadata LlamaIndex embeds) is what gets encoded, and the metadata keeps what is
    needed to rebuild each node. Scores are the normalized MaxSim (raw MaxSim / query
    token rows, in [-1, 1] for cosine models; the raw score is in metadata "maxsim_score").

    Args:
        vector_store: the `ColBERTVectorStore` to search.
        similarity_top_k: how many nodes to return.
        filters: LlamaIndex `MetadataFilters` applied before scoring (any operator).
        node_ids / doc_ids: search only these nodes / source documents.
        callback_manager, object_map, objects, verbose: as for `BaseRetriever`.

    Example:
        >>> from llama_index.core import Document
        >>> from llama_index.core.node_parser import SentenceSplitter
        >>> from llama_index.retrievers.maxsim import ColBERTRetriever
        >>> from maxsim.testing import FakeColBERT
        >>> nodes = SentenceSplitter(chunk_size=64, chunk_overlap=0).get_nodes_from_documents([
        ...     Document(text="The Eiffel Tower is 330 metres tall.", metadata={"city": "Paris"}),
        ...     Document(text="The Brandenburg Gate is in Berlin.", metadata={"city": "Berlin"}),
        ... ])
        >>> retriever = ColBERTRetriever.from_defaults(
        ...     nodes=nodes, model=FakeColBERT(), similarity_top_k=1
        ... )
        >>> hits = retriever.retrieve("How tall is the Eiffel Tower?")
        >>> [hit.node.metadata["city"] for hit in hits]
        ['Paris']

        Save it, with its settings, and load it again (safetensors + JSON, no pickle):

        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> retriever.persist(folder)
        >>> again = ColBERTRetriever.from_persist_dir(folder, model=FakeColBERT())
        >>> [hit.node.metadata["city"] for hit in again.retrieve("Brandenburg Gate")]
        ['Berlin']
    """

    def __init__(
        self,
        vector_store: ColBERTVectorStore,
        similarity_top_k: int = 10,
        filters: MetadataFilters | None = None,
        node_ids: list[str] | None = None,
        doc_ids: list[str] | None = None,
        callback_manager: CallbackManager | None = None,
        object_map: dict[str, Any] | None = None,
        objects: list[Any] | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(vector_store, ColBERTVectorStore):
            raise TypeError(
                f"vector_store must be a ColBERTVectorStore, got {type(vector_store).__name__}"
            )
        if (
            isinstance(similarity_top_k, bool)
            or not isinstance(similarity_top_k, int)
            or similarity_top_k < 1
        ):
            raise ValueError(
                f"similarity_top_k must be a positive integer, got {similarity_top_k!r}"
            )
        if filters is not None and not isinstance(filters, MetadataFilters):
            raise TypeError(
                f"filters must be llama_index MetadataFilters, got {type(filters).__name__}"
            )
        self._vector_store = vector_store
        self._similarity_top_k = similarity_top_k
        self._filters = filters
        self._node_ids = node_ids
        self._doc_ids = doc_ids
        super().__init__(
            callback_manager=callback_manager,
            object_map=object_map,
            objects=objects,
            verbose=verbose,
        )

    @classmethod
    def from_defaults(
        cls,
        nodes: Sequence[BaseNode] | None = None,
        model: str | LateInteractionEncoder | None = None,
        similarity_top_k: int = 10,
        filters: MetadataFilters | None = None,
        *,
        store: DocumentStore | None = None,
        batch_size: int = 32,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """A retriever over `nodes`, encoded with `model` into a new in-memory store (or
        added to `store`, a `LateInteractionStore` / `QdrantStore`, when given).

        `model` is a checkpoint name or folder or a maxsim encoder; other keyword
        arguments go to the constructor (node_ids, doc_ids, callback_manager, ...).
        """
        vector_store = ColBERTVectorStore(
            model=model, store=store, batch_size=batch_size, model_kwargs=model_kwargs
        )
        if nodes:
            vector_store.add(nodes)
        return cls(vector_store, similarity_top_k=similarity_top_k, filters=filters, **kwargs)

    @property
    def vector_store(self) -> ColBERTVectorStore:
        return self._vector_store

    @property
    def similarity_top_k(self) -> int:
        return self._similarity_top_k

    @property
    def filters(self) -> MetadataFilters | None:
        return self._filters

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode and add nodes (a stored id is replaced); returns their ids."""
        return self._vector_store.add(nodes)

    def _query(self, query_bundle: QueryBundle) -> VectorStoreQuery:
        return VectorStoreQuery(
            query_str=query_bundle.query_str,
            similarity_top_k=self._similarity_top_k,
            filters=self._filters,
            node_ids=self._node_ids,
            doc_ids=self._doc_ids,
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self._vector_store.query(self._query(query_bundle))
        return [
            NodeWithScore(node=node, score=score)
            for node, score in zip(result.nodes or [], result.similarities or [], strict=True)
        ]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def persist(self, persist_dir: str | Path) -> None:
        """Save the store (folder `persist_dir`: safetensors + JSON) and the settings
        (`retriever.json`: similarity_top_k, filters, node_ids, doc_ids)."""
        folder = Path(persist_dir)
        self._vector_store.persist(str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        settings = {
            "similarity_top_k": self._similarity_top_k,
            "filters": self._filters.model_dump(mode="json") if self._filters else None,
            "node_ids": self._node_ids,
            "doc_ids": self._doc_ids,
        }
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | Path,
        model: str | LateInteractionEncoder,
        *,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Load what `persist` saved; `model` must be the one the store was built with.
        Keyword arguments override the saved settings (similarity_top_k, filters, ...).

        Raises:
            FileNotFoundError: `persist_dir` holds no saved store.
            ValueError: a corrupt file, or a model other than the store's.
        """
        folder = Path(persist_dir)
        vector_store = ColBERTVectorStore.from_persist_path(
            str(folder), model=load_encoder(model, **(model_kwargs or {}))
        )
        settings_path = folder / SETTINGS_FILE
        settings: dict[str, Any] = {}
        if settings_path.exists():
            try:
                settings = json.loads(settings_path.read_text(encoding="utf-8"))
                if settings.get("filters") is not None:
                    settings["filters"] = MetadataFilters.model_validate(settings["filters"])
            except ValueError as error:
                raise ValueError(f"{settings_path} is corrupt: {error}") from error
        return cls(vector_store, **{**settings, **kwargs})
