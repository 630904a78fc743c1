"""Request limits of the HTTP service, enforced before a request reaches an endpoint.

``BodyLimit`` is a plain ASGI middleware: a request whose body is larger than ``max_bytes`` gets
``413`` with a JSON message and is never read whole: a declared ``Content-Length`` above the cap is
refused at once; a body without one (chunked) is read here up to the cap, refused as soon as what
has arrived passes it, else handed on. ``RECS_MAX_BODY_BYTES``
sets the cap (default 1 MiB: a batch of the largest allowed size is far below it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MAX_BODY_ENV = "RECS_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1 << 20

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("recs.service")


def max_body_bytes(env: dict[str, str] | None = None) -> int:
    """``$RECS_MAX_BODY_BYTES`` (a positive integer), else 1 MiB."""
    raw = (env if env is not None else os.environ).get(MAX_BODY_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{MAX_BODY_ENV}={raw!r} must be a positive number of bytes")
    return value


class BodyLimit:
    """ASGI middleware answering ``413`` to bodies above ``max_bytes``."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes if max_bytes is not None else max_body_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, declared)
            return
        if declared is not None:  # the server stops reading at the declared length
            await self.app(scope, receive, send)
            return
        # no declared length (chunked): read up to the cap here, then hand the body on
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body = message.get("body", b"")
            received += len(body)
            if received > self.max_bytes:
                await self._refuse(scope, send, received)
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        logger.info(
            "rejected %s %s: body of %d bytes over the %d-byte limit",
            scope.get("method", ""),
            scope.get("path", ""),
            size,
            self.max_bytes,
        )
        body = json.dumps(
            {
                "error": f"request body too large: {size} bytes, the limit is {self.max_bytes} "
                f"({MAX_BODY_ENV})"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
