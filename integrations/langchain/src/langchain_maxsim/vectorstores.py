"""`ColBERTVectorStore`: the LangChain `VectorStore` interface on a maxsim store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore

from langchain_maxsim._common import (
    check_no_options,
    check_store,
    hit_document,
    new_id,
    record_document,
)
from maxsim import Hit, LateInteractionEncoder, LateInteractionStore, load_encoder, scores
from maxsim.fingerprint import same_model
from maxsim.stores import DocumentStore
from maxsim.validation import check_positive_int

NO_VECTOR_SEARCH = (
    "ColBERTVectorStore scores a query by its token vectors (MaxSim), not by one embedding "
    "vector; search with the query text (similarity_search, max_marginal_relevance_search)"
)


class ColBERTVectorStore(VectorStore):
    """LangChain's `VectorStore` on a maxsim store: ColBERT token vectors, exact MaxSim.

    There is no LangChain `Embeddings` object: the ColBERT model (a maxsim encoder)
    encodes documents and queries itself, one vector per token, so `embeddings` is
    None and `from_texts` takes `model=` (its `embedding` argument exists only for the
    interface). Documents keep their ids (`ids=` or `Document.id`; adding an id again
    replaces the document) and metadata, which must survive JSON.

    Scores: `similarity_search_with_score` gives raw MaxSim; the relevance scores
    (`similarity_search_with_relevance_scores`, `as_retriever(search_type=
    "similarity_score_threshold")`) map the normalized score (MaxSim / query rows, in
    [-1, 1] for ColBERT's unit vectors) to [0, 1] as (x + 1) / 2. Maximal marginal
    relevance measures redundancy by the normalized MaxSim between candidates' token
    vectors. The async methods run the sync ones in a worker thread.

    Args:
        model: a maxsim encoder, or a checkpoint name or path for
            `maxsim.ColBERT.from_pretrained`; optional when `store` is given.
        store: an existing maxsim store (`maxsim.LateInteractionStore`,
            `maxsim.PLAIDStore`, `maxsim.stores.QdrantStore`: any `DocumentStore`);
            by default a new in-memory `LateInteractionStore` for `model`.
        **store_options: `dtype`, `chunk_size`, `chunk_overlap` for that new store.

    Example:
        >>> from langchain_core.documents import Document
        >>> from maxsim.testing import FakeColBERT
        >>> from langchain_maxsim import ColBERTVectorStore
        >>> vectorstore = ColBERTVectorStore(model=FakeColBERT())
        >>> vectorstore.add_documents([
        ...     Document("Berlin is the capital of Germany.", id="berlin", metadata={"year": 2024}),
        ...     Document("Paris is the capital of France.", id="paris", metadata={"year": 2021}),
        ...     Document("Bread is baked in an oven.", id="bread", metadata={"year": 2024}),
        ... ])
        ['berlin', 'paris', 'bread']
        >>> [doc.id for doc in vectorstore.similarity_search("capital of Germany", k=2)]
        ['berlin', 'paris']
        >>> [doc.id for doc in vectorstore.similarity_search("capital", filter={"year": 2021})]
        ['paris']
        >>> [(doc.id, 0 <= score <= 1) for doc, score in
        ...  vectorstore.similarity_search_with_relevance_scores("capital of Germany", k=1)]
        [('berlin', True)]
        >>> retriever = vectorstore.as_retriever(search_type="mmr", search_kwargs={"k": 2})
        >>> [doc.id for doc in retriever.invoke("capital of Germany")][0]
        'berlin'
        >>> vectorstore.delete(["paris"])
        True
        >>> [doc.id for doc in vectorstore.get_by_ids(["paris", "bread"])]
        ['bread']
    """

    def __init__(
        self,
        model: LateInteractionEncoder | str | None = None,
        store: DocumentStore | None = None,
        **store_options: Any,
    ) -> None:
        if store is None:
            if model is None:
                raise ValueError(
                    "ColBERTVectorStore needs model= (a maxsim encoder or a checkpoint name "
                    "or path) or store= (a maxsim store such as LateInteractionStore)"
                )
            self.store: DocumentStore = LateInteractionStore(load_encoder(model), **store_options)
        else:
            self.store = check_store(store)
            if store_options:
                raise TypeError(
                    f"store options {sorted(store_options)} apply to a new store only; "
                    "the given store keeps its own"
                )
            if model is not None and not same_model(model, store.model):
                raise ValueError(
                    "model differs from the model of the given store (compared by the "
                    "checkpoint's config and weights); pass only store= (its model "
                    "encodes queries too)"
                )
        self.model: LateInteractionEncoder = self.store.model

    @property
    def embeddings(self) -> Embeddings | None:
        """None: the ColBERT model encodes texts itself (see the class docstring)."""
        return None

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode and store texts; an id already stored is replaced. Returns the ids.

        Missing ids (None or "") get a new uuid4 hex. `batch_size` is passed to the
        encoder.

        Raises:
            TypeError / ValueError: bad texts, mismatched lengths, repeated ids, metadata
                that JSON cannot store unchanged. Nothing is stored then.
        """
        batch_size = kwargs.pop("batch_size", 32)
        check_no_options(kwargs, "ColBERTVectorStore.add_texts")
        texts = list(texts)
        if ids is not None:
            if isinstance(ids, str):
                raise TypeError("ids must be a list of strings; wrap a single id in a list")
            ids = [value or new_id() for value in ids]
            if len(ids) != len(texts):
                raise ValueError(f"ids has {len(ids)} items but there are {len(texts)} texts")
        if metadatas is not None:
            metadatas = [metadata or {} for metadata in metadatas]
        if not texts:
            return []
        return self.store.add(texts, metadatas, ids, batch_size=batch_size)

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """`add_texts` for Documents: ids from `ids=`, else from `Document.id`."""
        ids = kwargs.pop("ids", None)
        if ids is None and any(document.id for document in documents):
            ids = [document.id for document in documents]
        return self.add_texts(
            [document.page_content for document in documents],
            [document.metadata for document in documents],
            ids=ids,
            **kwargs,
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove documents by id (unknown ids are ignored), or every document when `ids`
        is None, as LangChain's `VectorStore.delete` defines. Returns True."""
        check_no_options(kwargs, "ColBERTVectorStore.delete")
        if ids is None:
            self.store.clear()
        else:
            self.store.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Stored Documents for `ids`, in the given order; unknown ids are skipped."""
        return [record_document(record) for record in self.store.get(ids)]

    def _hits(self, query: str, k: int, kwargs: dict[str, Any], where: str) -> list[Hit]:
        filter = kwargs.pop("filter", None)
        check_no_options(kwargs, f"ColBERTVectorStore.{where}")
        return self.store.search(query, k=check_positive_int(k, "k"), filter=filter)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The `k` best Documents for `query` by MaxSim; `filter=` selects by metadata."""
        return [
            hit_document(hit, with_scores=False)
            for hit in self._hits(query, k, kwargs, "similarity_search")
        ]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """`similarity_search` with each Document's raw MaxSim score."""
        hits = self._hits(query, k, kwargs, "similarity_search_with_score")
        return [(hit_document(hit, with_scores=False), hit.score) for hit in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Normalized MaxSim in [-1, 1] to a relevance in [0, 1]: (x + 1) / 2, clipped."""
        return relevance_from_normalized

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        relevance = self._select_relevance_score_fn()
        hits = self._hits(query, k, kwargs, "similarity_search_with_relevance_scores")
        return [
            (hit_document(hit, with_scores=False), relevance(hit.normalized_score)) for hit in hits
        ]

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await run_in_executor(
            None, self._similarity_search_with_relevance_scores, query, k, **kwargs
        )

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """`k` Documents chosen among the `fetch_k` best for relevance and diversity.

        Each step picks the candidate maximising `lambda_mult * relevance - (1 -
        lambda_mult) * redundancy`, where relevance is the normalized MaxSim with the
        query and redundancy the largest normalized MaxSim (symmetrised) with a Document
        already picked; `lambda_mult=1` is plain similarity order, 0 the most diverse.
        """
        check_positive_int(k, "k")
        check_positive_int(fetch_k, "fetch_k")
        if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)):
            raise TypeError(f"lambda_mult must be a number, got {type(lambda_mult).__name__}")
        if not 0 <= lambda_mult <= 1:
            raise ValueError(f"lambda_mult must be between 0 and 1, got {lambda_mult}")
        hits = self._hits(query, max(k, fetch_k), kwargs, "max_marginal_relevance_search")
        relevance = np.array([hit.normalized_score for hit in hits], dtype=np.float64)
        order = maximal_marginal_relevance(relevance, self._redundancy(hits), k, lambda_mult)
        return [hit_document(hits[i], with_scores=False) for i in order]

    def _redundancy(self, hits: list[Hit]) -> np.ndarray:
        """Symmetrised normalized MaxSim between the hits' stored vectors (the matched
        window of a chunked document); nothing is encoded again. 0 for a hit deleted
        since the search."""
        similarity = np.zeros((len(hits), len(hits)), dtype=np.float64)
        stored = self.store.get_vectors([hit.id for hit in hits])
        known = [i for i, hit in enumerate(hits) if hit.id in stored]
        if len(known) < 2:
            return similarity
        vectors = []
        for i in known:
            windows = stored[hits[i].id]
            vectors.append(windows[min(hits[i].chunk, len(windows) - 1)])
        pairwise = scores(vectors, vectors, normalize=True).astype(np.float64)
        similarity[np.ix_(known, known)] = (pairwise + pairwise.T) / 2
        return similarity

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Not supported: ColBERT has no single query vector."""
        raise NotImplementedError(NO_VECTOR_SEARCH)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Not supported: ColBERT has no single query vector."""
        raise NotImplementedError(NO_VECTOR_SEARCH)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | LateInteractionEncoder | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        model: LateInteractionEncoder | str | None = None,
        **kwargs: Any,
    ) -> ColBERTVectorStore:
        """A new store holding `texts`, encoded by `model` (required).

        `embedding` exists for LangChain's interface: leave it None (a maxsim encoder
        passed there is taken as `model`). `store=` fills an existing store instead;
        `dtype`, `chunk_size`, `chunk_overlap` configure a new one; `batch_size` goes to
        the encoder.

        Raises:
            ValueError: no `model` (and no `store`).
            TypeError: `embedding` is a LangChain Embeddings object.
        """
        if isinstance(embedding, LateInteractionEncoder) and model is None:
            model = embedding
        elif embedding is not None and embedding is not model:
            raise TypeError(
                "ColBERTVectorStore does not use LangChain Embeddings: the ColBERT model "
                "encodes texts itself. Pass embedding=None and model=<maxsim encoder or "
                "checkpoint name>"
            )
        store = kwargs.pop("store", None)
        if model is None and store is None:
            raise ValueError(
                "ColBERTVectorStore.from_texts needs model=, a maxsim encoder (maxsim.ColBERT"
                ", maxsim.testing.FakeColBERT) or a checkpoint name or path; the embedding "
                "argument is not used"
            )
        batch_size = kwargs.pop("batch_size", 32)
        vectorstore = cls(model=model, store=store, **kwargs)
        vectorstore.add_texts(texts, metadatas, ids=ids, batch_size=batch_size)
        return vectorstore

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | LateInteractionEncoder | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> ColBERTVectorStore:
        """`from_texts` in a worker thread."""
        return await run_in_executor(
            None, cls.from_texts, texts, embedding, metadatas, ids=ids, **kwargs
        )

    @classmethod
    def from_documents(
        cls,
        documents: list[Document],
        embedding: Embeddings | LateInteractionEncoder | None = None,
        **kwargs: Any,
    ) -> ColBERTVectorStore:
        """`from_texts` for Documents: ids from `ids=`, else from `Document.id`."""
        if "ids" not in kwargs and any(document.id for document in documents):
            kwargs["ids"] = [document.id for document in documents]
        return cls.from_texts(
            [document.page_content for document in documents],
            embedding,
            metadatas=[document.metadata for document in documents],
            **kwargs,
        )

    @classmethod
    async def afrom_documents(
        cls,
        documents: list[Document],
        embedding: Embeddings | LateInteractionEncoder | None = None,
        **kwargs: Any,
    ) -> ColBERTVectorStore:
        """`from_documents` in a worker thread."""
        return await run_in_executor(None, cls.from_documents, documents, embedding, **kwargs)


def relevance_from_normalized(score: float) -> float:
    """A normalized MaxSim score in [-1, 1] as a relevance in [0, 1]."""
    return min(1.0, max(0.0, (score + 1.0) / 2.0))


def maximal_marginal_relevance(
    relevance: np.ndarray, similarity: np.ndarray, k: int, lambda_mult: float
) -> list[int]:
    """Indices picked greedily by `lambda_mult * relevance - (1 - lambda_mult) * max
    similarity to those already picked`; the first is the most relevant (ties: first)."""
    count = min(k, len(relevance))
    if count == 0:
        return []
    picked = [int(np.argmax(relevance))]
    redundancy = similarity[picked[0]].copy()
    available = np.ones(len(relevance), dtype=bool)
    available[picked[0]] = False
    while len(picked) < count:
        objective = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        objective[~available] = -np.inf
        best = int(np.argmax(objective))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, similarity[best])
    return picked
