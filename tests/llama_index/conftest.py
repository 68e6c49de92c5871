"""Fixtures for the LlamaIndex integration tests: FakeColBERT and small node sets."""

from __future__ import annotations

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from maxsim.testing import FakeColBERT


@pytest.fixture
def fake() -> FakeColBERT:
    return FakeColBERT(dim=32)


@pytest.fixture
def capitals() -> list[TextNode]:
    """Five nodes from two source documents ("geo", "food"), with metadata."""
    rows = [
        ("berlin", "Berlin is the capital of Germany.", "de", 2024, "geo"),
        ("paris", "Paris is the capital of France.", "fr", 2021, "geo"),
        ("rome", "Rome is the capital of Italy.", "it", 2019, "geo"),
        ("bread", "Bread is baked from flour and water.", "en", 2022, "food"),
        ("cheese", "Cheese is made from milk.", "en", 2020, "food"),
    ]
    nodes = []
    for node_id, text, lang, year, doc in rows:
        node = TextNode(id_=node_id, text=text, metadata={"lang": lang, "year": year})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
        nodes.append(node)
    return nodes
