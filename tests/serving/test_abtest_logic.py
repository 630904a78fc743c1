"""A/B testing without HTTP: config, assignment, statistics, exposure log and the router."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from scipy.stats import chi2_contingency
from serving_helpers import write_serving_folder

from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.monitoring.ab_stats import (
    compare_variants,
    two_proportion_test,
    variant_rates,
)
from recs_assets.core.monitoring.quality import (
    ctr_by_version,
    read_folder,
    served_list_features,
)
from recs_assets.core.serving.abtest import (
    Experiment,
    ExperimentRouter,
    Variant,
    assign_variant,
    assignment_bucket,
    load_experiment,
    load_variant_models,
    no_experiment,
)
from recs_assets.core.serving.cache import LRUCache
from recs_assets.core.serving.engine import InputError
from recs_assets.core.serving.exposure import (
    EVENT_COLUMNS,
    SERVED_COLUMNS,
    ExposureDirs,
    ExposureLog,
    exposure_dirs,
    exposure_log_from_env,
    read_ab_events,
)
from recs_assets.core.serving.schemas import Recommendations, RecommendedItem
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.serving.ab_test_report import pick_control

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def experiment(*shares: float, salt: str = "s1") -> Experiment:
    names = "abcdefgh"
    return Experiment(
        name="t",
        salt=salt,
        variants=tuple(Variant(name=names[i], share=s) for i, s in enumerate(shares)),
    )


# ---- config and assignment ------------------------------------------------------------------
def test_bucket_is_pinned_and_deterministic() -> None:
    # sha256("s1:u1") starts c10a59b7c930d66b; 0xc10a59b7c930d66b / 2**64 = 0.75406...
    # Pinned: a different hash would silently reshuffle every running experiment.
    assert assignment_bucket("u1", "s1") == pytest.approx(0xC10A59B7C930D66B / 2**64, abs=0)
    assert assignment_bucket("u1", "s1") == assignment_bucket("u1", "s1")
    assert assignment_bucket("u1", "s2") != assignment_bucket("u1", "s1")


def test_assignment_follows_cumulative_shares() -> None:
    # bucket(u1, s1) = 0.754: with a=0.75 it falls just past a's upper bound -> b;
    # with a=0.76 it falls inside a
    assert assign_variant(experiment(0.75, 0.25), "u1") == "b"
    assert assign_variant(experiment(0.76, 0.24), "u1") == "a"
    # a zero-share arm never gets anyone
    assert assign_variant(experiment(0.0, 1.0), "u1") == "b"


def test_shares_are_accurate_over_many_users() -> None:
    exp = experiment(0.2, 0.3, 0.5)
    users = [f"user-{i}" for i in range(60_000)]
    got = pd.Series([assign_variant(exp, u) for u in users]).value_counts(normalize=True)
    # binomial sd at n=60k is at most sqrt(.25/60000) = 0.002; 4 sd = 0.008
    for name, share in (("a", 0.2), ("b", 0.3), ("c", 0.5)):
        assert abs(got[name] - share) < 0.008, (name, got[name])


def test_growing_a_share_only_moves_users_into_it() -> None:
    users = [f"user-{i}" for i in range(5000)]
    before = [assign_variant(experiment(0.5, 0.5), u) for u in users]
    after = [assign_variant(experiment(0.6, 0.4), u) for u in users]
    moved = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    assert moved and set(moved) == {("b", "a")}  # nobody leaves a; about 10% move b -> a
    assert 0.07 < len(moved) / len(users) < 0.13


def test_bad_configs_are_rejected_with_reasons(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must sum to 1, got 0.900000"):
        experiment(0.5, 0.4)
    with pytest.raises(ValueError, match="duplicate variant name"):
        Experiment(variants=(Variant(name="a", share=0.5), Variant(name="a", share=0.5)))
    with pytest.raises(ValueError, match="share"):
        Variant(name="a", share=1.5)
    with pytest.raises(FileNotFoundError, match="no such experiment config"):
        load_experiment({"RECS_AB_CONFIG": str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_experiment({"RECS_AB_CONFIG": str(bad)})


def test_load_experiment_from_file_and_default(tmp_path: Path) -> None:
    cfg = tmp_path / "ab.json"
    cfg.write_text(
        json.dumps(
            {
                "name": "e1",
                "salt": "x",
                "variants": [
                    {"name": "control", "model": "m:1", "share": 0.5},
                    {"name": "treatment", "model": "m:2", "share": 0.5},
                ],
            }
        )
    )
    exp = load_experiment({"RECS_AB_CONFIG": str(cfg)})
    assert (exp.name, exp.salt, exp.control) == ("e1", "x", "control")
    assert [v.model for v in exp.variants] == ["m:1", "m:2"]
    assert load_experiment({}, variant="champion") == no_experiment("champion")


def test_variant_models_share_loads_of_the_same_tag() -> None:
    exp = Experiment(
        variants=(
            Variant(name="a", model="default", share=0.4),
            Variant(name="b", model="m:2", share=0.3),
            Variant(name="c", model="m:2", share=0.3),
        )
    )
    calls: list[str] = []

    def loader(tag: str) -> str:
        calls.append(tag)
        return f"loaded {tag}"

    models = load_variant_models(exp, "the default", loader)  # type: ignore[arg-type]
    assert models == {"a": "the default", "b": "loaded m:2", "c": "loaded m:2"}
    assert calls == ["m:2"]


# ---- statistics -----------------------------------------------------------------------------
def test_two_proportion_test_by_hand() -> None:
    # 10/100 vs 20/100: pooled p = 0.15, se = sqrt(.15 * .85 * (2/100)) = 0.0504975,
    # z = 0.1 / 0.0504975 = 1.980295; unpooled se of the difference = sqrt(.0009 + .0016) = 0.05,
    # so the difference CI is 0.1 +- 1.96 * 0.05; log risk ratio se = sqrt(1/10 - 1/100 + 1/20
    # - 1/100) = sqrt(0.13), uplift CI = 2 * exp(+-1.96 * 0.360555) - 1
    t = two_proportion_test(10, 100, 20, 100)
    assert t.z == pytest.approx(1.980295, abs=1e-6)
    assert (t.diff_low, t.diff_high) == pytest.approx((0.1 - 0.0979982, 0.1 + 0.0979982))
    assert t.uplift == pytest.approx(1.0)
    se_log = math.sqrt(0.13)
    assert t.uplift_low == pytest.approx(2 * math.exp(-1.959964 * se_log) - 1, abs=1e-6)
    assert t.uplift_high == pytest.approx(2 * math.exp(1.959964 * se_log) - 1, abs=1e-6)
    assert t.uplift_low == pytest.approx(-0.01346, abs=1e-4)
    # the pooled z-test is the uncorrected chi-square test of the 2x2 table: chi2 = z^2, same p
    chi2, p, _, _ = chi2_contingency([[10, 90], [20, 80]], correction=False)
    assert t.z**2 == pytest.approx(chi2)
    assert t.p_value == pytest.approx(p)


def test_two_proportion_test_edges() -> None:
    same = two_proportion_test(0, 10, 0, 20)  # no clicks anywhere: no evidence, no ratio
    assert (same.z, same.p_value) == (0.0, 1.0)
    assert math.isnan(same.uplift) and math.isnan(same.uplift_low)
    with pytest.raises(ValueError, match="variant b: need 0 <= successes <= trials"):
        two_proportion_test(1, 10, 11, 10)
    with pytest.raises(ValueError, match="trials > 0"):
        two_proportion_test(0, 0, 1, 10)


def test_variant_rates_by_hand() -> None:
    # a: 4 impressions, 1 click; b: 2 impressions, 2 clicks, 1 conversion
    rows = [("a", "impression")] * 4 + [("a", "click")]
    rows += [("b", "impression")] * 2 + [("b", "click")] * 2 + [("b", "conversion")]
    rates = variant_rates(pd.DataFrame(rows, columns=["variant", "event"]))
    assert rates["variant"].tolist() == ["a", "b"]
    assert rates["impressions"].tolist() == [4, 2]
    assert rates["clicks"].tolist() == [1, 2]
    assert rates["conversions"].tolist() == [0, 1]
    assert rates["ctr"].tolist() == [0.25, 1.0]
    assert rates["conversion_rate"].tolist() == [0.0, 0.5]
    # Wilson at p = 1: the interval is [n / (n + z^2), 1]; at p = 0: [0, z^2 / (n + z^2)]
    z2 = 1.959963984540054**2
    assert rates.loc[1, "ctr_low"] == pytest.approx(2 / (2 + z2))
    assert rates.loc[1, "ctr_high"] == pytest.approx(1.0)
    assert rates.loc[0, "conversion_rate_high"] == pytest.approx(z2 / (4 + z2))
    tests = compare_variants(rates, "a")
    assert tests[["variant", "metric"]].values.tolist() == [
        ["b", "ctr"],
        ["b", "conversion_rate"],
    ]
    assert tests.loc[0, "uplift"] == pytest.approx(3.0)  # 1.0 / 0.25 - 1


def test_variant_rates_rejects_bad_events() -> None:
    with pytest.raises(ValueError, match=r"unknown A/B event value\(s\) \['view'\]"):
        variant_rates(pd.DataFrame({"variant": ["a"], "event": ["view"]}))
    with pytest.raises(ValueError, match=r"variant\(s\) \['a'\] have feedback but no impr"):
        variant_rates(pd.DataFrame({"variant": ["a"], "event": ["click"]}))
    with pytest.raises(ValueError, match="lack column"):
        variant_rates(pd.DataFrame({"event": ["click"]}))


# ---- exposure log ---------------------------------------------------------------------------
def answer(
    user: str, items: list[tuple[str, float]], variant: str, version: str
) -> Recommendations:
    return Recommendations(
        user_id=user,
        items=[RecommendedItem(item_id=i, score=s, title="") for i, s in items],
        model_version=version,
        variant=variant,
        source="model",
    )


def test_exposure_log_writes_what_monitoring_reads(tmp_path: Path) -> None:
    dirs = ExposureDirs(served=tmp_path / "served", feedback=tmp_path / "feedback")
    log = ExposureLog(dirs, flush_rows=1000, flush_s=1e9)
    log.record_lists(
        [
            answer("u1", [("i1", 0.9), ("i2", 0.5)], "a", "v1"),
            answer("u2", [("i3", 0.7)], "b", "v2"),
        ],
        T0,
    )
    log.record_feedback("u1", "i2", "click", "a", "v1", T0)
    log.record_feedback("u2", "i3", "conversion", "b", "v2", T0)
    assert not dirs.served.exists()  # buffered until flushed
    written = log.flush()
    assert [p.name.split("-")[0] for p in written] == [
        "served",
        "impressions",
        "clicks",
        "conversions",
    ]
    assert log.flush() == []  # nothing left

    served = read_folder(dirs.served, "served list")
    assert list(served.columns) == list(SERVED_COLUMNS)
    assert served[["user_id", "item_id", "rank"]].values.tolist() == [
        ["u1", "i1", 1],
        ["u1", "i2", 2],
        ["u2", "i3", 1],
    ]
    # prediction_drift parses served_at like this
    ts = pd.to_datetime(served["served_at"], utc=True, format="ISO8601")
    assert (ts == pd.Timestamp(T0)).all()
    pct = pd.Series({"i1": 1.0, "i2": 0.5, "i3": 0.25})
    feats = served_list_features(served, pct)
    assert feats["top_score"].tolist() == [0.9, 0.7]

    events = read_folder(dirs.feedback, "feedback event")  # top folder: impressions + clicks
    assert list(events.columns) == list(EVENT_COLUMNS)
    ctr = ctr_by_version(events)
    # v1: 2 items shown, 1 click; v2: 1 item shown, no click (the conversion is elsewhere)
    assert ctr[["model_version", "impressions", "clicks"]].values.tolist() == [
        ["v1", 2, 1],
        ["v2", 1, 0],
    ]
    ab, dropped = read_ab_events(dirs.feedback)
    assert dropped == 0
    rates = variant_rates(ab)
    assert rates[["variant", "impressions", "clicks", "conversions"]].values.tolist() == [
        ["a", 2, 1, 0],
        ["b", 1, 0, 1],
    ]


def test_exposure_log_flushes_on_rows_and_time(tmp_path: Path) -> None:
    now = [0.0]
    dirs = ExposureDirs(served=tmp_path / "s", feedback=tmp_path / "f")
    log = ExposureLog(dirs, flush_rows=3, flush_s=5.0, clock=lambda: now[0], background=False)
    log.record_lists([answer("u1", [("i1", 1.0), ("i2", 0.5)], "a", "v1")], T0)
    assert log.rows_written == 0  # 2 rows < 3, 0 s < 5 s
    log.record_lists([answer("u2", [("i1", 1.0)], "a", "v1")], T0)
    assert log.rows_written == 6  # 3 served rows + 3 impressions
    now[0] = 4.9
    log.record_feedback("u1", "i1", "click", "a", "v1", T0)
    assert log.rows_written == 6
    now[0] = 10.0  # 5.1 s after the last write
    log.record_feedback("u1", "i2", "click", "a", "v1", T0)
    assert log.rows_written == 8
    with pytest.raises(ValueError, match="event must be one of"):
        log.record_feedback("u1", "i2", "view", "a", "v1", T0)


def test_exposure_log_loses_no_row_under_concurrent_writers(tmp_path: Path) -> None:
    import threading

    dirs = ExposureDirs(served=tmp_path / "s", feedback=tmp_path / "f")
    log = ExposureLog(dirs, flush_rows=50, flush_s=1e9)  # background writes every ~50 rows

    def worker(w: int) -> None:
        for n in range(200):
            log.record_lists([answer(f"w{w}-{n}", [("i1", 1.0), ("i2", 0.5)], "a", "v1")], T0)
            log.record_feedback(f"w{w}-{n}", "i1", "click", "a", "v1", T0)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.flush()  # waits for a background write under way, then writes the rest
    served = read_folder(dirs.served, "served list")
    events = read_folder(dirs.feedback, "feedback event")
    # 6 workers x 200 lists x 2 items; one click per list
    assert len(served) == 2400 and served["user_id"].nunique() == 1200
    assert (events["event"] == "impression").sum() == 2400
    assert (events["event"] == "click").sum() == 1200
    assert len(list(dirs.served.glob("*.parquet"))) > 1  # it did write in between


def test_exposure_settings_from_env(tmp_path: Path) -> None:
    assert exposure_log_from_env({"RECS_EXPOSURE_LOG": "off"}) is None
    with pytest.raises(ValueError, match="use on or off"):
        exposure_log_from_env({"RECS_EXPOSURE_LOG": "maybe"})
    d = exposure_dirs({"RECS_DATA_DIR": str(tmp_path)})
    assert (d.served, d.feedback, d.conversions) == (
        tmp_path / "served",
        tmp_path / "feedback",
        tmp_path / "feedback" / "conversions",
    )
    log = exposure_log_from_env({"RECS_SERVED_DIR": "/x/s", "RECS_EXPOSURE_FLUSH_ROWS": "7"})
    assert log is not None and (log.dirs.served, log.flush_rows) == (Path("/x/s"), 7)


# ---- router ---------------------------------------------------------------------------------
@pytest.fixture
def router(tmp_path: Path) -> ExperimentRouter:
    exp = Experiment(
        name="t",
        salt="s1",
        variants=(
            Variant(name="pop", model="default", share=0.5),
            Variant(name="ease", model="ease", share=0.5),
        ),
    )
    pop = write_serving_folder(tmp_path / "pop")
    ease = write_serving_folder(tmp_path / "ease", EASERecommender())
    ease.version = "v-ease"
    models = load_variant_models(exp, pop, {"ease": ease}.__getitem__)
    dirs = ExposureDirs(served=tmp_path / "served", feedback=tmp_path / "feedback")
    return ExperimentRouter.create(
        exp,
        models,
        LRUCache(100, 60),
        ServingSettings(),
        ServingMetrics.create(CollectorRegistry()),
        ExposureLog(dirs, flush_rows=10_000, flush_s=1e9),
    )


def test_router_serves_each_user_their_variant_and_logs_it(router: ExperimentRouter) -> None:
    users = [f"u{i}" for i in range(5)] + ["new-user"]
    expected = {u: assign_variant(router.experiment, u) for u in users}
    assert set(expected.values()) == {"pop", "ease"}  # both arms used by these six users
    for u in users:
        a = router.recommend(u, 2, True, None)
        assert a.variant == expected[u]
        assert a.model_version == ("v-ease" if expected[u] == "ease" else "v-test-1")
    batch = router.recommend_batch(users, 2, True)
    assert [r.user_id for r in batch.results] == users
    assert [r.variant for r in batch.results] == [expected[u] for u in users]
    assert batch.model_version == "v-ease,v-test-1"
    ack = router.feedback("u0", "i5", "click")
    assert (ack.variant, ack.recorded) == (expected["u0"], True)
    router.close()
    assert router.exposure is not None
    served = read_folder(router.exposure.dirs.served, "served list")
    # each user is served twice (alone, then in the batch), 2 items each, except u0 who saw
    # 5 of the 6 items and so gets only i5: 2 * (2 * 6 - 1) rows
    assert len(served) == 2 * (2 * len(users) - 1)
    assert served.groupby("user_id")["variant"].agg(set).to_dict() == {
        u: {v} for u, v in expected.items()
    }
    assert pick_control(["ease", "pop"], "") == "ease"  # no RECS_AB_CONFIG: first by name


def test_router_feedback_rejects_bad_input(router: ExperimentRouter) -> None:
    with pytest.raises(InputError, match="unknown item_id 'nope'"):
        router.feedback("u0", "nope", "click")
    with pytest.raises(InputError, match="unknown variant 'zzz'"):
        router.feedback("u0", "i1", "click", variant="zzz")
    with pytest.raises(InputError, match="unknown model_version 'v9'"):
        router.feedback("u0", "i1", "click", model_version="v9")
    with pytest.raises(InputError, match="event must be one of"):
        router.feedback("u0", "i1", "like")
    assert np.isfinite(router.score("u1", ["i1"]).scores[0].score)


def test_ab_test_report_asset_on_a_written_log(tmp_path: Path) -> None:
    from dagster import build_asset_context

    from recs_assets.serving.ab_test_report import AbTestReportConfig, ab_test_report

    dirs = ExposureDirs(served=tmp_path / "served", feedback=tmp_path / "feedback")
    log = ExposureLog(dirs, flush_rows=10_000, flush_s=1e9)
    # a: 10 lists of 10 items = 100 impressions, 10 clicks; b: 100 impressions, 20 clicks and
    # 5 conversions -- the 10/100 vs 20/100 case computed by hand above (uplift 1.0)
    for v, clicks in (("a", 10), ("b", 20)):
        for u in range(10):
            items = [(f"i{j}", 1.0 - j / 10) for j in range(10)]
            log.record_lists([answer(f"{v}{u}", items, v, f"ver-{v}")], T0)
        for c in range(clicks):
            log.record_feedback(f"{v}{c % 10}", f"i{c // 10}", "click", v, f"ver-{v}", T0)
    for c in range(5):
        log.record_feedback(f"b{c}", "i0", "conversion", "b", "ver-b", T0)
    log.flush()
    out = ab_test_report(
        build_asset_context(),
        AbTestReportConfig(feedback_path=str(dirs.feedback), control="a"),
    )
    rates = out.value
    assert rates[["variant", "impressions", "clicks", "conversions"]].values.tolist() == [
        ["a", 100, 10, 0],
        ["b", 100, 20, 5],
    ]
    md = out.metadata
    assert md["control"].value == "a"
    assert md["ctr_uplift_b"].value == pytest.approx(1.0)
    assert md["ctr_p_value_b"].value == pytest.approx(two_proportion_test(10, 100, 20, 100).p_value)
    assert "![" in md["ctr_plot"].value or "<img" in md["ctr_plot"].value
    with pytest.raises(ValueError, match="control variant 'zz' not in the data"):
        ab_test_report(
            build_asset_context(),
            AbTestReportConfig(feedback_path=str(dirs.feedback), control="zz"),
        )


def test_served_tables_match_the_pandas_frames() -> None:
    """The Arrow fast path writes the same columns, types and values as the pandas frames."""
    from datetime import UTC, datetime

    import pandas as pd

    from recs_assets.core.serving.exposure import impression_events, served_frame, served_tables

    rows = [
        ("u1", "i1", 1, 0.5, datetime(2026, 1, 1, 12, tzinfo=UTC), "a", "m/1", "model"),
        ("u2", "i2", 2, 0.25, datetime(2026, 1, 2, 8, tzinfo=UTC), "b", "m/2", "cache"),
    ]
    served, impressions = served_tables(rows)
    frame = served_frame(rows)
    pd.testing.assert_frame_equal(served.to_pandas(), frame)
    pd.testing.assert_frame_equal(
        impressions.to_pandas(), impression_events(frame).reset_index(drop=True)
    )
    empty, no_impressions = served_tables([])
    assert empty.num_rows == 0 and no_impressions.num_rows == 0
