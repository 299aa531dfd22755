"""Tumor cell rules over lists of cells; pushing over the whole grid.

The tumor cells are a :class:`kernels.layers.TumorLayer` (clone, state, age,
immunogenic death); kernels take one and return a new one, with every other
argument by keyword.

The oxygen response, death and division work on lists of cells: ``int64``
flat voxel indices (the live, occupied or dividing cells in ascending order,
``flatnonzero``), with the draws and the oxygen at those voxels only, and a
dividing cell's neighbours gathered by flat index
(:func:`kernels.lattice.neighbour_indices`). A draw at a cell is the value a
draw over the whole lattice has at its voxel, so their cost grows with the
cells that act, apart from one scan per list, and the result is the one of
a pass over the whole lattice. Pushing (:func:`push`) still takes
whole-lattice passes per neighbour offset and distance.

Per-clone traits are 1-D arrays indexed by clone (gathered with ``trait[clone]``).
Every probability comes from a rate as ``1 - exp(-rate * dt)`` and every draw
from :mod:`kernels.random`, so results do not depend on backend or order.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kernels.lattice import gather, listed_choice, neighbour_indices, placed, shifted, source_index, uniform_choice
from kernels.layers import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, TumorLayer

STATE_NAMES = ("cycling", "quiescent", "apoptotic", "necrotic")


@dataclass(frozen=True)
class HypoxiaParameters:
    """Oxygen thresholds of the tumor cell response (mmHg) and the necrosis rate.

    Attributes:
        quiescence_below_mmHg: live cells below this are quiescent, above it cycling.
        proliferation_saturation_mmHg: division runs at the full rate at or above this.
        necrosis_threshold_mmHg: necrosis starts below this.
        necrosis_max_mmHg: necrosis reaches its maximum rate at or below this.
        necrosis_max_rate_per_h: maximum necrosis rate, 1/h.
    """

    quiescence_below_mmHg: float
    proliferation_saturation_mmHg: float
    necrosis_threshold_mmHg: float
    necrosis_max_mmHg: float
    necrosis_max_rate_per_h: float


def probability(xp: ModuleType, rate_per_h: Any, dt_h: float) -> Any:
    """Per-step event probability ``1 - exp(-rate * dt)`` (rate in 1/h, dt in h)."""
    return -xp.expm1(-rate_per_h * dt_h)


def _ramp(xp: ModuleType, value: Any, zero_at: float, one_at: float) -> Any:
    """Linear ramp clipped to [0, 1]: 0 at ``zero_at``, 1 at ``one_at`` (either order, never equal)."""
    return xp.clip((value - zero_at) / (one_at - zero_at), 0.0, 1.0)


def oxygen_response(
    xp: ModuleType, tumor: TumorLayer, *, cells: Any, oxygen_mmHg: Any, hypoxia: HypoxiaParameters,
    quiescence_entry_per_h: Any, quiescence_exit_per_h: Any, dt_h: float, draw_necrosis: Any, draw_quiescence: Any,
) -> TumorLayer:
    """Switch live cells between cycling and quiescent, and start necrosis in hypoxia.

    A hypoxic live cell (oxygen below ``quiescence_below_mmHg``) is quiescent.
    In oxygen, a cycling cell becomes quiescent with its clone's entry rate
    (dormancy) and a quiescent cell resumes cycling with its clone's exit
    rate (an infinite rate: at once). Only the listed cells are read and written.

    Args:
        tumor: the tumor cells.
        cells: ``int64``, shape ``(n,)``: the flat voxels of the live (cycling or quiescent) cells.
        oxygen_mmHg: oxygen at those voxels, shape ``(n,)``, mmHg.
        hypoxia: thresholds and the necrosis rate.
        quiescence_entry_per_h, quiescence_exit_per_h: per-clone rates,
            ``float64`` of shape ``(n_clones,)``, 1/h (exit may be ``inf``).
        dt_h: cell step in hours.
        draw_necrosis, draw_quiescence: uniform [0, 1) draws at those voxels, shape ``(n,)``.

    Returns:
        The tumor layer with new ``state`` and ``age_h``.
    """
    cell_state = tumor.state.reshape(-1)[cells]
    hypoxic = oxygen_mmHg < hypoxia.quiescence_below_mmHg
    index = tumor.clone.reshape(-1)[cells]
    leaves_cycling = draw_quiescence < probability(xp, quiescence_entry_per_h[index], dt_h)
    leaves_quiescence = draw_quiescence < probability(xp, quiescence_exit_per_h[index], dt_h)
    oxygenated_target = xp.where(cell_state == CYCLING, xp.where(leaves_cycling, QUIESCENT, CYCLING),
                                 xp.where(leaves_quiescence, CYCLING, QUIESCENT))
    target = xp.where(hypoxic, QUIESCENT, oxygenated_target).astype(cell_state.dtype)
    switched = target != cell_state

    necrosis_rate = hypoxia.necrosis_max_rate_per_h * _ramp(
        xp, oxygen_mmHg, hypoxia.necrosis_threshold_mmHg, hypoxia.necrosis_max_mmHg)
    necrotic = draw_necrosis < probability(xp, necrosis_rate, dt_h)

    new_state = xp.where(necrotic, NECROTIC, target).astype(cell_state.dtype)
    return tumor.replace(state=_listed(tumor.state, cells, new_state),
                         age_h=_listed(tumor.age_h, cells[switched | necrotic], 0.0))


def _listed(array: Any, index: Any, values: Any) -> Any:
    """A copy of ``array`` with its flat voxels ``index`` (``int64``, shape ``(n,)``) set to ``values``
    (a scalar or shape ``(n,)``, cast to ``array``'s dtype)."""
    out = array.copy()
    out.reshape(-1)[index] = values
    return out


def death(
    xp: ModuleType, tumor: TumorLayer, *, cells: Any, apoptosis_rate_per_h: Any, apoptotic_duration_h: float,
    necrotic_clearance_per_h: float, dt_h: float, draw_apoptosis: Any, draw_clearance: Any,
) -> TumorLayer:
    """Start apoptosis in live cells, remove finished apoptotic cells, clear necrotic debris.

    Only the listed cells are read and written (a voxel without a tumor cell is never immunogenic, so
    removing a cell clears the mark at its voxel only).

    Args:
        tumor: the tumor cells.
        cells: ``int64``, shape ``(n,)``: the flat voxels that hold a tumor cell (any state).
        apoptosis_rate_per_h: per-clone apoptosis rate, shape ``(n_clones,)``, 1/h.
        apoptotic_duration_h: time from the start of apoptosis to removal, h.
        necrotic_clearance_per_h: rate at which necrotic cells are removed, 1/h.
        dt_h: cell step, h.
        draw_apoptosis, draw_clearance: uniform [0, 1) draws at those voxels, shape ``(n,)``.

    Returns:
        The new tumor layer (a removed cell's voxel holds no cell and no immunogenic mark).
    """
    clone = tumor.clone.reshape(-1)[cells]
    cell_state = tumor.state.reshape(-1)[cells]
    state_age_h = tumor.age_h.reshape(-1)[cells]
    live = (cell_state == CYCLING) | (cell_state == QUIESCENT)
    starts = live & (draw_apoptosis < probability(xp, apoptosis_rate_per_h[clone], dt_h))
    finished = (cell_state == APOPTOTIC) & (state_age_h >= apoptotic_duration_h)
    cleared = (cell_state == NECROTIC) & (draw_clearance < -math.expm1(-necrotic_clearance_per_h * dt_h))
    removed = cells[finished | cleared]
    new_state = _listed(tumor.state, cells[starts], APOPTOTIC)
    new_state.reshape(-1)[removed] = CYCLING
    return TumorLayer(clone=_listed(tumor.clone, removed, -1), state=new_state,
                      age_h=_listed(tumor.age_h, cells[starts | finished | cleared], 0.0),
                      immunogenic=_listed(tumor.immunogenic, removed, False))


def growth_probability(xp: ModuleType, rate_per_h: Any, dt_h: float) -> Any:
    """Per-step division probability ``exp(rate * dt) - 1`` that keeps the mean growth exact.

    A cell that divides with probability ``p`` each step multiplies the
    expected population by ``1 + p`` per step; ``p = exp(rate dt) - 1`` makes
    that ``exp(rate dt)``, the growth of the continuous-time process. (The
    event probability ``1 - exp(-rate dt)`` would slow growth by a factor of
    about ``exp(-rate^2 dt t)``: 13 % in 3 days at a 23 h cycle and 1 h
    steps.) Needs ``rate * dt <= ln 2``; larger rates are clipped to it.
    """
    return xp.expm1(xp.minimum(rate_per_h * dt_h, math.log(2.0)))


def division_probability(
    xp: ModuleType, clone: Any, *, oxygen_mmHg: Any, division_rate_per_h: Any, hypoxia: HypoxiaParameters, dt_h: float,
) -> Any:
    """Per-step division probability of listed cycling cells.

    The rate is the clone's division rate times a linear oxygen factor, 0 at
    ``quiescence_below_mmHg`` and 1 at ``proliferation_saturation_mmHg``;
    the probability is :func:`growth_probability` of that rate.

    Args:
        clone: ``int32``, shape ``(n,)``: the cells' clones (each >= 0).
        oxygen_mmHg: oxygen at the cells, shape ``(n,)``, mmHg.
        division_rate_per_h: per-clone division rate, ``float64`` of shape ``(n_clones,)``, 1/h.
        hypoxia: the oxygen thresholds.
        dt_h: cell step, h.

    Returns:
        ``float64``, shape ``(n,)``.
    """
    oxygen_factor = _ramp(xp, oxygen_mmHg, hypoxia.quiescence_below_mmHg, hypoxia.proliferation_saturation_mmHg)
    return growth_probability(xp, division_rate_per_h[clone] * oxygen_factor, dt_h)


def place_daughters(
    xp: ModuleType, mothers: Any, *, free: Any, offsets: list[tuple[int, ...]], draw_direction: Any, draw_priority: Any,
) -> tuple[Any, Any]:
    """Choose a free Moore neighbour for each dividing cell and resolve conflicts.

    Each dividing cell picks one of its free neighbours uniformly: the
    ``floor(draw x count)``-th in offset order (:func:`kernels.lattice.listed_choice`);
    when several cells pick the same voxel, the one with the highest priority
    draw wins, among equal draws the one of the lowest offset index, and the
    others do not divide this step (:func:`kernels.lattice.listed_claim`). The
    result does not depend on the order in which cells are listed or
    evaluated. The work is on the mothers' neighbours only. This is the ``xp``
    reference of the ``place_daughters`` accelerated operation
    (:mod:`kernels.accelerated`; CUDA: :func:`kernels.cuda.division.place_daughters`).

    Args:
        mothers: ``int64``, shape ``(n,)``: the flat voxels of the cells that attempt to divide, ascending.
        free: bool, lattice shape: voxels a daughter may occupy.
        offsets: the neighbourhood (see :func:`kernels.lattice.moore_offsets`).
        draw_direction, draw_priority: uniform [0, 1) draws at the mothers, ``float64`` of shape ``(n,)``.

    Returns:
        ``(source, target)``, ``int64`` of shape ``(m,)`` each: the mothers whose daughter was placed (in the
        order of ``mothers``) and the voxels their daughters take.
    """
    neighbour = neighbour_indices(xp, free.shape, mothers, offsets)
    allowed = (neighbour >= 0) & free.reshape(-1)[xp.maximum(neighbour, 0)]
    return placed(xp, mothers, neighbour, listed_choice(xp, allowed, draw_direction), draw_priority)


def divide(
    xp: ModuleType, tumor: TumorLayer, *, mothers: Any, free: Any, offsets: list[tuple[int, ...]],
    draw_direction: Any, draw_priority: Any, place: Callable[..., tuple[Any, Any]] = place_daughters,
) -> tuple[TumorLayer, Any]:
    """Dividing cells place a daughter of their clone in a free Moore neighbour (:func:`place_daughters`).

    A daughter starts cycling at age 0; a mother whose daughter was placed
    restarts its age.

    Args:
        tumor: the tumor cells.
        mothers: ``int64``, shape ``(n,)``: the flat voxels of the cells that attempt to divide, ascending.
        free: bool, lattice shape: voxels a daughter may occupy.
        offsets: the neighbourhood (see :func:`kernels.lattice.moore_offsets`).
        draw_direction, draw_priority: uniform [0, 1) draws at the mothers, shape ``(n,)``.
        place: the ``place_daughters`` accelerated operation (:mod:`kernels.accelerated`): this module's
            :func:`place_daughters` (the reference) or its CUDA implementation, the same bits.

    Returns:
        ``(tumor, born)``: the new layer and ``int64`` ``(m,)``: the flat voxels that received a daughter.
    """
    source, target = place(xp, mothers, free=free, offsets=offsets,
                           draw_direction=draw_direction, draw_priority=draw_priority)
    clone = _listed(tumor.clone, target, tumor.clone.reshape(-1)[source])
    age_h = _listed(tumor.age_h, target, 0.0)
    age_h.reshape(-1)[source] = 0.0
    return tumor.replace(clone=clone, state=_listed(tumor.state, target, CYCLING), age_h=age_h), target


def mutant_daughters(xp: ModuleType, born: Any, *, clone: Any, mutation_rate: Any, draw_mutation: Any) -> Any:
    """Daughters that mutate: each newborn cell with its clone's per-division mutation probability.

    Args:
        born: bool, lattice shape: voxels that received a daughter this step.
        clone: ``int32``, lattice shape, the daughters' (inherited) clone.
        mutation_rate: per-clone probability, ``float64`` of shape ``(n_clones,)``.
        draw_mutation: uniform [0, 1) draws, lattice shape.

    Returns:
        bool, lattice shape: daughters that found a new subclone.
    """
    return born & (draw_mutation < mutation_rate[xp.maximum(clone, 0)])


#: Priority keys of pushes: ``floor(draw x PUSH_PRIORITY_LEVELS) x voxels + flat index``, unique per pusher and
#: below 2**63 for every lattice the config admits (at most 2**36 voxels).
PUSH_PRIORITY_LEVELS = 2**26


def enclosed(xp: ModuleType, free: Any, offsets: list[tuple[int, ...]]) -> Any:
    """Bool mask, lattice shape, of voxels none of whose neighbours (``offsets``) is ``free`` (bool, lattice shape).

    The ``xp`` reference of the ``enclosed`` accelerated operation (:mod:`kernels.accelerated`; CUDA:
    :func:`kernels.cuda.division.enclosed`)."""
    any_free = xp.zeros(free.shape, dtype=bool)
    for offset in offsets:
        any_free |= shifted(xp, free, offset, False)
    return ~any_free


def push_lengths(
    xp: ModuleType, pushing: Any, *, free: Any, occupied: Any, offsets: list[tuple[int, ...]], max_cells: int,
) -> list[Any]:
    """Per direction, the distance to the first free voxel along a straight lattice line through tumor cells.

    Along direction ``k`` from a voxel ``p``, the voxels ``p + j offsets[k]``
    for ``j = 1, 2, ...`` are tumor cells up to ``j = L - 1`` and free at
    ``j = L``; the line is usable when ``L <= max_cells + 1`` (at most
    ``max_cells`` cells are shoved). A vessel, a voxel that is neither free
    nor a tumor cell, or the domain's edge blocks the line.

    Args:
        pushing: bool, lattice shape: voxels whose lines are wanted (0 elsewhere).
        free: bool, lattice shape: voxels a cell may move into.
        occupied: bool, lattice shape: voxels holding a tumor cell (they may be shoved).
        offsets: the neighbourhood (see :func:`kernels.lattice.moore_offsets`).
        max_cells: the most cells one division may shove (>= 1).

    Returns:
        One ``int32`` array of the lattice shape per offset: ``L`` in voxels, 0 where the line is not usable.
    """
    lengths = []
    for offset in offsets:
        length = xp.zeros(pushing.shape, dtype=xp.int32)
        through = pushing.copy()  # every voxel so far along the line holds a tumor cell
        for j in range(1, max_cells + 2):
            far = tuple(j * step for step in offset)
            length = xp.where(through & shifted(xp, free, far, False), j, length).astype(xp.int32)
            through &= shifted(xp, occupied, far, False)
        lengths.append(length)
    return lengths


def push(
    xp: ModuleType, tumor: TumorLayer, *, pushing: Any, free: Any, offsets: list[tuple[int, ...]], max_cells: int,
    draw_direction: Any, draw_priority: Any,
) -> tuple[TumorLayer, Any, Any]:
    """Dividing cells without a free neighbour shove a chain of cells toward the nearest free voxel.

    Each pushing cell looks along the straight lattice lines of its
    neighbourhood (:func:`push_lengths`) and takes one of the shortest that
    ends in a free voxel within ``max_cells + 1`` voxels, uniformly among
    equals (``draw_direction``). The push moves every cell on the line one
    voxel outward, the last into the free voxel, and puts the daughter in
    the voxel next to the mother. Pushes must not share a voxel (mother,
    shoved cells or target): each voxel goes to the push of the highest
    priority key touching it (``draw_priority``, ties by voxel index,
    :data:`PUSH_PRIORITY_LEVELS`), and a push goes ahead only if it holds
    every voxel it touches; the others wait for a later step. The result
    does not depend on the order of evaluation, and no cell is lost or
    copied: a shoved cell takes all its arrays along.

    A daughter starts cycling at age 0 and not immunogenic; a mother whose
    push went ahead restarts its age.

    Args:
        tumor: the tumor cells.
        pushing: bool, lattice shape: dividing cells with no free neighbour.
        free: bool, lattice shape: voxels a cell may move into (no tumor cell, no vessel).
        offsets: the neighbourhood (see :func:`kernels.lattice.moore_offsets`).
        max_cells: the most cells one division may shove (>= 1).
        draw_direction, draw_priority: uniform [0, 1) draws, lattice shape.

    Returns:
        ``(tumor, born, pushed)``: the new layer, the bool mask of voxels that
        received a daughter and the bool mask of mothers whose push went ahead.
    """
    occupied = tumor.occupied()
    lengths = push_lengths(xp, pushing, free=free, occupied=occupied, offsets=offsets, max_cells=max_cells)
    nearest = xp.full(pushing.shape, max_cells + 2, dtype=xp.int32)
    for length in lengths:
        nearest = xp.where(length > 0, xp.minimum(nearest, length), nearest)
    choice = uniform_choice(xp, pushing, [(length > 0) & (length == nearest) for length in lengths], draw_direction)
    length = xp.where(choice >= 0, nearest, 0)

    index = xp.arange(pushing.size, dtype=xp.int64).reshape(pushing.shape)
    level = xp.floor(draw_priority * PUSH_PRIORITY_LEVELS).astype(xp.int64)
    key = xp.where(choice >= 0, level * pushing.size + index, -1)  # unique per pusher
    steps = [(k, offset, j) for k, offset in enumerate(offsets) for j in range(1, max_cells + 2)]
    best = key.copy()  # the highest key of the pushes touching each voxel
    for k, offset, j in steps:  # the push of the cell at p touches p + j offsets[k] for j <= its length
        reaches = (choice == k) & (length >= j)
        best = xp.maximum(best, shifted(xp, xp.where(reaches, key, -1), tuple(-j * step for step in offset), -1))
    holds = (choice >= 0) & (best == key)
    for k, offset, j in steps:
        reaches = (choice == k) & (length >= j)
        holds &= ~reaches | (shifted(xp, best, tuple(j * step for step in offset), -1) == key)

    source_direction = xp.full(pushing.shape, -1, dtype=xp.int8)
    born = xp.zeros(pushing.shape, dtype=bool)
    for k, offset, j in steps:
        moved_in = shifted(xp, holds & (choice == k) & (length >= j), tuple(-j * step for step in offset), False)
        source_direction = xp.where(moved_in, k, source_direction).astype(xp.int8)
        if j == 1:
            born |= moved_in
    source = source_index(xp, source_direction, offsets)
    clone = gather(tumor.clone, source)
    state = xp.where(born, CYCLING, gather(tumor.state, source)).astype(tumor.state.dtype)
    age_h = xp.where(born | holds, 0.0, gather(tumor.age_h, source)).astype(tumor.age_h.dtype)
    immunogenic = gather(tumor.immunogenic, source) & ~born
    return TumorLayer(clone=clone, state=state, age_h=age_h, immunogenic=immunogenic), born, holds
