"""Alerts: a JSON payload (pure builder) posted to a webhook and written to the log.

The webhook URL comes from the ``alert_webhook`` resource (``url``, or ``$RECS_ALERT_WEBHOOK``).
Without a URL alerts only go to the log. A webhook that answers with an error or cannot be reached
raises, so the sensor tick fails visibly in the UI instead of losing the alert.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dagster import ConfigurableResource

WEBHOOK_ENV = "RECS_ALERT_WEBHOOK"
KINDS: tuple[str, ...] = ("run_failure", "check_failure", "freshness_failure")
SEVERITIES: tuple[str, ...] = ("ERROR", "WARN")
logger = logging.getLogger("recs.alerts")


def alert_payload(
    kind: str,
    title: str,
    severity: str = "ERROR",
    details: Mapping[str, Any] | None = None,
    url: str = "",
    at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of one alert.

    ``{"source": "recs", "kind", "severity", "title", "details", "url", "at"}``; ``kind`` is one of
    ``KINDS``, ``severity`` one of ``SEVERITIES``, ``at`` ISO 8601 UTC (default now), ``url`` a link
    to the Dagster UI page (may be empty).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; use one of {', '.join(KINDS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; use one of {', '.join(SEVERITIES)}")
    stamp = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
    return {
        "source": "recs",
        "kind": kind,
        "severity": severity,
        "title": title,
        "details": dict(details or {}),
        "url": url,
        "at": stamp,
    }


def post_json(url: str, payload: Mapping[str, Any], timeout_s: float = 5.0) -> int:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status (an error status raises)."""
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)


class AlertWebhook(ConfigurableResource):
    """Where alerts go.

    Attributes:
        url: webhook URL; empty means ``$RECS_ALERT_WEBHOOK``; with neither, alerts are only logged.
        timeout_s: HTTP timeout.
        dagster_url: base URL of the Dagster UI for links in alerts.
    """

    url: str = ""
    timeout_s: float = 5.0
    dagster_url: str = "http://127.0.0.1:3000"

    def resolved_url(self) -> str:
        return self.url or os.environ.get(WEBHOOK_ENV, "")

    def send(self, payload: Mapping[str, Any]) -> int | None:
        """Log the alert, then POST it when a URL is set; returns the HTTP status or ``None``."""
        logger.warning("ALERT %s", json.dumps(payload, sort_keys=True))
        url = self.resolved_url()
        if not url:
            return None
        return post_json(url, payload, self.timeout_s)

    def run_link(self, run_id: str) -> str:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}"
