"""ColBERTRerank reuses the encoder's document-vector cache across questions."""

from __future__ import annotations

from llama_index.core.schema import NodeWithScore, TextNode

from llama_index.postprocessor.maxsim import ColBERTRerank
from maxsim.testing import FakeColBERT


def test_nodes_seen_before_are_not_encoded_again(
    fake: FakeColBERT, capitals: list[TextNode]
) -> None:
    rerank = ColBERTRerank(model=fake, top_n=2)
    nodes = [NodeWithScore(node=node, score=0.5) for node in capitals]
    first = rerank.postprocess_nodes(nodes, query_str="capital of Italy")
    assert fake.cache_info().misses == len(capitals) and fake.cache_info().hits == 0
    again = rerank.postprocess_nodes(nodes, query_str="capital of Italy")
    info = fake.cache_info()
    assert (info.misses, info.hits, info.entries) == (5, 5, 5)
    assert [(hit.node.node_id, hit.score) for hit in again] == [
        (hit.node.node_id, hit.score) for hit in first
    ]
