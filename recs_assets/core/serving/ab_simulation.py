"""``recs simulate-ab``: an A/B test of two models with simulated users of the synthetic source.

Steps: generate the synthetic data set (its hidden ``GroundTruth`` is kept), fit two model
families on its positive interactions, export both into a temporary BentoML store, start
``bentoml serve bento.service:RecsService`` on a free loopback port with a 50/50 experiment,
and send ``n_users`` random users through ``POST /recommend``. Each item shown is clicked with the
ground truth's ``click_probability``; a click converts with the generator's cart-and-purchase
probability (``(0.10 + 0.35 affinity) * (0.35 + 0.40 quality)``). Clicks and conversions go to
``POST /feedback``. After the service stops (flushing its exposure log), the per-variant CTR and
conversion rate, the uplift of the treatment and its 95% interval are computed from the logs the
service wrote, checked against the simulator's own tally, printed and written as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from recs_assets.core.evaluation.protocols import ImplicitFeedback, positive_interactions
from recs_assets.core.models.base import InteractionMatrix
from recs_assets.core.models.registry import model_factory
from recs_assets.core.monitoring.ab_stats import compare_variants, variant_rates
from recs_assets.core.paths import REPO_ROOT
from recs_assets.core.phase1.synthetic import (
    GroundTruth,
    affinity,
    click_probability,
    generate_preset,
)
from recs_assets.core.serving.champion import data_version, item_popularity
from recs_assets.core.serving.export import export_model
from recs_assets.core.serving.exposure import read_ab_events

# Events that say a user wanted an item (views are exposures chosen by the generator, not choices).
POSITIVE_EVENTS: tuple[str, ...] = ("click", "add_to_cart", "purchase", "rate")


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate.

    Attributes:
        control: model family of the control variant (``MODEL_FACTORIES`` name).
        treatment: model family of the treatment variant.
        n_users: simulated users, one ``/recommend`` call each (drawn without replacement).
        k: items per list.
        preset: synthetic data set (``small``, ``1m``, ``10m``).
        seed: seeds the data set, the user draw and every click.
        startup_timeout_s: how long to wait for the service to become ready.
    """

    control: str = "popularity"
    treatment: str = "ease"
    n_users: int = 1000
    k: int = 10
    preset: str = "small"
    seed: int = 7
    startup_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.n_users < 2 or not 1 <= self.k <= 100:
            raise ValueError(f"need n_users >= 2 and 1 <= k <= 100, got {self.n_users}, {self.k}")
        if self.control == self.treatment:
            raise ValueError(f"control and treatment are both {self.control!r}")


@dataclass(frozen=True)
class Tally:
    """What the simulator itself saw, per variant."""

    lists: int
    impressions: int
    clicks: int
    conversions: int


def fit_and_export(
    settings: SimulationSettings, interactions: pd.DataFrame, items: pd.DataFrame, gt: GroundTruth
) -> dict[str, str]:
    """Fit both families on the positives and export them; variant name -> BentoML tag.

    Run inside ``model_store(home)`` to write to a temporary store.
    """
    pos = positive_interactions(interactions, ImplicitFeedback(positive_events=POSITIVE_EVENTS))
    train = InteractionMatrix.from_frame(
        pos, user_ids=[str(u) for u in gt.user_ids], item_ids=[str(i) for i in gt.item_ids]
    )
    popularity = item_popularity(train)
    tags: dict[str, str] = {}
    for variant, family in (("control", settings.control), ("treatment", settings.treatment)):
        model = model_factory(family)().fit(train)
        labels = {
            "model_version": f"sim-{family}",
            "dagster_run_id": "simulate-ab",
            "data_version": data_version(train),
            "model_family": family,
        }
        tags[variant] = str(export_model(model, train, items, popularity, labels))
    return tags


@contextmanager
def model_store(home: Path) -> Iterator[None]:
    """Point this process's BentoML model store at ``home/models`` (what ``BENTOML_HOME=home``
    gives the service subprocess) for the block."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    (home / "models").mkdir(parents=True, exist_ok=True)
    with BentoMLContainer.model_store.patch(ModelStore(home / "models")):
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(env: dict[str, str], log_path: Path, timeout_s: float) -> Iterator[str]:
    """``bentoml serve`` on a free loopback port with ``env``; yields its URL, stops it after
    (SIGTERM, so the exposure log is flushed)."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "bento.service:RecsService"]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"bentoml serve exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
                    )
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bentoml serve not ready after {timeout_s} s on {url}")
                time.sleep(0.5)
            yield url
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def conversion_probability(gt: GroundTruth, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """P(conversion | click): the generator's add-to-cart then purchase probabilities."""
    aff = affinity(gt, user, item)
    return (0.10 + 0.35 * aff) * (0.35 + 0.40 * gt.item_quality[item])


def drive(
    url: str, gt: GroundTruth, users: np.ndarray, k: int, rng: np.random.Generator
) -> dict[str, Tally]:
    """One ``/recommend`` per user, clicks and conversions drawn and posted; tally per variant."""
    item_index = {str(i): n for n, i in enumerate(gt.item_ids)}
    counts: dict[str, list[int]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for u in users:
            uid = str(gt.user_ids[u])
            r = client.post("/recommend", json={"user_id": uid, "k": k, "exclude_seen": True})
            r.raise_for_status()
            body = r.json()
            shown = [it["item_id"] for it in body["items"]]
            idx = np.array([item_index[i] for i in shown], dtype=np.int64)
            clicked = rng.random(len(idx)) < click_probability(gt, np.full(len(idx), u), idx)
            converted = clicked & (
                rng.random(len(idx)) < conversion_probability(gt, np.full(len(idx), u), idx)
            )
            c = counts.setdefault(body["variant"], [0, 0, 0, 0])
            c[0] += 1
            c[1] += len(idx)
            for item, click_it, conv in zip(shown, clicked, converted, strict=True):
                if click_it:
                    c[2] += 1
                    _post_feedback(client, uid, item, "click", body)
                if conv:
                    c[3] += 1
                    _post_feedback(client, uid, item, "conversion", body)
    return {v: Tally(*c) for v, c in counts.items()}


def _post_feedback(
    client: httpx.Client, user_id: str, item_id: str, event: str, shown: dict[str, Any]
) -> None:
    payload = {
        "user_id": user_id,
        "item_id": item_id,
        "event": event,
        "variant": shown["variant"],
        "model_version": shown["model_version"],
    }
    client.post("/feedback", json=payload).raise_for_status()


def check_logs(rates: pd.DataFrame, tally: dict[str, Tally]) -> None:
    """The service's logs must count exactly what the simulator saw and did."""
    logged = rates.set_index("variant")[["impressions", "clicks", "conversions"]]
    seen = pd.DataFrame(
        {v: [t.impressions, t.clicks, t.conversions] for v, t in tally.items()},
        index=["impressions", "clicks", "conversions"],
    ).T
    if not logged.sort_index().equals(seen.sort_index().astype(logged.dtypes.iloc[0])):
        raise RuntimeError(f"exposure log does not match the simulation:\n{logged}\nvs\n{seen}")


def simulate_ab(settings: SimulationSettings, workdir: Path) -> dict[str, Any]:
    """Run the whole simulation in ``workdir``; returns the JSON-ready result."""
    started = time.monotonic()
    data = generate_preset(settings.preset, seed=settings.seed)
    gt = data.ground_truth
    home = workdir / "bentoml"
    env = {
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "RECS_DATA_DIR": str(workdir / "data"),
        "RECS_EXPOSURE_LOG": "on",
    }
    # the child gets its own folders and no Redis: nothing outside ``workdir`` is touched
    child_env = {**env, "RECS_SERVED_DIR": "", "RECS_FEEDBACK_DIR": "", "RECS_REDIS_URL": ""}
    fit_started = time.monotonic()
    with model_store(home):
        tags = fit_and_export(settings, data.tables.interactions, data.tables.items, gt)
    fit_s = time.monotonic() - fit_started
    config = {
        "name": f"{settings.treatment}-vs-{settings.control}",
        "salt": f"simulate-{settings.seed}",
        "variants": [
            {"name": "control", "model": tags["control"], "share": 0.5},
            {"name": "treatment", "model": tags["treatment"], "share": 0.5},
        ],
    }
    cfg_path = workdir / "ab.json"
    cfg_path.write_text(json.dumps(config, indent=2))
    rng = np.random.default_rng(settings.seed)
    users = rng.choice(gt.n_users, size=min(settings.n_users, gt.n_users), replace=False)
    child_env["RECS_AB_CONFIG"] = str(cfg_path)
    child_env["RECS_BENTO_MODEL"] = tags["control"]
    drive_started = time.monotonic()
    with served(child_env, workdir / "serve.log", settings.startup_timeout_s) as url:
        serve_ready_s = time.monotonic() - drive_started
        drive_started = time.monotonic()
        tally = drive(url, gt, users, settings.k, rng)
        drive_s = time.monotonic() - drive_started
    events, _ = read_ab_events(workdir / "data" / "feedback")
    rates = variant_rates(events)
    check_logs(rates, tally)
    tests = compare_variants(rates, "control")
    ctr = tests[tests["metric"] == "ctr"].iloc[0]
    conv = tests[tests["metric"] == "conversion_rate"].iloc[0]
    return {
        "settings": asdict(settings),
        "models": {"control": tags["control"], "treatment": tags["treatment"]},
        "variants": rates.to_dict(orient="records"),
        "ctr_uplift": float(ctr["uplift"]),
        "ctr_uplift_ci95": [float(ctr["uplift_low"]), float(ctr["uplift_high"])],
        "ctr_p_value": float(ctr["p_value"]),
        "conversion_uplift": float(conv["uplift"]),
        "conversion_uplift_ci95": [float(conv["uplift_low"]), float(conv["uplift_high"])],
        "conversion_p_value": float(conv["p_value"]),
        "requests": int(len(users) + sum(t.clicks + t.conversions for t in tally.values())),
        "seconds": {
            "fit_and_export": round(fit_s, 2),
            "service_start": round(serve_ready_s, 2),
            "drive": round(drive_s, 2),
            "total": round(time.monotonic() - started, 2),
        },
    }
