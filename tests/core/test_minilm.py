"""Real semantics with the real all-MiniLM-L6-v2 weights (plain Hugging Face layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import maxsim

PASSAGES = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Great Barrier Reef is the largest coral reef system, off the coast of Queensland.",
    "Python is a programming language known for its readable syntax and large ecosystem.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "Insulin is a hormone produced by the pancreas that regulates blood sugar.",
]
QUERIES = [
    ("When was the Eiffel Tower built?", 0),
    ("How do plants turn sunlight into food?", 1),
    ("Where is the biggest coral reef?", 2),
    ("Which language has readable syntax for programmers?", 3),
    ("What is the tallest mountain in the world?", 4),
    ("Which organ makes the hormone that controls blood glucose?", 5),
]


def test_layout_and_rules(minilm: maxsim.ColBERT) -> None:
    assert minilm.layout == "plain"
    assert minilm.dim == 384
    assert minilm.rules.query_prefix_ids == () and not minilm.rules.expand_queries
    assert minilm.document_length == 256


def test_relevant_passage_scores_highest(minilm: maxsim.ColBERT) -> None:
    queries = minilm.encode_queries([query for query, _ in QUERIES])
    passages = minilm.encode_documents(PASSAGES)
    result = maxsim.scores(queries, passages)
    assert list(result.argmax(axis=1)) == [relevant for _, relevant in QUERIES]


def test_rerank_puts_the_relevant_passage_first(minilm: maxsim.ColBERT) -> None:
    for query, relevant in QUERIES:
        results = minilm.rerank(query, PASSAGES, top_n=3)
        assert results[0].index == relevant, query
        assert results[0].score > results[1].score


def test_explain_aligns_matching_words(minilm: maxsim.ColBERT) -> None:
    explanation = minilm.explain("tallest mountain", PASSAGES[4])
    matched = {match.query_token: match.document_token for match in explanation.matches}
    assert matched["mountain"] == "mountain"
    assert np.isclose(
        explanation.score, minilm.rerank("tallest mountain", [PASSAGES[4]])[0].score, rtol=1e-5
    )


def test_document_length_beyond_the_position_embeddings_is_refused(minilm_path: Path) -> None:
    with pytest.raises(ValueError, match=r"document_length=600 exceeds the 512 positions"):
        maxsim.ColBERT.from_pretrained(str(minilm_path), document_length=600)
    assert (
        maxsim.ColBERT.from_pretrained(str(minilm_path), document_length=512).document_length == 512
    )
