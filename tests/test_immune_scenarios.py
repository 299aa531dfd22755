"""The immune presets in configs/ show what their header comments say, over three seeds.

Each preset runs for seeds 1-3 beside one control without the mechanism (no
T cells, or no suppressor cells), and each outcome is checked against that
control. To keep the module to about two and a half minutes on two CPU cores, the
equilibrium and escape runs use a 24^3 lattice and stop early, and the
excluded run stops at day 4; docs/immune_scenarios.md gives the figures of
the full runs.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.presets import antigen_negative_share, run_preset

SEEDS = (1, 2, 3)
SMALL = "lattice.shape=[24, 24, 24]"
EQUILIBRIUM = (SMALL, "time.duration_days=16")
ESCAPE = (SMALL, "time.duration_days=18")
EXCLUDED = ("time.duration_days=4",)

pytestmark = pytest.mark.slow


def live_cells(model):
    return model.timeseries()["tumor_cells_live"].to_numpy()


def core_and_margin(model):
    """Mean CD8 density (cells/mm^3) in the tumor core and at the invasive margin from day 2 on."""
    frame = model.timeseries()
    later = frame[frame["time_days"] >= 2]
    return later["cd8_density_core_per_mm3"].mean(), later["cd8_density_margin_per_mm3"].mean()


@pytest.fixture(scope="module")
def tumor_without_t_cells():
    live = live_cells(run_preset("immune_equilibrium", *EQUILIBRIUM, "immune.t_cells.clones=[]"))
    assert live[-1] > 10 * live[0]  # without T cells the tumor grows away
    return live


@pytest.fixture(scope="module")
def antigen_loss_without_t_cells():
    share = antigen_negative_share(run_preset("immune_escape", *ESCAPE, "immune.t_cells.clones=[]"))
    assert share[-1] < 0.1  # without T cells antigen loss is neutral
    return share


@pytest.fixture(scope="module")
def infiltrated_without_suppressors():
    model = run_preset("immune_excluded", *EXCLUDED, "immune.tregs=null", "immune.mdscs=null")
    core, margin = core_and_margin(model)
    assert core > 2 * margin  # without suppressors T cells fill the core
    return core, margin, model.latest["immune_kills_total"]


@pytest.mark.parametrize("seed", SEEDS)
def test_equilibrium_t_cells_hold_a_tumor_that_grows_away_without_them(seed, tumor_without_t_cells):
    model = run_preset("immune_equilibrium", *EQUILIBRIUM, f"seed={seed}")
    live = live_cells(model)
    peak = int(np.argmax(live))
    assert peak < len(live) - 1 and live[-1] < live[peak], "still growing at the end"
    assert live[-1] < 0.25 * tumor_without_t_cells[-1], "not held in check"
    assert live[peak:].min() > 0.25 * live[0], "eliminated rather than held"
    assert model.latest["immune_kills_total"] > live[0]  # held by killing


@pytest.mark.parametrize("seed", SEEDS)
def test_escape_antigen_negative_subclones_take_over_and_the_tumor_regrows(seed, antigen_loss_without_t_cells):
    model = run_preset("immune_escape", *ESCAPE, f"seed={seed}")
    live, share = live_cells(model), antigen_negative_share(model)
    peak = int(np.argmax(live[: len(live) // 2]))  # the first growth, before the T cells catch up
    nadir = peak + int(np.argmin(live[peak:]))
    assert share[0] == 0 and share[-1] > 0.5, f"antigen-negative share {share[-1]:.2f} at the end"
    assert share[-1] > 5 * antigen_loss_without_t_cells[-1], "no selection over the control"
    assert live[nadir] < 0.5 * live[peak], "no initial response"
    assert live[-1] > 3 * live[nadir], "no regrowth"


@pytest.mark.parametrize("seed", SEEDS)
def test_excluded_suppressors_keep_t_cells_at_the_margin(seed, infiltrated_without_suppressors):
    control_core, control_margin, control_kills = infiltrated_without_suppressors
    model = run_preset("immune_excluded", *EXCLUDED, f"seed={seed}")
    core, margin = core_and_margin(model)
    assert model.latest["tregs"] > 0 and model.latest["mdscs"] > 0
    assert margin > 0.3 * control_margin, "T cells do not reach the margin"
    assert core < 0.1 * control_core and core < 0.5 * margin, f"core {core:.0f} vs margin {margin:.0f} per mm^3"
    assert model.latest["immune_kills_total"] < 0.2 * control_kills
