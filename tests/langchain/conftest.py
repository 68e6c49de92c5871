"""Fixtures shared by the LangChain tests: five passages and the fake encoder."""

from __future__ import annotations

import pytest

from maxsim.testing import FakeColBERT

PASSAGES = {
    "eiffel": "The Eiffel Tower in Paris is 330 metres tall.",
    "berlin": "Berlin is the capital of Germany and its largest city.",
    "bread": "Sourdough bread is baked from flour, water and salt.",
    "paris": "Paris is the capital of France.",
    "rhine": "The Rhine flows from the Alps to the North Sea.",
}


@pytest.fixture
def fake() -> FakeColBERT:
    return FakeColBERT(dim=16)


@pytest.fixture
def passages() -> dict[str, str]:
    return dict(PASSAGES)
