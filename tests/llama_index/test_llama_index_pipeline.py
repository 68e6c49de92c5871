"""End to end: documents -> SentenceSplitter -> ColBERT retrieval -> ColBERTRerank -> a
query engine with LlamaIndex's MockLLM, and ColBERTVectorStore under VectorStoreIndex."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import (
    Document,
    Settings,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from llama_index.postprocessor.maxsim import ColBERTRerank
from llama_index.retrievers.maxsim import ColBERTRetriever
from llama_index.vector_stores.maxsim import ColBERTVectorStore
from maxsim.testing import FakeColBERT

DOCUMENTS = [
    Document(
        doc_id="paris",
        text="Paris is the capital of France. The Eiffel Tower stands in Paris and is "
        "330 metres tall. The Louvre is the most visited museum in the world.",
        metadata={"country": "France", "year": 2024},
    ),
    Document(
        doc_id="berlin",
        text="Berlin is the capital of Germany. The Brandenburg Gate is in Berlin. "
        "Berlin has about 3.8 million inhabitants.",
        metadata={"country": "Germany", "year": 2021},
    ),
    Document(
        doc_id="food",
        text="Bread is baked from flour, water and yeast. Cheese is made from milk. "
        "Olive oil is pressed from olives.",
        metadata={"country": "none", "year": 2019},
    ),
]
QUERY = "How tall is the Eiffel Tower?"


def _ids(results: list[NodeWithScore]) -> list[str]:
    return [result.node.node_id for result in results]


@pytest.fixture(scope="module")
def nodes() -> list[Any]:
    return SentenceSplitter(chunk_size=24, chunk_overlap=0).get_nodes_from_documents(DOCUMENTS)


class _ForbiddenEmbedding(MockEmbedding):
    """An embedding model that fails the test if LlamaIndex ever calls it."""

    def _get_text_embedding(self, text: str) -> list[float]:
        raise AssertionError("the embedding model was called")

    def _get_query_embedding(self, query: str) -> list[float]:
        raise AssertionError("the embedding model was called")

    async def _aget_text_embedding(self, text: str) -> list[float]:
        raise AssertionError("the embedding model was called")

    async def _aget_query_embedding(self, query: str) -> list[float]:
        raise AssertionError("the embedding model was called")


def test_query_engine_answers_from_the_reranked_nodes(nodes: list[Any]) -> None:
    assert len(nodes) >= 6
    # A coarse first stage (4-dim fake vectors are nearly random), an exact second one.
    retriever = ColBERTRetriever.from_defaults(
        nodes=nodes, model=FakeColBERT(dim=4), similarity_top_k=len(nodes)
    )
    rerank = ColBERTRerank(model=FakeColBERT(dim=64), top_n=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[rerank])

    response = engine.query(QUERY)

    retrieved = retriever.retrieve(QUERY)
    expected = rerank.postprocess_nodes(retrieved, query_str=QUERY)
    assert _ids(response.source_nodes) == _ids(expected)
    assert [n.score for n in response.source_nodes] == pytest.approx([n.score for n in expected])
    assert _ids(response.source_nodes) != _ids(retrieved)[:3]  # the reranker changed things
    best = response.source_nodes[0].node
    assert "Eiffel Tower" in best.get_content() and best.ref_doc_id == "paris"
    assert {key: value for key, value in best.metadata.items() if key != "maxsim_score"} == {
        "country": "France",
        "year": 2024,
    }
    assert best.metadata["maxsim_score"] > 1 >= response.source_nodes[0].score
    assert "Eiffel Tower" in str(response)  # MockLLM echoes the prompt, context included
    assert "maxsim_score" not in str(response)

    async_response = asyncio.run(engine.aquery(QUERY))
    assert _ids(async_response.source_nodes) == _ids(expected)


def test_vector_store_index_without_any_embedding(nodes: list[Any]) -> None:
    vector_store = ColBERTVectorStore(model=FakeColBERT(dim=64))
    vector_store.add(nodes)
    index = VectorStoreIndex.from_vector_store(
        vector_store, embed_model=_ForbiddenEmbedding(embed_dim=1)
    )
    rerank = ColBERTRerank(model=vector_store.model, top_n=2)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=4, node_postprocessors=[rerank])
    response = engine.query(QUERY)
    assert len(response.source_nodes) == 2
    assert "Eiffel Tower" in response.source_nodes[0].node.get_content()
    assert "Eiffel Tower" in asyncio.run(engine.aquery(QUERY)).source_nodes[0].node.get_content()

    german = index.as_retriever(
        similarity_top_k=10,
        filters=MetadataFilters(filters=[MetadataFilter(key="country", value="Germany")]),
    ).retrieve(QUERY)
    assert german and {hit.node.ref_doc_id for hit in german} == {"berlin"}
    recent = index.as_retriever(
        similarity_top_k=10,
        filters=MetadataFilters(
            filters=[MetadataFilter(key="year", value=2020, operator=FilterOperator.GT)]
        ),
        doc_ids=["paris", "food"],
    ).retrieve(QUERY)
    assert recent and {hit.node.ref_doc_id for hit in recent} == {"paris"}


def test_settings_embed_model_none_disables_embeddings(
    nodes: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Settings, "_embed_model", None)
    Settings.embed_model = None  # LlamaIndex swaps in MockEmbedding(embed_dim=1)
    vector_store = ColBERTVectorStore(model=FakeColBERT(dim=64))
    vector_store.add(nodes)
    retriever = VectorStoreIndex.from_vector_store(vector_store).as_retriever(similarity_top_k=1)
    assert "Eiffel Tower" in retriever.retrieve(QUERY)[0].node.get_content()


def test_index_insert_delete_and_storage_context(nodes: list[Any], tmp_path: Path) -> None:
    """`index.insert` embeds with the index's model (MockEmbedding here, discarded by the
    store); deleting a document and persisting through StorageContext work as usual."""
    fake = FakeColBERT(dim=64)
    vector_store = ColBERTVectorStore(model=fake)
    index = VectorStoreIndex.from_vector_store(
        vector_store,
        embed_model=MockEmbedding(embed_dim=1),
        transformations=[SentenceSplitter(chunk_size=24, chunk_overlap=0)],
    )
    for document in DOCUMENTS:
        index.insert(document)
    assert len(vector_store.get_nodes()) == len(nodes)
    index.delete_ref_doc("food")
    assert {node.ref_doc_id for node in vector_store.get_nodes()} == {"paris", "berlin"}

    index.storage_context.persist(persist_dir=str(tmp_path))
    loaded = ColBERTVectorStore.from_persist_dir(str(tmp_path), model=fake)
    storage = StorageContext.from_defaults(persist_dir=str(tmp_path), vector_store=loaded)
    again = load_index_from_storage(storage, embed_model=_ForbiddenEmbedding(embed_dim=1))
    hits = again.as_retriever(similarity_top_k=1).retrieve(QUERY)
    assert "Eiffel Tower" in hits[0].node.get_content()
