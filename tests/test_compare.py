"""tme compare: Kaplan-Meier, median and its interval, log-rank, and the comparison directory."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from abm.cli import main
from abm import survival

# The Freireich et al. (1963) 6-MP leukaemia trial, weeks in remission: 21 patients on 6-mercaptopurine (9 relapses,
# 12 censored) and 21 on placebo (all relapsed). Published analyses: log-rank chi-square 16.79 (Kleinbaum & Klein,
# Survival Analysis, ch. 2); Cox model, Efron ties, coefficient 1.572 (se 0.412), hazard ratio 4.82 for placebo
# (R's coxph on MASS::gehan, Venables & Ripley, MASS ch. 13); Kaplan-Meier medians 23 (6-MP) and 8 weeks (placebo).
SIX_MP = np.array([6, 6, 6, 7, 10, 13, 16, 22, 23, 6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35], dtype=float)
SIX_MP_EVENTS = np.array([True] * 9 + [False] * 12)
PLACEBO = np.array([1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23], dtype=float)
PLACEBO_EVENTS = np.ones(21, dtype=bool)


def test_lifelines_gives_the_published_figures_of_the_freireich_trial():
    chi2, p = survival.log_rank(SIX_MP, SIX_MP_EVENTS, PLACEBO, PLACEBO_EVENTS)
    assert chi2 == pytest.approx(16.79, abs=0.005) and p < 1e-4
    times, events = np.concatenate([SIX_MP, PLACEBO]), np.concatenate([SIX_MP_EVENTS, PLACEBO_EVENTS])
    groups = np.array(["six_mp"] * 21 + ["placebo"] * 21)
    ratio = survival.hazard_ratios(times, events, groups, "six_mp")["placebo"]
    assert math.log(ratio["hr"]) == pytest.approx(1.572, abs=0.0005) and ratio["hr"] == pytest.approx(4.82, abs=0.005)
    assert ratio["ci95"][0] < ratio["hr"] < ratio["ci95"][1] and ratio["p"] < 1e-3
    assert survival.median(SIX_MP, SIX_MP_EVENTS)[0] == 23.0 and survival.median(PLACEBO, PLACEBO_EVENTS)[0] == 8.0
    assert survival.log_rank_all(times, events, groups)["chi2"] == pytest.approx(chi2)  # two groups: the same test


def test_kaplan_meier_table_on_a_hand_worked_example():
    times = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    events = np.array([True, True, False, True, False])
    table = survival.kaplan_meier(times, events)
    assert tuple(table.columns) == survival.KM_COLUMNS
    assert table["time"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert table["at_risk"].tolist() == [5, 5, 4, 2, 1]
    np.testing.assert_allclose(table["survival"], [1.0, 0.8, 0.6, 0.3, 0.3])
    assert (table["survival_lower"] <= table["survival"]).all() and (table["survival"] <= table["survival_upper"]).all()
    assert survival.median(times, events)[0] == 3.0
    # the area under the curve to day 4: 1 + 0.8 + 0.6 + 0.3
    assert survival.restricted_mean(times, events, 4.0) == pytest.approx(2.7)


def test_median_where_the_curve_falls_to_zero_and_where_it_is_not_reached():
    assert survival.median(np.full(5, 28.0), np.ones(5, dtype=bool)) == (28.0, 28.0, 28.0)
    median, _, high = survival.median(np.array([5.0, 6.0, 7.0, 8.0]), np.array([True, False, False, False]))
    assert median is None and high is None


def test_log_rank_of_identical_and_of_separated_groups_and_without_events():
    times = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    events = np.ones(5, dtype=bool)
    assert survival.log_rank(times, events, times, events)[0] == pytest.approx(0.0)
    assert survival.log_rank(times, events, times + 10, events)[1] < 0.01
    everyone_at_once = np.full(4, 28.0)
    assert survival.log_rank(everyone_at_once, np.ones(4, dtype=bool), everyone_at_once, np.ones(4, dtype=bool)) == (0.0, 1.0)
    assert survival.log_rank(everyone_at_once, np.zeros(4, dtype=bool), everyone_at_once,
                             np.zeros(4, dtype=bool)) == (None, None)


def test_a_hazard_ratio_that_cannot_be_estimated_says_why():
    """Every run of one arm progresses before any of the other's (separation), or nothing progresses: no ratio."""
    times = np.array([7.0, 7.0, 7.0, 14.0, 14.0, 14.0])
    groups = np.array(["a"] * 3 + ["b"] * 3)
    separated = survival.hazard_ratios(times, np.ones(6, dtype=bool), groups, "a")["b"]
    assert separated["hr"] is None and "not estimable" in separated["note"]
    assert survival.hazard_ratios(times, np.zeros(6, dtype=bool), groups, "a")["b"]["note"] == "no progression in any arm"


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
    result_keys = json.loads((out / "compare.json").read_text())
    assert result_keys["reference_arm"] == "none" and "hazard_ratio_vs_none" in result_keys["arms"]["chemo"]
    assert {"chi2", "df", "p"} <= set(result_keys["log_rank_all_arms"])
    capsys.readouterr()
    assert main(arguments[:-1] + ["--replicates", "3"]) == 0  # only seed 9 of each arm is new; with the progress bar
    assert (out / "runs" / "none" / "seed_7" / "summary.json").stat().st_mtime_ns == stamp
    assert len(pd.read_parquet(out / "runs.parquet")) == 6
    bar = capsys.readouterr().err
    assert "runs: 100%" in bar and "2/2" in bar and "failed=0" in bar  # two new runs, none failed


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


def test_default_workers_fill_a_gpu_by_its_free_memory_and_stay_at_four_on_the_cpu(monkeypatch):
    """On a GPU the default is as many runs as fit in its free memory (estimate plus a CUDA process each), at most
    one per CPU; on the CPU the CPUs up to 4."""
    from abm import comparison
    from abm.config import load_config
    from abm.runner import estimated_bytes
    from kernels.backend import Backend

    class FakeGPU(Backend):
        def free_memory_bytes(self) -> int:
            return self.free

    config = load_config("configs/sequencing.yaml")
    per_run = estimated_bytes(config) + comparison.CUDA_PROCESS_BYTES
    gpu = FakeGPU("cupy", np, "test", "a fake GPU")
    monkeypatch.setattr(comparison.os, "cpu_count", lambda: 16)
    gpu.free = 7 * per_run + 1
    assert comparison.default_workers([config], gpu) == 7
    gpu.free = per_run // 2  # not even one fits: one worker (the run's own memory check refuses it if need be)
    assert comparison.default_workers([config], gpu) == 1
    gpu.free = 100 * per_run
    assert comparison.default_workers([config], gpu) == 16  # one per CPU at most
    assert comparison.default_workers([config], Backend("numpy", np, "test", "CPU")) == 4
    monkeypatch.setattr(comparison.os, "cpu_count", lambda: 2)
    assert comparison.default_workers([config], Backend("numpy", np, "test", "CPU")) == 2


def test_compare_on_a_gpu_backend_without_a_gpu_writes_nothing(tmp_path, capsys):
    from kernels.backend import probe_cupy

    if probe_cupy()[0] is not None:
        pytest.skip("a GPU is present: the cupy backend is valid here")
    out = tmp_path / "cmp"
    assert main(["compare", "configs/sequencing.yaml", "--out", str(out), "--replicates", "1", "--backend", "cupy"]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not out.exists()
