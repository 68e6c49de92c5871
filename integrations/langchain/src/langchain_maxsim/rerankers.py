"""`ColBERTReranker`: rerank retrieved Documents by MaxSim against the query."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Annotated, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from maxsim import LateInteractionEncoder, load_encoder

logger = logging.getLogger("langchain_maxsim")

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
RELEVANCE_KEY = "relevance_score"
RAW_SCORE_KEY = "maxsim_score"


class ColBERTReranker(BaseDocumentCompressor):
    """Rerank Documents by MaxSim against the query with a ColBERT model.

    Returns new Documents, best first, at most `top_n` of them, each with its metadata
    copied, `metadata["relevance_score"]` set to the normalized MaxSim (the raw score
    divided by the query's token rows: in [-1, 1] for cosine models such as
    jina-colbert-v2, so one cutoff suits every query length) and
    `metadata["maxsim_score"]` to the raw MaxSim; the input Documents are left
    unchanged. Documents whose text is empty or whitespace cannot be
    encoded and are dropped (with a warning on the "langchain_maxsim" logger). The
    async `acompress_documents` runs the model in a worker thread.

    Args:
        model: a maxsim encoder, or a checkpoint name or path that is loaded with
            `maxsim.ColBERT.from_pretrained(model, **model_kwargs)` on first use.
        top_n: how many Documents to keep (None keeps all; default 3).
        batch_size: documents per encoder batch (default 32).
        model_kwargs: options for `from_pretrained` when `model` is a string.

    Example:
        >>> from langchain_core.documents import Document
        >>> from maxsim.testing import FakeColBERT
        >>> from langchain_maxsim import ColBERTReranker
        >>> reranker = ColBERTReranker(model=FakeColBERT(), top_n=2)
        >>> documents = [
        ...     Document("Bread is baked in an oven."),
        ...     Document("Berlin is the capital of Germany.", metadata={"source": "wiki"}),
        ...     Document("Paris is the capital of France."),
        ... ]
        >>> reranked = reranker.compress_documents(documents, "capital of Germany")
        >>> [doc.page_content for doc in reranked]
        ['Berlin is the capital of Germany.', 'Paris is the capital of France.']
        >>> reranked[0].metadata["source"], "relevance_score" in documents[1].metadata
        ('wiki', False)
        >>> reranked[0].metadata["relevance_score"] > reranked[1].metadata["relevance_score"]
        True
        >>> best = reranked[0].metadata
        >>> -1 <= best["relevance_score"] <= 1 < best["maxsim_score"]
        True

        In a chain, compose it with a retriever through a `RunnableLambda` that calls
        `compress_documents(docs, query)` (see the package README).
    """

    model: LateInteractionEncoder | str
    top_n: PositiveInt | None = 3
    batch_size: PositiveInt = 32
    model_kwargs: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _encoder: LateInteractionEncoder | None = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @field_validator("model")
    @classmethod
    def _check_model(cls, model: LateInteractionEncoder | str) -> LateInteractionEncoder | str:
        if isinstance(model, str) and not model.strip():
            raise ValueError("model must be an encoder or a checkpoint name or path, got ''")
        return model

    @property
    def encoder(self) -> LateInteractionEncoder:
        """The encoder, loaded from `model` on first use when it is a name or path."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = load_encoder(self.model, **self.model_kwargs)
        return self._encoder

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The best `top_n` Documents for `query`, as new Documents with "relevance_score".

        Raises:
            TypeError / ValueError: `query` is not a string with some text.
        """
        if not isinstance(query, str):
            raise TypeError(
                f"ColBERTReranker needs the query as a string, got {type(query).__name__}"
            )
        if not query.strip():
            raise ValueError("ColBERTReranker needs the query text; got an empty query")
        documents = list(documents)
        kept = [document for document in documents if document.page_content.strip()]
        if len(kept) < len(documents):
            logger.warning(
                "ColBERTReranker dropped %d of %d documents with empty text",
                len(documents) - len(kept),
                len(documents),
            )
        if not kept:
            return []
        results = self.encoder.rerank(
            query,
            [document.page_content for document in kept],
            top_n=self.top_n,
            batch_size=self.batch_size,
        )
        return [
            kept[result.index].model_copy(
                update={
                    "metadata": {
                        **kept[result.index].metadata,
                        RELEVANCE_KEY: result.normalized_score,
                        RAW_SCORE_KEY: result.score,
                    }
                }
            )
            for result in results
        ]

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """`compress_documents` in a worker thread, so the event loop keeps running."""
        return await run_in_executor(None, self.compress_documents, documents, query, callbacks)
