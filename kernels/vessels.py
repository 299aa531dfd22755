"""Vessel collapse (dense tumor compresses vessels until they stop carrying blood) and angiogenesis.

Per-voxel vessel state: :class:`kernels.layers.VesselLayer` (``present``,
``perfusion`` in [0, 1], ``immature``, ``tip``, ``age_h``). A field's
exchange with blood at a voxel is proportional to its perfusion
(:mod:`abm.rules`).

Angiogenesis, one cell step (:func:`regress`, :func:`mature`,
:func:`migrate_tips`, :func:`sprout`, in that order; docs/model.md):
immature vessels regress where the angiogenic signal is low or a drug
prunes them; immature vessels that are not tips mature (perfusion on)
after a delay; each tip moves one voxel up the signal, joining the network
when it meets a tip or enters a mature vessel (anastomosis); perfused mature
vessels sprout new tips into tissue where the signal is above a threshold.
Every choice is a comparison of a counter-based draw, and every loop runs
over neighbourhood directions, so NumPy and CuPy give the same bits.
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


def _probability(xp: ModuleType, rate_per_h: Any, dt_h: float) -> Any:
    """``1 - exp(-rate dt)``: the chance that an event of ``rate_per_h`` (1/h, scalar or array) ends a state in ``dt_h``."""
    return -xp.expm1(-xp.asarray(rate_per_h, dtype=xp.float64) * dt_h)


def uphill_neighbour(xp: ModuleType, level: Any, *, candidate: Any, offsets: list[tuple[int, ...]],
                     draw: Any) -> tuple[Any, Any]:
    """Each voxel's Moore neighbour with the highest ``level`` among the ``candidate`` voxels, ties by ``draw``.

    Args:
        level: lattice shape, any float dtype (compared as ``float64``).
        candidate: bool, lattice shape: the voxels that may be chosen.
        offsets: the Moore neighbourhood (:func:`kernels.lattice.moore_offsets`).
        draw: uniform [0, 1) draws, lattice shape: among ``n`` tied neighbours the ``floor(draw n)``-th in
            ``offsets`` order is chosen.

    Returns:
        ``(direction, best)``: ``int8`` index into ``offsets`` (-1 where no neighbour is a candidate) and the
        chosen neighbour's level (``float64``, ``-inf`` where none), lattice shape each.
    """
    level = level.astype(xp.float64)

    def seen(offset: tuple[int, ...]) -> Any:
        return xp.where(shifted(xp, candidate, offset, False), shifted(xp, level, offset, -xp.inf), -xp.inf)

    best = xp.full(level.shape, -xp.inf, dtype=xp.float64)
    ties = xp.zeros(level.shape, dtype=xp.int32)
    for offset in offsets:
        value = seen(offset)
        ties = xp.where(value > best, 1, ties + ((value == best) & (value > -xp.inf)))
        best = xp.maximum(best, value)
    pick = xp.floor(draw * ties).astype(xp.int32)
    direction = xp.full(level.shape, -1, dtype=xp.int8)
    counted = xp.zeros(level.shape, dtype=xp.int32)
    for number, offset in enumerate(offsets):
        hit = (seen(offset) == best) & (best > -xp.inf)
        direction = xp.where(hit & (counted == pick), number, direction).astype(xp.int8)
        counted += hit
    return direction, best


def arrivals(xp: ModuleType, moving: Any, direction: Any, offsets: list[tuple[int, ...]]) -> Any:
    """How many of the ``moving`` voxels (bool) step into each voxel, each to its neighbour ``direction`` (``int8``,
    index into ``offsets``). Returns ``int32``, lattice shape."""
    count = xp.zeros(moving.shape, dtype=xp.int32)
    for number, offset in enumerate(offsets):
        count += shifted(xp, moving & (direction == number), tuple(-step for step in offset), False)
    return count


def _grown(xp: ModuleType, vessels: VesselLayer, count: Any) -> VesselLayer:
    """``vessels`` with new immature vessels (age 0) where ``count`` (``int32``) sprouts or tips arrived in voxels
    without a vessel: a tip where exactly one arrived, a joined (anastomosed) segment where several met."""
    new = (count > 0) & ~vessels.present
    return vessels.replace(present=vessels.present | new, immature=vessels.immature | new,
                           tip=vessels.tip | (new & (count == 1)),
                           age_h=xp.where(new, 0.0, vessels.age_h).astype(vessels.age_h.dtype))


def regress(xp: ModuleType, vessels: VesselLayer, *, signal: Any, threshold: float, rate_per_h: float,
            prune_rate_per_h: Any, rate_factor: Any, dt_h: float, draw: Any) -> VesselLayer:
    """Immature vessels (tips too) disappear at ``rate_per_h`` where ``signal`` is below ``threshold`` (no support),
    plus ``prune_rate_per_h`` (an anti-angiogenic drug's pruning) anywhere, both times ``rate_factor``. Mature
    vessels stay.

    Args:
        signal: the effective angiogenic signal (VEGF less its blockade), lattice shape, field units.
        threshold: level below which an immature vessel lacks support.
        rate_per_h: regression rate of an unsupported immature vessel, 1/h.
        prune_rate_per_h: extra regression rate, 1/h: a scalar or ``float64`` of the lattice shape.
        rate_factor: factor on the whole rate, in [0, 1] (M2-like macrophages' support): a scalar or ``float64`` of
            the lattice shape.
        dt_h: cell step, h.
        draw: uniform [0, 1) draws, lattice shape.
    """
    rate = (xp.where(signal < threshold, rate_per_h, 0.0) + prune_rate_per_h) * rate_factor
    removed = vessels.immature & (draw < _probability(xp, rate, dt_h))
    return vessels.replace(present=vessels.present & ~removed, immature=vessels.immature & ~removed,
                           tip=vessels.tip & ~removed,
                           age_h=xp.where(removed, 0.0, vessels.age_h).astype(vessels.age_h.dtype))


def mature(xp: ModuleType, vessels: VesselLayer, *, maturation_h: float, perfusion: float, dt_h: float) -> VesselLayer:
    """Immature vessels age by ``dt_h``; those that are not tips and reach ``maturation_h`` hours become mature
    vessels of ``perfusion`` (0 to 1) and their age returns to 0."""
    age = xp.where(vessels.immature, vessels.age_h + vessels.age_h.dtype.type(dt_h), vessels.age_h)
    ready = vessels.immature & ~vessels.tip & (age >= maturation_h)
    return vessels.replace(immature=vessels.immature & ~ready,
                           perfusion=xp.where(ready, perfusion, vessels.perfusion).astype(vessels.perfusion.dtype),
                           age_h=xp.where(ready, 0.0, age).astype(vessels.age_h.dtype))


def migrate_tips(xp: ModuleType, vessels: VesselLayer, *, signal: Any, tissue: Any, offsets: list[tuple[int, ...]],
                 draw: Any) -> VesselLayer:
    """Each tip moves one voxel up ``signal``, leaving an immature segment behind, or joins the network.

    A tip with another tip among its Moore neighbours anastomoses: both stop
    being tips. Every other tip steps to its neighbour of highest signal among
    the ``tissue`` voxels that are not immature vessels (ties by ``draw``): into
    free tissue it goes on as a tip (where several tips step into one voxel they
    join there and none stays a tip); into a mature vessel it anastomoses. A tip
    with no such neighbour stays.

    Args:
        signal: the angiogenic signal, lattice shape.
        tissue: bool, lattice shape: voxels a vessel may grow into or join (no tumor cell).
        offsets: the Moore neighbourhood.
        draw: uniform [0, 1) draws, lattice shape (ties).
    """
    tips = vessels.tip
    touching = xp.zeros(tips.shape, dtype=bool)
    for offset in offsets:
        touching |= shifted(xp, tips, offset, False)
    direction, _ = uphill_neighbour(xp, signal, candidate=tissue & ~vessels.immature, offsets=offsets, draw=draw)
    moving = tips & ~touching & (direction >= 0)
    return _grown(xp, vessels.replace(tip=tips & ~(touching | moving)), arrivals(xp, moving, direction, offsets))


def sprout(xp: ModuleType, vessels: VesselLayer, *, signal: Any, tissue: Any, threshold: float, rate_per_h: float,
           dt_h: float, offsets: list[tuple[int, ...]], draw: Any, draw_direction: Any) -> VesselLayer:
    """Perfused mature vessels sprout a new tip into the free ``tissue`` neighbour of highest ``signal``.

    A perfused mature vessel whose best free neighbour (no vessel, ``tissue``;
    ties by ``draw_direction``) has a signal above ``threshold`` sprouts at
    ``rate_per_h``; the sprout is a new tip there (sprouts meeting in one voxel
    form a joined segment, no tip).

    Args:
        signal: the effective angiogenic signal, lattice shape, field units.
        tissue: bool, lattice shape: voxels free of tumor cells.
        threshold: signal above which a vessel sprouts, field units.
        rate_per_h: sprouting rate of a vessel voxel, 1/h.
        dt_h: cell step, h.
        offsets: the Moore neighbourhood.
        draw, draw_direction: uniform [0, 1) draws, lattice shape (whether, and ties of where).
    """
    sources = vessels.present & ~vessels.immature & (vessels.perfusion > 0)
    direction, best = uphill_neighbour(xp, signal, candidate=tissue & ~vessels.present, offsets=offsets,
                                       draw=draw_direction)
    sprouting = sources & (best > threshold) & (draw < _probability(xp, rate_per_h, dt_h))
    return _grown(xp, vessels, arrivals(xp, sprouting, direction, offsets))
