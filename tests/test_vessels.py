"""Vessels: patterns, perfusion, collapse under dense tumor, and drug delivery through sparse vessels."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from abm.config import ConfigError, load_config
from abm.model import TumorModel
from abm.rules import SolveFields
from kernels.layers import VesselLayer
from kernels import vessels
from kernels.backend import get_backend
from kernels.lattice import moore_offsets
from kernels.random import uniform, voxel_index
from tests.conftest import to_host

NUMPY = get_backend("numpy")


def make_model(overrides, rules=None):
    config = load_config("configs/tiny.yaml", list(overrides))
    return TumorModel(config, NUMPY) if rules is None else TumorModel(config, NUMPY, rules=rules)


def radius_um(model):
    centre = [extent * model.lattice.dx_um / 2 for extent in model.lattice.shape]
    return np.broadcast_to(np.sqrt(sum((axis - c) ** 2 for axis, c in zip(model.lattice.coordinates_um(), centre))),
                           model.lattice.shape)


# patterns and perfusion ---------------------------------------------------------------

def test_sparse_core_thins_vessels_inside_the_core_radius():
    model = make_model(["lattice.shape=[200, 200]", "vessels={pattern: sparse_core, density: 0.05,"
                        " core_radius_um: 1200, core_density_factor: 0.2}"])
    r = radius_um(model)
    inside, outside = model.lattice.vessels.present[r < 1200].mean(), model.lattice.vessels.present[r >= 1200].mean()
    assert abs(outside - 0.05) < 0.01 and abs(inside - 0.01) < 0.004
    avascular = make_model(["vessels={pattern: sparse_core, density: 0.05, core_radius_um: 300}"])
    assert not avascular.lattice.vessels.present[radius_um(avascular) < 300].any()


def test_perfusion_is_drawn_in_its_range_and_zero_off_vessels():
    model = make_model(["lattice.shape=[120, 120]", "vessels={density: 0.1, perfusion_min: 0.2, perfusion_max: 0.6}"])
    perfusion = model.lattice.vessels.perfusion
    on = perfusion[model.lattice.vessels.present]
    assert on.min() >= 0.2 and on.max() <= 0.6 and abs(on.mean() - 0.4) < 0.02
    assert (perfusion[~model.lattice.vessels.present] == 0).all() and perfusion.dtype == np.float32
    assert model.latest["mean_perfusion"] == pytest.approx(float(on.mean()), rel=1e-6)
    assert model.latest["vessels"] == model.latest["vessels_perfused"] == int(model.lattice.vessels.present.sum())


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_vessel_file_relative_to_the_config(tmp_path, kind):
    values = np.zeros((20, 20), dtype=bool if kind == "bool" else np.float32)
    values[2, 3] = 1 if kind == "bool" else 0.25
    values[15, 16] = 1
    (tmp_path / "masks").mkdir()
    np.save(tmp_path / "masks" / "vessels.npy", values)
    config = tmp_path / "config.yaml"
    config.write_text("lattice: {shape: [20, 20]}\ntime: {duration_days: 1}\n"
                      "vessels: {pattern: file, file: masks/vessels.npy}\n", encoding="utf-8")
    model = TumorModel(load_config(config), NUMPY)
    assert set(zip(*np.nonzero(model.lattice.vessels.present))) == {(2, 3), (15, 16)}
    assert model.lattice.vessels.perfusion[2, 3] == (1.0 if kind == "bool" else 0.25) and model.lattice.vessels.perfusion[15, 16] == 1.0
    assert (model.lattice.tumor.clone[model.lattice.vessels.present] == -1).all()


def test_vessel_file_errors_name_the_key(tmp_path):
    base = ["vessels.pattern=file"]
    with pytest.raises(ConfigError, match=r"vessels\.file: .*no such file"):
        load_config("configs/tiny.yaml", base + [f"vessels.file={tmp_path / 'none.npy'}"])
    np.save(tmp_path / "small.npy", np.zeros((5, 5), dtype=bool))
    with pytest.raises(ConfigError, match=r"vessels\.file: .*shape \(5, 5\) does not match lattice\.shape \[48, 48\]"):
        load_config("configs/tiny.yaml", base + [f"vessels.file={tmp_path / 'small.npy'}"])
    np.save(tmp_path / "range.npy", np.full((48, 48), 2.0))
    with pytest.raises(ConfigError, match=r"vessels\.file: .*\[0, 1\]"):
        load_config("configs/tiny.yaml", base + [f"vessels.file={tmp_path / 'range.npy'}"])
    with pytest.raises(ConfigError, match=r"vessels\.file: Field required"):
        load_config("configs/tiny.yaml", base)


# collapse ------------------------------------------------------------------------------

def test_tumor_neighbour_fraction_counts_moore_neighbours(xp):
    occupied = xp.zeros((5, 5), dtype=bool)
    occupied[1:4, 1:4] = True
    fraction = to_host(vessels.tumor_neighbour_fraction(xp, occupied, moore_offsets(2)))
    assert fraction[2, 2] == 1.0 and fraction[0, 0] == pytest.approx(1 / 8) and fraction[1, 1] == pytest.approx(3 / 8)


def test_compressed_vessels_collapse_at_the_rate_and_others_never(xp):
    shape = (200, 200)
    perfusion = xp.full(shape, 0.8, dtype=xp.float32)
    crowding = xp.zeros(shape, dtype=xp.float32)
    crowding[:100] = 0.6
    draw = uniform(xp, 5, 0, 9, voxel_index(xp, shape))
    layer = VesselLayer.empty(xp, shape).replace(present=perfusion > 0, perfusion=perfusion)
    after = to_host(vessels.collapse(xp, layer, tumor_fraction=crowding, fraction_at_least=0.5, rate_per_h=0.2, dt_h=1.0,
                                     draw=draw).perfusion)
    collapsed = (after[:100] == 0).mean()
    expected = 1 - np.exp(-0.2)
    assert abs(collapsed - expected) < 4 * np.sqrt(expected * (1 - expected) / 20000)
    assert (after[100:] == np.float32(0.8)).all() and set(np.unique(after[:100])) == {0.0, np.float32(0.8)}


def test_a_growing_tumor_collapses_the_vessels_it_engulfs():
    overrides = ["lattice.shape=[60, 60]", "tumor.initial.radius_um=300", "fields.oxygen.uptake_per_min={}",
                 "vessels={density: 0.02, collapse: {tumor_neighbour_fraction: 0.75, rate_per_h: 0.5}}"]
    model = make_model(overrides)
    for _ in range(24):
        model.step()
    state = model.lattice
    crowding = vessels.tumor_neighbour_fraction(np, state.tumor.clone >= 0, model.run.offsets)
    engulfed = state.vessels.present & (crowding == 1.0)
    far = state.vessels.present & (crowding == 0.0)
    assert engulfed.sum() > 5 and far.sum() > 5
    assert (state.vessels.perfusion[engulfed] == 0).mean() > 0.9
    assert (state.vessels.perfusion[far] == 1).all()
    assert model.latest["vessels_perfused"] < model.latest["vessels"]
    never = make_model(overrides[:-1] + ["vessels.density=0.02"])
    for _ in range(24):
        never.step()
    assert (never.lattice.vessels.perfusion[never.lattice.vessels.present] == 1).all()


# delivery --------------------------------------------------------------------------------

DELIVERY = [
    "lattice.shape=[24, 24, 24]", "tumor.initial.radius_um=160", "vessels.pattern=sparse_core",
    "vessels.density=0.05", "vessels.core_radius_um=200",
    "fields={oxygen: {preset: oxygen}, drug: {preset: chemo_drug, vessel: {supply_per_min: 1.0, blood_level: 1.0}}}",
]


def reference_steady_state(model, name):
    """The field's equilibrium from the same finite-volume equations, assembled here and solved with SciPy."""
    field = model.config.fields[name]
    state = model.lattice
    shape, n = state.shape, state.tumor.clone.size
    coupling = field.D_um2_per_min / state.dx_um**2
    live = state.tumor.live()
    diagonal = field.decay_per_min + sum(rate * (live if kind == "tumor" else (state.tumor.clone >= 0) & ~live)
                                         for kind, rate in field.uptake_per_min.items()).astype(float) * np.ones(shape)
    rhs = np.zeros(shape)
    if field.vessel is not None:
        diagonal = diagonal + field.vessel.supply_per_min * state.vessels.perfusion
        rhs += field.vessel.supply_per_min * field.vessel.blood_level * state.vessels.perfusion
    index = np.arange(n).reshape(shape)
    rows, cols, values = [], [], []
    for axis in range(len(shape)):
        low = [slice(None)] * len(shape)
        high = [slice(None)] * len(shape)
        low[axis], high[axis] = slice(0, -1), slice(1, None)
        a, b = index[tuple(low)].ravel(), index[tuple(high)].ravel()
        rows += [a, b]
        cols += [b, a]
        values += [np.full(a.size, -coupling)] * 2
        count = np.zeros(shape)
        count[tuple(low)] += 1
        count[tuple(high)] += 1
        diagonal = diagonal + coupling * count
        for end, face in ((0, "min"), (-1, "max")):
            value = field.boundary.faces.get(f"{'zyx'[3 - len(shape) + axis]}_{face}", field.boundary.default)
            if value != "no_flux":
                edge = [slice(None)] * len(shape)
                edge[axis] = end
                diagonal[tuple(edge)] += 2 * coupling
                rhs[tuple(edge)] += 2 * coupling * float(value)
    rows.append(index.ravel())
    cols.append(index.ravel())
    values.append(np.asarray(diagonal, dtype=float).ravel())
    matrix = scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return scipy.sparse.linalg.spsolve(matrix, rhs.ravel()).reshape(shape)


def centre_and_rim(model, values):
    r = radius_um(model)
    tumor = model.lattice.tumor.clone >= 0
    return float(values[tumor & (r < 60)].mean()), float(values[tumor & (r > 120)].mean())


@pytest.mark.parametrize("name", ["oxygen", "drug"])
def test_sparse_core_delivery_is_lower_at_the_centre_as_the_steady_state_says(name):
    """With vessels outside the core only, oxygen and a drug at a plasma level fall toward the tumor centre.

    The model's fields (oxygen by its steady solver; the drug by transient
    backward-Euler steps of one cell step each, held long enough to
    equilibrate, with the cells frozen) match an independent sparse solve of
    the same equations, including the centre-rim drop.
    """
    model = make_model(DELIVERY + ["fields.drug.solver=transient"], rules=(SolveFields,))
    for _ in range(8):
        model.step()
    field = model.lattice.fields[name].astype(float)
    reference = reference_steady_state(model, name)
    scale = float(reference.max())
    tolerance = 1e-5
    assert np.abs(field - reference).max() < tolerance * scale
    centre, rim = centre_and_rim(model, field)
    expected_centre, expected_rim = centre_and_rim(model, reference)
    assert rim - centre > 0.02 * scale  # a drop far above the tolerance of the match
    assert abs((rim - centre) - (expected_rim - expected_centre)) < 2 * tolerance * scale


def test_perfusion_scales_vessel_supply():
    """Halving every vessel's perfusion halves its exchange: the equilibrium drug level falls."""
    full = make_model(DELIVERY + ["fields.drug.solver=steady"], rules=(SolveFields,))
    half = make_model(DELIVERY + ["fields.drug.solver=steady", "vessels.perfusion_min=0.5", "vessels.perfusion_max=0.5"],
                      rules=(SolveFields,))
    assert (half.lattice.vessels.present == full.lattice.vessels.present).all()
    np.testing.assert_allclose(half.lattice.fields["drug"], reference_steady_state(half, "drug"), rtol=0, atol=1e-5)
    assert half.lattice.fields["drug"].mean() < 0.9 * full.lattice.fields["drug"].mean()


def test_setting_a_variant_keeps_only_its_keys_and_the_shared_ones():
    """--set vessels.pattern=none on a sparse_core config drops the sparse_core keys and keeps collapse; the same for
    the initial geometry; in a section given whole, a key of another variant is an error (tests/test_bad_input.py)."""
    config = load_config("configs/default.yaml", ["vessels.collapse={rate_per_h: 0.1}", "vessels.pattern=none"])
    assert config.vessels.model_dump() == {"pattern": "none", "collapse": {"tumor_neighbour_fraction": 0.5, "rate_per_h": 0.1},
                                           "angiogenesis": None}
    back = load_config("configs/default.yaml", ["vessels.pattern=uniform"])
    assert back.vessels.pattern == "uniform" and back.vessels.density == 0.002  # a key both patterns have is kept
    assert "core_radius_um" not in back.vessels.model_dump()
    scattered = load_config("configs/tiny.yaml", ["tumor.initial.geometry=scattered", "tumor.initial.cells=30",
                                                  "tumor.initial.arrangement=sectors"])
    assert scattered.tumor.initial.cells == 30 and not hasattr(scattered.tumor.initial, "radius_um")
    assert scattered.tumor.initial.arrangement == "sectors"
