"""`RemoteColBERT` against answers made up by an httpx MockTransport: bodies that are not
the API's, error bodies of any JSON shape, and cache keys per server."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

import maxsim
from maxsim.cache import DocumentVectorCache

DIM = 64


def _remote(
    handler: Callable[[httpx.Request], httpx.Response], base_url: str = "http://one.test/v1"
) -> maxsim.RemoteColBERT:
    remote = maxsim.RemoteColBERT(base_url, api_key="k", model="m", dim=DIM, max_retries=0)
    remote._client.close()
    remote._client = httpx.Client(transport=httpx.MockTransport(handler))
    return remote


def _answering(rows: Callable[[int], Any]) -> Callable[[httpx.Request], httpx.Response]:
    """A server that answers each input text `i` with `rows(i)` as its embeddings."""

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embeddings": rows(i)} for i in range(len(texts))]
        return httpx.Response(200, json={"data": data})

    return handler


def test_float_rows_of_another_width_are_refused() -> None:
    wide = np.ones((3, 2 * DIM), dtype=np.float32).tolist()
    with (
        _remote(_answering(lambda _: wide)) as remote,
        pytest.raises(maxsim.RemoteError, match=rf"shape \(3, 128\).*dim={DIM}"),
    ):
        remote.encode_documents(["a text"])


def test_base64_that_is_not_whole_rows_is_refused() -> None:
    ragged = base64.b64encode(np.ones(DIM + 1, dtype="<f4").tobytes()).decode()
    with (
        _remote(_answering(lambda _: ragged)) as remote,
        pytest.raises(maxsim.RemoteError, match=rf"260 bytes.*dim={DIM}"),
    ):
        remote.encode_documents(["a text"])


def test_rows_of_the_right_width_are_read_from_floats_and_base64() -> None:
    matrix = np.arange(2 * DIM, dtype=np.float32).reshape(2, DIM)
    encoded = base64.b64encode(matrix.astype("<f4").tobytes()).decode()
    for embeddings in (matrix.tolist(), encoded, []):
        with _remote(_answering(lambda _, rows=embeddings: rows)) as remote:
            [vectors] = remote.encode_documents(["a text"])
        expected = matrix if len(embeddings) else np.empty((0, DIM), np.float32)
        np.testing.assert_array_equal(vectors, expected)


@pytest.mark.parametrize("body", [["not", "an", "object"], "just a string", 7])
def test_an_error_body_that_is_json_but_not_an_object_is_reported_as_text(body: Any) -> None:
    with (
        _remote(lambda _: httpx.Response(400, text=json.dumps(body))) as remote,
        pytest.raises(maxsim.RemoteError, match="answered 400") as refused,
    ):
        remote.encode_queries(["q"])
    assert json.dumps(body) in str(refused.value)
    assert refused.value.status_code == 400


def test_remote_encoders_on_different_servers_do_not_share_cached_vectors() -> None:
    cache = DocumentVectorCache()
    one = _remote(_answering(lambda _: np.ones((2, DIM)).tolist()), "http://one.test/v1")
    two = _remote(_answering(lambda _: np.zeros((2, DIM)).tolist()), "http://two.test/v1")
    with one, two:
        [first] = cache.encode_documents(one, ["same text"])
        [second] = cache.encode_documents(two, ["same text"])
    assert cache.info().misses == 2
    assert first.sum() == 2 * DIM and second.sum() == 0
