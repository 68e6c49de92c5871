"""ColBERTRetriever: retrieval, filters, persistence, async and bad inputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from llama_index.retrievers.maxsim import ColBERTRetriever
from llama_index.vector_stores.maxsim import ColBERTVectorStore
from maxsim import LateInteractionStore
from maxsim.testing import FakeColBERT

RECENT_OR_FOOD = MetadataFilters(
    filters=[
        MetadataFilter(key="year", value=2021, operator=FilterOperator.GTE),
        MetadataFilters(
            filters=[MetadataFilter(key="lang", value=["en"], operator=FilterOperator.IN)],
            condition=FilterCondition.AND,
        ),
    ],
    condition=FilterCondition.OR,
)


def _ids(results: list[NodeWithScore]) -> list[str]:
    return [result.node.node_id for result in results]


def test_retrieves_like_the_vector_store(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    retriever = ColBERTRetriever.from_defaults(nodes=capitals, model=fake, similarity_top_k=3)
    results = retriever.retrieve("capital of Italy")
    expected = retriever.vector_store.query(
        VectorStoreQuery(query_str="capital of Italy", similarity_top_k=3)
    )
    assert _ids(results) == expected.ids and results[0].node.node_id == "rome"
    assert [r.score for r in results] == expected.similarities
    assert retriever.similarity_top_k == 3 and retriever.filters is None
    assert ColBERTRetriever.from_defaults(nodes=capitals, model=fake).similarity_top_k == 10


def test_filters_and_restrictions(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    retriever = ColBERTRetriever.from_defaults(nodes=capitals, model=fake, filters=RECENT_OR_FOOD)
    assert set(_ids(retriever.retrieve("capital"))) == {"berlin", "paris", "bread", "cheese"}
    by_doc = ColBERTRetriever(retriever.vector_store, doc_ids=["food"], node_ids=["bread", "rome"])
    assert _ids(by_doc.retrieve("bread")) == ["bread"]


def test_add_nodes_and_existing_store(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    store = LateInteractionStore(fake)
    retriever = ColBERTRetriever.from_defaults(store=store, similarity_top_k=1)
    assert retriever.retrieve("anything") == []
    retriever.add_nodes(capitals)
    assert len(store) == 5 and _ids(retriever.retrieve("Cheese milk")) == ["cheese"]


def test_persist_and_load(fake: FakeColBERT, capitals: list[TextNode], tmp_path: Path) -> None:
    retriever = ColBERTRetriever.from_defaults(
        nodes=capitals, model=fake, similarity_top_k=2, filters=RECENT_OR_FOOD
    )
    retriever.persist(tmp_path)
    assert json.loads((tmp_path / "retriever.json").read_text())["similarity_top_k"] == 2
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pickle"))

    loaded = ColBERTRetriever.from_persist_dir(tmp_path, model=fake)
    assert loaded.filters == RECENT_OR_FOOD and loaded.similarity_top_k == 2
    for query in ("capital of Italy", "milk"):
        assert _ids(loaded.retrieve(query)) == _ids(retriever.retrieve(query))
        assert [r.score for r in loaded.retrieve(query)] == [
            r.score for r in retriever.retrieve(query)
        ]
    wider = ColBERTRetriever.from_persist_dir(
        tmp_path, model=fake, similarity_top_k=5, filters=None
    )
    assert len(wider.retrieve("capital")) == 5

    with pytest.raises(FileNotFoundError):
        ColBERTRetriever.from_persist_dir(tmp_path / "missing", model=fake)
    with pytest.raises(ValueError, match="saved with model"):
        ColBERTRetriever.from_persist_dir(tmp_path, model=FakeColBERT(dim=8))
    (tmp_path / "retriever.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        ColBERTRetriever.from_persist_dir(tmp_path, model=fake)


def test_async_retrieve(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    retriever = ColBERTRetriever.from_defaults(nodes=capitals, model=fake, similarity_top_k=2)

    async def both() -> list[list[NodeWithScore]]:
        return await asyncio.gather(
            retriever.aretrieve("capital of France"),
            retriever.aretrieve(QueryBundle("capital of France")),
        )

    for results in asyncio.run(both()):
        assert _ids(results) == _ids(retriever.retrieve("capital of France"))


def test_bad_inputs(fake: FakeColBERT, capitals: list[TextNode]) -> None:
    vector_store = ColBERTVectorStore(model=fake)
    for top_k in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="similarity_top_k"):
            ColBERTRetriever(vector_store, similarity_top_k=top_k)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ColBERTVectorStore"):
        ColBERTRetriever(LateInteractionStore(fake))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MetadataFilters"):
        ColBERTRetriever(vector_store, filters={"lang": "de"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a model"):
        ColBERTRetriever.from_defaults(nodes=capitals)
    retriever = ColBERTRetriever(vector_store)
    with pytest.raises(ValueError, match="query_str"):
        retriever.retrieve("   ")
