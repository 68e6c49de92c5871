"""ColBERTRetriever: Documents from hits, per-call k and filter, constructors, bad inputs."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

import maxsim
from langchain_maxsim import ColBERTRetriever
from maxsim.testing import FakeColBERT


@pytest.fixture
def store(fake: FakeColBERT, passages: dict[str, str]) -> maxsim.LateInteractionStore:
    store = maxsim.LateInteractionStore(fake)
    store.add(
        list(passages.values()),
        metadatas=[
            {"topic": "geo" if key != "bread" else "food", "n": i} for i, key in enumerate(passages)
        ],
        ids=list(passages),
    )
    return store


def test_documents_carry_id_text_metadata_and_scores(
    store: maxsim.LateInteractionStore, passages: dict[str, str]
) -> None:
    retriever = ColBERTRetriever(store=store)
    documents = retriever.invoke("capital of Germany")
    hits = store.search("capital of Germany", k=4)
    assert len(documents) == 4  # default k
    assert [document.id for document in documents] == [hit.id for hit in hits]
    assert documents[0].id == "berlin"
    for document, hit in zip(documents, hits, strict=True):
        assert document.page_content == passages[hit.id]
        assert document.metadata == {
            **hit.metadata,
            "score": pytest.approx(hit.score),
            "normalized_score": pytest.approx(hit.normalized_score),
        }
    scores = [document.metadata["score"] for document in documents]
    assert scores == sorted(scores, reverse=True)


def test_returned_metadata_is_a_copy(store: maxsim.LateInteractionStore) -> None:
    [document] = ColBERTRetriever(store=store, k=1).invoke("capital of Germany")
    document.metadata["topic"] = "changed"
    assert store.get(["berlin"])[0].metadata["topic"] == "geo"


def test_per_call_k_and_filter_override_the_fields(store: maxsim.LateInteractionStore) -> None:
    retriever = ColBERTRetriever(store=store, k=3, filter={"topic": "geo"})
    assert len(retriever.invoke("bread")) == 3
    assert "bread" not in [document.id for document in retriever.invoke("bread")]
    assert [document.id for document in retriever.invoke("bread", k=1, filter=None)] == ["bread"]
    assert [document.id for document in retriever.invoke("x", filter={"topic": "food"})] == [
        "bread"
    ]
    callable_filter = ColBERTRetriever(store=store, filter=lambda metadata: metadata["n"] >= 3)
    assert {document.id for document in callable_filter.invoke("capital")} == {"paris", "rhine"}
    assert retriever.k == 3  # the call did not change the field


def test_batch_runs_each_query(store: maxsim.LateInteractionStore) -> None:
    retriever = ColBERTRetriever(store=store, k=1)
    results = retriever.batch(["capital of Germany", "sourdough bread", "Eiffel Tower"])
    assert [[document.id for document in documents] for documents in results] == [
        ["berlin"],
        ["bread"],
        ["eiffel"],
    ]


def test_from_texts_builds_a_store(fake: FakeColBERT) -> None:
    retriever = ColBERTRetriever.from_texts(
        ["alpha beta", "gamma delta"],
        fake,
        metadatas=[{"a": 1}, {"a": 2}],
        ids=["x", "y"],
        k=1,
        chunk_size=8,
        chunk_overlap=2,
        batch_size=4,
        tags=["mine"],
    )
    assert isinstance(retriever.store, maxsim.LateInteractionStore)
    assert retriever.store.chunk_size == 8
    assert retriever.tags == ["mine"]
    [document] = retriever.invoke("gamma")
    assert (document.id, document.page_content, document.metadata["a"]) == ("y", "gamma delta", 2)


def test_from_texts_with_a_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []

    def fake_from_pretrained(name: str, **options: object) -> FakeColBERT:
        loaded.append(name)
        return FakeColBERT()

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", fake_from_pretrained)
    retriever = ColBERTRetriever.from_texts(["one text"], "some/checkpoint")
    assert loaded == ["some/checkpoint"]
    assert retriever.invoke("text")[0].page_content == "one text"


def test_from_documents_keeps_ids(fake: FakeColBERT) -> None:
    documents = [Document("red apples", id="apples", metadata={"k": 1}), Document("blue sky")]
    retriever = ColBERTRetriever.from_documents(documents, fake, k=2)
    found = retriever.invoke("red apples")
    assert found[0].id == "apples"
    assert found[1].id and found[1].id != "apples"
    assert documents[1].id is None  # the input is unchanged


def test_chunked_store_returns_the_matching_window(fake: FakeColBERT) -> None:
    long_text = " ".join(f"word{i}" for i in range(40)) + " needle"
    retriever = ColBERTRetriever.from_texts(
        [long_text, "short text"], fake, chunk_size=10, chunk_overlap=2, k=1
    )
    [document] = retriever.invoke("needle")
    start, end = document.metadata["span"]
    assert document.page_content == long_text[start:end]
    assert document.page_content.endswith("needle") and len(document.page_content.split()) <= 10


def test_works_on_a_qdrant_store(fake: FakeColBERT, passages: dict[str, str]) -> None:
    qdrant_client = pytest.importorskip("qdrant_client")
    from maxsim.stores import QdrantStore

    client = qdrant_client.QdrantClient(":memory:")
    store = QdrantStore(fake, client, "retriever")
    store.add(
        list(passages.values()), metadatas=[{"id": key} for key in passages], ids=list(passages)
    )
    memory = maxsim.LateInteractionStore(fake)
    memory.add(
        list(passages.values()), metadatas=[{"id": key} for key in passages], ids=list(passages)
    )
    on_qdrant = ColBERTRetriever(store=store, k=3).invoke("capital of France")
    in_memory = ColBERTRetriever(store=memory, k=3).invoke("capital of France")
    assert [d.id for d in on_qdrant] == [d.id for d in in_memory]
    for a, b in zip(on_qdrant, in_memory, strict=True):
        assert a.metadata["score"] == pytest.approx(b.metadata["score"], abs=1e-2)
    filtered = ColBERTRetriever(store=store, k=5).invoke("x", filter={"id": "rhine"})
    assert [document.id for document in filtered] == ["rhine"]
    client.close()


@pytest.mark.parametrize("k", [0, -1])
def test_constructor_refuses_k_below_one(store: maxsim.LateInteractionStore, k: int) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        ColBERTRetriever(store=store, k=k)


@pytest.mark.parametrize("k", ["3", 2.0, True, None])
def test_constructor_refuses_k_that_is_not_an_int(
    store: maxsim.LateInteractionStore, k: Any
) -> None:
    with pytest.raises(ValidationError):
        ColBERTRetriever(store=store, k=k)


def test_invoke_refuses_bad_k_and_unknown_options(store: maxsim.LateInteractionStore) -> None:
    retriever = ColBERTRetriever(store=store)
    with pytest.raises(ValueError, match="k must be at least 1"):
        retriever.invoke("capital", k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        retriever.invoke("capital", k="2")
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_k'"):
        retriever.invoke("capital", top_k=2)
    with pytest.raises(ValueError, match="unknown operator"):
        retriever.invoke("capital", filter={"n": {"$between": 1}})
    with pytest.raises(ValueError, match="empty"):
        retriever.invoke("   ")


def test_store_must_be_a_maxsim_store() -> None:
    with pytest.raises(ValidationError, match="must be a maxsim store"):
        ColBERTRetriever(store={"not": "a store"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a maxsim encoder"):
        ColBERTRetriever.from_texts(["text"], model=42)  # type: ignore[arg-type]
