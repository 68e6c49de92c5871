"""One real `maxsim serve` process (uvicorn, all-MiniLM-L6-v2, 127.0.0.1, a free port),
shared by the server tests; it serves under the name the Jina docs use."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SERVED_NAME = "jina-colbert-v2"
API_KEY = "test-key"
MAX_INPUTS = 64
MAX_BODY_BYTES = 256 * 1024
STARTUP_SECONDS = 120

PASSAGES = [
    "The Nile is generally regarded as the longest river in Africa.",
    "Honey bees tell each other where flowers are with a waggle dance.",
    "The Pacific is the largest and deepest of the world's oceans.",
    "Rust is a systems programming language focused on memory safety.",
    "Mount Everest, 8,849 metres high, is the tallest mountain on Earth.",
    "Vitamin C is found in citrus fruits such as oranges and lemons.",
]
QUERY = "What is the tallest mountain in the world?"
ANSWER = 4


@dataclass(frozen=True)
class Server:
    base_url: str  # e.g. http://127.0.0.1:PORT/v1
    root: str
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def _serving(
    minilm_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Server]]:
    """The server process, started (not yet waited for)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    command = [
        sys.executable,
        "-m",
        "maxsim",
        "serve",
        "--model",
        str(minilm_path),
        "--served-model-name",
        SERVED_NAME,
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--max-inputs",
        str(MAX_INPUTS),
        "--max-body-bytes",
        str(MAX_BODY_BYTES),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        yield process, Server(f"{root}/v1", root, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server(_serving: tuple[subprocess.Popen[bytes], Server], minilm: object) -> Server:
    """The server once /health answers (the local model loads here meanwhile)."""
    process, started = _serving
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"maxsim serve exited early:\n{started.log.read_text()}")
        try:
            if httpx.get(f"{started.root}/health", timeout=2).status_code == 200:
                return started
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"maxsim serve did not answer /health:\n{started.log.read_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.root, headers=server.headers, timeout=120) as session:
        yield session
