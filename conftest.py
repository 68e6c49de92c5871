"""The tiny jina checkpoint, shared by the tests and the doctests in core/src (as `model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import maxsim

TINY_CHECKPOINT = Path(__file__).parent / "tests" / "fixtures" / "jina-colbert-v2-tiny"


@pytest.fixture(scope="session")
def tiny_checkpoint() -> str:
    return str(TINY_CHECKPOINT)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: str) -> maxsim.ColBERT:
    return maxsim.ColBERT.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session", autouse=True)
def _doctest_names(doctest_namespace: dict[str, Any], tiny_model: maxsim.ColBERT) -> None:
    doctest_namespace["model"] = tiny_model
