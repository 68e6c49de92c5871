"""`maxsim serve` over HTTP: the Jina docs' request bodies, every bad input, auth, limits,
64 concurrent clients, and /health while a large request encodes."""

from __future__ import annotations

import base64
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import maxsim
from maxsim.server import ServerSettings, create_app
from maxsim.testing import FakeColBERT

from .conftest import (
    ANSWER,
    API_KEY,
    MAX_BODY_BYTES,
    MAX_INPUTS,
    PASSAGES,
    QUERY,
    SERVED_NAME,
    Server,
)

# The bodies of the curl examples in Jina's multi-vector and rerank API docs.
DOCS_QUERY_BODY = {
    "model": "jina-colbert-v2",
    "dimensions": 128,
    "input_type": "query",
    "embedding_type": "float",
    "input": ["What is the tallest mountain in the world?"],
}
DOCS_DOCUMENT_BODY = {
    "model": "jina-colbert-v2",
    "dimensions": 128,
    "input_type": "document",
    "embedding_type": "float",
    "input": PASSAGES[3:5],
}
DOCS_RERANK_BODY = {
    "model": "jina-colbert-v2",
    "query": QUERY,
    "documents": PASSAGES,
    "top_n": 3,
}


def _matryoshka(matrix: np.ndarray, dimensions: int) -> np.ndarray:
    cut = matrix[:, :dimensions]
    return cut / np.linalg.norm(cut, axis=1, keepdims=True)


def test_health_and_models(server: Server, client: httpx.Client) -> None:
    assert httpx.get(f"{server.root}/health").json() == {"status": "ok", "model": SERVED_NAME}
    [card] = client.get("/v1/models").json()["data"]
    assert card["id"] == SERVED_NAME and card["dim"] == 384


@pytest.mark.parametrize("body", [DOCS_QUERY_BODY, DOCS_DOCUMENT_BODY], ids=["query", "document"])
def test_multi_vector_docs_bodies(
    client: httpx.Client, minilm: maxsim.ColBERT, body: dict[str, Any]
) -> None:
    reply = client.post("/v1/multi-vector", json=body)
    assert reply.status_code == 200, reply.text
    payload = reply.json()
    assert (payload["model"], payload["object"]) == (SERVED_NAME, "list")
    assert payload["usage"]["total_tokens"] == payload["usage"]["prompt_tokens"] > 0
    encode = minilm.encode_queries if body["input_type"] == "query" else minilm.encode_documents
    expected = encode(body["input"])
    assert [item["index"] for item in payload["data"]] == list(range(len(body["input"])))
    for item, local in zip(payload["data"], expected, strict=True):
        assert item["object"] == "embeddings"
        rows = np.asarray(item["embeddings"], dtype=np.float32)
        np.testing.assert_allclose(rows, _matryoshka(local, 128), atol=2e-5)


def test_base64_is_little_endian_float32_of_the_float_rows(client: httpx.Client) -> None:
    body = {**DOCS_DOCUMENT_BODY, "dimensions": 64}
    floats = client.post("/v1/multi-vector", json=body).json()["data"]
    packed = client.post("/v1/multi-vector", json={**body, "embedding_type": "base64"}).json()
    for plain, item in zip(floats, packed["data"], strict=True):
        rows = np.frombuffer(base64.b64decode(item["embeddings"]), dtype="<f4").reshape(-1, 64)
        np.testing.assert_array_equal(rows, np.asarray(plain["embeddings"], dtype=np.float32))


def test_one_string_input_and_default_document_type(
    client: httpx.Client, minilm: maxsim.ColBERT
) -> None:
    reply = client.post("/v1/multi-vector", json={"model": SERVED_NAME, "input": PASSAGES[0]})
    [item] = reply.json()["data"]
    [local] = minilm.encode_documents([PASSAGES[0]])
    np.testing.assert_allclose(np.asarray(item["embeddings"]), local, atol=2e-5)


def test_rerank_docs_body_matches_model_rerank(
    client: httpx.Client, minilm: maxsim.ColBERT
) -> None:
    payload = client.post("/v1/rerank", json=DOCS_RERANK_BODY).json()
    local = minilm.rerank(QUERY, PASSAGES, top_n=3)
    assert [result["index"] for result in payload["results"]] == [hit.index for hit in local]
    assert payload["results"][0]["index"] == ANSWER
    for result, hit in zip(payload["results"], local, strict=True):
        assert result["relevance_score"] == pytest.approx(hit.score, abs=1e-4)
        assert result["document"] == {"text": PASSAGES[hit.index]}
    assert payload["model"] == SERVED_NAME and payload["usage"]["total_tokens"] > 0


def test_rerank_text_objects_and_no_documents_back(client: httpx.Client) -> None:
    body = {
        "model": SERVED_NAME,
        "query": QUERY,
        "documents": [{"text": text} for text in PASSAGES],
        "return_documents": False,
    }
    results = client.post("/v1/rerank", json=body).json()["results"]
    assert len(results) == len(PASSAGES) and results[0]["index"] == ANSWER
    assert all("document" not in result for result in results)
    scores = [result["relevance_score"] for result in results]
    assert scores == sorted(scores, reverse=True)


MULTI_VECTOR = {"model": SERVED_NAME, "input": ["a text"]}
RERANK = {"model": SERVED_NAME, "query": "q", "documents": ["a text"]}
BAD_REQUESTS = [
    ("multi-vector", {**MULTI_VECTOR, "input": []}, 422, "input is empty"),
    ("multi-vector", {**MULTI_VECTOR, "input": ""}, 422, "input[0] is empty"),
    ("multi-vector", {**MULTI_VECTOR, "input": ["ok", "  "]}, 422, "input[1] is empty"),
    ("multi-vector", {**MULTI_VECTOR, "input": ["ok", 3]}, 422, "input[1] must be a string"),
    ("multi-vector", {**MULTI_VECTOR, "input": 7}, 422, "input must be a string"),
    ("multi-vector", {"model": SERVED_NAME}, 422, "input: Field required"),
    ("multi-vector", {**MULTI_VECTOR, "input_type": "passage"}, 422, "input_type"),
    ("multi-vector", {**MULTI_VECTOR, "dimensions": 1000}, 422, "dimensions must be in 1..384"),
    ("multi-vector", {**MULTI_VECTOR, "dimensions": 0}, 422, "dimensions must be in 1..384"),
    ("multi-vector", {**MULTI_VECTOR, "dimensions": "64"}, 422, "dimensions"),
    ("multi-vector", {**MULTI_VECTOR, "embedding_type": "binary"}, 422, "embedding_type"),
    ("multi-vector", {**MULTI_VECTOR, "model": "other"}, 400, "use model='jina-colbert-v2'"),
    ("multi-vector", {"input": ["a"]}, 422, "model: Field required"),
    ("multi-vector", [1, 2], 422, "body"),
    ("multi-vector", {**MULTI_VECTOR, "input": ["t"] * (MAX_INPUTS + 1)}, 413, "--max-inputs"),
    ("rerank", {**RERANK, "top_n": 0}, 422, "top_n"),
    ("rerank", {**RERANK, "top_n": -2}, 422, "top_n"),
    ("rerank", {**RERANK, "query": ""}, 422, "query is empty"),
    ("rerank", {**RERANK, "query": 5}, 422, "query must be a string"),
    ("rerank", {**RERANK, "documents": []}, 422, "documents is empty"),
    ("rerank", {**RERANK, "documents": [{"txt": "a"}]}, 422, "documents[0] must be a string"),
    ("rerank", {**RERANK, "model": "jina-reranker-v2"}, 400, "is not served here"),
    ("rerank", {**RERANK, "documents": ["d"] * (MAX_INPUTS + 1)}, 413, "documents has 65"),
]


def _refused(reply: httpx.Response, status: int, fragment: str) -> None:
    assert reply.status_code == status, reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and fragment in detail, detail
    assert "Traceback" not in reply.text and reply.headers["x-request-id"]


@pytest.mark.parametrize(("endpoint", "body", "status", "fragment"), BAD_REQUESTS)
def test_bad_requests_get_a_detail_naming_the_field(
    client: httpx.Client, endpoint: str, body: Any, status: int, fragment: str
) -> None:
    _refused(client.post(f"/v1/{endpoint}", json=body), status, fragment)


def test_malformed_json_and_large_bodies(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    broken = client.post("/v1/rerank", content=b'{"model": "jina', headers=headers)
    _refused(broken, 400, "not valid JSON")
    large = json.dumps({**MULTI_VECTOR, "input": ["word " * MAX_BODY_BYTES]}).encode()
    _refused(client.post("/v1/multi-vector", content=large, headers=headers), 413, "bytes")

    def chunks() -> Any:  # no content-length: the size is counted as it arrives
        for start in range(0, len(large), 65536):
            yield large[start : start + 65536]

    _refused(client.post("/v1/multi-vector", content=chunks(), headers=headers), 413, "bytes")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}, {"Authorization": ""}],
    ids=["missing", "wrong", "no-scheme", "empty"],
)
def test_api_key_is_required_on_v1(server: Server, headers: dict[str, str]) -> None:
    reply = httpx.post(f"{server.base_url}/rerank", json=DOCS_RERANK_BODY, headers=headers)
    _refused(reply, 401, "Authorization: Bearer")
    assert reply.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server.root}/health").status_code == 200


def test_64_concurrent_clients_are_all_answered(server: Server, minilm: maxsim.ColBERT) -> None:
    texts = [f"{PASSAGES[i % len(PASSAGES)]} (copy {i})" for i in range(64)]

    def one(text: str) -> np.ndarray:
        body = {"model": SERVED_NAME, "input": [text], "embedding_type": "base64"}
        reply = httpx.post(
            f"{server.base_url}/multi-vector", json=body, headers=server.headers, timeout=300
        )
        assert reply.status_code == 200, reply.text
        raw = base64.b64decode(reply.json()["data"][0]["embeddings"])
        return np.frombuffer(raw, dtype="<f4").reshape(-1, 384)

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(one, texts))
    for answer, local in zip(answers, minilm.encode_documents(texts), strict=True):
        np.testing.assert_allclose(answer, local, atol=2e-5)


def test_health_and_other_requests_answer_while_the_model_works() -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(FakeColBERT):
        def _embed(self, *args: Any, **kwargs: Any) -> Any:
            if not entered.is_set():
                entered.set()
                assert release.wait(timeout=60)
            return super()._embed(*args, **kwargs)

    app = create_app(Slow(), ServerSettings(served_model_name="slow"))
    with TestClient(app) as test_client, ThreadPoolExecutor(max_workers=1) as pool:
        large = pool.submit(
            test_client.post, "/v1/multi-vector", json={"model": "slow", "input": ["x"] * 50}
        )
        assert entered.wait(timeout=60)
        assert test_client.get("/health").status_code == 200
        assert test_client.get("/v1/models").status_code == 200
        assert not large.done()
        release.set()
        assert large.result().status_code == 200


def test_an_internal_error_is_a_500_with_a_request_id_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(FakeColBERT):
        def _embed(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internals")

    app = create_app(Broken(), ServerSettings(served_model_name="broken"))
    with caplog.at_level(logging.ERROR, logger="maxsim"), TestClient(app) as test_client:
        reply = test_client.post("/v1/multi-vector", json={"model": "broken", "input": "x"})
    assert reply.status_code == 500
    request_id = reply.headers["x-request-id"]
    assert request_id in reply.json()["detail"]
    assert "secret internals" not in reply.text and "Traceback" not in reply.text
    assert any(request_id in record.getMessage() for record in caplog.records)


def test_cors_only_when_asked() -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(FakeColBERT())) as closed:
        assert (
            "access-control-allow-origin"
            not in closed.options("/v1/rerank", headers=preflight).headers
        )
    settings = ServerSettings(cors_origins=("https://app.example",))
    with TestClient(create_app(FakeColBERT(), settings)) as opened:
        reply = opened.options("/v1/rerank", headers=preflight)
        assert reply.headers["access-control-allow-origin"] == "https://app.example"


def test_serve_command_reports_a_model_that_cannot_load(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from maxsim.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "9"]) == 1
    assert "maxsim: cannot load model" in capsys.readouterr().err
