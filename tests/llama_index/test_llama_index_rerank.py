"""ColBERTRerank: ordering, copies, events, bad inputs, async, and real MiniLM weights."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.bridge.pydantic import Field, ValidationError
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llama_index.postprocessor.maxsim import ColBERTRerank
from llama_index.retrievers.maxsim import ColBERTRetriever
from maxsim.testing import FakeColBERT

QUERY = "capital of France"


def _scored(nodes: list[TextNode]) -> list[NodeWithScore]:
    return [NodeWithScore(node=node, score=1.0 - i / 10) for i, node in enumerate(nodes)]


def _ids(results: list[NodeWithScore]) -> list[str]:
    return [result.node.node_id for result in results]


def test_orders_by_maxsim_and_keeps_top_n(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    rerank = ColBERTRerank(model=fake, top_n=3)
    results = rerank.postprocess_nodes(_scored(capitals), query_str=QUERY)
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in capitals]
    expected = fake.rerank(QUERY, texts, top_n=3)
    assert _ids(results) == [capitals[hit.index].node_id for hit in expected]
    assert [result.score for result in results] == pytest.approx(
        [hit.normalized_score for hit in expected]
    )
    assert [result.node.metadata["maxsim_score"] for result in results] == pytest.approx(
        [hit.score for hit in expected]
    )
    assert results[0].node.node_id == "paris"
    assert rerank.class_name() == "ColBERTRerank"
    assert rerank.top_n == 3 and rerank.batch_size == 32 and not rerank.keep_retrieval_score


def test_defaults_and_serialisation(fake: FakeColBERT) -> None:
    assert ColBERTRerank().top_n == 5
    assert ColBERTRerank().model == "jinaai/jina-colbert-v2"
    data = ColBERTRerank(model=fake, top_n=2).to_dict()
    assert data["model"] == fake.name and data["class_name"] == "ColBERTRerank"


def test_never_changes_its_inputs(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    nodes = _scored(capitals)
    before = copy.deepcopy(nodes)
    for keep in (False, True):
        results = ColBERTRerank(model=fake, top_n=5, keep_retrieval_score=keep).postprocess_nodes(
            nodes, query_str=QUERY
        )
        assert all(result is not node for result in results for node in nodes)
        assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]


def test_keep_retrieval_score_on_a_copy(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    nodes = _scored(capitals)
    results = ColBERTRerank(model=fake, top_n=5, keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str=QUERY
    )
    incoming = {node.node.node_id: node.score for node in nodes}
    for result in results:
        assert result.node.metadata["retrieval_score"] == incoming[result.node.node_id]
        assert "retrieval_score" not in result.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "retrieval_score" not in result.node.get_content(metadata_mode=MetadataMode.EMBED)
    assert all("retrieval_score" not in node.metadata for node in capitals)


def test_scores_the_embed_text_with_metadata(fake: FakeColBERT) -> None:
    shown = TextNode(id_="shown", text="A city on a river.", metadata={"city": "Lyon"})
    hidden = TextNode(
        id_="hidden",
        text="A city on a river.",
        metadata={"city": "Lyon"},
        excluded_embed_metadata_keys=["city"],
    )
    results = ColBERTRerank(model=fake, top_n=2).postprocess_nodes(
        _scored([hidden, shown]), query_str="Lyon"
    )
    assert _ids(results) == ["shown", "hidden"]


def test_loads_a_named_model_lazily(tiny_checkpoint: str, capitals: list[TextNode]) -> None:
    rerank = ColBERTRerank(model=tiny_checkpoint, top_n=2)
    assert rerank._encoder is None
    results = rerank.postprocess_nodes(_scored(capitals), query_str=QUERY)
    assert len(results) == 2 and rerank._encoder is not None
    assert rerank.encoder is rerank._encoder
    assert rerank.model_name == tiny_checkpoint


def test_empty_input_and_missing_query(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    rerank = ColBERTRerank(model=fake)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ValueError, match="needs a query"):
        rerank.postprocess_nodes(_scored(capitals))
    with pytest.raises(ValueError, match="non-empty query"):
        rerank.postprocess_nodes(_scored(capitals), query_str="  ")
    with pytest.raises(ValueError, match="both"):
        rerank.postprocess_nodes(_scored(capitals), QueryBundle(QUERY), query_str=QUERY)


@pytest.mark.parametrize("field", ["top_n", "batch_size"])
@pytest.mark.parametrize("value", [0, -1, "many"])
def test_bad_settings(fake: FakeColBERT, field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        ColBERTRerank(model=fake, **{field: value})


def test_model_must_be_a_name_or_an_encoder() -> None:
    with pytest.raises(ValidationError):
        ColBERTRerank(model=42)
    with pytest.raises(ValueError, match="non-empty"):
        ColBERTRerank(model="").postprocess_nodes(_scored([TextNode(text="x")]), query_str="x")


def test_nodes_without_text_come_last(fake: FakeColBERT) -> None:
    nodes = _scored([TextNode(id_="empty", text=""), TextNode(id_="full", text="France")])
    results = ColBERTRerank(model=fake, top_n=5).postprocess_nodes(nodes, query_str=QUERY)
    assert _ids(results) == ["full", "empty"] and results[1].score is None
    only_empty = ColBERTRerank(model=fake).postprocess_nodes(nodes[:1], query_str=QUERY)
    assert _ids(only_empty) == ["empty"]


def test_async_matches_sync(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    rerank = ColBERTRerank(model=fake, top_n=4)
    nodes = _scored(capitals)
    sync = rerank.postprocess_nodes(nodes, query_str=QUERY)

    async def both() -> list[list[NodeWithScore]]:
        return await asyncio.gather(
            rerank.apostprocess_nodes(nodes, query_str=QUERY),
            rerank.apostprocess_nodes(nodes, query_bundle=QueryBundle(QUERY)),
        )

    for result in asyncio.run(both()):
        assert _ids(result) == _ids(sync)
        assert [r.score for r in result] == [s.score for s in sync]
    with pytest.raises(ValueError, match="needs a query"):
        asyncio.run(rerank.apostprocess_nodes(nodes))


class _Collect(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Collect"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def instrumentation() -> Any:
    handler = _Collect()
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


def test_events_reach_handlers(
    fake: FakeColBERT, capitals: list[TextNode], instrumentation: _Collect
) -> None:
    debug = LlamaDebugHandler()
    rerank = ColBERTRerank(model=fake, top_n=2, callback_manager=CallbackManager([debug]))
    results = rerank.postprocess_nodes(_scored(capitals), query_str=QUERY)

    reranks = [
        e for e in instrumentation.events if isinstance(e, (ReRankStartEvent, ReRankEndEvent))
    ]
    assert [type(e) for e in reranks] == [ReRankStartEvent, ReRankEndEvent]
    start, end = reranks
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.top_n == 2 and start.model_name == fake.name and len(start.nodes) == 5
    assert start.query is not None and start.query.query_str == QUERY  # type: ignore[union-attr]
    assert _ids(end.nodes) == _ids(results)

    [(cb_start, cb_end)] = debug.get_event_pairs(CBEventType.RERANKING)
    assert cb_start.payload is not None and cb_end.payload is not None
    assert cb_start.payload[EventPayload.QUERY_STR] == QUERY
    assert cb_start.payload[EventPayload.TOP_K] == 2
    assert cb_start.payload[EventPayload.MODEL_NAME] == fake.name
    assert _ids(cb_end.payload[EventPayload.NODES]) == _ids(results)


def test_reranks_a_plain_llama_index_vector_index(
    fake: FakeColBERT, capitals: list[TextNode]
) -> None:
    """LlamaIndex's own in-memory index with MockEmbedding: every score ties, so the
    order it returns says nothing; the reranker puts the relevant node first."""
    index = VectorStoreIndex(
        [node.model_copy() for node in capitals], embed_model=MockEmbedding(embed_dim=8)
    )
    retrieved = index.as_retriever(similarity_top_k=5).retrieve(QUERY)
    assert len({round(hit.score or 0, 6) for hit in retrieved}) == 1
    rerank = ColBERTRerank(model=fake, top_n=2, keep_retrieval_score=True)
    results = rerank.postprocess_nodes(retrieved, query_str=QUERY)
    assert results[0].node.node_id == "paris"
    assert results[0].node.metadata["retrieval_score"] == pytest.approx(retrieved[0].score)
    assert results[0].score is not None and results[0].score > results[1].score  # type: ignore[operator]


EIFFEL = [
    TextNode(id_="berlin", text="Berlin is the capital and largest city of Germany."),
    TextNode(id_="bread", text="Sourdough bread rises slowly because of wild yeast."),
    TextNode(id_="eiffel", text="The Eiffel Tower in Paris is 330 metres tall."),
    TextNode(id_="rivers", text="The Nile and the Amazon are the longest rivers."),
    TextNode(id_="python", text="Python is a programming language with dynamic typing."),
]


def test_real_minilm_weights_put_the_relevant_node_first(minilm_path: Path) -> None:
    query = "How tall is the Eiffel Tower?"
    rerank = ColBERTRerank(model=str(minilm_path), top_n=3)
    results = rerank.postprocess_nodes(_scored(list(reversed(EIFFEL))), query_str=query)
    assert results[0].node.node_id == "eiffel"
    retriever = ColBERTRetriever.from_defaults(
        nodes=EIFFEL, model=rerank.encoder, similarity_top_k=2
    )
    assert retriever.retrieve(query)[0].node.node_id == "eiffel"
