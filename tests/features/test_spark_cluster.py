"""The Phase 1 contract and the feature transforms on a real Spark standalone cluster (master +
worker on 127.0.0.1), over events the executors read from storage.

The master and worker are the ``spark-class`` daemons shipped in the pyspark package. The driver
runs in a subprocess because this test process may already hold a local SparkContext.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest

from recs_assets.core.paths import REPO_ROOT as REPO

pytestmark = pytest.mark.slow

SPARK_HOME = Path(pyspark.__file__).parent

DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[2])
from features_data import AS_OF, hand_tables
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.core.features.spark_frames import to_spark
from recs_assets.core.features.transforms.user import user_features
from recs_assets.core.features.transforms.item import item_features
from recs_assets.core.features.transforms.context import context_features
conf = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
        "spark.executor.memory": "512m", "spark.cores.max": "1", "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
spark = SparkResource(master=sys.argv[1], app_name="recs-cluster-test", conf=conf).get_session()
import pandas as pd
from recs_assets.core.phase1.daily import event_days
from recs_assets.core.phase1.spark_validation import validate_interactions_spark
from recs_assets.core.table_store import write_table
t = hand_tables()
us = to_spark(spark, t.users, "users")
it = to_spark(spark, t.items, "items")
# the events land on storage by day, with two bad rows; the executors read and validate them there
raw = t.interactions.reset_index(drop=True)
bad = raw.iloc[[0, 1]].assign(event_id=["bad-1", "bad-2"], event_type=["rate", "view"],
                              rating=[9.0, None], user_id=["u1", "zz"])
raw = pd.concat([raw, bad], ignore_index=True)
raw.insert(0, "row_index", range(len(raw)))
for day, frame in raw.groupby(event_days(raw["timestamp"])):
    write_table(frame, sys.argv[3], "landed_interactions", day)
landed = spark.read.parquet(sys.argv[3] + "/landed_interactions").drop("partition")
checked = validate_interactions_spark(landed, us.select("user_id"), it.select("item_id"),
                                      pd.Timestamp("2025-01-01", tz="UTC"))
quarantine = sorted((int(r.row_index), r.check) for r in checked.quarantine.collect())
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.phase1.validation import validate_tables
on_driver = validate_tables(Phase1Tables(raw.drop(columns="row_index"), t.users, t.items),
                            pd.Timestamp("2025-01-01", tz="UTC")).quarantine
pandas_quarantine = sorted((int(r), c) for r, c in zip(on_driver.row_index, on_driver.check))
ev = checked.valid.drop("row_index")
u = user_features(ev, us, it, as_of=AS_OF, categories=["Action", "Comedy", "Drama"]).toPandas()
i = item_features(ev, it, as_of=AS_OF).toPandas()
c = context_features(ev).toPandas()
out = {"master": spark.sparkContext.master,
       "u1_events_30d": int(u.set_index("user_id").loc["u1", "events_30d"]),
       "i2_bayes": float(i.set_index("item_id").loc["i2", "bayes_rating"]),
       "context_rows": len(c),
       "quarantine": quarantine,
       "pandas_quarantine": pandas_quarantine,
       "valid_events": ev.count(),
       "executors": spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()}
print("RESULT " + json.dumps(out))
spark.stop()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not seen in {log}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture()
def cluster(tmp_path: Path):
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
    }
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log, worker_log = tmp_path / "master.log", tmp_path / "worker.log"
    master = _start(
        [
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port()),
        ],
        master_log,
        env,
    )  # fmt: skip
    procs = [master]
    try:
        _wait_for(master_log, "I have been elected leader", master, 120)
        worker = _start(
            [
                "org.apache.spark.deploy.worker.Worker", url,
                "--host", "127.0.0.1", "--port", str(_free_port()),
                "--webui-port", str(_free_port()), "--cores", "1", "--memory", "1g",
            ],
            worker_log,
            env,
        )  # fmt: skip
        procs.append(worker)
        _wait_for(worker_log, "Successfully registered with master", worker, 120)
        yield url, env
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_validation_and_transforms_on_standalone_cluster(cluster, tmp_path: Path) -> None:
    url, env = cluster
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, url, str(REPO / "tests"), str(tmp_path / "tables")],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"driver failed (rc {done.returncode}):\n{done.stderr[-4000:]}"
    out = json.loads(lines[0].removeprefix("RESULT "))
    assert out["master"] == url
    assert out["executors"] >= 2  # the driver plus the worker's executor
    # same hand values as the local tests: u1 has 4 events in 30 days; i2 bayes (10*3+4)/11
    assert out["u1_events_30d"] == 4
    assert out["i2_bayes"] == pytest.approx(34 / 11)
    # the Phase 1 contract ran on the cluster over the events read from storage: the two bad
    # rows (a rating off the 1-5 scale, an unknown user) and the hand data's own orphan (u4 is
    # not among the users) are quarantined, as the pandas path does on the driver
    assert out["quarantine"] == [
        [4, "referential_integrity"],
        [6, "range"],
        [7, "referential_integrity"],
    ]
    assert out["quarantine"] == out["pandas_quarantine"]
    assert out["valid_events"] == out["context_rows"] == 5
