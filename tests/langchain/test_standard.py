"""langchain-tests' standard suites: the vector store (sync and async) and the retriever,
each on every kind of maxsim store (the `make_store` fixture), all on FakeColBERT."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from langchain_maxsim import ColBERTRetriever, ColBERTVectorStore
from maxsim.testing import FakeColBERT

# The repository runs pytest-asyncio in strict mode, and the standard suites' async tests
# are plain `async def` methods we may not override (their no-override check), so each
# class carries the asyncio mark; pytest-asyncio then warns about every sync test in it,
# which the filter silences.
ASYNC_SUITE = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings(
        "ignore:The test <Function [a-z_]+(\\[[a-z]+\\])?> is marked with '@pytest.mark.asyncio' "
        "but it is not an async function:pytest.PytestWarning"
    ),
]


class TestColBERTVectorStore(VectorStoreIntegrationTests):
    """The suite once per kind of maxsim store underneath (`make_store`); the sync
    tests and the `*_async` tests both run (has_sync and has_async are True)."""

    pytestmark = ASYNC_SUITE

    @pytest.fixture
    def vectorstore(self, make_store: Any) -> Generator[VectorStore, None, None]:
        store = ColBERTVectorStore(store=make_store(FakeColBERT()))
        try:
            yield store
        finally:
            store.store.clear()

    @property
    def has_sync(self) -> bool:
        return True

    @property
    def has_async(self) -> bool:
        return True


class TestColBERTRetriever(RetrieversIntegrationTests):
    """The retriever suite once per kind of maxsim store underneath."""

    pytestmark = ASYNC_SUITE

    @pytest.fixture(autouse=True)
    def _store(self, make_store: Any) -> None:
        self.store = make_store(FakeColBERT())
        self.store.add(
            [
                "Berlin is the capital of Germany.",
                "Paris is the capital of France.",
                "Rome is the capital of Italy.",
                "Bread is baked in an oven.",
            ],
            ids=["berlin", "paris", "rome", "bread"],
        )

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return ColBERTRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self.store, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "What is the capital of Germany?"
