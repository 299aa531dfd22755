"""Macrophages (issue 17, item 3): an immune type of role macrophage, polarised between M1-like and M2-like by two
signals, recruited at perfused vessels up the chemokine; M2-like cells suppress T cells, M1-like cells kill tumor
cells; a CSF1R inhibitor depletes and repolarises them (docs/model.md, Macrophages).

The rule tests place cells and set fields by hand, then apply one rule of a built model to its step context.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from abm.config import ConfigError, parse_config, read_yaml
from abm.model import TumorModel
from kernels import immune

CONFIG = """
seed: 5
lattice: {shape: [40, 40], dx_um: 20.0}
time: {dt_cell_h: 2.0, duration_days: 2, record_every_h: 24, snapshot_every_h: null}
fields:
  oxygen: {preset: oxygen}
  chemokine: {preset: chemokine}
  danger_signal: {preset: danger_signal}
  ifng: {preset: il10, secretion_per_min: {t_cell: 1.0}}
  csf1: {preset: il10, secretion_per_min: {tumor_hypoxic: 1.0}}
  anticsf1r: {preset: anti_pd1}
drugs:
  anticsf1r: {kind: csf1r_inhibitor, pk: {half_life_h: 240}, kd: 1.0, depletion_per_h: 0.1, repolarisation: 0.5}
tumor:
  initial: {radius_um: 100.0}
immune:
  t_cells:
    clones: [{name: anti0, antigen: 0}]
  suppressors:
    tam:
      role: macrophage
      contact_inhibition: 0.8
      kill_rate_per_h: 0.5
      polarisation: {m1_field: ifng, m1_half_saturation: 0.1, m2_field: csf1, m2_half_saturation: 0.1,
                     baseline: 0.5, initial: 0.3, rate_per_h: 0.1}
"""


def config(*overrides: tuple[str, str]):
    text = CONFIG
    for old, new in overrides:
        assert old in text
        text = text.replace(old, new)
    return parse_config(read_yaml(text), "test config")


def placed(model, voxels, polarisation):
    """Put a macrophage of polarisation ``polarisation`` at each flat voxel of ``voxels`` (no other immune cell)."""
    index = np.asarray(voxels, dtype=np.int64)
    cells = model.lattice.immune.arrived(index, model.immune.suppressors["tam"].index)
    exhaustion = cells.exhaustion.copy()
    exhaustion.reshape(-1)[index] = polarisation
    model.context.lattice.immune = cells.replace(exhaustion=exhaustion)
    return index


def polarisation_at(model, index):
    return model.lattice.immune.exhaustion.reshape(-1)[index].astype(np.float64)


def signals(model, ifng, csf1, drug=0.0):
    fields = model.lattice.fields
    for name, level in (("ifng", ifng), ("csf1", csf1), ("anticsf1r", drug)):
        fields[name][...] = level


def apply(model, name, times=1):
    """Apply the rule ``name`` ``times`` times, each as a step of its own (new draws)."""
    rule = model.rule(name)
    for _ in range(times):
        model.context.new_step(model.context.step + 1)
        rule.apply(model.context)


def empty_corner(model, count):
    """``count`` flat voxels far from the tumor (the lattice's first row), free of tumor cells."""
    voxels = np.arange(count, dtype=np.int64) * 2
    assert (model.lattice.tumor.clone.reshape(-1)[voxels] < 0).all()
    return voxels


def test_polarise_is_the_exact_solution_and_stays_in_range():
    m = np.array([0.0, 0.2, 1.0, 0.7], dtype=np.float32)
    target = np.array([1.0, 0.2, 0.0, 0.3])
    out = immune.polarise(np, m, target=target, rate_per_h=0.3, dt_h=2.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, target + (m - target) * math.exp(-0.6), rtol=1e-6)
    far = immune.polarise(np, m, target=target, rate_per_h=1e3, dt_h=2.0)
    np.testing.assert_array_equal(far, target.astype(np.float32))


def test_polarisation_follows_its_signals_and_switches_back():
    model = TumorModel(config())
    cells = placed(model, empty_corner(model, 10), 0.5)
    signals(model, ifng=1.0, csf1=0.0)  # s1 = 10: target 0.5 / 11
    apply(model, "macrophages")
    expected = 0.5 / 11 + (0.5 - 0.5 / 11) * math.exp(-0.1 * 2.0)
    np.testing.assert_allclose(polarisation_at(model, cells), expected, rtol=1e-6)
    apply(model, "macrophages", 40)
    assert polarisation_at(model, cells).max() < 0.06, "M1-like under the IFN-gamma-like signal"
    signals(model, ifng=0.0, csf1=1.0)  # s2 = 10: target 10.5 / 11
    apply(model, "macrophages", 40)
    assert polarisation_at(model, cells).min() > 0.93, "M2-like under the tumor-derived signal"
    signals(model, ifng=1.0, csf1=0.0)
    apply(model, "macrophages", 40)
    assert polarisation_at(model, cells).max() < 0.06, "back to M1-like when the signal changes"
    signals(model, ifng=0.0, csf1=0.0)
    apply(model, "macrophages", 80)
    np.testing.assert_allclose(polarisation_at(model, cells), 0.5, atol=1e-3)  # the baseline without signals


def test_a_macrophage_enters_at_a_perfused_vessel_with_its_initial_polarisation():
    model = TumorModel(config(("      kill_rate_per_h: 0.5", "      kill_rate_per_h: 0.5\n      recruitment: {rate_per_h: 50.0}")))
    model.context.lattice.immune = model.lattice.immune.cleared(np.flatnonzero(model.lattice.immune.agent.reshape(-1) >= 0))
    apply(model, "immune_entry")
    tam = model.lattice.immune.agent == model.immune.suppressors["tam"].index
    assert tam.sum() > 10
    assert (model.lattice.vessels.perfusion[tam] > 0).all(), "only at perfused vessels"
    np.testing.assert_array_equal(model.lattice.immune.exhaustion[tam], np.float32(0.3))


def test_macrophages_climb_the_chemokine():
    model = TumorModel(config(("      kill_rate_per_h: 0.5", "      kill_rate_per_h: 0.5\n"
                               "      motility: {speed_um_per_min: 0.3, chemotaxis_field: chemokine, chemotaxis_bias: 1.0}")))
    model.context.lattice.tumor = model.lattice.tumor.replace(clone=np.full_like(model.lattice.tumor.clone, -1))
    ny, nx = model.lattice.shape
    model.lattice.fields["chemokine"][...] = np.arange(nx, dtype=np.float32)[None, :]  # rising along x
    start = np.ravel_multi_index((np.arange(5, 35, 3), np.full(10, 5)), (ny, nx))
    cells = placed(model, start, 0.5)
    apply(model, "immune_movement", 10)
    _, x = np.nonzero(model.lattice.immune.agent == model.immune.suppressors["tam"].index)
    assert len(x) == len(cells) and x.min() > 5 + 5, "every cell moved up the gradient"


def test_m2_macrophages_suppress_t_cells_in_contact_and_m1_ones_do_not():
    model = TumorModel(config())
    inhibition = model.config.immune.suppressors["tam"].contact_inhibition
    shape = model.lattice.shape
    t_cell = np.array([np.ravel_multi_index((2, 2), shape)])
    neighbour = np.ravel_multi_index((2, 3), shape)
    model.context.lattice.immune = model.lattice.immune.arrived(t_cell, 0)
    factors = []
    for m in (0.0, 0.5, 1.0):
        placed(model, [neighbour], m)
        factors.append(float(model.immune.suppression(model.context, t_cell)[0]))
    np.testing.assert_allclose(factors, [1.0, 1.0 - 0.5 * inhibition, 1.0 - inhibition])


def test_m1_macrophages_kill_tumor_cells_in_contact_and_m2_ones_do_not():
    kills = {}
    for m in (0.0, 1.0):
        model = TumorModel(config(("rate_per_h: 0.1}", "rate_per_h: 0.0}")))  # the polarisation stays as placed
        live = np.flatnonzero(model.lattice.tumor.live().reshape(-1))
        placed(model, live[::4], m)
        signals(model, ifng=0.0, csf1=0.0)
        before = int(model.lattice.tumor.live().sum())
        apply(model, "macrophages", 3)
        kills[m] = before - int(model.lattice.tumor.live().sum())
    assert kills[1.0] == 0
    assert kills[0.0] > 0.3 * len(live[::4]), kills  # about 1 - exp(-0.5 x 0.75 x 6 h) of the macrophages kill


def test_the_csf1r_inhibitor_depletes_and_repolarises_macrophages():
    model = TumorModel(config())
    cells = placed(model, empty_corner(model, 20), 1.0)
    signals(model, ifng=0.0, csf1=1.0, drug=1.0)  # occupancy 1/2: depletion 0.05/h, target x (1 - 0.25)
    apply(model, "macrophages", 10)
    tam = model.lattice.immune.agent.reshape(-1)[cells] == model.immune.suppressors["tam"].index
    assert 0 < tam.sum() < 0.6 * len(cells), "depleted at about exp(-0.05 x 20 h) = 0.37"
    survivors = cells[tam]
    np.testing.assert_allclose(polarisation_at(model, survivors),
                               0.75 * 10.5 / 11 + (1.0 - 0.75 * 10.5 / 11) * math.exp(-0.1 * 20.0), rtol=1e-5)


def test_hypoxic_tumor_cells_secrete_the_m2_signal():
    model = TumorModel(config())
    assert float(model.lattice.fields["csf1"].max()) == 0.0, "a small well oxygenated tumor has no hypoxic cells"
    model.lattice.fields["oxygen"][...] = 1.0  # below tumor.hypoxia.quiescence_below_mmHg as the step starts
    apply(model, "fields")
    assert float(model.lattice.fields["csf1"][model.lattice.tumor.live()].min()) > 0.0


def test_snapshots_hold_the_polarisation_of_macrophages_apart_from_the_exhaustion_of_t_cells(tmp_path):
    """The immune layer keeps both in one array; a snapshot (what a user reads, and tme export writes) names each:
    ``polarisation`` at the macrophages (NaN elsewhere), ``exhaustion`` at the T cells (0 elsewhere)."""
    from abm import rundir
    from abm.io import write_snapshot

    model = TumorModel(config())
    voxels = empty_corner(model, 6)
    macrophages = placed(model, voxels[:4], 0.8)
    t_cell = voxels[4:5]
    cells = model.lattice.immune.arrived(t_cell, model.immune.t_clones[0].index)
    exhaustion = cells.exhaustion.copy()
    exhaustion.reshape(-1)[t_cell] = 0.6
    model.context.lattice.immune = cells.replace(exhaustion=exhaustion)
    write_snapshot(tmp_path / rundir.snapshot_name(0), model.snapshot())
    snapshot = rundir.Snapshot(tmp_path / rundir.snapshot_name(0), 0)
    polarisation, exhaustion = snapshot.polarisation.reshape(-1), snapshot.exhaustion.reshape(-1)
    assert polarisation.dtype == exhaustion.dtype == np.float32
    np.testing.assert_array_equal(polarisation[macrophages], np.float32(0.8))
    assert np.isnan(np.delete(polarisation, macrophages)).all()
    np.testing.assert_array_equal(exhaustion[t_cell], np.float32(0.6))
    assert not np.delete(exhaustion, t_cell).any()
    np.testing.assert_array_equal(model.lattice.immune.exhaustion.reshape(-1)[macrophages], np.float32(0.8))  # kept


def test_immune_parquet_gives_each_macrophage_type_its_mean_polarisation(tmp_path):
    """A run with macrophages (the preset, 3 days): immune.parquet has polarisation_mean, the mean of the type's cells
    at each record (NaN for the T-cell clone); the last is the mean of the final snapshot's polarisation."""
    from abm import rundir
    from abm.config import load_config, select_arm
    from abm.runner import run

    out = tmp_path / "run"
    preset = load_config(Path(__file__).resolve().parents[1] / "configs" / "therapy_macrophages.yaml",
                         ["time.duration_days=3", "time.snapshot_every_h=72", "arms.untreated.start_day=1"])
    run(select_arm(preset, "untreated"), out, progress=False)
    table = rundir.read_table(out, "immune")
    assert table.columns[-1] == "polarisation_mean"
    assert table.loc[table["kind"] == "t_cell", "polarisation_mean"].isna().all()
    tam = table[table["kind"] == "tam"]
    last = tam.iloc[-1]
    assert last["cells_effector"] > 0
    [(path, _)] = [entry for entry in rundir.list_snapshots(out) if entry[1] > 0]
    polarisation = rundir.read_snapshot(path)["polarisation"]
    assert last["polarisation_mean"] == pytest.approx(float(np.nanmean(polarisation.astype(np.float64))), rel=1e-12)
    assert np.isnan(tam.loc[tam["cells_effector"] == 0, "polarisation_mean"]).all()


def test_macrophage_keys_are_checked():
    with pytest.raises(ConfigError, match="polarisation.m2_field: no field named 'vegf'"):
        config(("m2_field: csf1", "m2_field: vegf"))
    with pytest.raises(ConfigError, match="polarisation"):
        config(("role: macrophage", "role: suppressor"))  # a suppressor has no polarisation
    with pytest.raises(ConfigError, match="cell role"):
        config(("role: macrophage", "role: monocyte"))


# --------------------------------------------------------------------------- the preset's claim, over three seeds

PRESET_DAYS = 30  # the rescue arm clears the tumor by day 23-28 in seeds 1-3 (docs/therapy_scenarios.md)


@pytest.mark.slow
@pytest.mark.parametrize("seed", (1, 2, 3))
def test_preset_m2_macrophages_defeat_anti_pd1_and_a_csf1r_inhibitor_rescues_it(seed):
    from tests.presets import run_preset

    def live(model):
        frame = model.timeseries()
        return frame["time_days"].to_numpy(), frame["tumor_cells_live"].to_numpy()

    alone = run_preset("therapy_macrophages", f"time.duration_days={PRESET_DAYS}", f"seed={seed}", arm="anti_pd1")
    days, cells = live(alone)
    at_start = cells[days == 7][0]
    tam = alone.lattice.immune.agent == alone.immune.suppressors["tam"].index
    assert alone.latest["tams"] > 500 and float(alone.lattice.immune.exhaustion[tam].mean()) > 0.8, "many M2-like TAMs"
    assert cells[days >= 7].min() > 0.8 * at_start, "anti-PD-1 alone: no response"
    rescued = run_preset("therapy_macrophages", f"time.duration_days={PRESET_DAYS}", f"seed={seed}", arm="anti_pd1_csf1r")
    days, cells = live(rescued)
    assert rescued.latest["tams"] < 0.05 * alone.latest["tams"], "the CSF1R inhibitor depletes the TAMs"
    assert cells[-1] == 0, "anti-PD-1 with the CSF1R inhibitor clears the tumor"
    assert rescued.latest["immune_kills_total"] > alone.latest["immune_kills_total"]
