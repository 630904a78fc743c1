"""The service with a two-variant experiment, in-process over ASGI: variants, feedback, exposure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving_helpers import LABELS, model_store, service_asgi, tiny_items, write_serving_folder

from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.monitoring.ab_stats import variant_rates
from recs_assets.core.monitoring.quality import ctr_by_version, read_folder
from recs_assets.core.serving.abtest import assign_variant, load_experiment
from recs_assets.core.serving.export import export_model
from recs_assets.core.serving.exposure import read_ab_events


def export_two(home: Path) -> tuple[str, str]:
    """Tiny popularity (v-test-1) and EASE (v-ease) models in the store at ``home``."""
    pop = write_serving_folder(home.parent / "fit-pop")
    ease = write_serving_folder(home.parent / "fit-ease", EASERecommender())
    with model_store(home):
        t1 = export_model(pop.recommender, pop.train, tiny_items(), pop.popularity, LABELS)
        t2 = export_model(
            ease.recommender,
            ease.train,
            tiny_items(),
            ease.popularity,
            {**LABELS, "model_version": "v-ease"},
        )
    return str(t1), str(t2)


def test_two_variants_feedback_and_exposure_over_asgi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    pop_tag, ease_tag = export_two(home)
    cfg = tmp_path / "ab.json"
    cfg.write_text(
        json.dumps(
            {
                "name": "pop-vs-ease",
                "salt": "s1",
                "variants": [
                    {"name": "pop", "model": pop_tag, "share": 0.5},
                    {"name": "ease", "model": ease_tag, "share": 0.5},
                ],
            }
        )
    )
    monkeypatch.setenv("RECS_AB_CONFIG", str(cfg))
    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    monkeypatch.delenv("RECS_SERVED_DIR", raising=False)
    monkeypatch.delenv("RECS_FEEDBACK_DIR", raising=False)
    monkeypatch.setenv("RECS_EXPOSURE_LOG", "on")
    exp = load_experiment()
    users = [f"u{i}" for i in range(5)]
    expected = {u: assign_variant(exp, u) for u in users}
    assert set(expected.values()) == {"pop", "ease"}
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        for u in users:
            r = client.post("/recommend", json={"user_id": u, "k": 1})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["variant"] == expected[u]
            assert body["model_version"] == ("v-ease" if expected[u] == "ease" else "v-test-1")
        # u1 saw i0-i3: both models can only offer i4 or i5; click the first one shown
        ok = client.post("/feedback", json={"user_id": "u1", "item_id": "i4", "event": "click"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["variant"] == expected["u1"]
        conv = client.post(
            "/feedback", json={"user_id": "u1", "item_id": "i4", "event": "conversion"}
        )
        assert conv.status_code == 200, conv.text
        bad = {
            "unknown item": {"user_id": "u1", "item_id": "nope", "event": "click"},
            "unknown variant": {
                "user_id": "u1",
                "item_id": "i4",
                "event": "click",
                "variant": "zzz",
            },
            "unknown version": {
                "user_id": "u1",
                "item_id": "i4",
                "event": "click",
                "model_version": "v9",
            },
            "bad event": {"user_id": "u1", "item_id": "i4", "event": "like"},
            "missing item": {"user_id": "u1", "event": "click"},
            "empty user": {"user_id": "", "item_id": "i4", "event": "click"},
        }
        for why, payload in bad.items():
            r = client.post("/feedback", json=payload)
            assert r.status_code == 400, (why, r.status_code, r.text)
        # leaving the client ran on_shutdown, which flushed the exposure log
    data = tmp_path / "data"
    served = read_folder(data / "served", "served list")
    assert sorted(served["user_id"]) == users  # k=1: one row per request
    assert served.set_index("user_id")["variant"].to_dict() == expected
    ctr = ctr_by_version(read_folder(data / "feedback", "feedback event"))
    assert ctr["impressions"].sum() == 5 and ctr["clicks"].sum() == 1
    rates = variant_rates(read_ab_events(data / "feedback")[0]).set_index("variant")
    other = "pop" if expected["u1"] == "ease" else "ease"
    assert rates.loc[expected["u1"], ["clicks", "conversions"]].tolist() == [1, 1]
    assert rates.loc[other, ["clicks", "conversions"]].tolist() == [0, 0]
    assert rates["impressions"].sum() == 5
