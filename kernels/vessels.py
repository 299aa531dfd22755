"""Vessel collapse: dense tumor compresses vessels until they stop carrying blood.

Per-voxel vessel state: ``vessel`` (bool) and ``perfusion`` (``float32`` in
[0, 1], 0 off vessels and at collapsed vessels). A field's exchange with
blood at a voxel is proportional to its perfusion (:mod:`abm.rules`).
"""
from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from kernels.lattice import shifted
from kernels.layers import VesselLayer


def tumor_neighbour_fraction(xp: ModuleType, occupied: Any, offsets: list[tuple[int, ...]]) -> Any:
    """Fraction of each voxel's Moore neighbours (8 in 2-D, 26 in 3-D) that hold a tumor cell.

    Neighbours outside the domain count as empty.

    Returns:
        ``float32``, lattice shape.
    """
    count = xp.zeros(occupied.shape, dtype=xp.int32)
    for offset in offsets:
        count += shifted(xp, occupied, offset, False)
    return (count / len(offsets)).astype(xp.float32)


def collapse(
    xp: ModuleType, vessels: VesselLayer, *, tumor_fraction: Any, fraction_at_least: float, rate_per_h: float,
    dt_h: float, draw: Any,
) -> VesselLayer:
    """Perfusion after one step of compression: a compressed vessel collapses (perfusion 0) at ``rate_per_h``.

    Args:
        vessels: the vessels.
        tumor_fraction: share of tumor-filled Moore neighbours (:func:`tumor_neighbour_fraction`).
        fraction_at_least: a vessel is compressed where ``tumor_fraction`` reaches this.
        rate_per_h: collapse rate of a compressed vessel, 1/h.
        dt_h: cell step, h.
        draw: uniform [0, 1) draws, lattice shape.

    Returns:
        The vessels with the new perfusion (a collapsed vessel stays a vessel).
    """
    perfusion = vessels.perfusion
    compressed = (perfusion > 0) & (tumor_fraction >= fraction_at_least)
    collapses = compressed & (draw < -math.expm1(-rate_per_h * dt_h))
    return vessels.replace(perfusion=xp.where(collapses, 0.0, perfusion).astype(perfusion.dtype))
