"""ColBERTReranker reuses the encoder's document-vector cache across questions."""

from __future__ import annotations

from langchain_core.documents import Document

from langchain_maxsim import ColBERTReranker
from maxsim.testing import FakeColBERT


def test_documents_seen_before_are_not_encoded_again(
    fake: FakeColBERT, passages: dict[str, str]
) -> None:
    documents = [Document(text, id=key) for key, text in passages.items()]
    reranker = ColBERTReranker(model=fake, top_n=2)
    first = reranker.compress_documents(documents, "capital of Germany")
    assert fake.cache_info().misses == len(documents) and fake.cache_info().hits == 0
    reranker.compress_documents(documents, "capital of France")
    again = reranker.compress_documents(documents, "capital of Germany")
    info = fake.cache_info()
    assert (info.misses, info.hits, info.entries) == (5, 10, 5)
    assert [d.id for d in again] == [d.id for d in first]
    assert [d.metadata["relevance_score"] for d in again] == [
        d.metadata["relevance_score"] for d in first
    ]
