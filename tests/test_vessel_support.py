"""M2-like macrophages keep new vessels (immune.suppressors.NAME.vessel_support; docs/model.md, Macrophages): an
immature vessel next to one regresses at a rate cut by ``vessel_support x`` its polarisation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from abm.model import TumorModel
from tests.test_macrophages import config, placed

REGRESSION_PER_H = 0.2
STEPS = 10
ANGIOGENESIS = ("  anticsf1r: {preset: anti_pd1}\n",
                "  anticsf1r: {preset: anti_pd1}\n  vegf: {preset: vegf}\nvessels:\n  angiogenesis: {field: vegf, "
                f"sprout_threshold: 100.0, maturation_h: 1000.0, regression_threshold: 1.0, regression_rate_per_h: {REGRESSION_PER_H}}}\n")


def surviving(support: float, polarisation: float) -> tuple[float, float]:
    """Share of unsupported immature vessels left after :data:`STEPS` steps of the angiogenesis rule: those with a
    macrophage of ``polarisation`` next to them, and those without; the type's ``vessel_support`` is ``support``."""
    model = TumorModel(config(ANGIOGENESIS, ("kill_rate_per_h: 0.5", f"kill_rate_per_h: 0.5\n      vessel_support: {support}")))
    shape = model.lattice.shape
    columns = np.arange(1, 39, 2)
    young = np.ravel_multi_index((np.full(len(columns), 2), columns), shape)
    vessels = model.lattice.vessels
    immature = np.zeros(shape, dtype=bool)
    immature.reshape(-1)[young] = True
    model.context.lattice.vessels = vessels.replace(present=vessels.present | immature, immature=immature,
                                                    perfusion=np.where(immature, 0, vessels.perfusion).astype(np.float32))
    model.context.lattice.immune = model.lattice.immune.cleared(np.flatnonzero(model.lattice.immune.agent.reshape(-1) >= 0))
    escorted = young[::2]
    placed(model, escorted + shape[1], polarisation)  # one row below every other vessel: in its Moore neighbourhood
    model.lattice.fields["vegf"][...] = 0.0  # no angiogenic support: every immature vessel would regress
    rule = model.rule("angiogenesis")
    for _ in range(STEPS):
        model.context.new_step(model.context.step + 1)
        model.lattice.fields["vegf"][...] = 0.0
        rule.apply(model.context)
    present = model.lattice.vessels.present.reshape(-1)
    alone = np.setdiff1d(young, escorted)
    return float(present[escorted].mean()), float(present[alone].mean())


def test_vessels_next_to_m2_macrophages_survive_where_others_regress():
    regressing = math.exp(-REGRESSION_PER_H * 2.0 * STEPS)  # 2 h steps: 2 % expected to remain
    escorted, alone = surviving(1.0, 1.0)
    assert escorted == 1.0 and alone <= 0.2, (escorted, alone, regressing)
    off_escorted, off_alone = surviving(0.0, 1.0)  # the key off: macrophages change nothing
    assert off_escorted <= 0.2 and off_alone <= 0.2
    m1_escorted, _ = surviving(1.0, 0.0)  # M1-like macrophages give no support
    assert m1_escorted <= 0.2


def test_the_support_scales_with_the_polarisation():
    model = TumorModel(config(("kill_rate_per_h: 0.5", "kill_rate_per_h: 0.5\n      vessel_support: 0.8")))
    shape = model.lattice.shape
    vessel = np.array([np.ravel_multi_index((2, 2), shape), np.ravel_multi_index((2, 30), shape)])
    placed(model, [np.ravel_multi_index((3, 3), shape), np.ravel_multi_index((2, 2), shape)], 0.5)
    placed(model, [np.ravel_multi_index((1, 1), shape)], 0.9)  # the most M2-like one counts
    factor = model.immune.vessel_regression_factor(model.context, vessel)
    np.testing.assert_allclose(factor, [1.0 - 0.8 * np.float64(np.float32(0.9)), 1.0])


def test_vessel_support_is_checked():
    from abm.config import ConfigError
    with pytest.raises(ConfigError, match="vessel_support"):
        config(("kill_rate_per_h: 0.5", "kill_rate_per_h: 0.5\n      vessel_support: 1.5"))
