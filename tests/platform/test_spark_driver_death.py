"""A driver JVM that runs out of heap fails its step with the cause, instead of hanging."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from recs_assets.platform.spark_resource import EXIT_ON_OOM, with_exit_on_oom

SCRIPT = textwrap.dedent(
    """
    from dagster import asset, materialize

    from recs_assets.platform.spark_resource import SparkResource

    @asset
    def greedy(spark: SparkResource) -> int:
        session = spark.get_session()
        with spark.failing_with_cause("greedy"):
            assert session.range(10).count() == 10
            # 4 GB of longs in a 512 MB heap: java.lang.OutOfMemoryError in the driver JVM
            session.sparkContext._gateway.new_array(session._jvm.long, 500_000_000)
        return 1

    spark = SparkResource(master="local[1]", conf={"spark.driver.memory": "512m"})
    result = materialize([greedy], resources={"spark": spark}, raise_on_error=False)
    error = result.get_step_failure_events()[0].step_failure_data.error
    cause = error.cause or error  # the step error wraps what the asset raised
    print("SUCCESS" if result.success else "FAILED", cause.cls_name, cause.message.replace("\\n", " "))
    """
)


def test_driver_oom_fails_the_step_with_its_cause() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240
    )
    out = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert out.startswith("FAILED SparkDriverDied"), out
    assert "ran out of heap (java.lang.OutOfMemoryError)" in out
    assert "spark.driver.memory=512m" in out and "RECS_SPARK_DRIVER_MEMORY" in out


def test_exit_on_oom_is_added_to_driver_options_once() -> None:
    assert with_exit_on_oom({})["spark.driver.extraJavaOptions"] == EXIT_ON_OOM
    mine = {"spark.driver.extraJavaOptions": "-Dfoo=1"}
    assert with_exit_on_oom(mine)["spark.driver.extraJavaOptions"] == f"-Dfoo=1 {EXIT_ON_OOM}"
    twice = with_exit_on_oom(with_exit_on_oom(mine))
    assert twice["spark.driver.extraJavaOptions"].split().count(EXIT_ON_OOM) == 1
