"""Async: retriever, reranker and vector store results match the sync ones, and slow model
work runs in worker threads while the event loop keeps going."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import pytest
from langchain_core.documents import Document

import maxsim
from langchain_maxsim import ColBERTReranker, ColBERTRetriever, ColBERTVectorStore
from maxsim.testing import FakeColBERT

pytestmark = pytest.mark.asyncio

T = TypeVar("T")
DELAY = 0.3


class SlowFakeColBERT(FakeColBERT):
    """FakeColBERT whose query encoding blocks its thread for `delay` seconds."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    def encode_queries(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> list[Any]:
        time.sleep(self.delay)
        return super().encode_queries(texts, *args, **kwargs)


async def ticks_while(awaitable: Awaitable[T]) -> tuple[T, int]:
    """The awaitable's result, and how often a concurrent task ran every 10 ms meanwhile."""
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker starts before the work
    try:
        result = await awaitable
    finally:
        done.set()
        await ticker
    return result, ticks


@pytest.fixture
def vectorstore(fake: FakeColBERT, passages: dict[str, str]) -> ColBERTVectorStore:
    vectorstore = ColBERTVectorStore(model=fake)
    vectorstore.add_texts(
        list(passages.values()), [{"key": k} for k in passages], ids=list(passages)
    )
    return vectorstore


async def test_retriever_ainvoke_and_abatch(vectorstore: ColBERTVectorStore) -> None:
    retriever = ColBERTRetriever(store=vectorstore.store, k=2)
    documents = await retriever.ainvoke("capital of Germany")
    assert documents == retriever.invoke("capital of Germany")
    assert documents[0].id == "berlin"
    assert "score" in documents[0].metadata
    [one] = await retriever.ainvoke("capital", k=1, filter={"key": "paris"})
    assert one.id == "paris"
    batches = await retriever.abatch(["capital of Germany", "sourdough bread"])
    assert [documents[0].id for documents in batches] == ["berlin", "bread"]
    with pytest.raises(ValueError, match="k must be at least 1"):
        await retriever.ainvoke("capital", k=0)


async def test_reranker_acompress_documents(fake: FakeColBERT, passages: dict[str, str]) -> None:
    documents = [Document(text, id=key) for key, text in passages.items()]
    reranker = ColBERTReranker(model=fake, top_n=2)
    reranked = await reranker.acompress_documents(documents, "capital of France")
    assert reranked == reranker.compress_documents(documents, "capital of France")
    assert reranked[0].id == "paris"
    assert await reranker.acompress_documents([], "capital") == []
    with pytest.raises(ValueError, match="needs the query text"):
        await reranker.acompress_documents(documents, "")


async def test_vectorstore_async_methods(
    vectorstore: ColBERTVectorStore, fake: FakeColBERT
) -> None:
    query = "capital of Germany"
    assert await vectorstore.asimilarity_search(query, k=3) == vectorstore.similarity_search(
        query, k=3
    )
    assert await vectorstore.asimilarity_search_with_score(
        query, k=3
    ) == vectorstore.similarity_search_with_score(query, k=3)
    relevance = await vectorstore.asimilarity_search_with_relevance_scores(query, k=5)
    assert relevance == vectorstore.similarity_search_with_relevance_scores(query, k=5)
    assert all(0 <= score <= 1 for _, score in relevance)
    above = await vectorstore.asimilarity_search_with_relevance_scores(
        query, k=5, score_threshold=relevance[0][1]
    )
    assert [document.id for document, _ in above] == ["berlin"]
    mmr = await vectorstore.amax_marginal_relevance_search(query, k=3, fetch_k=5)
    assert mmr == vectorstore.max_marginal_relevance_search(query, k=3, fetch_k=5)
    for search_type in ("similarity", "mmr"):
        found = await vectorstore.asearch(query, search_type, k=2)
        assert found[0].id == "berlin"
    found = await vectorstore.asearch(query, "similarity_score_threshold", score_threshold=0.0)
    assert len(found) == 4

    assert await vectorstore.aadd_texts(["new text"], ids=["new"]) == ["new"]
    ids = await vectorstore.aadd_documents([Document("other", id="doc"), Document("third")])
    assert ids[0] == "doc" and len(ids) == 2
    assert [d.id for d in await vectorstore.aget_by_ids(["new", "doc", "missing"])] == [
        "new",
        "doc",
    ]
    assert await vectorstore.adelete(["new", "doc"]) is True
    assert await vectorstore.aget_by_ids(["new", "doc"]) == []

    built = await ColBERTVectorStore.afrom_texts(["red apple"], ids=["apple"], model=fake)
    assert (await built.asimilarity_search("apple", k=1))[0].id == "apple"
    from_documents = await ColBERTVectorStore.afrom_documents(
        [Document("blue sky", id="sky")],
        embedding=None,
        model=fake,
    )
    assert from_documents.get_by_ids(["sky"])[0].page_content == "blue sky"
    with pytest.raises(ValueError, match="needs model="):
        await ColBERTVectorStore.afrom_texts(["x"], embedding=None)


async def test_vectorstore_retrievers_async(vectorstore: ColBERTVectorStore) -> None:
    query = "capital of Germany"
    for search_type, search_kwargs in (
        ("similarity", {"k": 2}),
        ("mmr", {"k": 2, "fetch_k": 4}),
        ("similarity_score_threshold", {"score_threshold": 0.0, "k": 2}),
    ):
        retriever = vectorstore.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
        documents = await retriever.ainvoke(query)
        assert documents == retriever.invoke(query), search_type
        assert documents[0].id == "berlin", search_type


@pytest.fixture
def slow_store(passages: dict[str, str]) -> maxsim.LateInteractionStore:
    store = maxsim.LateInteractionStore(SlowFakeColBERT(DELAY))
    store.add(list(passages.values()), ids=list(passages))
    return store


async def test_the_ticker_notices_a_blocked_loop(slow_store: maxsim.LateInteractionStore) -> None:
    """The check below means something: a sync search inside a coroutine stalls the loop."""
    retriever = ColBERTRetriever(store=slow_store, k=1)

    async def blocking() -> list[Document]:
        return retriever.invoke("capital of Germany")

    _, ticks = await ticks_while(blocking())
    assert ticks <= 1


async def test_slow_work_does_not_block_the_event_loop(
    slow_store: maxsim.LateInteractionStore, passages: dict[str, str]
) -> None:
    retriever = ColBERTRetriever(store=slow_store, k=1)
    documents, ticks = await ticks_while(retriever.ainvoke("capital of Germany"))
    assert documents[0].id == "berlin"
    assert ticks >= 5  # about DELAY / 10 ms while the search slept in its thread

    vectorstore = ColBERTVectorStore(store=slow_store)
    found, ticks = await ticks_while(vectorstore.asimilarity_search("capital of Germany", k=1))
    assert found[0].id == "berlin" and ticks >= 5
    found, ticks = await ticks_while(
        vectorstore.as_retriever(search_type="mmr", search_kwargs={"k": 2}).ainvoke("Germany")
    )
    assert found[0].id == "berlin" and ticks >= 5

    reranker = ColBERTReranker(model=SlowFakeColBERT(DELAY))
    documents = [Document(text, id=key) for key, text in passages.items()]
    reranked, ticks = await ticks_while(reranker.acompress_documents(documents, "Germany"))
    assert reranked[0].id == "berlin" and ticks >= 5


async def test_abatch_runs_searches_concurrently(slow_store: maxsim.LateInteractionStore) -> None:
    retriever = ColBERTRetriever(store=slow_store, k=1)
    queries = ["capital of Germany", "sourdough bread", "Eiffel Tower", "Rhine river"]
    start = time.perf_counter()
    results = await retriever.abatch(queries)
    elapsed = time.perf_counter() - start
    assert [documents[0].id for documents in results] == ["berlin", "bread", "eiffel", "rhine"]
    assert elapsed < len(queries) * DELAY * 0.75  # one after the other would take 1.2 s
