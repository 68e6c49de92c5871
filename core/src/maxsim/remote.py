"""`RemoteColBERT`: the encoder interface over the Jina multi-vector HTTP API.

It talks to the hosted Jina API or to `maxsim serve`; stores and adapters use it like a
local `maxsim.ColBERT`.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import torch

from maxsim.late_interaction import LateInteractionEncoder
from maxsim.progress import progress_bar
from maxsim.validation import check_positive_int, check_texts

logger = logging.getLogger("maxsim")

JINA_API = "https://api.jina.ai/v1"
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RemoteError(RuntimeError):
    """The API answered with an error (after retries), or with a body that is not the API's."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RemoteColBERT(LateInteractionEncoder):
    """ColBERT token vectors from a Jina-compatible `/v1/multi-vector` endpoint.

    Args:
        base_url: the API root, e.g. "https://api.jina.ai/v1" or "http://127.0.0.1:8080/v1".
        api_key: bearer token; defaults to the JINA_API_KEY environment variable.
        model: the model name the server serves.
        dim: output dims per token (a Matryoshka cut the server supports).
        query_length / document_length: the served model's token limits (informational,
            saved with stores; the server enforces them).
        texts_per_request: the most texts in one request; larger inputs are split.
        concurrency: requests in flight at once for one call.
        timeout: seconds per request.
        max_retries: retries of a request that failed with 408/429/5xx or a network error,
            waiting `backoff * 2**attempt` seconds (or the server's Retry-After).
        embedding_type: "base64" (compact, exact float32) or "float" (JSON numbers).

    Chunk windows need a tokenizer, so `supports_chunking` is False: stores refuse
    `chunk_size` with this encoder.

    Example:
        >>> remote = RemoteColBERT("http://127.0.0.1:8080/v1", model="jina-colbert-v2")
        >>> remote.dim, remote.supports_chunking
        (128, False)
        >>> remote.encode_queries(["What is late interaction?"])  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str = JINA_API,
        api_key: str | None = None,
        model: str = "jina-colbert-v2",
        dim: int = 128,
        *,
        query_length: int = 32,
        document_length: int = 8192,
        texts_per_request: int = 128,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        embedding_type: str = "base64",
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be the served model's name, e.g. 'jina-colbert-v2'")
        if embedding_type not in ("base64", "float"):
            raise ValueError(f"embedding_type must be 'base64' or 'float', got {embedding_type!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(backoff, (int, float)) or backoff < 0:
            raise ValueError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.dim = check_positive_int(dim, "dim")
        self._query_length = check_positive_int(query_length, "query_length")
        self._document_length = check_positive_int(document_length, "document_length")
        self.texts_per_request = check_positive_int(texts_per_request, "texts_per_request")
        self.concurrency = check_positive_int(concurrency, "concurrency")
        self.max_retries = check_positive_int(max_retries, "max_retries", minimum=0)
        self.backoff = float(backoff)
        self.embedding_type = embedding_type
        key = api_key if api_key is not None else os.environ.get("JINA_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)

    @property
    def query_length(self) -> int:
        return self._query_length

    @property
    def document_length(self) -> int:
        return self._document_length

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> RemoteColBERT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def encode_queries(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [query_length, dim] array per query, from the server."""
        return self._encode(texts, "query", batch_size, show_progress_bar, as_tensor)

    def encode_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [kept tokens, dim] array per document, from the server."""
        return self._encode(texts, "document", batch_size, show_progress_bar, as_tensor)

    def _encode(
        self,
        texts: Sequence[str],
        input_type: str,
        batch_size: int,
        progress: bool | None,
        as_tensor: bool,
    ) -> list[Any]:
        texts = check_texts(texts, "texts")
        step = min(check_positive_int(batch_size, "batch_size"), self.texts_per_request)
        parts = [texts[start : start + step] for start in range(0, len(texts), step)]
        arrays: list[np.ndarray] = []
        with progress_bar(len(texts), f"Encoding {input_type}s remotely", progress) as bar:
            for part, encoded in zip(parts, self._requests(parts, input_type), strict=True):
                arrays.extend(encoded)
                bar.update(len(part))
        return [torch.from_numpy(array) for array in arrays] if as_tensor else arrays

    def _requests(self, parts: list[list[str]], input_type: str) -> Iterator[list[np.ndarray]]:
        """Each part's arrays, in order; up to `concurrency` requests in flight."""
        if len(parts) <= 1 or self.concurrency == 1:
            yield from (self._request(part, input_type) for part in parts)
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(parts))) as pool:
            yield from pool.map(lambda part: self._request(part, input_type), parts)

    def _request(self, texts: list[str], input_type: str) -> list[np.ndarray]:
        body = {
            "model": self.name,
            "input": texts,
            "input_type": input_type,
            "dimensions": self.dim,
            "embedding_type": self.embedding_type,
        }
        payload = self._post("/multi-vector", body)
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            arrays = [self._matrix(item["embeddings"]) for item in items]
        except (KeyError, TypeError, ValueError) as error:
            raise RemoteError(
                f"{self.base_url}/multi-vector answered a body that is not a multi-vector "
                f"response ({type(error).__name__}: {error})"
            ) from error
        if len(arrays) != len(texts):
            raise RemoteError(
                f"{self.base_url}/multi-vector answered {len(arrays)} items for {len(texts)} texts"
            )
        return arrays

    def _matrix(self, embeddings: Any) -> np.ndarray:
        """One text's rows as a float32 [rows, dim] array, from floats or base64.

        Raises:
            ValueError: the rows are not `dim` values wide.
        """
        if isinstance(embeddings, str):
            embeddings = [embeddings]
        if not embeddings:
            return np.empty((0, self.dim), dtype=np.float32)
        if isinstance(embeddings[0], str):
            raw = b"".join(base64.b64decode(row, validate=True) for row in embeddings)
            if len(raw) % (4 * self.dim):
                raise ValueError(
                    f"the base64 embeddings hold {len(raw)} bytes, not whole rows of "
                    f"dim={self.dim} float32 values; pass the dim the server answers with"
                )
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(-1, self.dim)
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(
                f"the embeddings have shape {matrix.shape}, not [rows, dim={self.dim}]; "
                "pass the dim the server answers with"
            )
        return matrix

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base_url + path
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as error:
                if attempt >= self.max_retries:
                    raise RemoteError(
                        f"{url} could not be reached after {attempt + 1} tries: {error}"
                    ) from error
                reason = f"{type(error).__name__}: {error}"
            else:
                if response.is_success:
                    return _json(url, response)
                if response.status_code not in RETRIED_STATUSES or attempt >= self.max_retries:
                    raise _failure(url, response)
                reason = f"{url} answered {response.status_code}"
            self._wait(attempt, response, reason)
            attempt += 1

    def _wait(self, attempt: int, response: httpx.Response | None, reason: str) -> None:
        delay = self.backoff * 2**attempt
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None and retry_after.replace(".", "", 1).isdigit():
            delay = min(float(retry_after), 60.0)
        logger.warning("%s; retrying in %.1f s", reason, delay)
        time.sleep(delay)


def _json(url: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise RemoteError(f"{url} answered {response.status_code} without a JSON body") from error


def _failure(url: str, response: httpx.Response) -> RemoteError:
    """The error for a final non-2xx answer, with the server's `detail` when it sent one."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    detail = payload.get("detail", response.text) if isinstance(payload, dict) else response.text
    status = response.status_code
    if status == 401:
        message = (
            f"{url} refused the API key (401: {detail}); pass api_key= or set JINA_API_KEY "
            "to the server's key"
        )
    elif status == 413:
        message = f"{url} found the request too large (413: {detail}); pass a smaller batch_size"
    else:
        message = f"{url} answered {status}: {detail}"
    return RemoteError(message, status)
