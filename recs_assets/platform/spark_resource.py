"""The Spark resource: owns the one SparkSession that feature assets use.

Transforms never create sessions; assets ask this resource for one. The session is created lazily
(on the first ``get_session`` call), so loading definitions does not start a JVM.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource
from py4j.protocol import Py4JNetworkError
from pydantic import Field
from pyspark.sql import SparkSession

MASTER_ENV = "RECS_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"

# Settings every recs session needs for correct results, whatever the deployment:
# UTC wall clock for hour/day features, and microsecond Parquet timestamps (what Feast reads).
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

# The driver JVM exits at its first OutOfMemoryError instead of thrashing in garbage collection
# with the Python side waiting on it forever (how a 10-million-event run once hung for 15 min).
EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"
OOM_EXIT_CODE = 3  # the JVM's exit status under ExitOnOutOfMemoryError
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"


class SparkDriverDied(RuntimeError):
    """The local driver JVM exited under a running Spark job; the message names the cause."""


def driver_exit_code(wait_s: float = 0.0) -> int | None:
    """The exit status of this process's Spark driver JVM, or None while it runs after waiting
    up to ``wait_s`` (or when none was started here)."""
    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)
    if proc is None:
        return None
    try:
        return proc.wait(timeout=wait_s) if wait_s > 0 else proc.poll()
    except subprocess.TimeoutExpired:
        return None


def with_exit_on_oom(conf: dict[str, str]) -> dict[str, str]:
    """``conf`` whose driver Java options include ``-XX:+ExitOnOutOfMemoryError``."""
    options = conf.get(DRIVER_JAVA_OPTIONS, "")
    if EXIT_ON_OOM in options.split():
        return dict(conf)
    return {**conf, DRIVER_JAVA_OPTIONS: f"{options} {EXIT_ON_OOM}".strip()}


class SparkResource(ConfigurableResource):
    """A lazily created SparkSession.

    Attributes:
        master: Spark master URL; empty means ``$RECS_SPARK_MASTER`` or ``local[*]``.
        app_name: application name shown in the Spark UI / master.
        conf: extra Spark settings (``spark.sql.shuffle.partitions`` and friends).
    """

    master: str = Field(
        default="", description="Spark master; empty: $RECS_SPARK_MASTER or local[*]"
    )
    app_name: str = "recs"
    conf: dict[str, str] = Field(default_factory=dict)

    def resolved_master(self) -> str:
        return self.master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER

    def get_session(self) -> SparkSession:
        """Return the active session, creating it on first use."""
        builder = SparkSession.builder.master(self.resolved_master()).appName(self.app_name)
        for key, value in with_exit_on_oom({**self.conf, **REQUIRED_CONF}).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        # getOrCreate may hand back a session started elsewhere: enforce the correctness settings.
        for key, value in REQUIRED_CONF.items():
            session.conf.set(key, value)
        return session

    @contextmanager
    def failing_with_cause(self, what: str) -> Iterator[None]:
        """Re-raise a failure inside the block as ``SparkDriverDied`` with its cause when the
        driver JVM died under it (py4j only reports a lost connection)."""
        try:
            yield
        except Exception as exc:
            # a lost connection may be a JVM still exiting: give it a moment to be reaped
            lost = isinstance(exc, Py4JNetworkError | ConnectionError)
            code = driver_exit_code(wait_s=10.0 if lost else 0.0)
            if code is None:
                raise
            memory = self.conf.get("spark.driver.memory", "1g (Spark's default)")
            cause = (
                "it ran out of heap (java.lang.OutOfMemoryError)"
                if code == OOM_EXIT_CODE
                else f"exit status {code}"
            )
            raise SparkDriverDied(
                f"{what}: the Spark driver JVM died: {cause}, with spark.driver.memory={memory}. "
                "Give it more (RECS_SPARK_DRIVER_MEMORY) or run on a cluster (RECS_SPARK_MASTER)."
            ) from exc
