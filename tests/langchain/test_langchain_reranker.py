"""ColBERTReranker: MaxSim order, new Documents, lazy model loading, bad inputs."""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

import maxsim
from langchain_maxsim import ColBERTReranker
from maxsim.testing import FakeColBERT


@pytest.fixture
def documents(passages: dict[str, str]) -> list[Document]:
    return [
        Document(text, id=key, metadata={"source": key, "nested": {"tags": [key]}})
        for key, text in passages.items()
    ]


def test_orders_by_maxsim_with_relevance_scores(
    fake: FakeColBERT, documents: list[Document]
) -> None:
    query = "What is the capital of Germany?"
    reranked = ColBERTReranker(model=fake, top_n=None).compress_documents(documents, query)
    expected = fake.rerank(query, [document.page_content for document in documents])
    assert [document.id for document in reranked] == [documents[r.index].id for r in expected]
    assert [d.metadata["relevance_score"] for d in reranked] == pytest.approx(
        [r.normalized_score for r in expected]
    )
    assert [d.metadata["maxsim_score"] for d in reranked] == pytest.approx(
        [r.score for r in expected]
    )
    assert all(-1 <= d.metadata["relevance_score"] <= 1 for d in reranked)
    assert reranked[0].id == "berlin"
    for document in reranked:
        original = next(item for item in documents if item.id == document.id)
        assert document.page_content == original.page_content
        assert document.metadata == {
            **original.metadata,
            "relevance_score": pytest.approx(document.metadata["relevance_score"]),
            "maxsim_score": pytest.approx(document.metadata["maxsim_score"]),
        }


def test_top_n_keeps_the_best(fake: FakeColBERT, documents: list[Document]) -> None:
    everything = ColBERTReranker(model=fake, top_n=None).compress_documents(documents, "Paris")
    assert len(everything) == len(documents)
    assert len(ColBERTReranker(model=fake).compress_documents(documents, "Paris")) == 3  # default
    best_two = ColBERTReranker(model=fake, top_n=2).compress_documents(documents, "Paris")
    assert [d.id for d in best_two] == [d.id for d in everything[:2]]
    assert len(ColBERTReranker(model=fake, top_n=10).compress_documents(documents, "x")) == 5


def test_inputs_are_never_mutated(fake: FakeColBERT, documents: list[Document]) -> None:
    before = copy.deepcopy(documents)
    reranked = ColBERTReranker(model=fake, top_n=None).compress_documents(documents, "Paris")
    assert documents == before
    for document in reranked:
        assert all(document is not original for original in documents)
        assert all(document.metadata is not original.metadata for original in documents)
        document.metadata["source"] = "changed"
    assert documents == before


def test_empty_input_returns_an_empty_list_without_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", refuse)
    reranker = ColBERTReranker(model="some/checkpoint")
    assert reranker.compress_documents([], "query") == []


def test_documents_without_text_are_dropped_with_a_warning(
    fake: FakeColBERT, caplog: pytest.LogCaptureFixture
) -> None:
    documents = [Document(" ", id="blank"), Document("red apple", id="apple"), Document("")]
    with caplog.at_level(logging.WARNING, logger="langchain_maxsim"):
        reranked = ColBERTReranker(model=fake).compress_documents(documents, "apple")
    assert [document.id for document in reranked] == ["apple"]
    assert "dropped 2 of 3 documents" in caplog.text
    assert ColBERTReranker(model=fake).compress_documents([Document("")], "apple") == []


def test_model_name_is_loaded_once_on_first_use(
    monkeypatch: pytest.MonkeyPatch, documents: list[Document]
) -> None:
    calls: list[tuple[str, dict[str, object]]] = []
    started = threading.Event()

    def fake_from_pretrained(name: str, **options: object) -> FakeColBERT:
        calls.append((name, options))
        started.wait(0.05)  # widen the window for a second loader
        return FakeColBERT()

    monkeypatch.setattr(maxsim.ColBERT, "from_pretrained", fake_from_pretrained)
    reranker = ColBERTReranker(model="org/colbert", model_kwargs={"device": "cpu"})
    assert calls == []
    threads = [
        threading.Thread(target=reranker.compress_documents, args=(documents, "Paris"))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reranker.compress_documents(documents, "Berlin")
    assert calls == [("org/colbert", {"device": "cpu"})]
    assert isinstance(reranker.encoder, FakeColBERT)


@pytest.mark.parametrize("query", ["", "   "])
def test_refuses_an_empty_query(fake: FakeColBERT, documents: list[Document], query: str) -> None:
    with pytest.raises(ValueError, match="needs the query text"):
        ColBERTReranker(model=fake).compress_documents(documents, query)


@pytest.mark.parametrize("query", [None, ["Paris"], Document("Paris")])
def test_refuses_a_query_that_is_not_text(
    fake: FakeColBERT, documents: list[Document], query: object
) -> None:
    with pytest.raises(TypeError, match="needs the query as a string"):
        ColBERTReranker(model=fake).compress_documents(documents, query)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"top_n": 0}, {"top_n": -2}, {"top_n": "3"}, {"batch_size": 0}, {"batch_size": 1.5}],
)
def test_refuses_bad_settings(fake: FakeColBERT, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ColBERTReranker(model=fake, **options)


def test_refuses_a_model_that_is_not_an_encoder(documents: list[Document]) -> None:
    with pytest.raises(ValidationError):
        ColBERTReranker(model=object())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="checkpoint name or path"):
        ColBERTReranker(model=" ")
