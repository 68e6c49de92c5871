"""Fixtures for the LangChain integration tests, and asyncio marks for their async tests.

The repository runs pytest-asyncio in strict mode, and the langchain-tests standard suites
define plain `async def` tests that we may not decorate (overriding them fails their
no-override check), so every coroutine test collected under this folder gets
`pytest.mark.asyncio` here.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

import pytest

from maxsim.testing import FakeColBERT

PASSAGES = {
    "eiffel": "The Eiffel Tower in Paris is 330 metres tall.",
    "berlin": "Berlin is the capital of Germany and its largest city.",
    "bread": "Sourdough bread is baked from flour, water and salt.",
    "paris": "Paris is the capital of France.",
    "rhine": "The Rhine flows from the Alps to the North Sea.",
}


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.asyncio)
    return result


@pytest.fixture
def fake() -> FakeColBERT:
    return FakeColBERT(dim=16)


@pytest.fixture
def passages() -> dict[str, str]:
    """Five short passages by id."""
    return dict(PASSAGES)
