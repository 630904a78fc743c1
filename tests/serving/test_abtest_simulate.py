"""``recs simulate-ab`` end to end with a few users: train, export, serve, click, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from recs_assets.cli.simulate_ab import simulate_ab_command
from recs_assets.core.monitoring.quality import read_folder
from recs_assets.core.serving.ab_simulation import SimulationSettings


@pytest.mark.slow
def test_simulate_ab_through_the_live_service(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = CliRunner().invoke(
        simulate_ab_command,
        ["--users", "40", "--k", "5", "--workdir", str(tmp_path / "w"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    rates = {v["variant"]: v for v in r["variants"]}
    assert set(rates) == {"control", "treatment"}
    # every simulated user got one list of 5 (1000 items, nobody has seen 995 of them); the
    # service's logs were already checked against the simulator's own tally inside simulate_ab
    assert sum(v["impressions"] for v in rates.values()) == 40 * 5
    clicks = sum(v["clicks"] for v in rates.values())
    conversions = sum(v["conversions"] for v in rates.values())
    assert r["requests"] == 40 + clicks + conversions
    assert 0 < clicks < 200 and conversions <= clicks
    low, high = r["ctr_uplift_ci95"]
    assert low < r["ctr_uplift"] < high
    served = read_folder(tmp_path / "w" / "data" / "served", "served list")
    assert len(served) == 200 and set(served["variant"]) == {"control", "treatment"}
    assert set(served["model_version"]) == {"sim-popularity", "sim-ease"}


def test_simulation_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="both 'ease'"):
        SimulationSettings(control="ease", treatment="ease")
    with pytest.raises(ValueError, match="n_users >= 2"):
        SimulationSettings(n_users=1)
