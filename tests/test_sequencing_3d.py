"""configs/sequencing_3d.yaml: the order and spacing of chemotherapy and anti-PD-1 change the outcome in 3-D, over
seeds 1-3.

The three claims of the preset's header, each on the CPU size run to its end
by ``abm.comparison.compare`` (as ``tme compare configs/sequencing_3d.yaml
--replicates 3`` runs it): chemotherapy then the checkpoint drug beats the
checkpoint drug then chemotherapy; the two together beat either alone; and
chemotherapy on the day before every checkpoint dose depletes the T cells
(worse than the concurrent schedule, whose chemotherapy stops after two
cycles; sparing lymphocytes from the drug rescues it). docs/sequencing.md
("3-D") has the figures.
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
def runs(tmp_path_factory):
    """Time series per (arm, seed), every arm of :data:`ARMS` and ``spared`` (chemo_just_before_checkpoint with
    lymphocytes spared by the drug), seeds 1-3, the whole duration."""
    out = tmp_path_factory.mktemp("sequencing_3d")
    series = {}
    for name, overrides, arms in (("arms", [], ARMS), ("spared", [SPARED], ("chemo_just_before_checkpoint",))):
        config = load_config(CONFIGS / "sequencing_3d.yaml", [*shrunk("sequencing_3d"), f"seed={SEEDS[0]}", *overrides])
        result = compare(config, out / name, len(SEEDS), list(arms), workers=2, progress=False)
        assert result["failed_runs"] == []
        for arm in arms:
            for seed in SEEDS:
                key = "spared" if name == "spared" else arm
                series[key, seed] = open_run(compare_run_path(out / name, arm, seed)).timeseries
    return series


def final(runs, arm, column="tumor_cells_live"):
    """The last record of ``column`` per seed (int64 array)."""
    return np.array([runs[arm, seed][column].iloc[-1] for seed in SEEDS])


def record(runs, arm, day, column):
    """``column`` at the record of ``day`` per seed (float64 array)."""
    return np.array([runs[arm, seed].set_index("time_days")[column].loc[day] for seed in SEEDS], dtype=float)


def test_chemo_then_checkpoint_beats_checkpoint_then_chemo(runs):
    # anti-PD-1 first (days 2-9, to its progression) finds no T cell: the tumor is cold until chemotherapy
    for seed in SEEDS:
        assert runs["checkpoint_then_chemo", seed].query("time_days <= 9")["t_cells_effector"].max() == 0
    chemo_first, checkpoint_first = final(runs, "chemo_then_checkpoint"), final(runs, "checkpoint_then_chemo")
    assert np.all(chemo_first < 0.1 * checkpoint_first)
    kills = final(runs, "chemo_then_checkpoint", "immune_kills_total")
    assert np.all(kills > 50 * final(runs, "checkpoint_then_chemo", "immune_kills_total"))
    peak = np.array([runs["chemo_then_checkpoint", seed]["tumor_cells_live"].max() for seed in SEEDS])
    assert np.all(chemo_first < 0.2 * peak)  # it shrinks once anti-PD-1 follows (day 16)


def test_concurrent_beats_either_drug_alone(runs):
    assert np.all(final(runs, "concurrent") == 0)  # every seed cleared by day 21
    assert np.all(final(runs, "chemo_only") > 20000) and np.all(final(runs, "checkpoint_only") > 20000)
    assert all(runs["checkpoint_only", seed]["t_cells_effector"].max() == 0 for seed in SEEDS)  # cold: nothing primed
    # the same T cells, braked by PD-L1 without the checkpoint drug, kill a fraction of what they kill with it
    assert np.all(final(runs, "concurrent", "immune_kills_total") > 3 * final(runs, "chemo_only", "immune_kills_total"))


def test_chemo_just_before_each_checkpoint_dose_depletes_the_t_cells(runs):
    close, spaced = final(runs, "chemo_just_before_checkpoint"), final(runs, "concurrent")
    assert np.all(close > 10000) and np.all(spaced == 0)
    drug_deaths = final(runs, "chemo_just_before_checkpoint", "immune_drug_deaths_total")
    assert np.all(drug_deaths > 1.5 * final(runs, "concurrent", "immune_drug_deaths_total"))
    for day in (18, 21):  # the same until its third chemotherapy dose (day 16), which concurrent does not give
        assert np.all(record(runs, "chemo_just_before_checkpoint", day, "t_cells_effector")
                      < 0.4 * record(runs, "concurrent", day, "t_cells_effector"))
    # lymphocytes spared by the drug: the same schedule clears every seed, and no T cell dies of it
    assert np.all(final(runs, "spared") == 0) and np.all(final(runs, "spared", "immune_drug_deaths_total") == 0)
