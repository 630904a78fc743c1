"""The HTTP contract: ``/docs.json`` declares what the service answers, and the answers keep it.

BentoML 1.4 generates the OpenAPI spec from the endpoint signatures, with four gaps that
schemathesis found against ``bentoml serve`` (``tests/serving/test_serving_schemathesis.py``):

- each request and ``200`` schema is inlined with only the first branch of every ``anyOf``, so an
  optional field reads as required-type (``load_error: null`` violates ``string``; ``variant: null``
  looks invalid). The full pydantic schemas are in ``components``: each operation uses them, and
  the spec says ``3.1.0`` (JSON Schema 2020-12, which pydantic writes: ``{"type": "null"}``);
- a request body with required fields is not marked required;
- the ``detail`` of a ``400`` is pydantic's list of errors, declared as a string;
- the middlewares' answers (``401``, ``403``, ``429`` from ``access``; ``413`` from ``limits``) and
  ``503`` (the worker is starting) are not declared.

And one answer breaks BentoML's own declaration: a ``400``/``404`` raised as a BentoML exception
(``InputError``, ``UnknownItemError``) is sent as a one-element list ``[{"error": ...}]`` (a tuple
in ``_bentoml_impl/server/app.py``) where the spec declares the object every other error is.

``ApiContract`` (an ASGI middleware) rewrites the spec with ``contract_spec`` as it is served and
unwraps those bodies, so every error the service sends is ``{"error": "...", "detail": [...]?}``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from recs_assets.core.serving.access import OPEN_PATHS, OPEN_PREFIXES, ROUTE_SCOPES
from recs_assets.core.serving.limits import MAX_BODY_ENV

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SPEC_PATH = "/docs.json"
OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{}"
BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError")

VALIDATION_ISSUE = {
    "type": "object",
    "title": "ValidationIssue",
    "description": "One reason a request was refused (pydantic's error).",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {
            "type": "array",
            "items": {"type": ["string", "integer"]},
            "description": "Where: the field path (empty: the body itself).",
        },
        "msg": {"type": "string", "description": "What is wrong."},
        "type": {"type": "string", "description": "Pydantic's error type."},
        "url": {"type": "string", "description": "Pydantic's page about the error type."},
    },
}
ERROR_MESSAGE = {
    "type": "object",
    "title": "ErrorMessage",
    "description": "A refused request: what was wrong.",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "Why the request was refused."}},
}


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format("ErrorMessage")}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def contract_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's spec (``/docs.json``) completed to declare what the service answers (a copy)."""
    spec = copy.deepcopy(spec)
    spec["openapi"] = OPENAPI_VERSION
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["ValidationIssue"] = copy.deepcopy(VALIDATION_ISSUE)
    schemas["ErrorMessage"] = copy.deepcopy(ERROR_MESSAGE)
    for name in BENTOML_ERRORS:
        if name in schemas:
            schemas[name].setdefault("properties", {})["detail"] = {
                "type": "array",
                "items": {"$ref": REF.format("ValidationIssue")},
                "title": "Error Detail",
                "description": "The reasons, for a request that does not match its schema.",
            }
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _use_full_schemas(operation, schemas)
            _declare_refusals(path, operation)
    return spec


def _use_full_schemas(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Replace BentoML's flattened request and ``200`` schemas by the full component schemas."""
    name = operation.get("x-bentoml-name")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    full_input = schemas.get(f"{name}__Input")
    if body is not None and full_input is not None:
        body["schema"] = copy.deepcopy(full_input)  # inline: the UI lists the fields
        if full_input.get("required"):
            operation["requestBody"]["required"] = True
    ok = operation["responses"].get("200", {}).get("content", {}).get("application/json")
    title = ok.get("schema", {}).get("title") if ok is not None else None
    if ok is not None and title in schemas:
        ok["schema"] = {"$ref": REF.format(title)}


def _declare_refusals(path: str, operation: dict[str, Any]) -> None:
    """The answers of the middlewares (and of a worker still starting) on ``path``."""
    responses = operation["responses"]
    if "requestBody" in operation:
        responses["413"] = _error_response(f"The body is larger than {MAX_BODY_ENV}.")
    if "x-bentoml-name" in operation:
        responses["503"] = _error_response("The worker is still starting.")
    if _is_open(path):
        return
    scope = ROUTE_SCOPES.get(path, "admin")
    responses["401"] = _error_response("API keys are configured and none valid was sent.")
    responses["403"] = _error_response(f"The API key lacks the '{scope}' scope.")
    responses["429"] = _error_response(
        "Over the rate limit (RECS_RATE_LIMIT_PER_S).",
        {
            "Retry-After": {
                "description": "Seconds until the next window.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    )


def unwrapped_error(body: bytes) -> bytes | None:
    """``{"error": ...}`` for BentoML's ``[{"error": ...}]`` error body; None for any other."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return _dumps(value[0]) if "error" in value[0] else None
    return None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class ApiContract:
    """ASGI middleware: serves ``contract_spec`` at ``/docs.json``; error bodies as objects."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == SPEC_PATH:
            send = _rewriting(send, range(200, 201), _spec_body)
        else:
            send = _rewriting(send, range(400, 500), unwrapped_error)
        await self.app(scope, receive, send)


def _spec_body(body: bytes) -> bytes | None:
    return _dumps(contract_spec(json.loads(body)))


def _rewriting(send: Send, statuses: range, rewrite: Callable[[bytes], bytes | None]) -> Send:
    """``send`` that holds back a JSON response with a status in ``statuses``, rewrites its body
    (None: unchanged) and sends it with its new length; other responses pass through."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def rewriting_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            json_body = headers.get(b"content-type", b"").startswith(b"application/json")
            if int(message["status"]) in statuses and json_body:
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            body = rewrite(body) or body
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return rewriting_send
