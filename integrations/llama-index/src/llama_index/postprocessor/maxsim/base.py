"""`ColBERTRerank`: a LlamaIndex node postprocessor that reranks by ColBERT MaxSim."""

from __future__ import annotations

import threading
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from llama_index.vector_stores.maxsim.nodes import RAW_SCORE_KEY, with_hidden_metadata
from maxsim import LateInteractionEncoder, RerankResult, load_encoder

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
_LOADING = threading.Lock()  # module level: a lock attribute would stop copy and pickle


class ColBERTRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes by ColBERT MaxSim against the query, best first.

    Args:
        model: a checkpoint name or folder, or the http(s):// URL of a Jina-compatible
            API, loaded with `maxsim.load_encoder` on first use (default
            `jinaai/jina-colbert-v2`), or a maxsim encoder.
        top_n: how many nodes to return.
        keep_retrieval_score: keep each node's incoming score in its metadata under
            "retrieval_score" (on a copy of the node; left out of the embed and LLM text).
        batch_size: documents per encoding batch.
        model_kwargs: keyword arguments for `maxsim.load_encoder` (dim, device, api_key, ...).

    The text scored is `node.get_content(metadata_mode=MetadataMode.EMBED)`; a node
    without text comes last with score None. Inputs are never changed: new
    `NodeWithScore` objects carry the normalized MaxSim (raw MaxSim divided by the
    query's token rows, in [-1, 1] for cosine models, so a `SimilarityPostprocessor`
    cutoff suits every query length), with the raw score in a copy of the node's
    metadata as "maxsim_score" (left out of the embed and LLM text). Each call emits the
    `ReRankStartEvent` / `ReRankEndEvent` instrumentation events and the
    `CBEventType.RERANKING` callback event.

    Example:
        >>> from llama_index.core.schema import NodeWithScore, TextNode
        >>> from llama_index.postprocessor.maxsim import ColBERTRerank
        >>> from maxsim.testing import FakeColBERT
        >>> rerank = ColBERTRerank(model=FakeColBERT(), top_n=2)
        >>> nodes = [
        ...     NodeWithScore(node=TextNode(text="Berlin is the capital of Germany."), score=0.9),
        ...     NodeWithScore(node=TextNode(text="Paris is the capital of France."), score=0.8),
        ...     NodeWithScore(node=TextNode(text="Bread is made from flour."), score=0.7),
        ... ]
        >>> reranked = rerank.postprocess_nodes(nodes, query_str="capital of France")
        >>> [hit.node.get_content() for hit in reranked]
        ['Paris is the capital of France.', 'Berlin is the capital of Germany.']

        With a checkpoint name the model loads on the first rerank:

        >>> rerank = ColBERTRerank(model="jinaai/jina-colbert-v2", top_n=3)  # doctest: +SKIP
    """

    model: str | LateInteractionEncoder = Field(
        default="jinaai/jina-colbert-v2",
        description="Checkpoint name or folder (loaded on first use), or a maxsim encoder.",
    )
    top_n: int = Field(default=5, gt=0, description="Number of nodes to return.")
    keep_retrieval_score: bool = Field(
        default=False,
        description="Keep the incoming score in node metadata as 'retrieval_score'.",
    )
    batch_size: int = Field(default=32, gt=0, description="Documents per encoding batch.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for maxsim.load_encoder."
    )

    _encoder: LateInteractionEncoder | None = PrivateAttr(default=None)

    @field_serializer("model")
    def _serialize_model(self, model: str | LateInteractionEncoder) -> str:
        return model if isinstance(model, str) else model.name

    @classmethod
    def class_name(cls) -> str:
        return "ColBERTRerank"

    @property
    def model_name(self) -> str:
        """The checkpoint name, or the encoder's `name`."""
        return self.model if isinstance(self.model, str) else self.model.name

    @property
    def encoder(self) -> LateInteractionEncoder:
        """The maxsim encoder, loaded on first access when `model` is a name."""
        if isinstance(self.model, LateInteractionEncoder):
            return self.model
        with _LOADING:
            if self._encoder is None:
                if not self.model:
                    raise ValueError("model must be a non-empty checkpoint name or folder")
                self._encoder = load_encoder(self.model, **self.model_kwargs)
            return self._encoder

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("ColBERTRerank needs a query: pass query_bundle or query_str")
        query = query_bundle.query_str
        if not isinstance(query, str) or not query.strip():
            raise ValueError("ColBERTRerank needs a non-empty query string")
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model_name
            )
        )
        if not nodes:
            dispatcher.event(ReRankEndEvent(nodes=[]))
            return []
        texts = [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model_name,
                EventPayload.QUERY_STR: query,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            scorable = [i for i, text in enumerate(texts) if text.strip()]
            results = (
                self.encoder.rerank(query, [texts[i] for i in scorable], batch_size=self.batch_size)
                if scorable
                else []
            )
            ranked: list[tuple[int, RerankResult | None]] = [
                (scorable[result.index], result) for result in results
            ]
            unscored = sorted(set(range(len(nodes))) - set(scorable))
            ranked += [(i, None) for i in unscored]
            reranked = [self._scored(nodes[i], result) for i, result in ranked[: self.top_n]]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _scored(self, node: NodeWithScore, result: RerankResult | None) -> NodeWithScore:
        """A new node with the normalized score, and the raw (and, when kept, the
        retrieval) score in metadata hidden from the embed and LLM text."""
        extra: dict[str, Any] = {} if result is None else {RAW_SCORE_KEY: result.score}
        if self.keep_retrieval_score:
            extra[RETRIEVAL_SCORE_KEY] = node.score
        inner = with_hidden_metadata(node.node, extra) if extra else node.node
        return NodeWithScore(node=inner, score=None if result is None else result.normalized_score)
