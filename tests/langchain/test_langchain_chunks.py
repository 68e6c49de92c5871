"""Hits on a chunked store's windows: the window's text, with document id, chunk, span."""

from __future__ import annotations

import maxsim
from langchain_maxsim import ColBERTRetriever, ColBERTVectorStore
from maxsim.testing import FakeColBERT

LONG = (
    "Bread is baked in an oven from flour, water and salt. "
    "The river Seine flows through Paris and into the sea. "
    "Cheese is made from milk in many villages of France."
)


def chunked_store() -> maxsim.LateInteractionStore:
    store = maxsim.LateInteractionStore(FakeColBERT(), chunk_size=12, chunk_overlap=2)
    store.add([LONG, "Berlin is a city."], ids=["long", "berlin"], metadatas=[{"n": 1}, {}])
    return store


def test_retriever_documents_hold_the_matching_window() -> None:
    [document] = ColBERTRetriever(store=chunked_store(), k=1).invoke("river Seine flows")
    start, end = document.metadata["span"]
    assert document.id == "long" and document.metadata["document_id"] == "long"
    assert document.page_content == LONG[start:end]
    assert "river Seine flows" in document.page_content and len(document.page_content) < len(LONG)
    assert document.metadata["chunk"] >= 1 and document.metadata["n"] == 1


def test_vector_store_search_returns_windows_and_unchunked_stores_whole_texts() -> None:
    chunked = ColBERTVectorStore(store=chunked_store())
    [(document, _)] = chunked.similarity_search_with_score("milk villages", k=1)
    assert "milk" in document.page_content and not document.page_content.startswith("Bread")
    assert set(document.metadata) == {"n", "document_id", "chunk", "span"}
    whole = ColBERTVectorStore(model=FakeColBERT())
    whole.add_texts([LONG], ids=["long"])
    [document] = whole.similarity_search("milk villages", k=1)
    assert document.page_content == LONG and document.metadata == {}
