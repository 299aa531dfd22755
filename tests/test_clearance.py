"""Clearance of dead cells (tumor.necrotic_clearance_per_h): necrotic cells leave, and the lesion a scan measures shrinks."""
from __future__ import annotations

import math

import numpy as np

from abm.config import AssessmentConfig, load_config
from abm.model import TumorModel
from kernels import tumor
from kernels.layers import NECROTIC, TumorLayer
from kernels.random import uniform
from tests.presets import CONFIGS

RATE_PER_H = 0.05


def test_necrotic_cells_are_cleared_at_the_configured_rate():
    shape = (200, 200)
    cells = TumorLayer(clone=np.zeros(shape, dtype=np.int32), state=np.full(shape, NECROTIC, dtype=np.int8),
                       age_h=np.zeros(shape, dtype=np.float32), immunogenic=np.zeros(shape, dtype=bool))
    occupied = np.flatnonzero(cells.occupied())
    draw = [uniform(np, 3, 0, stream, occupied.astype(np.uint64)) for stream in (2, 3)]
    after = tumor.death(np, cells, cells=occupied, apoptosis_rate_per_h=np.zeros(1), apoptotic_duration_h=8.6,
                        necrotic_clearance_per_h=RATE_PER_H, dt_h=1.0, draw_apoptosis=draw[0], draw_clearance=draw[1])
    cleared = float((after.clone < 0).mean())
    expected = -math.expm1(-RATE_PER_H)
    assert abs(cleared - expected) < 4 * math.sqrt(expected * (1 - expected) / cells.clone.size)


def necrotic_lesion(clearance_per_h: float, hours: int) -> list[float]:
    """The RECIST burden (equivalent diameter, um) each hour of a lesion whose cells are all necrotic."""
    config = load_config(CONFIGS / "tiny.yaml", [f"tumor.necrotic_clearance_per_h={clearance_per_h}"])
    model = TumorModel(config)
    lattice = model.lattice
    lattice.tumor = lattice.tumor.replace(state=np.where(lattice.tumor.occupied(), NECROTIC, lattice.tumor.state)
                                          .astype(lattice.tumor.state.dtype))
    assessment = AssessmentConfig(criteria="recist")
    burden = [model.context.burden(assessment)[0]]
    for _ in range(hours):
        model.step()
        burden.append(model.context.burden(assessment)[0])
    return burden


def test_clearance_shrinks_a_dead_lesion_and_without_it_the_debris_stays():
    kept, cleared = necrotic_lesion(0.0, 24), necrotic_lesion(RATE_PER_H, 24)
    assert kept[0] == cleared[0] > 0
    assert kept[-1] == kept[0]  # debris stays: the scan sees the same lesion
    # area ~ exp(-k t), so the equivalent diameter ~ exp(-k t / 2)
    assert abs(cleared[-1] / cleared[0] - math.exp(-RATE_PER_H * 24 / 2)) < 0.05
    assert all(later <= earlier for earlier, later in zip(cleared, cleared[1:]))
