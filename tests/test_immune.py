"""Immune cells: entry, movement, killing, PD-1/PD-L1, suppression, exhaustion, priming, records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abm.config import ConfigError, load_config
from abm.model import TumorModel
from abm.rules import DEFAULT_RULES, ImmuneKill, ImmuneMovement, ImmunePriming, Rule
from kernels import immune, lattice, tumor
from kernels.layers import EFFECTOR, EXHAUSTED, ImmuneLayer, TumorLayer
from kernels.backend import get_backend
from kernels.lattice import moore_offsets
from kernels.random import uniform, voxel_index
from tests.conftest import to_host

NUMPY = get_backend("numpy")
KILL = immune.KillParameters(kill_rate_per_h=0.5, pdl1_inhibition=0.9, exhaustion_per_kill=0.2, exhaustion_per_engagement_h=0.05)
IMMUNE_FIELDS = "fields={oxygen: {preset: oxygen}, chemokine: {preset: chemokine}, danger_signal: {preset: danger_signal}}"


def draws(xp, shape, stream, step=0):
    return uniform(xp, 21, step, stream, voxel_index(xp, shape))


def listed(xp, mask):
    """``int64`` flat indices of a bool lattice mask, ascending."""
    return xp.flatnonzero(mask.reshape(-1))


def at(values, index):
    """A lattice array read at flat ``index``."""
    return values.reshape(-1)[index]


def on_lattice(xp, shape, index, values=True):
    """A lattice array (bool by default) holding ``values`` at flat ``index`` and False/0 elsewhere."""
    values = xp.asarray(values)
    out = xp.zeros(int(np.prod(shape)), dtype=values.dtype)
    out[index] = values
    return out.reshape(shape)


# --------------------------------------------------------------------------- killing kernel

def kill_setup(xp, shape=(120, 120), antigens=(0b01,), pdl1=(0.0,), t_antigen=0):
    """Every voxel holds a live tumor cell of clone 0; every 3rd row of voxels an effector T cell."""
    clone = xp.zeros(shape, dtype=xp.int32)
    state = xp.full(shape, tumor.CYCLING, dtype=xp.int8)
    age = xp.zeros(shape, dtype=xp.float32)
    effector = xp.zeros(shape, dtype=bool)
    effector[::3] = True
    cells = ImmuneLayer.empty(xp, shape)
    return dict(effector=effector, t_antigen=xp.full(shape, t_antigen, dtype=xp.int64),
                tumor=TumorLayer(clone=clone, state=state, age_h=age, immunogenic=xp.zeros(shape, dtype=bool)),
                immune=cells, tumor_antigens=xp.asarray(np.array(antigens, dtype=np.uint64)),
                tumor_pdl1=xp.asarray(np.array(pdl1, dtype=np.float64)))


def run_kill(xp, setup, occupancy=0.0, kill_factor=1.0, parameters=KILL):
    """``[cell_state, state_age_h, exhaustion, killers, killed]`` on the host after one kill step."""
    shape = setup["tumor"].clone.shape
    targets = [(0, 0)] + moore_offsets(2)
    effectors = listed(xp, setup["effector"])
    cells, immune_cells, killers, killed = immune.t_cell_kill(
        xp, setup["tumor"], setup["immune"], effectors=effectors, t_antigen=at(setup["t_antigen"], effectors),
        tumor_antigens=setup["tumor_antigens"], tumor_pdl1=setup["tumor_pdl1"], occupancy=occupancy,
        kill_factor=kill_factor, targets_offsets=targets, parameters=parameters, dt_h=1.0,
        draw_target=at(draws(xp, shape, 16), effectors), draw_kill=at(draws(xp, shape, 17), effectors))
    return [to_host(a) for a in (cells.state, cells.age_h, immune_cells.exhaustion,
                                 on_lattice(xp, shape, effectors, killers), on_lattice(xp, shape, killed))]


def test_t_cells_never_kill_a_tumor_without_their_antigen(xp):
    setup = kill_setup(xp, antigens=(0b110,), t_antigen=0)  # the tumor presents antigens 1 and 2, not 0
    cell_state, _, exhaustion, killers, killed = run_kill(xp, setup)
    assert not killed.any() and not killers.any() and (exhaustion == 0).all()
    assert (cell_state == tumor.CYCLING).all()
    present = kill_setup(xp, antigens=(0b110,), t_antigen=2)
    assert run_kill(xp, present)[4].any()


def test_kill_probability_follows_the_rate(xp):
    setup = kill_setup(xp)
    _, _, exhaustion, killers, _ = run_kill(xp, setup)
    t_cells = to_host(setup["effector"]).sum()
    expected = 1 - np.exp(-0.5)
    assert abs(killers.sum() / t_cells - expected) < 4 * np.sqrt(expected * (1 - expected) / t_cells)
    np.testing.assert_allclose(exhaustion[killers], 0.2)  # a kill, and no PD-L1 on the targets


def test_pdl1_brakes_the_kill_unless_pd1_is_fully_blocked(xp):
    free_pd1 = [run_kill(xp, kill_setup(xp, pdl1=(level,)))[3].sum() for level in (0.0, 1.0)]
    assert free_pd1[1] < 0.4 * free_pd1[0]  # (1 - 0.9) of the rate
    blocked = [run_kill(xp, kill_setup(xp, pdl1=(level,)), occupancy=1.0) for level in (0.0, 0.5, 1.0)]
    for other in blocked[1:]:  # the same draws, and with PD-1 blocked the same rate: the same cells die
        np.testing.assert_array_equal(other[3], blocked[0][3])
        np.testing.assert_array_equal(other[4], blocked[0][4])
        np.testing.assert_array_equal(other[2], blocked[0][2])  # and no exhaustion from PD-L1 engagement


def test_pdl1_engagement_exhausts_in_proportion_to_free_pd1(xp):
    no_kill = immune.KillParameters(0.0, 0.9, 0.2, 0.05)
    setup = kill_setup(xp, pdl1=(0.8,))
    exhaustion = run_kill(xp, setup, occupancy=0.25, parameters=no_kill)[2]
    effector = to_host(setup["effector"])
    np.testing.assert_allclose(exhaustion[effector], 0.05 * 0.8 * 0.75, rtol=1e-6)
    assert (exhaustion[~effector] == 0).all()


def test_suppression_factor_scales_the_kill(xp):
    full = run_kill(xp, kill_setup(xp))[3].sum()
    halved = run_kill(xp, kill_setup(xp), kill_factor=0.5)[3].sum()
    expected = (1 - np.exp(-0.25)) / (1 - np.exp(-0.5))
    assert abs(halved / full - expected) < 0.06


# --------------------------------------------------------------------------- movement and entry

def test_cells_climb_a_fixed_gradient_and_wander_without_bias(xp):
    shape = (60, 60)
    offsets = moore_offsets(2)
    field = xp.broadcast_to(xp.arange(shape[1], dtype=xp.float64), shape)  # rises along x
    occupied = draws(xp, shape, 1) < 0.1
    cells = listed(xp, occupied)
    neighbour = lattice.neighbour_indices(xp, shape, cells, offsets)
    allowed = (neighbour >= 0) & ~at(occupied, xp.maximum(neighbour, 0))
    uphill = immune.uphill_direction(xp, at(field, cells), at(field, xp.maximum(neighbour, 0)), allowed,
                                     at(draws(xp, shape, 11), cells))
    mean_dx = {}
    for bias in (0.0, 0.5):
        choice = to_host(immune.move_choice(xp, allowed, uphill, xp.full(cells.shape, bias),
                                            at(draws(xp, shape, 2), cells), at(draws(xp, shape, 3), cells)))
        moved = choice >= 0
        mean_dx[bias] = np.mean([offsets[k][1] for k in choice[moved]])
    assert abs(mean_dx[0.0]) < 0.1
    assert mean_dx[0.5] > 0.4  # half the moves go uphill (+1 in x), the rest average 0


def test_uphill_breaks_ties_at_random_and_never_climbs_a_plateau(xp):
    shape = (200, 200)
    offsets = moore_offsets(2)
    every = xp.arange(shape[0] * shape[1])
    neighbour = lattice.neighbour_indices(xp, shape, every, offsets)
    allowed = neighbour >= 0

    def uphill(field, stream):
        return to_host(immune.uphill_direction(xp, at(field, every), at(field, xp.maximum(neighbour, 0)), allowed,
                                               draws(xp, shape, stream).reshape(-1))).reshape(shape)

    assert (uphill(xp.ones(shape), 12) == -1).all()
    ridge = xp.broadcast_to((xp.arange(shape[1]) % 2 == 1).astype(xp.float64), shape)  # x neighbours equally higher on even columns
    choice = uphill(ridge, 13)
    even = choice[1:-1, 2:-2:2]
    dx = np.array([offsets[k][1] for k in even.ravel()])
    assert (even >= 0).all() and abs((dx > 0).mean() - 0.5) < 0.02  # left and right, six tied neighbours, no favourite
    dy = np.array([offsets[k][0] for k in even.ravel()])
    assert abs(dy.mean()) < 0.02


def crowded_immune(xp, shape=(50, 50)):
    occupied = draws(xp, shape, 4) < 0.4
    agent = xp.where(occupied, (draws(xp, shape, 5) * 3).astype(xp.int32), -1).astype(xp.int32)
    return agent


def test_movement_keeps_one_immune_cell_per_voxel_and_conserves_counts(xp):
    shape = (50, 50)
    offsets = moore_offsets(2)
    agent = crowded_immune(xp, shape)
    before = np.bincount(to_host(agent)[to_host(agent) >= 0], minlength=3)
    for step in range(5):
        occupied = agent >= 0
        cells = listed(xp, occupied)
        neighbour = lattice.neighbour_indices(xp, shape, cells, offsets)
        allowed = (neighbour >= 0) & ~at(occupied, xp.maximum(neighbour, 0))
        choice = immune.move_choice(xp, allowed, xp.full(cells.shape, -1, dtype=xp.int8), xp.zeros(cells.shape),
                                    at(draws(xp, shape, 6, step), cells), at(draws(xp, shape, 7, step), cells))
        source, target = lattice.placed(xp, cells, neighbour, choice, at(draws(xp, shape, 8, step), cells))
        assert not to_host(at(occupied, target)).any()  # only free voxels receive a cell
        assert len(np.unique(to_host(target))) == len(target) > 0  # each at most one
        agent = agent.copy()
        flat = agent.reshape(-1)
        flat[target] = flat[source]
        flat[source] = -1
        after = np.bincount(to_host(agent)[to_host(agent) >= 0], minlength=3)
        np.testing.assert_array_equal(after, before)


def test_entry_only_at_perfused_free_vessels_by_weight(xp):
    shape = (200, 200)
    immune_cells = ImmuneLayer.empty(xp, shape)
    immune_cells.agent[:, :20] = 7  # occupied: no entry there
    rate = xp.zeros(shape)
    rate[:100] = 0.5  # perfused vessels in the top half
    cumulative = xp.asarray([0.25, 1.0])
    every = xp.arange(shape[0] * shape[1])  # every voxel a site: rate 0 at the unperfused ones
    cells, entered = immune.enter(xp, immune_cells, sites=every, entry_rate_per_h=rate.reshape(-1), dt_h=1.0,
                                  cumulative_weights=cumulative, first_agent=3, draw_enter=draws(xp, shape, 9).reshape(-1),
                                  draw_which=draws(xp, shape, 10).reshape(-1))
    new, entered = to_host(cells.agent), to_host(on_lattice(xp, shape, entered))
    assert not entered[100:].any() and not entered[:, :20].any()
    assert (new[:, :20] == 7).all()
    fraction = entered[:100, 20:].mean()
    expected = 1 - np.exp(-0.5)
    assert abs(fraction - expected) < 4 * np.sqrt(expected * (1 - expected) / 8000)
    first = (new[entered] == 3).mean()
    assert set(np.unique(new[entered])) == {3, 4} and abs(first - 0.25) < 0.04


# --------------------------------------------------------------------------- model

def immune_model(overrides=(), rules=DEFAULT_RULES, path="configs/tiny.yaml"):
    return TumorModel(load_config(path, [IMMUNE_FIELDS, *overrides]), NUMPY, rules)


def seed_cells(model, fraction, agent, stream, state=EFFECTOR, where=None):
    """Put immune cells of ``agent`` on ``fraction`` of the free voxels (of ``where``, default: the tumor)."""
    s = model.lattice
    region = (s.tumor.clone >= 0) if where is None else where
    place = region & (s.immune.agent < 0) & (draws(np, s.shape, stream) < fraction)
    s.immune.agent[place] = agent
    s.immune.state[place] = state
    return int(place.sum())


def test_a_tumor_lacking_the_antigen_is_never_killed():
    model = immune_model(["tumor.clones=[{name: negative, antigens: [1]}]",
                          "immune.t_cells.clones=[{name: anti0, antigen: 0}]"], rules=(ImmuneKill,))
    seed_cells(model, 0.5, 0, 30)
    for _ in range(10):
        model.step()
    assert model.totals.immune_kills == 0 and (model.lattice.tumor.state[model.lattice.tumor.clone >= 0] == tumor.CYCLING).all()


def kills_per_t_cell(treg_fraction, seeds=range(4)):
    """Mean kills per T cell per step over replicates, with Tregs on ``treg_fraction`` of the free voxels."""
    kills = t_steps = 0
    for seed in seeds:
        model = immune_model([f"seed={seed}", "lattice.shape=[64, 64]", "tumor.initial.radius_um=500",
                              "tumor.clones=[{name: p, antigens: [0]}]", "immune.t_cells.clones=[{name: anti0, antigen: 0}]",
                              "immune.tregs={contact_inhibition: 0.5}", "immune.t_cells.exhaustion_per_kill=0"],
                             rules=(ImmuneKill,))
        t_cells = seed_cells(model, 0.05, 0, 31)
        seed_cells(model, treg_fraction, model.immune.suppressors["treg"].index, 32)
        for _ in range(4):
            model.step()
        kills += int(model.totals.immune_kills)
        t_steps += 4 * t_cells
    return kills / t_steps


def test_more_suppressors_lower_the_kill_rate_monotonically():
    rates = [kills_per_t_cell(fraction) for fraction in (0.0, 0.02, 0.1, 0.4)]
    assert all(a > b for a, b in zip(rates, rates[1:])), rates
    assert rates[-1] < 0.75 * rates[0]


def test_suppressive_cytokine_lowers_killing():
    def kills(level):
        model = immune_model(["lattice.shape=[64, 64]", "tumor.initial.radius_um=500", "tumor.clones=[{name: p, antigens: [0]}]",
                              "immune.t_cells.clones=[{name: anti0, antigen: 0}]", "immune.t_cells.suppression_field=tgf",
                              "immune.t_cells.exhaustion_per_kill=0",
                              f"fields.tgf={{units: au, D_um2_per_min: 100, decay_per_min: 0.01, initial: {level}}}"],
                             rules=(ImmuneKill,))
        seed_cells(model, 0.05, 0, 31)
        for _ in range(4):
            model.step()
        return int(model.totals.immune_kills)
    assert kills(0.0) > kills(0.5) > kills(2.0)


def test_exhausted_t_cells_stop_killing():
    model = immune_model(["tumor.clones=[{name: p, antigens: [0]}]", "immune.t_cells.clones=[{name: anti0, antigen: 0}]"],
                         rules=(ImmuneKill,))
    seed_cells(model, 0.5, 0, 30, state=EXHAUSTED)
    for _ in range(5):
        model.step()
    assert model.totals.immune_kills == 0


def test_kills_exhaust_t_cells_after_their_capacity():
    model = immune_model(["lattice.shape=[40, 40]", "tumor.initial.radius_um=400", "tumor.clones=[{name: p, antigens: [0]}]",
                          "immune.t_cells.clones=[{name: anti0, antigen: 0}]", "immune.t_cells.kill_rate_per_h=5"],
                         rules=(ImmuneKill, RefillTumor))
    seed_cells(model, 0.1, 0, 30)
    for _ in range(5):  # a kill almost every step: five kills, then exhausted
        model.step()
    cells = model.lattice.immune
    t_cells = cells.agent >= 0
    assert (cells.state[t_cells] == EXHAUSTED).mean() > 0.8
    assert (cells.exhaustion[cells.state == EXHAUSTED] >= 1.0 - 1e-6).all()


class RefillTumor(Rule):
    """Test rule: every killed tumor cell is replaced by a live one, so targets never run out."""

    name = "refill"
    reads = frozenset({"tumor.clone", "tumor.state"})
    writes = frozenset({"tumor.state"})

    def apply(self, context):
        cells = context.lattice.tumor
        cells.state[cells.clone >= 0] = tumor.CYCLING


def test_movement_rule_conserves_cells_and_agents():
    model = immune_model(["lattice.shape=[40, 40]", "immune.t_cells.clones=[{name: a, antigen: 0}, {name: b, antigen: 1}]",
                          "immune.mdscs={}", "immune.t_cells.motility.speed_um_per_min=2"],
                         rules=(ImmuneMovement,))
    everywhere = np.ones(model.lattice.shape, dtype=bool)
    seed_cells(model, 0.2, 0, 40, where=everywhere)
    seed_cells(model, 0.2, 1, 41, where=everywhere)
    seed_cells(model, 0.2, 2, 42, where=everywhere)
    cells = model.lattice.immune
    cells.exhaustion[cells.agent >= 0] = np.float32(0.25)
    before = np.bincount(cells.agent[cells.agent >= 0], minlength=3)
    positions = cells.agent.copy()
    for _ in range(3):
        model.step()
        cells = model.lattice.immune
        np.testing.assert_array_equal(np.bincount(cells.agent[cells.agent >= 0], minlength=3), before)
        assert (cells.exhaustion[cells.agent >= 0] == np.float32(0.25)).all() and (cells.exhaustion[cells.agent < 0] == 0).all()
    assert model.immune.substeps == 6  # 2 um/min x 60 min / 20 um
    assert (positions != model.lattice.immune.agent).mean() > 0.1  # they did move


def test_priming_needs_the_antigen_and_waits_for_the_delay():
    model = immune_model(["tumor.clones=[{name: p, antigens: [0]}]", "fields.danger_signal.initial=1.0",
                          "immune.t_cells.clones=[{name: anti0, antigen: 0}, {name: anti5, antigen: 5}]",
                          "immune.t_cells.priming.delay_h=12"], rules=(ImmunePriming,))
    pools = []
    for _ in range(24):
        model.step()
        pools.append(model.immune.pool.copy())
    pools = np.array(pools)
    assert (pools[:12] == 10.0).all()  # nothing before the delay
    assert pools[-1, 0] > 10.0 * 1.2 and pools[-1, 1] == 10.0  # only the clone whose antigen the tumor presents
    assert 0 < model.immune.activation[0] < 1 and model.immune.activation[1] == 0


def test_immune_run_records_and_writes_immune_series(tmp_path):
    from abm.cli import main
    import pandas as pd

    out = tmp_path / "run"
    config = tmp_path / "immune.yaml"
    tiny = Path("configs/tiny.yaml").read_text(encoding="utf-8").replace(
        "tumor:\n  initial: {radius_um: 80.0}", "tumor:\n  initial: {radius_um: 80.0}\n  clones: [{name: p, antigens: [0]}]")
    assert "antigens: [0]" in tiny
    config.write_text(tiny + """
fields:
  oxygen: {preset: oxygen}
  chemokine: {preset: chemokine}
  danger_signal: {preset: danger_signal}
  tgf_beta: {preset: tgf_beta, secretion_per_min: {treg: 1.0, mdsc: 1.0}}
vessels: {density: 0.02}
immune:
  t_cells:
    clones: [{name: anti0, antigen: 0}]
    priming: {delay_h: 6, expansion_per_h: 0.5, half_saturation: 0.001}
    recruitment: {rate_per_h: 0.2}
    suppression_field: tgf_beta
  tregs: {recruitment: {rate_per_h: 0.05}}
  mdscs: {recruitment: {rate_per_h: 0.05, field: null}}
""", encoding="utf-8")
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_parquet(out / "timeseries.parquet")
    assert {"t_cells_effector", "tregs", "mdscs", "cd8_density_core_per_mm3", "immune_kills_total",
            "fraction_pdl1_positive"} <= set(frame.columns)
    assert frame["t_cells_effector"].iloc[-1] + frame["t_cells_exhausted"].iloc[-1] > 0
    assert frame["tregs"].iloc[-1] > 0 and frame["mdscs"].iloc[-1] > 0
    series = pd.read_parquet(out / "immune.parquet")
    assert set(series["name"]) == {"anti0", "treg", "mdsc"}
    last = series[series["time_h"] == series["time_h"].max()].set_index("name")
    assert last.loc["anti0", "cells_effector"] + last.loc["anti0", "cells_exhausted"] == (
        frame["t_cells_effector"].iloc[-1] + frame["t_cells_exhausted"].iloc[-1])
    assert last.loc["treg", "cells_effector"] == frame["tregs"].iloc[-1]
    snapshot = np.load(sorted((out / "snapshots").iterdir())[-1])
    assert {"immune", "immune_state", "exhaustion"} <= set(snapshot.files)
    immune_cells = snapshot["immune"]
    assert (immune_cells >= -1).all() and immune_cells.max() <= 2


def test_immune_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"immune.t_cells.recruitment.field: no field named 'chemokine'"):
        load_config("configs/tiny.yaml", ["immune.t_cells.clones=[{name: a, antigen: 0}]",
                                          "fields={oxygen: {preset: oxygen}, danger_signal: {preset: danger_signal}}"])
    with pytest.raises(ConfigError, match=r"immune.t_cells.clones.0.antigen"):
        load_config("configs/tiny.yaml", ["immune.t_cells.clones=[{name: a, antigen: 70}]"])
    with pytest.raises(ConfigError, match=r"T-cell clone names must be unique"):
        load_config("configs/tiny.yaml", [IMMUNE_FIELDS, "immune.t_cells.clones=[{name: a, antigen: 0}, {name: a, antigen: 1}]"])
    with pytest.raises(ConfigError, match=r"immune.suppressors.treg.drug_sensitivity.cis: no drug of that name with a sensitivity"):
        load_config("configs/tiny.yaml", [IMMUNE_FIELDS, "immune.tregs={drug_sensitivity: {cis: 0.5}}"])
