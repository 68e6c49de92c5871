"""The retriever and the reranker on the real all-MiniLM-L6-v2 weights: relevant first."""

from __future__ import annotations

from langchain_core.documents import Document

import maxsim
from langchain_maxsim import ColBERTReranker, ColBERTRetriever, ColBERTVectorStore

PASSAGES = {
    "eiffel": "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.",
    "photosynthesis": "Photosynthesis converts light energy into chemical energy in glucose.",
    "reef": "The Great Barrier Reef is the largest coral reef system, off Queensland.",
    "python": "Python is a programming language known for its readable syntax.",
    "everest": "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "insulin": "Insulin is a hormone produced by the pancreas that regulates blood sugar.",
}
QUERIES = {
    "When was the Eiffel Tower built?": "eiffel",
    "How do plants turn sunlight into food?": "photosynthesis",
    "What is the tallest mountain in the world?": "everest",
    "Which organ makes the hormone that controls blood glucose?": "insulin",
}


def test_retriever_puts_the_relevant_passage_first(minilm: maxsim.ColBERT) -> None:
    retriever = ColBERTRetriever.from_texts(list(PASSAGES.values()), minilm, ids=list(PASSAGES))
    for query, relevant in QUERIES.items():
        documents = retriever.invoke(query)
        assert documents[0].id == relevant, query
        assert documents[0].metadata["score"] > documents[1].metadata["score"]


def test_reranker_puts_the_relevant_passage_first(minilm: maxsim.ColBERT) -> None:
    documents = [Document(text, id=key) for key, text in PASSAGES.items()]
    reranker = ColBERTReranker(model=minilm, top_n=2)
    for query, relevant in QUERIES.items():
        reranked = reranker.compress_documents(documents, query)
        assert reranked[0].id == relevant, query
        assert reranked[0].metadata["relevance_score"] > reranked[1].metadata["relevance_score"]


def test_reranker_loads_the_model_from_its_path(minilm_path: object) -> None:
    reranker = ColBERTReranker(model=str(minilm_path), model_kwargs={"device": "cpu"})
    documents = [Document(text, id=key) for key, text in PASSAGES.items()]
    reranked = reranker.compress_documents(documents, "What is the highest mountain?")
    assert reranked[0].id == "everest"


def test_relevance_scores_stay_in_range(minilm: maxsim.ColBERT) -> None:
    vectorstore = ColBERTVectorStore.from_texts(
        list(PASSAGES.values()), model=minilm, ids=list(PASSAGES)
    )
    results = vectorstore.similarity_search_with_relevance_scores("coral reef", k=6)
    assert results[0][0].id == "reef"
    assert all(0.0 <= relevance <= 1.0 for _, relevance in results)
