"""Phagocytosis (issue 17): M1-like macrophages remove dead tumor cells in contact
(immune.suppressors.NAME.phagocytosis; docs/model.md, Macrophages), so a dead lesion shrinks faster than by
tumor.necrotic_clearance_per_h alone; only dead cells go, and only while the macrophage is M1-like.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from abm.config import AssessmentConfig, ConfigError
from abm.model import TumorModel
from kernels import immune
from kernels.lattice import moore_offsets
from kernels.layers import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, TumorLayer
from kernels.random import uniform
from tests.test_macrophages import config, placed, signals

DT_H = 2.0
CLEARANCE_PER_H = 0.02  # tumor.necrotic_clearance_per_h of the lesion tests
PHAGOCYTOSIS_PER_H = 0.2


def draws(stream: int, cells: np.ndarray) -> np.ndarray:
    return uniform(np, 7, 1, stream, cells.astype(np.uint64))


def layer(state: np.ndarray) -> TumorLayer:
    """A tumor layer of clone 0 everywhere, in ``state``, of age 1 h."""
    return TumorLayer(clone=np.zeros(state.shape, dtype=np.int32), state=state.astype(np.int8),
                      age_h=np.ones(state.shape, dtype=np.float32), immunogenic=np.ones(state.shape, dtype=bool))


def phagocytose(cells: TumorLayer, phagocytes: np.ndarray, rate_per_h: float):
    offsets = moore_offsets(2)
    return immune.phagocytose(np, cells, phagocytes=phagocytes, rate_per_h=rate_per_h,
                              targets_offsets=[(0, 0)] + offsets, dt_h=DT_H, draw_target=draws(1, phagocytes),
                              draw_clear=draws(2, phagocytes))


def test_each_phagocyte_removes_a_dead_cell_at_its_rate():
    shape = (150, 150)
    cells = layer(np.full(shape, NECROTIC))
    y, x = np.meshgrid(np.arange(1, 150, 3), np.arange(1, 150, 3), indexing="ij")  # 3x3 blocks: no shared target
    phagocytes = np.sort(np.ravel_multi_index((y.ravel(), x.ravel()), shape))
    after, cleared = phagocytose(cells, phagocytes, PHAGOCYTOSIS_PER_H)
    p = -math.expm1(-PHAGOCYTOSIS_PER_H * DT_H)
    n = len(phagocytes)
    assert abs(len(cleared) - n * p) < 4 * math.sqrt(n * p * (1 - p))
    assert (after.clone < 0).sum() == len(cleared)
    removed = after.clone.reshape(-1) < 0
    assert (after.state.reshape(-1)[removed] == CYCLING).all() and (after.age_h.reshape(-1)[removed] == 0).all()
    assert not after.immunogenic.reshape(-1)[removed].any()
    _, none = phagocytose(cells, phagocytes, 0.0)
    assert len(none) == 0


def test_only_dead_cells_next_to_a_phagocyte_are_removed():
    shape = (80, 80)
    rng = np.random.default_rng(3)
    cells = layer(rng.choice([CYCLING, QUIESCENT, APOPTOTIC, NECROTIC], size=shape))
    cells = cells.replace(clone=np.where(rng.random(shape) < 0.8, 0, -1).astype(np.int32))
    phagocytes = np.sort(rng.choice(cells.clone.size, 300, replace=False)).astype(np.int64)
    after, cleared = phagocytose(cells, phagocytes, 1e6)  # every engaged phagocyte removes its target
    before_state, before_clone = cells.state.reshape(-1), cells.clone.reshape(-1)
    dead = (before_clone >= 0) & ((before_state == APOPTOTIC) | (before_state == NECROTIC))
    assert dead[cleared].all(), "only dead cells are removed"
    assert len(cleared) <= len(phagocytes)
    changed = np.flatnonzero((after.clone.reshape(-1) != before_clone) | (after.state.reshape(-1) != before_state)
                             | (after.age_h.reshape(-1) != cells.age_h.reshape(-1)))
    np.testing.assert_array_equal(changed, cleared)  # nothing else moves, live cells keep clone, state and age
    near = immune.neighbour_of(np, np.isin(np.arange(cells.clone.size), phagocytes).reshape(shape), moore_offsets(2))
    near |= np.isin(np.arange(cells.clone.size), phagocytes).reshape(shape)
    assert near.reshape(-1)[cleared].all(), "only in a phagocyte's voxel or Moore neighbourhood"
    inside, candidates = immune.targets(np, cells, phagocytes, [(0, 0)] + moore_offsets(2), states=immune.DEAD_STATES)
    engaged = candidates.any(axis=1)
    assert engaged.sum() > 50
    for row in np.flatnonzero(engaged):  # a phagocyte with a dead cell in reach removed one of them
        assert np.isin(inside[row][candidates[row]], cleared).any()


LESION = (("tumor:\n  initial: {radius_um: 100.0}",
           f"tumor:\n  initial: {{radius_um: 100.0}}\n  necrotic_clearance_per_h: {CLEARANCE_PER_H}"),
          ("rate_per_h: 0.1}", "rate_per_h: 0.1}\n      phagocytosis: {rate_per_h: " + str(PHAGOCYTOSIS_PER_H) + "}"))


def dead_lesion(steps: int, polarisation: float | None, ifng: float = 0.0, csf1: float = 0.0,
                state: int = NECROTIC) -> tuple[list[float], int]:
    """The RECIST burden (um; macrophages next to a tumor cell count toward it) after each of ``steps`` steps of the macrophages and tumor_death rules on the tiny
    lesion of tests.test_macrophages made all ``state``, with macrophages of ``polarisation`` on every third voxel
    of it (None: none) under the signals ``ifng`` and ``csf1``, and the tumor cells left."""
    model = TumorModel(config(*LESION))
    cells = model.lattice.tumor
    model.context.lattice.tumor = cells.replace(state=np.where(cells.occupied(), state, cells.state).astype(np.int8))
    model.context.lattice.immune = model.lattice.immune.cleared(np.flatnonzero(model.lattice.immune.agent.reshape(-1) >= 0))
    if polarisation is not None:
        y, x = np.nonzero(cells.occupied())
        grid = (y % 3 == 1) & (x % 3 == 1)
        placed(model, np.ravel_multi_index((y[grid], x[grid]), model.lattice.shape), polarisation)
    signals(model, ifng=ifng, csf1=csf1)
    assessment = AssessmentConfig(criteria="recist")
    burden = [model.context.burden(assessment)[0]]
    for _ in range(steps):
        model.context.new_step(model.context.step + 1)
        for name in ("macrophages", "tumor_death"):
            model.rule(name).apply(model.context)
        burden.append(model.context.burden(assessment)[0])
    return burden, int(model.lattice.tumor.occupied().sum())


def test_m1_phagocytes_shrink_a_dead_lesion_faster_than_clearance_alone():
    (alone, alone_left), (eaten, eaten_left) = dead_lesion(12, None), dead_lesion(12, 0.0, ifng=1.0)
    assert alone[0] == eaten[0] > 0
    assert eaten[-1] < 0.8 * alone[-1], (alone[-1], eaten[-1])
    assert all(later <= earlier for earlier, later in zip(eaten, eaten[1:]))
    # Clearance alone leaves exp(-0.02 x 24) = 62 % of the cells; each phagocyte (one per 3x3 block of 9) removes
    # one more at 0.2/h (1 - exp(-0.4) = 33 % a step), about 4 in 24 h: about a third left.
    assert eaten_left < 0.6 * alone_left, (alone_left, eaten_left)
    # Apoptotic debris (not cleared by tumor.necrotic_clearance_per_h) goes too, before apoptosis ends (8.6 h).
    debris, _ = dead_lesion(4, 0.0, ifng=1.0, state=APOPTOTIC)
    assert debris[-1] < debris[0]


def test_phagocytosis_follows_the_polarisation_its_signals_set():
    """Under the M2 signal the macrophages turn M2-like and stop eating; under the M1 signal they switch and eat."""
    _, alone = dead_lesion(12, None)
    _, m2 = dead_lesion(12, 0.45, csf1=1.0)  # starts just M1-like; the target is 10.5 / 11 at 0.1/h
    _, m1 = dead_lesion(12, 0.55, ifng=1.0)  # starts just M2-like; the target is 0.5 / 11
    assert m1 < 0.6 * alone, (m1, alone)
    assert m2 > 0.9 * alone, (m2, alone)


def test_phagocytosis_keys_are_checked():
    with pytest.raises(ConfigError, match="phagocytosis.rate_per_h"):
        config(("rate_per_h: 0.1}", "rate_per_h: 0.1}\n      phagocytosis: {rate_per_h: -1}"))
    with pytest.raises(ConfigError, match="phagocytosis.m1_below"):
        config(("rate_per_h: 0.1}", "rate_per_h: 0.1}\n      phagocytosis: {m1_below: 1.5}"))
