"""The OpenAPI spec and the answers agree: schemathesis against a real ``bentoml serve``.

The spec is what ``/docs.json`` serves (BentoML's, completed by
``recs_assets.core.serving.openapi``). Every operation gets ``MAX_EXAMPLES`` valid and
``MAX_EXAMPLES`` invalid requests (deterministic: the same ones every run), and every
schemathesis check runs on each answer: no 5xx; the status declared; the content type, headers and
body valid against the declared schema (errors included); invalid requests refused; valid ones
accepted.

``schemathesis.pytest.from_fixture`` (a test per operation) fails on pytest 9 (it sets
``Function._nodeid``, which pytest 9 removed), so the operations run in one test through
schemathesis' Hypothesis strategies, and the test reports every operation that failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from serving_helpers import export_tiny, model_store, service_asgi

from recs_assets.core.serving.launch import start_service

MAX_EXAMPLES = 50  # per operation and generation mode
API_ROUTES = {"/recommend", "/recommend_batch", "/similar_items", "/score", "/feedback"}

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {"enabled": True},  # every check, not only the default set
        "operations": [
            {
                # Feedback is accepted only for an item served to the user within
                # RECS_FEEDBACK_WINDOW_S (docs/api.md): a schema-valid request for an item never
                # shown is a 400 by design, which no schema can say.
                "include-path": "/feedback",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404"]}
                },
            }
        ],
    }
)
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same requests every run
    database=None,  # nothing stored, nothing replayed from an earlier run
    deadline=None,  # an HTTP round trip, not a pure function
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Served:
    """A running ``bentoml serve`` and the schema its ``/docs.json`` serves."""

    url: str
    schema: schemathesis.BaseSchema


@dataclass
class Tally:
    """Requests sent per operation and generation mode; the failures found."""

    requests: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``bentoml serve`` of the tiny popularity model, defaults (no keys, no rate limit, no
    Redis), no MLflow polling, and its data dir under tmp: the logs it writes, and the tables an
    admin endpoint such as ``/forget_user`` changes, are the test's own."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    export_tiny(tmp / "bentoml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECS_")}
    env.update(
        BENTOML_HOME=str(tmp / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        RECS_DATA_DIR=str(tmp / "data"),
        RECS_MODEL_POLL_S="0",
    )
    service = start_service(env, tmp / "serve.log")
    try:
        schema = schemathesis.openapi.from_url(f"{service.url}/docs.json", config=CONFIG)
        yield Served(service.url, schema)
    finally:
        service.stop()


def exercise(
    served: Served, operation: schemathesis.APIOperation, mode: GenerationMode, tally: Tally
) -> None:
    """``MAX_EXAMPLES`` requests of ``mode`` to ``operation``, every check on each answer; the
    first failure (shrunk by Hypothesis to a small request) goes into ``tally.failures``."""
    key = f"{operation.label} {mode.value}"
    tally.requests[key] = 0

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        tally.requests[key] += 1
        case.call_and_validate(base_url=served.url)

    try:
        run()
    except Unsatisfiable:
        # no invalid request exists (a GET without parameters): nothing to send
        assert mode is GenerationMode.NEGATIVE and tally.requests[key] == 0, key
        del tally.requests[key]
    # schemathesis raises its failures as an exception group (not an Exception); every operation
    # runs and every failure is reported
    except (Exception, BaseExceptionGroup) as failure:
        tally.failures.append(f"{key}:\n{failure}")


@pytest.mark.slow
def test_answers_match_the_openapi_spec(
    served: Served, record_property: Callable[[str, object], None]
) -> None:
    """Every operation, valid and invalid requests: no 5xx and no answer outside the spec."""
    operations = [result.ok() for result in served.schema.get_all_operations()]
    assert {op.path for op in operations} >= API_ROUTES
    tally = Tally()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(served, operation, mode, tally)
    record_property("requests", sum(tally.requests.values()))
    if tally.failures:
        pytest.fail("\n\n".join(tally.failures), pytrace=False)
    # every API operation got invalid requests too (a body can always be broken)
    assert all(f"POST {route} negative" in tally.requests for route in API_ROUTES)


def test_errors_are_objects_and_the_spec_declares_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process (the quick set): what the schemathesis run relies on, checked directly."""
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    export_tiny(home)
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        unknown = client.post("/similar_items", json={"item_id": "zz"})
        assert unknown.json() == {"error": "unknown item_id 'zz'"}  # BentoML sends [{...}]
        assert unknown.headers["content-length"] == str(len(unknown.content))
        bad = client.post("/recommend", json={"user_id": "u3", "k": 0}).json()
        assert bad["error"] == "1 validation error for Input" and bad["detail"][0]["loc"] == ["k"]
        # 2.0 is an integer to JSON Schema; true is not (pydantic's lax int would take both)
        assert client.post("/recommend", json={"user_id": "u3", "k": 2.0}).status_code == 200
        assert client.post("/recommend", json={"user_id": "u3", "k": True}).status_code == 400
        hour = {"user_id": "u3", "context": {"hour": True}}
        assert client.post("/recommend", json=hour).status_code == 400
        spec = client.get("/docs.json").json()
    assert spec["openapi"] == "3.1.0"
    recommend = spec["paths"]["/recommend"]["post"]
    declared = {"200", "400", "401", "403", "404", "413", "429", "500", "503"}
    assert declared <= set(recommend["responses"])
    assert "Retry-After" in recommend["responses"]["429"]["headers"]
    assert recommend["requestBody"]["required"] is True
    schemas = spec["components"]["schemas"]
    assert schemas["InvalidArgument"]["properties"]["detail"]["type"] == "array"
    # BentoML's inlined 200 schema said load_error is a string; the full schema allows null
    assert {"type": "null"} in schemas["ModelInfoIODescriptor"]["properties"]["load_error"]["anyOf"]
    ok = spec["paths"]["/model_info"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/ModelInfoIODescriptor"}
    assert "401" not in spec["paths"]["/healthz"]["get"]["responses"]  # open: no key needed
    assert "403" in spec["paths"]["/metrics"]["get"]["responses"]  # admin scope
