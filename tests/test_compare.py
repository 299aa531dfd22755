"""tme compare: Kaplan-Meier, median and its interval, log-rank, and the comparison directory."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from abm.cli import main
from abm.comparison import kaplan_meier, log_rank, median_confidence_interval, median_survival


def test_kaplan_meier_on_a_hand_worked_example():
    times = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    events = np.array([True, True, False, True, False])
    curve = kaplan_meier(times, events)
    assert curve["time"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert curve["at_risk"] == [5, 5, 4, 2, 1]
    np.testing.assert_allclose(curve["survival"], [1.0, 0.8, 0.6, 0.3, 0.3])
    np.testing.assert_allclose(curve["greenwood"][1:4], [1 / 20, 1 / 20 + 1 / 12, 1 / 20 + 1 / 12 + 1 / 2])
    assert median_survival(curve) == 3.0
    # log(-log S) band: at day 1 its lower edge is already below 0.5, its upper edge never gets there
    assert median_confidence_interval(curve) == (1.0, None)


def test_median_interval_where_the_curve_falls_to_zero():
    everyone_at_once = kaplan_meier(np.full(5, 28.0), np.ones(5, dtype=bool))
    assert median_survival(everyone_at_once) == 28.0 and median_confidence_interval(everyone_at_once) == (28.0, 28.0)
    one_early = kaplan_meier(np.array([21.0, 28, 28, 28, 28]), np.ones(5, dtype=bool))
    assert median_survival(one_early) == 28.0 and median_confidence_interval(one_early) == (21.0, 28.0)


def test_median_not_reached_and_its_open_interval():
    curve = kaplan_meier(np.array([5.0, 6.0, 7.0, 8.0]), np.array([True, False, False, False]))
    assert median_survival(curve) is None and median_confidence_interval(curve)[1] is None


def test_log_rank_on_a_hand_worked_example():
    chi2, p = log_rank(np.array([1.0, 3.0]), np.array([True, True]), np.array([2.0, 4.0]), np.array([True, True]))
    assert chi2 == pytest.approx((2 / 3) ** 2 / (0.25 + 2 / 9 + 0.25))
    assert p == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))


def test_log_rank_of_identical_and_of_separated_groups():
    times = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    events = np.ones(5, dtype=bool)
    assert log_rank(times, events, times, events)[0] == pytest.approx(0.0)
    assert log_rank(times, events, times + 10, events)[1] < 0.01


def test_log_rank_without_variance_or_without_events():
    everyone_at_once = np.full(4, 28.0)
    assert log_rank(everyone_at_once, np.ones(4, dtype=bool), everyone_at_once, np.ones(4, dtype=bool)) == (0.0, 1.0)
    chi2, p = log_rank(everyone_at_once, np.zeros(4, dtype=bool), everyone_at_once, np.zeros(4, dtype=bool))
    assert math.isnan(chi2) and math.isnan(p)


def test_compare_runs_every_arm_and_replicate_and_resumes(tmp_path, capsys):
    config = tmp_path / "arms.yaml"
    config.write_text(open("configs/tiny.yaml").read() + """
fields:
  oxygen: {preset: oxygen}
  cis: {preset: chemo_drug, vessel: {supply_per_min: 1.0, blood_level: 0.0}}
drugs:
  cis: {pk: {half_life_h: 6}, emax_per_h: 0.3, cycle_specific: false}
arms:
  none: {lines: [{name: watch}], assessment: {every_days: 0.5}}
  chemo: {lines: [{name: chemo, doses: [{drug: cis, amount: 8}], cycle_days: 1}], assessment: {every_days: 0.5}}
""", encoding="utf-8")
    out = tmp_path / "cmp"
    arguments = ["compare", str(config), "--out", str(out), "--replicates", "2", "--workers", "1", "--quiet"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "none: 2 runs" in printed and "chemo: 2 runs" in printed and "log-rank" in printed
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(zip(runs["arm"], runs["seed"])) == [("chemo", 7), ("chemo", 8), ("none", 7), ("none", 8)]
    result = json.loads((out / "compare.json").read_text())
    assert set(result["arms"]) == {"none", "chemo"} and "log_rank_vs_none" in result["arms"]["chemo"]
    final = runs.groupby("arm")["final_tumor_cells_live"].mean()
    assert final["chemo"] < final["none"]  # the drug works
    burden = pd.read_parquet(out / "burden.parquet")
    assert set(burden["arm"]) == {"none", "chemo"} and (burden["runs"] == 2).all()
    km = pd.read_parquet(out / "km.parquet")
    assert (km.groupby("arm")["survival"].first() == 1.0).all()
    stamp = (out / "runs" / "none" / "seed_7" / "summary.json").stat().st_mtime_ns
    assert main(arguments + ["--replicates", "3"]) == 0  # only seed 9 of each arm is new
    assert (out / "runs" / "none" / "seed_7" / "summary.json").stat().st_mtime_ns == stamp
    assert len(pd.read_parquet(out / "runs.parquet")) == 6


def test_compare_needs_arms(tmp_path, capsys):
    assert main(["compare", "configs/tiny.yaml", "--out", str(tmp_path / "x"), "--replicates", "1"]) == 2
    assert "arms: the config has no arms" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_numerical_failure_ends_the_run_cleanly_and_compare_carries_on(tmp_path, monkeypatch, capsys):
    """A solver failure mid-run: status 1, summary says failed with the error, records up to it kept;
    tme compare reports the failed run, leaves it out of the statistics and runs the others."""
    from kernels import diffusion

    original = diffusion.FieldSolver.solve
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 30:
            raise diffusion.FieldSolverError("steady-state field solve did not reach rtol=1e-06 in 500 iterations")
        return original(*args, **kwargs)

    monkeypatch.setattr(diffusion.FieldSolver, "solve", failing)
    out = tmp_path / "run"
    assert main(["run", "configs/tiny.yaml", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: the run failed at day") and "did not reach rtol" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "did not reach" in summary["error"]
    assert len(pd.read_parquet(out / "timeseries.parquet")) >= 1

    calls["n"] = 0
    config = tmp_path / "arms.yaml"
    config.write_text(open("configs/tiny.yaml").read() + "arms: {a: {lines: [{name: watch}]}, b: {lines: [{name: watch}]}}\n",
                      encoding="utf-8")
    compared = tmp_path / "cmp"
    assert main(["compare", str(config), "--out", str(compared), "--replicates", "2", "--workers", "1", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "run failed:" in captured.out and "1 run(s) failed: runs/a/seed_7" in captured.err
    result = json.loads((compared / "compare.json").read_text())
    assert result["failed_runs"] == ["runs/a/seed_7"] and result["arms"]["a"]["runs"] == 1 and result["arms"]["b"]["runs"] == 2
