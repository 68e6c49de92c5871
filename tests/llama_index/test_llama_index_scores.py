"""Normalized scores (cutoffs work at any query length) and chunk windows as nodes."""

from __future__ import annotations

from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from llama_index.postprocessor.maxsim import ColBERTRerank
from llama_index.retrievers.maxsim import ColBERTRetriever
from llama_index.vector_stores.maxsim import ColBERTVectorStore
from maxsim import LateInteractionStore
from maxsim.testing import FakeColBERT

NODES = [
    TextNode(id_="paris", text="Paris is the capital of France."),
    TextNode(id_="berlin", text="Berlin is the capital of Germany."),
    TextNode(id_="bread", text="Bread is baked in an oven."),
]
CUTOFF = SimilarityPostprocessor(similarity_cutoff=0.9)


def test_similarity_cutoff_keeps_only_close_matches_from_the_retriever() -> None:
    retriever = ColBERTRetriever.from_defaults(nodes=NODES, model=FakeColBERT(), similarity_top_k=3)
    for query in ("capital of France", "Paris is the capital of France"):
        hits = retriever.retrieve(query)
        assert all(-1 <= hit.score <= 1.001 for hit in hits)  # float16 storage rounds
        kept = CUTOFF.postprocess_nodes(hits)
        assert [hit.node.node_id for hit in kept] == ["paris"]
        assert kept[0].node.metadata["maxsim_score"] > 1


def test_similarity_cutoff_after_the_reranker() -> None:
    rerank = ColBERTRerank(model=FakeColBERT(), top_n=3)
    scored = [NodeWithScore(node=node, score=0.5) for node in NODES]
    reranked = rerank.postprocess_nodes(scored, query_str="capital of Germany")
    assert [hit.node.node_id for hit in CUTOFF.postprocess_nodes(reranked)] == ["berlin"]
    assert "maxsim_score" not in reranked[0].node.get_content(metadata_mode=MetadataMode.LLM)


def test_nodes_from_a_chunked_store_hold_their_window() -> None:
    text = (
        "Bread is baked in an oven from flour and water. The river Seine flows through "
        "Paris to the sea. Cheese is made from milk in villages."
    )
    store = LateInteractionStore(FakeColBERT(), chunk_size=10, chunk_overlap=2)
    vector_store = ColBERTVectorStore(store=store)
    vector_store.add([TextNode(id_="long", text=text, metadata={"lang": "en"})])
    [hit] = ColBERTRetriever(vector_store, similarity_top_k=1).retrieve("river Seine flows")
    node = hit.node
    start, end = node.metadata["span"]
    assert node.get_content() == text[start:end]
    assert "river Seine flows" in node.get_content() and len(node.get_content()) < len(text)
    assert node.metadata["document_id"] == "long" and node.metadata["chunk"] >= 1
    llm_text = node.get_content(metadata_mode=MetadataMode.LLM)
    assert "lang: en" in llm_text and "span" not in llm_text and "chunk" not in llm_text
