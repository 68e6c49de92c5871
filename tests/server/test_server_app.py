"""The server app in process (TestClient, FakeColBERT): middleware order, an app whose
lifespan never ran, text checks, the model worker's batching, and `maxsim serve`'s
warning about an open port without a key."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maxsim.server import ServerSettings, create_app
from maxsim.server.worker import ModelWorker
from maxsim.testing import FakeColBERT

ORIGIN = "https://app.example"


def test_cors_answers_preflights_and_refusals_in_front_of_the_api_key() -> None:
    settings = ServerSettings(api_key="k", cors_origins=(ORIGIN,))
    with TestClient(create_app(FakeColBERT(), settings)) as client:
        preflight = client.options(
            "/v1/rerank",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        refused = client.post("/v1/rerank", headers={"Origin": ORIGIN}, json={})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN


def test_an_app_whose_lifespan_never_ran_still_answers() -> None:
    client = TestClient(create_app(FakeColBERT(), ServerSettings(served_model_name="fake")))
    replies: list[Any] = []
    body = {"model": "fake", "query": "red apple", "documents": ["sky", "red apple"]}
    thread = threading.Thread(
        target=lambda: replies.append(client.post("/v1/rerank", json=body)), daemon=True
    )
    thread.start()
    thread.join(timeout=30)
    assert replies, "the request did not finish: the model worker never started"
    assert replies[0].status_code == 200
    assert [result["index"] for result in replies[0].json()["results"]] == [1, 0]


def test_an_unpaired_surrogate_is_a_422_naming_the_field() -> None:
    body = b'{"model": "fake", "input": ["fine", "broken \\ud800 text"]}'
    with TestClient(create_app(FakeColBERT(), ServerSettings(served_model_name="fake"))) as client:
        reply = client.post(
            "/v1/multi-vector", content=body, headers={"Content-Type": "application/json"}
        )
    assert reply.status_code == 422, reply.text
    assert "input[1] holds an unpaired surrogate" in reply.json()["detail"]


class Gated(FakeColBERT):
    """Holds its first `_embed` until `release` is set, so later jobs queue up meanwhile;
    refuses texts with the word "poison"; counts tokenizations."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()
        self.tokenized = 0

    def _sequences(self, texts: list[str], is_query: bool) -> tuple[list[list[int]], int]:
        self.tokenized += 1
        return super()._sequences(texts, is_query)

    def _embed(self, sequences: list[list[int]], *args: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(timeout=60)
        if any("poison" in self._token_strings(ids) for ids in sequences):
            raise RuntimeError("poisoned")
        return super()._embed(sequences, *args)


def _queued_together(worker: ModelWorker, model: Gated, texts: list[str]) -> list[Any]:
    """Each text's encode result (or error), the texts queued while the model is busy."""

    async def run() -> list[Any]:
        gate = asyncio.ensure_future(worker.encode(["gate"], is_query=True))
        await asyncio.to_thread(model.entered.wait, 60)
        jobs = [asyncio.ensure_future(worker.encode([text], is_query=False)) for text in texts]
        await asyncio.sleep(0)
        model.release.set()
        results = await asyncio.gather(gate, *jobs, return_exceptions=True)
        worker.stop()
        return results[1:]

    return asyncio.run(run())


def test_a_failing_text_fails_only_its_own_request() -> None:
    model = Gated()
    good, bad, other = _queued_together(ModelWorker(model), model, ["good", "poison", "other"])
    assert good.tokens == 1 and other.tokens == 1
    assert isinstance(bad, RuntimeError)


def test_a_held_over_job_is_tokenized_once() -> None:
    model = Gated()
    first, second = _queued_together(ModelWorker(model, round_tokens=1), model, ["a", "b"])
    assert first.tokens == second.tokens == 1
    assert model.tokenized == 3


def test_batch_size_is_checked() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        create_app(FakeColBERT(), ServerSettings(batch_size=0))


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        (["--host", "0.0.0.0"], True),
        (["--host", "192.168.1.5"], True),
        (["--host", "0.0.0.0", "--api-key", "k"], False),
        (["--host", "127.0.0.1"], False),
        (["--host", "localhost"], False),
        (["--host", "::1"], False),
    ],
)
def test_serve_warns_when_it_listens_beyond_this_machine_without_a_key(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    options: list[str],
    warned: bool,
) -> None:
    import uvicorn

    from maxsim import cli_serve
    from maxsim.cli import main

    monkeypatch.delenv(cli_serve.API_KEY_VARIABLE, raising=False)
    monkeypatch.setattr(cli_serve.ColBERT, "from_pretrained", lambda *_, **__: FakeColBERT())
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: None)
    with caplog.at_level(logging.WARNING, logger="maxsim"):
        assert main(["serve", "--model", "fake", *options]) == 0
    assert any("without an API key" in record.getMessage() for record in caplog.records) is warned
