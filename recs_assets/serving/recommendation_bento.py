"""Asset ``recommendation_bento``: the Bento (service code + the exported champion) built from
``bento/bentofile.yaml``, ready for ``bentoml serve`` or ``bentoml containerize``.

The build runs ``bentoml build`` in a subprocess with ``RECS_BENTO_MODEL`` set to the exported tag
(the service module reads that variable when imported, and a subprocess imports it afresh), from a
copy of the bentofile whose ``envs`` pin the same tag: the Bento holds and serves exactly the model
version this run exported.
"""

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml
from dagster import AssetExecutionContext, AssetIn, Config, MetadataValue, Output, asset
from pydantic import Field

from recs_assets.core.paths import REPO_ROOT


class BentoBuildError(RuntimeError):
    """``bentoml build`` failed; the message carries its output."""


def build_bento(
    model_tag: str,
    labels: Mapping[str, str],
    bentofile: Path = REPO_ROOT / "bento" / "bentofile.yaml",
    build_ctx: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
) -> str:
    """Build the Bento for ``model_tag`` and return its tag (``recs:<version>``).

    Raises ``BentoBuildError`` with the tail of bentoml's output when the build fails.
    """
    spec = yaml.safe_load(bentofile.read_text())
    envs = [e for e in spec.get("envs", []) if e.get("name") != "RECS_BENTO_MODEL"]
    spec["envs"] = [*envs, {"name": "RECS_BENTO_MODEL", "value": model_tag}]
    run_env = {**(os.environ if env is None else env), "RECS_BENTO_MODEL": model_tag}
    run_env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    with tempfile.TemporaryDirectory(prefix="recs-bentofile-") as tmp:
        pinned = Path(tmp) / "bentofile.yaml"
        pinned.write_text(yaml.safe_dump(spec, sort_keys=False))
        cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(pinned), "-o", "tag"]
        for key, value in labels.items():
            cmd += ["--label", f"{key}={value}"]
        cmd.append(str(build_ctx))
        proc = subprocess.run(
            cmd, cwd=build_ctx, env=run_env, capture_output=True, text=True, timeout=timeout_s
        )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-2000:]
        raise BentoBuildError(f"bentoml build failed ({proc.returncode}) for {model_tag}:\n{tail}")
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    tag = lines[-1].removeprefix("__tag__:") if lines else ""
    if ":" not in tag:
        raise BentoBuildError(f"bentoml build printed no tag for {model_tag}: {proc.stdout!r}")
    return tag


class RecommendationBentoConfig(Config):
    """Which bentofile to build (relative to the repository root)."""

    bentofile: str = Field("bento/bentofile.yaml", description="Path of the bentofile.")


@asset(ins={"bento_model": AssetIn()})
def recommendation_bento(
    context: AssetExecutionContext, config: RecommendationBentoConfig, bento_model: str
) -> Output[str]:
    """The Bento of the recommendation service pinned to this run's exported champion."""
    import bentoml

    model = bentoml.models.get(bento_model)
    labels = {
        "model_tag": str(model.tag).replace(":", "-"),
        "model_version": str(model.info.labels.get("model_version", "")).replace("/", "-"),
        "dagster_run_id": context.run.run_id,
    }
    tag = build_bento(bento_model, labels, bentofile=REPO_ROOT / config.bentofile)
    bento = bentoml.get(tag)
    context.log.info(f"built Bento {tag} with model {bento_model}")
    return Output(
        tag,
        metadata={
            "bento": tag,
            "model": bento_model,
            "labels": MetadataValue.json(labels),
            "path": MetadataValue.path(str(bento.path)),
            "serve": MetadataValue.md(f"`bentoml serve {tag}` or `bentoml containerize {tag}`"),
        },
    )
