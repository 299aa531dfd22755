"""Birth-death check: without space or oxygen limits, mean growth follows exp((b - d) t).

Cells are scattered thinly over a 3-D lattice (each grows into a small colony
that almost never meets another or fills its 26 neighbours) in tissue held at
38 mmHg everywhere (no uptake, no decay), so every cell divides at its clone's full rate ``b``
and starts apoptosis at rate ``d``. The live cells of a birth-death process
started from ``n0`` cells have mean ``n0 exp((b - d) t)`` and variance
``n0 (b + d) / (b - d) m (m - 1)`` with ``m = exp((b - d) t)``; the test
allows four standard errors of the mean over the replicates (about 7 %).
The event probability ``1 - exp(-b dt)`` for division would fall short by
about ``1 - exp(-b^2 dt t)`` = 22 % here, far outside that bound.
"""
from __future__ import annotations

import math

from abm.config import parse_config
from abm.model import TumorModel
from kernels.backend import get_backend

CYCLE_H, DEATH_PER_H, HOURS, CELLS, REPLICATES = 12.0, 0.01, 36, 1000, 4


def replicate(seed: int) -> tuple[int, int]:
    config = parse_config({
        "seed": seed,
        "lattice": {"shape": [48, 48, 48]},
        "time": {"duration_days": HOURS / 24, "record_every_h": HOURS, "snapshot_every_h": None},
        "fields": {"oxygen": {"preset": "oxygen", "uptake_per_min": {}, "decay_per_min": 0.0}},
        "vessels": {"pattern": "none"},
        "tumor": {"initial": {"geometry": "scattered", "cells": CELLS},
                  "clones": [{"name": "a", "cycle_time_h": CYCLE_H, "apoptosis_per_h": DEATH_PER_H}]},
    }, "birth-death")
    model = TumorModel(config, get_backend("numpy"))
    start = model.latest["tumor_cells_live"]
    for _ in range(config.time.total_steps):
        model.step()
    return start, model.latest["tumor_cells_live"]


def test_mean_growth_matches_the_birth_death_process():
    b, d = 1.0 / CYCLE_H, DEATH_PER_H
    growth = math.exp((b - d) * HOURS)
    runs = [replicate(seed) for seed in range(1, REPLICATES + 1)]
    start = sum(first for first, _ in runs)
    end = sum(last for _, last in runs)
    assert start == CELLS * REPLICATES
    variance_per_cell = (b + d) / (b - d) * growth * (growth - 1)
    standard_error = math.sqrt(variance_per_cell / start) / growth  # relative
    observed = end / start / growth
    assert abs(observed - 1) < 4 * standard_error, (observed, standard_error)
