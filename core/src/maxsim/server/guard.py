"""ASGI middleware in front of the API: request ids, bearer auth, body limit, no tracebacks."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger("maxsim")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIX = "/v1/"


class Guard:
    """Wraps the app: every response gets an `x-request-id`; `/v1/` needs the bearer key
    (when one is set); bodies over `max_body_bytes` get 413; an unhandled error is logged
    with its request id and answered 500 without details."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(send_with_id, *refusal)
            return
        body = await self._body(receive)
        if body is None:
            await _answer(
                send_with_id,
                413,
                f"the request body is larger than {self.max_body_bytes} bytes "
                "(--max-body-bytes); send fewer or shorter texts per request",
            )
            return
        try:
            await self.app(scope, _replay(body, receive), send_with_id)
        except Exception:
            logger.exception(
                "request %s (%s %s) failed", request_id, scope.get("method"), scope.get("path")
            )
            if not started:
                await _answer(
                    send_with_id,
                    500,
                    f"internal server error; the server log has the details under request id "
                    f"{request_id}",
                )

    def _refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        """(status, detail, headers) when the request is refused before its body is read."""
        headers = dict(scope.get("headers", []))
        if self.api_key is not None and scope.get("path", "").startswith(PROTECTED_PREFIX):
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                token.strip().encode(), self.api_key.encode()
            ):
                return (
                    401,
                    "missing or wrong API key; send the header 'Authorization: Bearer KEY'",
                    {"www-authenticate": "Bearer"},
                )
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return (
                413,
                f"the request body is {int(declared)} bytes, more than {self.max_body_bytes} "
                "(--max-body-bytes); send fewer or shorter texts per request",
                {},
            )
        return None

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None once it passes `max_body_bytes`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the original's messages."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    content = json.dumps({"detail": detail}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((key.encode(), value.encode()) for key, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})
