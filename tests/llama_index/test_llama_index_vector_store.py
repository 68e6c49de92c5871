"""ColBERTVectorStore: writes, reads, restrictions, persistence, async, other stores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import fsspec
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.types import VectorStoreQueryMode

from llama_index.vector_stores.maxsim import ColBERTVectorStore
from maxsim import LateInteractionStore
from maxsim.stores import DocumentStore
from maxsim.testing import FakeColBERT

GERMAN = MetadataFilters(filters=[MetadataFilter(key="lang", value="de")])
ENGLISH = MetadataFilters(filters=[MetadataFilter(key="lang", value="en")])


@pytest.fixture
def vector_store(
    fake: FakeColBERT, capitals: list[TextNode], make_store: Any
) -> ColBERTVectorStore:
    """A vector store holding `capitals`, once on each kind of maxsim store."""
    store = ColBERTVectorStore(store=make_store(fake))
    store.add(capitals)
    return store


def _query(text: str = "capital", k: int = 10, **kwargs: Any) -> VectorStoreQuery:
    return VectorStoreQuery(query_str=text, similarity_top_k=k, **kwargs)


def _ids(nodes: list[Any]) -> list[str]:
    return [node.node_id for node in nodes]


def test_flags_and_client(vector_store: ColBERTVectorStore, fake: FakeColBERT) -> None:
    assert vector_store.stores_text is True
    assert vector_store.is_embedding_query is False
    assert isinstance(vector_store.client, DocumentStore)
    assert vector_store.model is fake and vector_store.model_name == fake.name
    assert ColBERTVectorStore.class_name() == "ColBERTVectorStore"


def test_query_returns_the_nodes_as_added(
    vector_store: ColBERTVectorStore, capitals: list[TextNode], fake: FakeColBERT
) -> None:
    result = vector_store.query(_query("capital of France", k=2))
    assert result.ids == ["paris", _ids(result.nodes or [])[1]]
    assert _ids(result.nodes or []) == result.ids
    hits = vector_store.client.search("capital of France", k=2)
    assert result.similarities == pytest.approx([hit.normalized_score for hit in hits])
    paris = (result.nodes or [])[0]
    original = capitals[1]
    assert paris.get_content() == original.get_content()
    assert paris.metadata == {**original.metadata, "maxsim_score": pytest.approx(hits[0].score)}
    assert paris.ref_doc_id == "geo"
    assert paris.embedding is None


def test_add_replaces_ignores_embeddings_and_dedupes(
    vector_store: ColBERTVectorStore,
) -> None:
    ids = vector_store.add(
        [
            TextNode(id_="paris", text="old text", embedding=[1.0, 2.0]),
            TextNode(id_="paris", text="Paris lies on the Seine.", embedding=[3.0]),
        ]
    )
    assert ids == ["paris", "paris"]
    [paris] = vector_store.get_nodes(["paris"])
    assert paris.get_content() == "Paris lies on the Seine." and paris.embedding is None
    assert len(vector_store.get_nodes()) == 5
    assert vector_store.add([]) == []


def test_add_refuses_nodes_without_text(vector_store: ColBERTVectorStore) -> None:
    with pytest.raises(ValueError, match="'blank' has no text"):
        vector_store.add([TextNode(id_="blank", text="   ")])
    assert len(vector_store.get_nodes()) == 5


def test_restrictions_node_ids_doc_ids_filters(vector_store: ColBERTVectorStore) -> None:
    assert set(vector_store.query(_query(node_ids=["rome", "bread"])).ids or []) == {
        "rome",
        "bread",
    }
    assert set(vector_store.query(_query(doc_ids=["food"])).ids or []) == {"bread", "cheese"}
    assert vector_store.query(_query(doc_ids=["geo"], filters=GERMAN)).ids == ["berlin"]
    assert vector_store.query(_query(node_ids=["berlin"], filters=ENGLISH)).ids == []
    # An empty list is no restriction (VectorStoreIndex passes node_ids=[]).
    assert len(vector_store.query(_query(node_ids=[], doc_ids=[])).ids or []) == 5
    assert len(vector_store.query(_query(k=2)).ids or []) == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (VectorStoreQuery(query_embedding=[0.1, 0.2], similarity_top_k=2), "query_str"),
        (VectorStoreQuery(query_str="  "), "query_str"),
        (VectorStoreQuery(query_str="x", similarity_top_k=0), "similarity_top_k"),
        (VectorStoreQuery(query_str="x", mode=VectorStoreQueryMode.MMR), "default query mode"),
        (
            VectorStoreQuery(
                query_str="x",
                filters=MetadataFilters(
                    filters=[MetadataFilter(key="year", value=[1, 2], operator=FilterOperator.GT)]
                ),
            ),
            "single number",
        ),
    ],
)
def test_bad_queries(
    vector_store: ColBERTVectorStore, query: VectorStoreQuery, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        vector_store.query(query)


def test_get_nodes(vector_store: ColBERTVectorStore) -> None:
    assert _ids(vector_store.get_nodes(["rome", "nope", "berlin"])) == ["rome", "berlin"]
    assert sorted(_ids(vector_store.get_nodes())) == ["berlin", "bread", "cheese", "paris", "rome"]
    assert sorted(_ids(vector_store.get_nodes(filters=ENGLISH))) == ["bread", "cheese"]
    assert _ids(vector_store.get_nodes(["bread", "berlin"], filters=ENGLISH)) == ["bread"]
    assert vector_store.get_nodes([]) == []


def test_delete_by_document(vector_store: ColBERTVectorStore) -> None:
    vector_store.delete("geo")
    assert sorted(_ids(vector_store.get_nodes())) == ["bread", "cheese"]
    vector_store.delete("unknown")
    assert len(vector_store.get_nodes()) == 2


def test_delete_nodes(vector_store: ColBERTVectorStore) -> None:
    vector_store.delete_nodes(["rome", "nope"])
    vector_store.delete_nodes(filters=GERMAN)
    vector_store.delete_nodes(["bread", "paris"], filters=ENGLISH)
    vector_store.delete_nodes([])
    assert sorted(_ids(vector_store.get_nodes())) == ["cheese", "paris"]
    vector_store.delete_nodes()  # no arguments: every node, as in LlamaIndex
    assert vector_store.get_nodes() == []
    assert vector_store.query(_query()).ids == []


def test_async_methods(vector_store: ColBERTVectorStore, capitals: list[TextNode]) -> None:
    async def scenario() -> None:
        result = await vector_store.aquery(_query("capital of Italy", k=1))
        assert result.ids == ["rome"]
        assert _ids(await vector_store.aget_nodes(filters=GERMAN)) == ["berlin"]
        await vector_store.adelete("food")
        await vector_store.adelete_nodes(["rome"])
        assert sorted(_ids(await vector_store.aget_nodes())) == ["berlin", "paris"]
        await vector_store.aclear()
        assert await vector_store.async_add(capitals[:2]) == ["berlin", "paris"]
        assert len(await vector_store.aget_nodes()) == 2

    asyncio.run(scenario())


def test_persist_and_load(
    vector_store: ColBERTVectorStore, fake: FakeColBERT, tmp_path: Path
) -> None:
    path = tmp_path / "default__vector_store.json"
    vector_store.persist(str(path))
    expected = vector_store.query(_query("capital of Germany"))
    contents = sorted(n.get_content() for n in vector_store.get_nodes())
    if not vector_store.client.supports_callable_filters:  # Qdrant: one client per folder
        vector_store.client.client.close()  # type: ignore[attr-defined]
    loaded = ColBERTVectorStore.from_persist_path(str(path), model=fake)
    result = loaded.query(_query("capital of Germany"))
    assert result.ids == expected.ids and result.similarities == expected.similarities
    assert sorted(n.get_content() for n in loaded.get_nodes()) == contents
    if not loaded.client.supports_callable_filters:
        loaded.client.client.close()  # type: ignore[attr-defined]
    again = ColBERTVectorStore.from_persist_dir(str(tmp_path), model=fake)
    assert again.query(_query("capital of Germany")).ids == expected.ids
    assert type(again.client) is type(vector_store.client)
    with pytest.raises(ValueError, match="saved with model"):
        ColBERTVectorStore.from_persist_path(str(path), model=FakeColBERT(dim=8))
    with pytest.raises(FileNotFoundError):
        ColBERTVectorStore.from_persist_path(str(tmp_path / "missing"), model=fake)
    with pytest.raises(NotImplementedError, match="local filesystem"):
        vector_store.persist("x", fs=fsspec.filesystem("memory"))
    again.persist(str(tmp_path / "local"), fs=fsspec.filesystem("file"))


def test_constructor_checks(fake: FakeColBERT) -> None:
    with pytest.raises(ValueError, match="needs a model"):
        ColBERTVectorStore()
    with pytest.raises(TypeError, match="LateInteractionStore"):
        ColBERTVectorStore(store=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another model"):
        ColBERTVectorStore(model=FakeColBERT(), store=LateInteractionStore(fake))
    with pytest.raises(TypeError, match="checkpoint name"):
        ColBERTVectorStore(model=3.5)  # type: ignore[arg-type]
    store = LateInteractionStore(fake)
    assert ColBERTVectorStore(model=fake, store=store).client is store


def test_store_filled_by_maxsim_directly(fake: FakeColBERT) -> None:
    store = LateInteractionStore(fake, chunk_size=8, chunk_overlap=2)
    store.add(
        ["Paris is the capital of France and lies on the Seine river.", "Bread and cheese."],
        metadatas=[{"lang": "en"}, {"lang": "fr"}],
        ids=["p", "b"],
    )
    vector_store = ColBERTVectorStore(store=store)
    result = vector_store.query(_query("Seine river", k=1, filters=ENGLISH))
    [node] = result.nodes or []
    text = "Paris is the capital of France and lies on the Seine river."
    assert node.node_id == "p" and node.metadata["lang"] == "en"
    assert node.metadata["document_id"] == "p" and node.metadata["chunk"] >= 1
    start, end = node.metadata["span"]
    assert node.get_content() == text[start:end] and "Seine river" in node.get_content()
    assert len(node.get_content()) < len(text)


def test_reads_and_deletes_filter_as_query_does(fake: FakeColBERT, make_store: Any) -> None:
    """get_nodes / delete_nodes select with the store's own rules, so on Qdrant a list
    field matches when any item does, exactly as `query` selects."""
    vector_store = ColBERTVectorStore(store=make_store(fake))
    vector_store.add(
        [
            TextNode(id_="a", text="red apples", metadata={"tags": ["fruit", "red"]}),
            TextNode(id_="b", text="green apples", metadata={"tags": "fruit"}),
            TextNode(id_="c", text="blue sky", metadata={"tags": ["sky"]}),
        ]
    )
    fruit = MetadataFilters(filters=[MetadataFilter(key="tags", value="fruit")])
    queried = set(vector_store.query(_query("apples sky", filters=fruit)).ids or [])
    assert queried == ({"b"} if vector_store.client.supports_callable_filters else {"a", "b"})
    assert {node.node_id for node in vector_store.get_nodes(filters=fruit)} == queried
    vector_store.delete_nodes(filters=fruit)
    assert {node.node_id for node in vector_store.get_nodes()} == {"a", "b", "c"} - queried
