"""Alerts: the payload, and real POSTs to a local HTTP receiver from the alert sensors."""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterEventType,
    Definitions,
    asset,
    asset_check,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
    job,
    op,
)

from recs_assets.automation.alerts import AlertWebhook, alert_payload
from recs_assets.automation.sensors import asset_health_alert, run_failure_alert


class Receiver:
    """An HTTP server on a free loopback port that records every JSON body POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers["Content-Length"])
                received.append(
                    {
                        "content_type": self.headers["Content-Type"],
                        **json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_alert_payload_fields() -> None:
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    p = alert_payload("check_failure", "t", "WARN", {"check": "c"}, url="http://x", at=at)
    assert p == {
        "source": "recs",
        "kind": "check_failure",
        "severity": "WARN",
        "title": "t",
        "details": {"check": "c"},
        "url": "http://x",
        "at": "2024-05-01T12:00:00+00:00",
    }
    with pytest.raises(ValueError, match="unknown alert kind 'oops'"):
        alert_payload("oops", "t")
    with pytest.raises(ValueError, match="unknown severity"):
        alert_payload("run_failure", "t", severity="INFO")


def test_webhook_posts_json_and_fails_loudly(receiver: Receiver) -> None:
    hook = AlertWebhook(url=receiver.url)
    assert hook.send(alert_payload("run_failure", "boom")) == 200
    assert receiver.bodies[0]["title"] == "boom"
    assert receiver.bodies[0]["content_type"] == "application/json"
    assert AlertWebhook(url="").send(alert_payload("run_failure", "log only")) is None
    with Receiver(status=500) as broken, pytest.raises(urllib.error.HTTPError, match="500"):
        AlertWebhook(url=broken.url).send(alert_payload("run_failure", "x"))


@op
def exploding_op() -> None:
    raise RuntimeError("disk full")


@job
def exploding_job() -> None:
    exploding_op()


def test_run_failure_sensor_posts_the_failed_run(receiver: Receiver) -> None:
    with instance_for_test() as instance:
        result = exploding_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
        context = build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"alert_webhook": AlertWebhook(url=receiver.url)},
        ).for_run_failure()
        run_failure_alert(context)
    (body,) = receiver.bodies
    assert body["kind"] == "run_failure"
    assert body["title"] == "run of exploding_job failed"
    assert body["details"]["run_id"] == result.run_id
    assert body["details"]["job"] == "exploding_job"
    assert body["url"].endswith(f"/runs/{result.run_id}")


@asset
def scores() -> int:
    """A number."""
    return 3


@asset_check(asset=scores)
def scores_positive(scores: int) -> AssetCheckResult:
    """Fails with WARN, to be alerted on."""
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, description="too low")


def test_asset_health_sensor_alerts_once_per_failed_check(receiver: Receiver) -> None:
    defs = Definitions(assets=[scores], asset_checks=[scores_positive])
    hook = AlertWebhook(url=receiver.url)
    with instance_for_test() as instance:
        defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)

        def evaluate(cursor: str | None):
            with build_sensor_context(
                cursor=cursor,
                instance=instance,
                definitions=defs,
                resources={"alert_webhook": hook},
            ) as ctx:
                return asset_health_alert(ctx)

        first = evaluate(None)
        assert len(receiver.bodies) == 1
        body = receiver.bodies[0]
        assert (body["kind"], body["severity"]) == ("check_failure", "WARN")
        assert body["details"]["check"] == "scores:scores_positive"
        second = evaluate(first.cursor)  # same evaluation: no second alert
        assert len(receiver.bodies) == 1
        assert second.skip_reason is not None
