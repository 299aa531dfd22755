"""configs/sequencing.yaml: the order and spacing of chemotherapy and anti-PD-1 change the outcome, over three seeds.

The preset's tumor is cold: only immunogenic deaths (from chemotherapy)
release the signal that primes T cells. Given first, chemotherapy primes the
T cells that a later checkpoint drug unleashes; given first, the checkpoint
drug finds no T cells. Chemotherapy given a day before every checkpoint dose
kills the T cells it primed (lymphodepletion); with lymphocytes spared by the
drug the same schedule clears the tumor. docs/sequencing.md has the figures
of the full runs; these runs stop earlier to keep the module to a few
minutes.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.presets import run_preset

SEEDS = (1, 2, 3)

pytestmark = pytest.mark.slow


def run_arm(arm, seed, *overrides):
    """The preset's ``arm`` with ``seed`` and the overrides, run to its end; its time series."""
    return run_preset("sequencing", f"seed={seed}", *overrides, arm=arm).timeseries()


@pytest.mark.parametrize("seed", SEEDS)
def test_chemo_then_checkpoint_beats_checkpoint_then_chemo(seed):
    # both arms start on day 5; by day 26 the checkpoint-first arm has had no chemotherapy yet
    chemo_first = run_arm("chemo_then_checkpoint", seed, "time.duration_days=26")
    checkpoint_first = run_arm("checkpoint_then_chemo", seed, "time.duration_days=26")
    assert checkpoint_first["t_cells_effector"].max() == 0  # nothing primed: anti-PD-1 has no T cells to act on
    assert chemo_first["t_cells_effector"].max() > 20 and chemo_first["immune_kills_total"].iloc[-1] > 100
    final_chemo_first = chemo_first["tumor_cells_live"].iloc[-1]
    assert final_chemo_first < 0.5 * checkpoint_first["tumor_cells_live"].iloc[-1]
    treated = chemo_first["time_days"] >= 5
    assert final_chemo_first < 0.5 * chemo_first["tumor_cells_live"][treated].iloc[0]  # it shrank under treatment


@pytest.mark.parametrize("seed", SEEDS)
def test_chemo_just_before_each_checkpoint_dose_depletes_the_t_cells_it_primed(seed):
    depleted = run_arm("chemo_just_before_checkpoint", seed, "time.duration_days=21")
    spared = run_arm("chemo_just_before_checkpoint", seed, "time.duration_days=21",
                     "immune.t_cells.drug_sensitivity.chemo=0")
    assert spared["tumor_cells_live"].iloc[-1] == 0 < depleted["tumor_cells_live"].iloc[-1]
    assert depleted["immune_drug_deaths_total"].iloc[-1] > 0 == spared["immune_drug_deaths_total"].iloc[-1]
    after_priming = slice(np.searchsorted(spared["time_days"], 10), None)
    assert depleted["t_cells_effector"].to_numpy()[after_priming].mean() < 0.7 * spared["t_cells_effector"].to_numpy()[after_priming].mean()
