"""The scenario presets in configs/ show what their header comments say (on a shortened run)."""
from __future__ import annotations

import numpy as np

from abm.config import load_config
from abm.model import TumorModel
from kernels.backend import get_backend


def run_preset(name, days):
    config = load_config(f"configs/{name}.yaml", [f"time.duration_days={days}"])
    model = TumorModel(config, get_backend("numpy"))
    for _ in range(config.time.total_steps):
        model.step()
    return model


def resistant_share(model):
    series = model.clone_series()
    resistant = {clone.index for clone in model.clones if clone.root.name == "resistant"}
    by_time = series.assign(resistant=series["clone"].isin(resistant) * series["cells_live"]).groupby("time_h")
    return (by_time["resistant"].sum() / by_time["cells_live"].sum()).to_numpy()


def test_preexisting_resistance_is_rare_costly_and_the_tumor_diversifies():
    model = run_preset("preexisting_resistance", 3)
    share = resistant_share(model)
    live = model.timeseries()["tumor_cells_live"].iloc[0]
    assert abs(share[0] * live - round(0.005 * live)) < 1  # exactly 0.5 % at the start
    assert share[-1] < 0.8 * share[0]  # the cost of resistance shows without drug
    assert model.latest["clones_total"] > 2 and model.latest["shannon_diversity"] > 0
    assert model.timeseries()["fraction_resistant"].iloc[0] > 0


def test_poor_perfusion_starves_the_core_of_drug_and_collapses_vessels():
    model = run_preset("poor_perfusion", 3)
    frame = model.timeseries()
    assert frame["vessels_perfused"].iloc[-1] < frame["vessels_perfused"].iloc[0] == frame["vessels"].iloc[0]
    assert (frame["drug_tumor_min"] < 0.8 * frame["drug_tumor_mean"]).all()
    state = model.state
    tumor = state.clone >= 0
    centre = [extent * state.dx_um / 2 for extent in state.shape]
    radius = np.broadcast_to(np.sqrt(sum((axis - c) ** 2 for axis, c in zip(state.coordinates_um(), centre))), state.shape)
    drug = state.fields["drug"]
    rim = tumor & (radius > radius[tumor].max() - 60)
    assert drug[tumor & (radius < 100)].mean() < 0.7 * drug[rim].mean()
