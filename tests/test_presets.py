"""The scenario presets in configs/ show what their header comments say (on a shortened run)."""
from __future__ import annotations

import numpy as np

from tests.presets import run_preset


def resistant_share(model):
    series = model.clone_series()
    resistant = {clone.index for clone in model.subclones.agents if clone.root.name == "resistant"}
    by_time = series.assign(resistant=series["clone"].isin(resistant) * series["cells_live"]).groupby("time_h")
    return (by_time["resistant"].sum() / by_time["cells_live"].sum()).to_numpy()


def test_preexisting_resistance_responds_then_relapses_resistant():
    model = run_preset("preexisting_resistance", "time.duration_days=8")
    share = resistant_share(model)
    live = model.timeseries()["tumor_cells_live"].to_numpy()
    assert abs(share[0] * live[0] - round(0.005 * live[0])) < 1  # exactly 0.5 % at the start
    nadir = int(np.argmin(live))
    assert live[nadir] < 0.1 * live[0] and live[-1] > 1.3 * live[nadir]  # response, then relapse
    assert share[-1] > 0.9
    assert model.latest["clones_total"] > 2 and model.latest["drug_kills_total"] > live[0]


def test_preexisting_resistance_costs_fitness_without_the_drug():
    model = run_preset("preexisting_resistance", "time.duration_days=3", "fields.chemo_drug.vessel.blood_level=0")
    share = resistant_share(model)
    assert share[-1] < 0.8 * share[0] and model.latest["drug_kills_total"] == 0


def test_poor_perfusion_starves_the_core_of_drug_and_collapses_vessels():
    model = run_preset("poor_perfusion", "time.duration_days=3")
    frame = model.timeseries()
    assert frame["vessels_perfused"].iloc[-1] < frame["vessels_perfused"].iloc[0] == frame["vessels"].iloc[0]
    assert (frame["drug_tumor_min"] < 0.8 * frame["drug_tumor_mean"]).all()
    state = model.lattice
    tumor = state.tumor.clone >= 0
    centre = [extent * state.dx_um / 2 for extent in state.shape]
    radius = np.broadcast_to(np.sqrt(sum((axis - c) ** 2 for axis, c in zip(state.coordinates_um(), centre))), state.shape)
    drug = state.fields["drug"]
    rim = tumor & (radius > radius[tumor].max() - 60)
    assert drug[tumor & (radius < 100)].mean() < 0.7 * drug[rim].mean()


def test_large_3d_shrunk_grows_is_treated_and_gathers_suppressors():
    """configs/large_3d.yaml at the suite's size (tests.presets.SHRINK, treated from hour 6) for one day: pushing grows
    the ball before the first dose, chemotherapy then kills, and Tregs and MDSCs enter on their attractant."""
    model = run_preset("large_3d", "time.duration_days=1", "time.record_every_h=6")
    frame = model.timeseries()
    assert frame["tumor_cells_total"].iloc[1] > frame["tumor_cells_total"].iloc[0]  # hour 6, before any kill
    assert frame["drug_kills_total"].iloc[1] == 0 and frame["drug_kills_total"].iloc[-1] > 0
    assert frame["tregs"].iloc[-1] > 0 and frame["mdscs"].iloc[-1] > 0
