"""The server app in process (TestClient, FakeColBERT)."""

from __future__ import annotations

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
