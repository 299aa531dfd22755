"""Angiogenesis (vessels.angiogenesis, kernels/vessels.py) and the anti-VEGF drug kind.

Kernels on hand-made vessel layers: sprouting up a gradient and never without
signal, tips moving up a linear gradient, anastomosis, maturation after the
delay, regression without support, pruning; then the rule in models: the
anti-VEGF drug blocks sprouting, configs/angiogenesis.yaml's header claim
(the avascular-to-vascular switch) and configs/angiogenesis_sequencing.yaml's
(the order of anti-VEGF and anti-PD-1).
"""
from __future__ import annotations

import numpy as np
import pytest

from abm.config import ConfigError, load_config, select_arm
from abm.model import TumorModel
from kernels import vessels
from kernels.backend import get_backend, probe_cupy
from kernels.lattice import moore_offsets
from kernels.layers import VesselLayer
from kernels.random import uniform, voxel_index
from tests.conftest import to_host
from tests.presets import CONFIGS

OFFSETS = moore_offsets(2)
NUMPY = get_backend("numpy")


def layer(xp, shape, *, mature=(), immature=(), tips=(), age_h=0.0):
    """Vessels at the listed ``(y, x)`` voxels: mature ones of perfusion 1, immature ones (tips among them) of ``age_h``."""
    vessel = VesselLayer.empty(xp, shape)
    present, perfusion, young, tip, age = (to_host(array).copy() for array in (
        vessel.present, vessel.perfusion, vessel.immature, vessel.tip, vessel.age_h))
    for y, x in mature:
        present[y, x], perfusion[y, x] = True, 1.0
    for y, x in (*immature, *tips):
        present[y, x], young[y, x], age[y, x] = True, True, age_h
    for y, x in tips:
        tip[y, x] = True
    return VesselLayer(*(xp.asarray(array) for array in (present, perfusion, young, tip, age)))


def draws(xp, shape, stream, step=0):
    return uniform(xp, 11, step, stream, voxel_index(xp, shape))


def ramp(xp, shape, slope=0.01):
    """A linear signal rising along x (``float64``): ``slope x (x + 1)``."""
    return xp.asarray(np.broadcast_to(slope * (np.arange(shape[1]) + 1.0), shape).copy())


def where(mask):
    return sorted(zip(*map(list, np.nonzero(to_host(mask)))))


def test_a_tip_in_a_linear_gradient_moves_up_it_one_voxel_per_step(xp):
    shape = (21, 21)
    vessel = layer(xp, shape, mature=[(10, 0)], tips=[(10, 1)])
    signal, tissue = ramp(xp, shape), xp.ones(shape, dtype=bool)
    for step in range(1, 11):
        vessel = vessels.migrate_tips(xp, vessel, signal=signal, tissue=tissue, offsets=OFFSETS,
                                      draw=draws(xp, shape, 43, step))
        (y, x), = where(vessel.tip)
        assert x == 1 + step and abs(y - 10) <= step  # one voxel per step, always up the gradient
        assert to_host(vessel.present[:, : x + 1]).sum() == step + 2  # the trail stays behind as immature vessel
    assert int(to_host(vessel.immature).sum()) == 11 and int(to_host(vessel.perfusion > 0).sum()) == 1


def test_ties_go_by_the_draw_to_each_tied_neighbour():
    """A tip on a flat ridge (three neighbours of equal, highest signal) takes each of them, by its draw."""
    shape = (3, 3)
    signal = np.zeros(shape)
    signal[:, 2] = 1.0  # the three right-hand neighbours tie
    seen = set()
    for step in range(60):
        moved = vessels.migrate_tips(np, layer(np, shape, tips=[(1, 1)]), signal=signal, tissue=np.ones(shape, bool),
                                     offsets=OFFSETS, draw=draws(np, shape, 43, step))
        seen |= set(where(moved.tip))
    assert seen == {(0, 2), (1, 2), (2, 2)}


def test_no_vessel_sprouts_without_signal_and_perfused_vessels_sprout_up_the_gradient_at_the_rate(xp):
    shape = (200, 200)
    mature = [(y, x) for y in range(0, 200, 4) for x in range(0, 200, 4)]  # 2500 isolated vessel voxels
    vessel = layer(xp, shape, mature=mature)
    tissue = xp.ones(shape, dtype=bool)
    kwargs = dict(tissue=tissue, threshold=0.005, rate_per_h=0.2, dt_h=1.0, offsets=OFFSETS,
                  draw=draws(xp, shape, 41), draw_direction=draws(xp, shape, 42))
    none = vessels.sprout(xp, vessel, signal=xp.zeros(shape), **kwargs)
    assert not to_host(none.tip).any() and to_host(none.present).sum() == len(mature)
    sprouted = vessels.sprout(xp, vessel, signal=ramp(xp, shape), **kwargs)
    tips = to_host(sprouted.tip)
    expected = 1.0 - np.exp(-0.2)
    assert abs(tips.sum() / len(mature) - expected) < 4 * np.sqrt(expected * (1 - expected) / len(mature))
    ys, xs = np.nonzero(tips)
    assert ((xs % 4) == 1).all()  # every sprout went one voxel up the gradient (toward +x)
    assert (to_host(sprouted.immature) == tips).all() and (to_host(sprouted.perfusion)[tips] == 0).all()


def test_unperfused_or_immature_vessels_do_not_sprout():
    shape = (5, 5)
    vessel = layer(np, shape, mature=[(2, 2)], immature=[(0, 0)])
    vessel = vessel.replace(perfusion=np.zeros(shape, np.float32))  # the mature one collapsed
    grown = vessels.sprout(np, vessel, signal=np.ones(shape), tissue=np.ones(shape, bool), threshold=0.05,
                           rate_per_h=1e6, dt_h=1.0, offsets=OFFSETS, draw=np.zeros(shape),
                           draw_direction=np.zeros(shape))
    assert not grown.tip.any() and grown.present.sum() == 2


def test_anastomosis_joins_two_touching_tips_and_a_tip_that_reaches_a_mature_vessel(xp):
    shape = (9, 9)
    signal, tissue = ramp(xp, shape), xp.ones(shape, dtype=bool)
    touching = layer(xp, shape, tips=[(4, 3), (4, 4)])
    joined = vessels.migrate_tips(xp, touching, signal=signal, tissue=tissue, offsets=OFFSETS, draw=draws(xp, shape, 43))
    assert not to_host(joined.tip).any() and where(joined.present) == [(4, 3), (4, 4)]  # they stopped and joined
    reaching = layer(xp, shape, mature=[(4, 5)], tips=[(4, 4)])
    signal = xp.zeros(shape)
    signal[4, 5] = 1.0  # the mature vessel is the way up
    joined = vessels.migrate_tips(xp, reaching, signal=signal, tissue=tissue, offsets=OFFSETS, draw=draws(xp, shape, 43))
    assert not to_host(joined.tip).any() and where(joined.present) == [(4, 4), (4, 5)]


def test_two_tips_stepping_into_one_voxel_join_there():
    shape = (5, 5)
    signal = np.zeros(shape)
    signal[2, 2] = 1.0
    met = vessels.migrate_tips(np, layer(np, shape, tips=[(1, 2), (3, 2)]), signal=signal, tissue=np.ones(shape, bool),
                               offsets=OFFSETS, draw=np.zeros(shape))
    assert where(met.present) == [(1, 2), (2, 2), (3, 2)] and not met.tip.any() and met.immature[2, 2]


def test_tips_do_not_enter_tumor_cells_or_immature_vessels():
    shape = (5, 5)
    signal = ramp(np, shape)
    tissue = np.ones(shape, bool)
    tissue[:, 3] = False  # a wall of tumor cells
    stuck = vessels.migrate_tips(np, layer(np, shape, tips=[(2, 2)], immature=[(1, 1), (2, 1), (3, 1)]), signal=signal,
                                 tissue=tissue, offsets=OFFSETS, draw=np.zeros(shape))
    assert where(stuck.tip) in ([(1, 2)], [(3, 2)])  # up the gradient, around the trail, short of the tumor
    assert not stuck.present[:, 3].any()


def test_immature_vessels_mature_to_perfusion_after_the_delay_but_tips_do_not(xp):
    shape = (5, 5)
    vessel = layer(xp, shape, immature=[(2, 1)], tips=[(2, 3)])
    for hour in range(1, 49):
        vessel = vessels.mature(xp, vessel, maturation_h=48.0, perfusion=0.5, dt_h=1.0)
        perfused = to_host(vessel.perfusion)
        if hour < 48:
            assert perfused.max() == 0 and to_host(vessel.immature)[2, 1]
    assert perfused[2, 1] == np.float32(0.5) and not to_host(vessel.immature)[2, 1] and to_host(vessel.age_h)[2, 1] == 0
    assert perfused[2, 3] == 0 and to_host(vessel.tip)[2, 3] and to_host(vessel.age_h)[2, 3] == 48.0


def test_immature_vessels_regress_without_support_or_when_pruned_and_mature_ones_stay(xp):
    shape = (200, 200)
    young = [(y, x) for y in range(200) for x in range(0, 200, 2)]
    vessel = layer(xp, shape, immature=young)
    vessel = vessel.replace(present=xp.ones(shape, dtype=bool))  # the odd columns: mature (perfusion 0: collapsed)
    signal = xp.zeros(shape)
    signal[100:] = 1.0  # supported in the lower half
    kwargs = dict(threshold=0.1, rate_per_h=0.3, dt_h=1.0, draw=draws(xp, shape, 40))
    after = vessels.regress(xp, vessel, signal=signal, prune_rate_per_h=0.0, rate_factor=1.0, **kwargs)
    present, was_young = to_host(after.present), to_host(vessel.immature)
    lost = (~present[:100] & was_young[:100]).sum() / was_young[:100].sum()
    expected = 1 - np.exp(-0.3)
    assert abs(lost - expected) < 4 * np.sqrt(expected * (1 - expected) / 10000)
    assert present[100:].all() and present[:, 1::2].all()  # supported immature and every mature vessel stay
    assert not (to_host(after.immature) & ~present).any()
    pruned = to_host(vessels.regress(xp, vessel, signal=signal, prune_rate_per_h=0.3, rate_factor=1.0, **kwargs).present)
    lost = (~pruned[100:] & was_young[100:]).sum() / was_young[100:].sum()
    assert abs(lost - expected) < 4 * np.sqrt(expected * (1 - expected) / 10000) and pruned[:, 1::2].all()


# --------------------------------------------------------------------------- the rule and the drug in models

ANGIO = CONFIGS / "angiogenesis.yaml"
SMALL = ["lattice.shape=[60, 60]", "tumor.initial.radius_um=200", "vessels.core_radius_um=300"]
ANTI_VEGF = ["fields.avegf={preset: anti_vegf, initial: 10.0, vessel: {supply_per_min: 0.01, blood_level: 10.0}}",
             "drugs.avegf={kind: anti_vegf, emax: 1.0, ec50: 0.1}"]


def grown_vessels(overrides, steps):
    model = TumorModel(load_config(ANGIO, [*SMALL, *overrides]), NUMPY)
    first = model.lattice.vessels.present.copy()
    made = 0
    for _ in range(steps):
        model.step()
        made += int((model.lattice.vessels.present & ~first).sum())
    return model, made


def test_the_anti_vegf_drug_blocks_sprouting():
    _, made = grown_vessels([], 24)
    assert made > 50  # without the drug, hypoxia makes vessels grow
    _, made = grown_vessels(ANTI_VEGF, 24)
    assert made == 0


def test_the_anti_vegf_drug_prunes_immature_vessels():
    """Immature vessels grown for a day, given to a model whose drug blocks >= 97 % of the signal (prune rate 0.5/h at
    full blockade; regression without support off): about exp(-0.49 x 6) = 5 % survive 6 h; without the drug, all."""
    model, _ = grown_vessels([], 24)
    young = model.lattice.vessels.immature.copy()
    assert young.sum() > 20
    survivors = {}
    for name, drug in (("treated", [*ANTI_VEGF, "drugs.avegf.prune_rate_per_h=0.5"]), ("untreated", [])):
        given = TumorModel(load_config(ANGIO, [*SMALL, *drug, "vessels.angiogenesis.regression_rate_per_h=1e-9"]), NUMPY)
        given.lattice.vessels = model.lattice.vessels.replace(tip=np.zeros_like(young))  # no tip grows into a pruned voxel
        for _ in range(6):
            given.step()
        survivors[name] = int((given.lattice.vessels.present & young).sum())
    assert survivors["untreated"] == young.sum() and survivors["treated"] < 0.2 * young.sum()


def test_angiogenesis_needs_its_field():
    with pytest.raises(ConfigError, match=r"vessels\.angiogenesis\.field: no field named 'vegf'"):
        load_config(ANGIO, ["fields={oxygen: {preset: oxygen}}"])


def test_the_presets_claim_the_avascular_core_vascularises_and_the_tumor_outgrows_the_one_without_angiogenesis():
    """configs/angiogenesis.yaml's header, seed 3 (its own): perfused vessel voxels in the 500-um core go from 0 to
    more than 100 by day 10, and live tumor cells are at least 1.5 times those of the same run without angiogenesis."""
    runs = {}
    for name, overrides in (("angiogenesis", []), ("none", ["vessels.angiogenesis=null"])):
        config = load_config(ANGIO, overrides)
        model = TumorModel(config, NUMPY)
        centre = [extent * config.lattice.dx_um / 2 for extent in config.lattice.shape]
        core = sum((axis - c) ** 2 for axis, c in zip(model.lattice.coordinates_um(), centre)) < 500.0**2
        assert not (model.lattice.vessels.present & core).any()
        for _ in range(config.time.total_steps):
            model.step()
        runs[name] = (int((model.lattice.vessels.perfusion[core] > 0).sum()), int(model.lattice.tumor.live().sum()))
    assert runs["angiogenesis"][0] > 100 and runs["none"][0] == 0
    assert runs["angiogenesis"][1] >= 1.5 * runs["none"][1]


def test_the_sequencing_presets_claim_anti_pd1_first_clears_the_tumor_days_before_anti_vegf_first():
    """configs/angiogenesis_sequencing.yaml's header, seed 3 (its own): live tumor cells fall below 10 by day 10 with
    anti-PD-1 first, at least 3 days later with anti-VEGF first; the anti-VEGF week leaves fewer perfused vessels."""
    below_10_day, perfused = {}, {}
    for arm in ("antipd1_then_antivegf", "antivegf_then_antipd1"):
        config = select_arm(load_config(CONFIGS / "angiogenesis_sequencing.yaml"), arm)
        model = TumorModel(config, NUMPY)
        live = []
        for step in range(1, config.time.total_steps + 1):
            model.step()
            if step % 24 == 0:
                live.append(int(model.lattice.tumor.live().sum()))
        below_10_day[arm] = next(day for day, cells in enumerate(live, start=1) if cells < 10)
        perfused[arm] = int((model.lattice.vessels.perfusion > 0).sum())
    assert below_10_day["antipd1_then_antivegf"] <= 10
    assert below_10_day["antivegf_then_antipd1"] >= below_10_day["antipd1_then_antivegf"] + 3
    assert perfused["antivegf_then_antipd1"] < perfused["antipd1_then_antivegf"]


@pytest.mark.gpu
@pytest.mark.skipif(probe_cupy()[0] is None, reason="no GPU backend")
def test_angiogenesis_on_cupy_is_the_numpy_run():
    cupy = get_backend("cupy")
    config = load_config(ANGIO, ["time.duration_days=3"])
    models = [TumorModel(config, backend) for backend in (NUMPY, cupy)]
    for _ in range(config.time.total_steps):
        for model in models:
            model.step()
    for name in ("present", "perfusion", "immature", "tip", "age_h"):
        assert (to_host(getattr(models[0].lattice.vessels, name)) == to_host(getattr(models[1].lattice.vessels, name))).all(), name
