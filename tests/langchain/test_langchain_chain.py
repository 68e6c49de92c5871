"""A whole RAG chain in LCEL: retriever (k=4) -> reranker -> prompt -> chat model -> str.

langchain-core 1.x has no ContextualCompressionRetriever (it lives in the `langchain`
package, which this integration does not depend on), so the reranker joins the chain
through a RunnableLambda that calls `compress_documents` (`acompress_documents` when the
chain runs async).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough

import maxsim
from langchain_maxsim import ColBERTReranker, ColBERTRetriever
from maxsim.testing import FakeColBERT

QUESTION = "How tall is the Eiffel Tower in Paris?"


def format_documents(documents: Sequence[Document]) -> str:
    return "\n".join(f"[{document.id}] {document.page_content}" for document in documents)


def build_chain(
    retriever: ColBERTRetriever, reranker: ColBERTReranker, prompts: list[str]
) -> Runnable[str, str]:
    def rerank(inputs: dict[str, Any]) -> Sequence[Document]:
        return reranker.compress_documents(inputs["documents"], inputs["question"])

    async def arerank(inputs: dict[str, Any]) -> Sequence[Document]:
        return await reranker.acompress_documents(inputs["documents"], inputs["question"])

    def tap(prompt: PromptValue) -> PromptValue:
        prompts.append(prompt.to_string())
        return prompt

    retrieve_and_rerank = RunnableParallel(
        documents=retriever, question=RunnablePassthrough()
    ) | RunnableLambda(rerank, afunc=arerank)
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer from the context only.\n\nContext:\n{context}"),
            ("human", "{question}"),
        ]
    )
    model = FakeListChatModel(responses=["It is 330 metres tall."])
    return (
        {"context": retrieve_and_rerank | format_documents, "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(tap)
        | model
        | StrOutputParser()
    )


@pytest.fixture
def parts(passages: dict[str, str]) -> tuple[ColBERTRetriever, ColBERTReranker]:
    # A coarse first stage (3 dims) and a finer reranker (64 dims), so that reranking
    # changes the order: retrieved eiffel, bread, rhine, paris; reranked eiffel, paris, bread.
    store = maxsim.LateInteractionStore(FakeColBERT(dim=3))
    store.add(list(passages.values()), ids=list(passages))
    return ColBERTRetriever(store=store, k=4), ColBERTReranker(model=FakeColBERT(dim=64), top_n=3)


def expected_context(retriever: ColBERTRetriever, reranker: ColBERTReranker) -> list[Document]:
    retrieved = retriever.invoke(QUESTION)
    assert len(retrieved) == 4
    reranked = list(reranker.compress_documents(retrieved, QUESTION))
    scores = [document.metadata["relevance_score"] for document in reranked]
    assert scores == sorted(scores, reverse=True)
    assert len(reranked) == 3
    assert [d.id for d in reranked] != [d.id for d in retrieved[:3]]  # reranking mattered
    return reranked


def assert_prompt_holds(prompt: str, reranked: list[Document], passages: dict[str, str]) -> None:
    positions = [prompt.index(f"[{document.id}] {document.page_content}") for document in reranked]
    assert positions == sorted(positions)  # stuffed in score order, best first
    shown = {key for key in passages if f"[{key}]" in prompt}
    assert shown == {document.id for document in reranked}  # the 4th retrieved was cut
    assert prompt.rstrip().endswith(f"Human: {QUESTION}")


def test_rag_chain_stuffs_reranked_passages_in_score_order(
    parts: tuple[ColBERTRetriever, ColBERTReranker], passages: dict[str, str]
) -> None:
    retriever, reranker = parts
    prompts: list[str] = []
    answer = build_chain(retriever, reranker, prompts).invoke(QUESTION)
    assert answer == "It is 330 metres tall."
    [prompt] = prompts
    assert_prompt_holds(prompt, expected_context(retriever, reranker), passages)
    assert "[eiffel]" in prompt


@pytest.mark.asyncio
async def test_rag_chain_async(
    parts: tuple[ColBERTRetriever, ColBERTReranker], passages: dict[str, str]
) -> None:
    retriever, reranker = parts
    prompts: list[str] = []
    chain = build_chain(retriever, reranker, prompts)
    answers = await chain.abatch([QUESTION, QUESTION])
    assert answers == ["It is 330 metres tall.", "It is 330 metres tall."]
    assert len(prompts) == 2 and prompts[0] == prompts[1]
    assert_prompt_holds(prompts[0], expected_context(retriever, reranker), passages)
