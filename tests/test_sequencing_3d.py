"""configs/sequencing_3d.yaml: the order and spacing of chemotherapy and anti-PD-1 change the outcome in 3-D, over
seeds 1-3.

The three claims of the preset's header, each on the CPU size run to its end
by ``abm.comparison.compare`` (as ``tme compare configs/sequencing_3d.yaml
--replicates 3`` runs it): chemotherapy then the checkpoint drug beats the
checkpoint drug then chemotherapy; the two together beat either alone; and
chemotherapy on the day before every checkpoint dose depletes the T cells
(worse than the concurrent schedule, whose chemotherapy stops after two
cycles; sparing lymphocytes from the drug rescues it); and that time to
progression separates the same schedules. docs/sequencing.md ("3-D") has the
figures.
"""
from __future__ import annotations

import numpy as np
import pytest

from abm.comparison import compare
from abm.config import load_config
from abm.rundir import compare_run_path, open_run
from tests.presets import CONFIGS, shrunk

SEEDS = (1, 2, 3)
ARMS = ("chemo_only", "checkpoint_only", "chemo_then_checkpoint", "checkpoint_then_chemo", "concurrent",
        "chemo_just_before_checkpoint")
SPARED = "immune.t_cells.drug_sensitivity.chemo=0"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def comparisons(tmp_path_factory):
    """The run directory per (arm, seed), every arm of :data:`ARMS` and ``spared`` (chemo_just_before_checkpoint
    with lymphocytes spared by the drug), seeds 1-3, the whole duration."""
    out = tmp_path_factory.mktemp("sequencing_3d")
    run_dirs = {}
    for name, overrides, arms in (("arms", [], ARMS), ("spared", [SPARED], ("chemo_just_before_checkpoint",))):
        config = load_config(CONFIGS / "sequencing_3d.yaml", [*shrunk("sequencing_3d"), f"seed={SEEDS[0]}", *overrides])
        result = compare(config, out / name, len(SEEDS), list(arms), workers=2, progress=False)
        assert result["failed_runs"] == []
        for arm in arms:
            for seed in SEEDS:
                key = "spared" if name == "spared" else arm
                run_dirs[key, seed] = open_run(compare_run_path(out / name, arm, seed))
    return run_dirs


@pytest.fixture(scope="module")
def runs(comparisons):
    """Time series per (arm, seed) of :func:`comparisons`."""
    return {key: run_dir.timeseries for key, run_dir in comparisons.items()}


def final(runs, arm, column="tumor_cells_live"):
    """The last record of ``column`` per seed (int64 array)."""
    return np.array([runs[arm, seed][column].iloc[-1] for seed in SEEDS])


def record(runs, arm, day, column):
    """``column`` at the record of ``day`` per seed (float64 array)."""
    return np.array([runs[arm, seed].set_index("time_days")[column].loc[day] for seed in SEEDS], dtype=float)


def test_chemo_then_checkpoint_beats_checkpoint_then_chemo(runs):
    # anti-PD-1 first (days 2-8, to its progression) finds no T cell: the tumor is cold until chemotherapy
    for seed in SEEDS:
        assert runs["checkpoint_then_chemo", seed].query("time_days <= 10")["t_cells_effector"].max() == 0
    chemo_first, checkpoint_first = final(runs, "chemo_then_checkpoint"), final(runs, "checkpoint_then_chemo")
    assert np.all(chemo_first == 0) and np.all(checkpoint_first > 1000)
    for seed in SEEDS:  # chemotherapy first is cleared within a week of anti-PD-1 following it (day 16)
        assert runs["chemo_then_checkpoint", seed].query("time_days >= 23")["tumor_cells_live"].max() == 0


def test_concurrent_beats_either_drug_alone(runs):
    assert np.all(final(runs, "concurrent") == 0)  # every seed cleared by day 28
    assert np.all(final(runs, "chemo_only") > 20000) and np.all(final(runs, "checkpoint_only") > 20000)
    assert all(runs["checkpoint_only", seed]["t_cells_effector"].max() == 0 for seed in SEEDS)  # cold: nothing primed
    # chemotherapy alone primes nearly as many T cells, but braked by PD-L1 they do not stop the tumor
    most = {arm: np.array([runs[arm, seed]["t_cells_effector"].max() for seed in SEEDS])
            for arm in ("chemo_only", "concurrent")}
    assert np.all(most["chemo_only"] > 0.7 * most["concurrent"])


def test_chemo_just_before_each_checkpoint_dose_depletes_the_t_cells(runs):
    close, spaced = final(runs, "chemo_just_before_checkpoint"), final(runs, "concurrent")
    assert np.all(close > 10000) and np.all(spaced == 0)
    for day in (18, 21):  # the same until its third chemotherapy dose (day 16), which concurrent does not give
        assert np.all(record(runs, "chemo_just_before_checkpoint", day, "t_cells_effector")
                      < 0.05 * record(runs, "concurrent", day, "t_cells_effector"))
    # lymphocytes spared by the drug: the same schedule clears every seed, and no T cell dies of it
    assert np.all(final(runs, "spared") == 0) and np.all(final(runs, "spared", "immune_drug_deaths_total") == 0)


def test_time_to_progression_separates_the_schedules(comparisons):
    # RECIST every 6 days from day 2 (the 100 um floor): days since day 2 to the first PD, inf where none came
    def days_to_pd(arm):
        outcomes = [comparisons[arm, seed].summary["treatment"] for seed in SEEDS]
        return np.array([np.inf if outcome["progression_censored"] else outcome["time_to_progression_days"]
                         for outcome in outcomes])
    assert np.all(days_to_pd("checkpoint_only") == 6) and np.all(days_to_pd("checkpoint_then_chemo") == 6)
    for arm in ("chemo_only", "chemo_then_checkpoint", "concurrent", "chemo_just_before_checkpoint"):
        assert np.all(days_to_pd(arm) > 6), arm  # chemotherapy holds every seed at the first assessment (day 8)
    assert np.all(days_to_pd("chemo_then_checkpoint") > days_to_pd("checkpoint_then_chemo"))
    assert np.all(days_to_pd("concurrent") > days_to_pd("chemo_only"))
    assert np.all(days_to_pd("concurrent") > days_to_pd("chemo_just_before_checkpoint"))
