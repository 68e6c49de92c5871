"""`ColBERTRetriever`: a LangChain retriever over a maxsim store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator

from langchain_maxsim._common import (
    check_no_options,
    check_store,
    hit_document,
    new_id,
    split_store_options,
)
from maxsim import LateInteractionEncoder, LateInteractionStore, load_encoder
from maxsim.filters import MetadataFilter
from maxsim.stores import DocumentStore
from maxsim.validation import check_positive_int


class ColBERTRetriever(BaseRetriever):
    """Retrieve documents from a maxsim store (in memory or Qdrant) by exact MaxSim.

    Each Document carries the stored id, text and metadata, plus `metadata["score"]`
    (raw MaxSim) and `metadata["normalized_score"]` (score / query rows, in [-1, 1]).
    `k` and `filter` (a dict in the `maxsim.filters` grammar, or a callable on the
    metadata for the in-memory store) can be overridden per call:
    `retriever.invoke(query, k=2, filter={...})`. The async methods run the search in
    a worker thread, so the event loop keeps running.

    Args:
        store: a `maxsim.LateInteractionStore` or `maxsim.stores.QdrantStore` (any
            `maxsim.stores.DocumentStore`).
        k: how many documents to return (default 4).
        filter: a metadata filter applied before scoring (default none).

    Example:
        >>> from maxsim.testing import FakeColBERT
        >>> from langchain_maxsim import ColBERTRetriever
        >>> retriever = ColBERTRetriever.from_texts(
        ...     ["Paris is the capital of France.", "Berlin is the capital of Germany.",
        ...      "Bread is baked in an oven."],
        ...     FakeColBERT(),
        ...     metadatas=[{"lang": "en"}, {"lang": "en"}, {"lang": "de"}],
        ...     ids=["paris", "berlin", "bread"],
        ...     k=2,
        ... )
        >>> [doc.id for doc in retriever.invoke("capital of Germany")]
        ['berlin', 'paris']
        >>> [doc] = retriever.invoke("capital of Germany", k=1, filter={"lang": "de"})
        >>> doc.id, doc.page_content, sorted(doc.metadata)
        ('bread', 'Bread is baked in an oven.', ['lang', 'normalized_score', 'score'])

        An existing store (`LateInteractionStore` or `QdrantStore`) works the same way:

        >>> from maxsim import LateInteractionStore
        >>> store = LateInteractionStore(FakeColBERT())
        >>> store.add(["red apples", "blue sky"], ids=["a", "b"])
        ['a', 'b']
        >>> [doc.id for doc in ColBERTRetriever(store=store, k=1).invoke("apples")]
        ['a']
    """

    store: DocumentStore
    k: Annotated[int, Field(strict=True, gt=0)] = 4
    filter: MetadataFilter | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("store", mode="before")
    @classmethod
    def _check_store(cls, store: Any) -> DocumentStore:
        try:
            return check_store(store)
        except TypeError as error:  # pydantic reports ValueErrors as ValidationError
            raise ValueError(str(error)) from None

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        model: LateInteractionEncoder | str,
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """A retriever over a new in-memory `LateInteractionStore` holding `texts`.

        Args:
            texts: the documents.
            model: a maxsim encoder, or a checkpoint name or path to load with
                `maxsim.ColBERT.from_pretrained`.
            metadatas / ids: per document, as in `LateInteractionStore.add`.
            **kwargs: `dtype`, `chunk_size`, `chunk_overlap` go to the store,
                `batch_size` to the encoder; the rest (`k`, `filter`, `tags`, ...) to
                the retriever.
        """
        store_options = split_store_options(kwargs)
        batch_size = kwargs.pop("batch_size", 32)
        store = LateInteractionStore(load_encoder(model), **store_options)
        store.add(list(texts), metadatas, ids, batch_size=batch_size)
        return cls(store=store, **kwargs)

    @classmethod
    def from_documents(
        cls, documents: Sequence[Document], model: LateInteractionEncoder | str, **kwargs: Any
    ) -> ColBERTRetriever:
        """`from_texts` for Documents; their ids are kept (new ones where missing)."""
        ids = [document.id or None for document in documents]
        return cls.from_texts(
            [document.page_content for document in documents],
            model,
            metadatas=[document.metadata for document in documents],
            ids=None if not any(ids) else [value or new_id() for value in ids],
            **kwargs,
        )

    def _options(self, kwargs: dict[str, Any]) -> tuple[int, MetadataFilter | None]:
        """Per-call `k` and `filter`, falling back to the fields."""
        options = dict(kwargs)
        options.pop("verbose", None)  # LangChain passes invoke's kwargs through
        k = check_positive_int(options.pop("k", self.k), "k")
        filter = options.pop("filter", self.filter)
        check_no_options(options, f"{type(self).__name__}.invoke")
        return k, filter

    def _search(self, query: str, k: int, filter: MetadataFilter | None) -> list[Document]:
        hits = self.store.search(query, k=k, filter=filter)
        return [hit_document(hit, with_scores=True) for hit in hits]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._search(query, *self._options(kwargs))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k, filter = self._options(kwargs)
        return await run_in_executor(None, self._search, query, k, filter)
