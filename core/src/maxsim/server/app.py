"""The FastAPI app: the Jina multi-vector and rerank API over one local model."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from maxsim.late_interaction import TokenizedEncoder, rank
from maxsim.server.guard import Guard
from maxsim.server.schemas import (
    ModelCard,
    ModelList,
    MultiVectorRequest,
    MultiVectorResponse,
    RerankRequest,
    RerankResponse,
)
from maxsim.server.worker import Encoded, ModelWorker
from maxsim.validation import check_positive_int


@dataclass(frozen=True)
class ServerSettings:
    """What `maxsim serve` is told besides the model.

    `served_model_name`: the name requests must give (default: the name the model was
    loaded by, or its last path part). `api_key`: the bearer token `/v1/` needs (None:
    open). `max_inputs`: texts per request; `max_body_bytes`: request size (413 beyond).
    `batch_size`: texts per forward pass of the model. `cors_origins`: origins allowed by
    CORS (none by default).
    """

    served_model_name: str | None = None
    api_key: str | None = None
    max_inputs: int = 2048
    max_body_bytes: int = 32 * 2**20
    batch_size: int = 64
    cors_origins: tuple[str, ...] = ()


def create_app(model: TokenizedEncoder, settings: ServerSettings | None = None) -> FastAPI:
    """The API app for `model` (already loaded); the model worker runs while the app does.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> from maxsim.testing import FakeColBERT
        >>> app = create_app(FakeColBERT(dim=8), ServerSettings(served_model_name="fake"))
        >>> with TestClient(app) as client:
        ...     reply = client.post("/v1/rerank", json={
        ...         "model": "fake", "query": "red apple", "documents": ["sky", "red apple"]})
        >>> [result["index"] for result in reply.json()["results"]]
        [1, 0]
    """
    if not isinstance(model, TokenizedEncoder):
        raise TypeError(
            "maxsim serve runs a local model (maxsim.ColBERT or another TokenizedEncoder), "
            f"got {type(model).__name__}"
        )
    settings = settings or ServerSettings()
    check_positive_int(settings.max_inputs, "max_inputs")
    check_positive_int(settings.max_body_bytes, "max_body_bytes")
    check_positive_int(settings.batch_size, "batch_size")
    names = _accepted_names(model.name, settings.served_model_name)
    served = names[-1] if settings.served_model_name is None else settings.served_model_name
    worker = ModelWorker(model, batch_size=settings.batch_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(
        title="maxsim",
        summary="Late-interaction (ColBERT) vectors and reranking, Jina API compatible.",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]

    def check_request(requested: str, count: int, field: str) -> None:
        if requested not in names:
            raise HTTPException(
                400, f"model {requested!r} is not served here; use model={served!r}"
            )
        if count > settings.max_inputs:
            raise HTTPException(
                413,
                f"{field} has {count} texts; at most {settings.max_inputs} per request "
                "(--max-inputs); split it into several requests",
            )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """200 once the model is loaded (the server starts listening after that)."""
        return {"status": "ok", "model": served}

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        """The one model served, with its dim and token limits."""
        card = ModelCard(
            id=served,
            dim=model.dim,
            query_length=model.query_length,
            document_length=model.document_length,
        )
        return ModelList(data=[card])

    @app.post("/v1/multi-vector", response_model=MultiVectorResponse)
    async def multi_vector(request: MultiVectorRequest) -> Response:
        """Token vectors: queries get `query_length` rows, documents are truncated at
        `document_length` tokens."""
        check_request(request.model, len(request.input), "input")
        dimensions = model.dim if request.dimensions is None else request.dimensions
        if not 1 <= dimensions <= model.dim:
            raise HTTPException(
                422, f"dimensions must be in 1..{model.dim} for this model, got {dimensions}"
            )
        encoded = await worker.encode(list(request.input), is_query=request.input_type == "query")
        content = await run_in_threadpool(
            _multi_vector_body, encoded, served, dimensions, request.embedding_type
        )
        return Response(content, media_type="application/json")

    @app.post("/v1/rerank", response_model=RerankResponse)
    async def rerank(request: RerankRequest) -> Response:
        """Documents ordered by MaxSim against the query, best first (`model.rerank`)."""
        check_request(request.model, len(request.documents), "documents")
        query, documents = await asyncio.gather(
            worker.encode([request.query], is_query=True),
            worker.encode(request.documents, is_query=False),
        )
        results = await run_in_threadpool(
            rank, query.vectors[0], documents.vectors, request.documents, request.top_n
        )
        body = {
            "model": served,
            "usage": {"total_tokens": query.tokens + documents.tokens},
            "results": [
                {
                    "index": result.index,
                    "relevance_score": result.score,
                    **({"document": {"text": result.document}} if request.return_documents else {}),
                }
                for result in results
            ],
        }
        return JSONResponse(body)

    app.add_middleware(
        Guard,
        api_key=settings.api_key,
        max_body_bytes=settings.max_body_bytes,
    )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        # Added last, so outermost: preflights and the Guard's refusals get CORS headers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def _accepted_names(loaded: str, served: str | None) -> list[str]:
    """The model names a request may give; the last one is reported back."""
    if served is not None:
        if not served.strip():
            raise ValueError("served_model_name must be a non-empty name")
        return [served]
    short = PurePath(loaded.rstrip("/\\")).name
    return [loaded] if short in ("", loaded) else [loaded, short]


def _multi_vector_body(encoded: Encoded, name: str, dimensions: int, embedding_type: str) -> bytes:
    data = []
    for index, vectors in enumerate(encoded.vectors):
        cut = _matryoshka(vectors, dimensions)
        embeddings: Any = (
            base64.b64encode(cut.astype("<f4").tobytes()).decode("ascii")
            if embedding_type == "base64"
            else cut.tolist()
        )
        data.append({"object": "embeddings", "index": index, "embeddings": embeddings})
    usage = {"total_tokens": encoded.tokens, "prompt_tokens": encoded.tokens}
    body = {"model": name, "object": "list", "usage": usage, "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def _matryoshka(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """The first `dimensions` columns, each row renormalised to length 1."""
    if dimensions == vectors.shape[1]:
        return vectors
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.maximum(norms, 1e-12)).astype(np.float32)


async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    """The first problem as `{"detail": "field: what is wrong"}`; bad JSON is a 400."""
    first = error.errors()[0]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "")
        return JSONResponse({"detail": f"the request body is not valid JSON: {reason}"}, 400)
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    detail = message if message.startswith(location) else f"{location}: {message}"
    return JSONResponse({"detail": detail}, 422)
