"""The Mesa model: reproducibility, growth, contiguity, hypoxic and necrotic core, records."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from abm.config import load_config
from abm.measurement import RECORD_COLUMNS
from abm.model import TumorModel
from kernels import tumor
from kernels.backend import get_backend

NUMPY = get_backend("numpy")


def make_model(overrides=(), path="configs/tiny.yaml"):
    return TumorModel(load_config(path, list(overrides)), NUMPY)


def run_steps(model, steps):
    for _ in range(steps):
        model.step()
    return model


def test_same_seed_gives_identical_runs_and_other_seeds_differ():
    first = run_steps(make_model(), 24)
    second = run_steps(make_model(), 24)
    other = run_steps(make_model(["seed=8"]), 24)
    assert first.timeseries().equals(second.timeseries())
    np.testing.assert_array_equal(first.lattice.tumor.clone, second.lattice.tumor.clone)
    np.testing.assert_array_equal(first.lattice.fields["oxygen"], second.lattice.fields["oxygen"])
    assert not np.array_equal(first.lattice.tumor.clone, other.lattice.tumor.clone)
    assert not first.timeseries().equals(other.timeseries())


def test_records_every_cadence_with_all_columns():
    model = run_steps(make_model(["time.record_every_h=3"]), 12)
    frame = model.timeseries()
    assert list(frame.columns) == list(RECORD_COLUMNS)
    np.testing.assert_allclose(frame["time_h"], [0, 3, 6, 9, 12])
    np.testing.assert_allclose(frame["time_days"], frame["time_h"] / 24)
    by_state = frame[["cells_cycling", "cells_quiescent", "cells_apoptotic", "cells_necrotic"]].sum(axis=1)
    assert (by_state == frame["tumor_cells_total"]).all()


@pytest.mark.parametrize("shape", [[48, 48], [20, 20, 20]])
def test_tumor_grows_from_the_seed_cluster_and_stays_contiguous(shape):
    model = make_model([f"lattice.shape={shape}", "tumor.initial.radius_um=60", "vessels.pattern=none"])
    start = model.latest["tumor_cells_total"]
    run_steps(model, 48)
    assert model.latest["tumor_cells_total"] > 1.3 * start
    occupied = model.lattice.tumor.clone >= 0
    _, components = ndimage.label(occupied, structure=np.ones((3,) * len(shape)))
    assert components == 1
    assert not (occupied & model.lattice.vessels.present).any()


def test_clone_mixture_and_agent_records():
    overrides = ["tumor.clones=[{name: a, fraction: 0.3}, {name: b, fraction: 0.7}]", "tumor.initial.radius_um=300",
                 "lattice.shape=[64, 64]"]
    model = make_model(overrides)
    counts = np.bincount(model.lattice.tumor.clone[model.lattice.tumor.clone >= 0], minlength=2)
    total = counts.sum()
    assert abs(counts[0] - 0.3 * total) < 4 * np.sqrt(0.21 * total)
    run_steps(model, 6)
    cells = model.datacollector.get_agenttype_vars_dataframe(type(model.subclones.agents[0]))["cells"]
    per_record = cells.groupby(level="Step").sum()
    np.testing.assert_array_equal(per_record.to_numpy(), model.timeseries()["tumor_cells_total"].to_numpy())


def test_hypoxic_then_necrotic_core_forms_as_the_tumor_outgrows_its_oxygen():
    model = make_model(path="configs/necrotic_core.yaml")
    assert model.latest["cells_necrotic"] == 0 and model.latest["hypoxic_fraction"] == 0
    run_steps(model, model.config.time.total_steps)
    final = model.latest
    assert final["tumor_cells_total"] > 5 * model.timeseries()["tumor_cells_total"].iloc[0]
    assert final["cells_necrotic"] > 0 and final["cells_quiescent"] > 0
    state = model.lattice
    centre = [np.asarray(axis) - 300.0 for axis in state.coordinates_um()]  # the 600 um cube's centre
    radius = np.sqrt(sum(axis**2 for axis in centre))
    radius = np.broadcast_to(radius, state.shape)
    necrotic = (state.tumor.clone >= 0) & (state.tumor.state == tumor.NECROTIC)
    cycling = (state.tumor.clone >= 0) & (state.tumor.state == tumor.CYCLING)
    assert radius[necrotic].mean() < 0.6 * radius[cycling].mean()
    oxygen = state.fields["oxygen"]
    assert oxygen[necrotic].mean() < oxygen[cycling].mean()
