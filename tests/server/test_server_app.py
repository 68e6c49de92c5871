"""The server app in process (TestClient, FakeColBERT): middleware order, an app whose
lifespan never ran, text checks, and the model worker's batching."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from maxsim.server import ServerSettings, create_app
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
