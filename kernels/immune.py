"""Immune cells on the lattice: entry, movement, killing, exhaustion, phagocytosis, death, over lists of cells.

A voxel holds at most one immune cell, which may share it with a tumor cell
(infiltration). The immune cells are a :class:`kernels.layers.ImmuneLayer`
(agent, state, exhaustion, age); kernels take one (and the tumor cells'
:class:`kernels.layers.TumorLayer` where they touch them) and return new
ones, with every other argument by keyword.

Per-agent traits are 1-D arrays indexed by the immune agent (gathered with
``trait[agent]``): ``kind`` (``int8``: :data:`T_CELL` for T cells, a code
of its own per suppressor type, 1 on, assigned by the config at load), ``antigen`` (``int64``, the antigen a T-cell clone recognises,
-1 for suppressors). Every probability comes from a rate as
``1 - exp(-rate dt)``, every draw from :mod:`kernels.random`, and every
conflict (two cells claiming one voxel) is resolved by random priority.

The kernels work on lists of cells: ``int64`` flat voxel indices (the
occupied voxels in ascending order, ``flatnonzero``), each with the flat
indices of its neighbours (:func:`kernels.lattice.neighbour_indices`), so
their cost grows with the number of immune cells (or vessel sites), not with
the lattice. A draw at a cell is the value a draw over the whole lattice has
at its voxel, and every choice and claim follows the offset order, so the
result does not depend on which other voxels are evaluated.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kernels.lattice import chosen, listed_choice, neighbour_indices, placed, shifted
from kernels.layers import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, ImmuneLayer, TumorLayer
from kernels.random import uniform_at
from kernels.tumor import place_daughters, probability

#: Kind code of the T cells; every other code is a suppressor type's (the config assigns them at load).
T_CELL = 0
#: The role of the cells of code :data:`T_CELL` (every other code has role ``suppressor``).
T_CELL_ROLE = "t_cell"
IMMUNE_STATE_NAMES = ("effector", "exhausted")


def enter(
    xp: ModuleType, immune: ImmuneLayer, *, sites: Any, entry_rate_per_h: Any, dt_h: float, cumulative_weights: Any,
    first_agent: int, draw_enter: Any, draw_which: Any,
) -> tuple[ImmuneLayer, Any]:
    """Cells enter from blood at listed sites where the entry rate is positive and no immune cell is.

    Args:
        immune: the immune cells.
        sites: ``int64``, shape ``(n,)``: the flat voxels where cells may enter (the perfused vessels; the
            entry rate is 0 everywhere else).
        entry_rate_per_h: ``float64``, shape ``(n,)``: entry rate at each site, 1/h.
        dt_h: cell step, h.
        cumulative_weights: ``float64`` of shape ``(w,)``, rising to 1: an
            entering cell belongs to agent ``first_agent + j`` with probability
            ``cumulative_weights[j] - cumulative_weights[j - 1]``.
        first_agent: index of the first of those agents.
        draw_enter, draw_which: uniform [0, 1) draws at the sites, shape ``(n,)``.

    Returns:
        ``(immune, entered)``: the new layer (a new cell is an effector of exhaustion 0 and age 0)
        and the ``int64`` flat voxels of the new cells, shape ``(e,)``.
    """
    entered = (immune.agent.reshape(-1)[sites] < 0) & (draw_enter < probability(xp, entry_rate_per_h, dt_h))
    which = xp.minimum(xp.searchsorted(cumulative_weights, draw_which[entered], side="right"),
                       cumulative_weights.shape[0] - 1)
    return immune.arrived(sites[entered], first_agent + which), sites[entered]


def uphill_direction(xp: ModuleType, own: Any, level: Any, allowed: Any, draw: Any) -> Any:
    """Index of the allowed neighbour with the highest field level, if that level is above the voxel's own; else -1.

    Neighbours tied at the highest level are chosen among uniformly (by
    ``draw``, :func:`kernels.lattice.listed_choice`), so a symmetric peak biases
    no direction; on a plateau (no neighbour higher) there is no uphill direction
    and the cell moves at random. A NaN level is never higher than another.

    Args:
        own: the chemotactic field at each listed voxel, shape ``(n,)`` (float32 or float64).
        level: the field at each voxel's neighbours, shape ``(n, K)``, the field's dtype (any value where
            not ``allowed``).
        allowed: bool, shape ``(n, K)``: the neighbour may be entered.
        draw: uniform [0, 1) draws, shape ``(n,)`` (the choice among tied neighbours).

    Returns:
        ``int8``, shape ``(n,)``.
    """
    highest = xp.where(allowed & (level == level), level, -xp.inf).max(axis=1)
    top = allowed & (level == highest[:, None])
    return xp.where(highest > own, listed_choice(xp, top, draw), -1).astype(xp.int8)


def move_choice(xp: ModuleType, allowed: Any, uphill: Any, bias: Any, draw_bias: Any, draw_direction: Any) -> Any:
    """Direction of each moving cell: uphill with probability ``bias``, else a uniformly chosen allowed neighbour.

    Args:
        allowed: bool, shape ``(n, K)``: the mover's neighbour ``k`` may be entered.
        uphill: ``int8``, shape ``(n,)``, from :func:`uphill_direction` (-1: no chemotactic direction).
        bias: ``float64``, shape ``(n,)``: chemotactic bias of each mover, in [0, 1].
        draw_bias, draw_direction: uniform [0, 1) draws, shape ``(n,)``.

    Returns:
        ``int8``, shape ``(n,)``: the chosen offset index, -1 where no move.
    """
    random_choice = listed_choice(xp, allowed, draw_direction)
    climbs = (uphill >= 0) & (draw_bias < bias)
    return xp.where(climbs, uphill, random_choice).astype(xp.int8)


def movement_substep(
    xp: ModuleType, immune: ImmuneLayer, *, chance: Any, bias: Any, agent_field: Any, fields: Sequence[Any],
    uphill_offsets: Any, offsets: list[tuple[int, ...]], move_offset: int, bias_offset: int, direction_offset: int,
    priority_offset: int,
) -> ImmuneLayer:
    """One substep of the immune cells' biased random walk; the ``xp`` reference of the
    ``immune_movement_substep`` operation (:mod:`kernels.accelerated`; on a GPU :func:`kernels.cuda.movement.substep`).

    A cell moves with probability ``chance`` into a Moore neighbour free of
    immune cells (at the start of the substep): up its chemotactic field
    (:func:`uphill_direction`) with its agent's probability ``bias``, else to
    a uniformly chosen free neighbour (:func:`move_choice`). Claims on one
    voxel go to the claimant with the highest priority draw, among equal
    draws to the lowest offset index (:func:`kernels.lattice.listed_claim`,
    the rule of the tumor's daughters, :func:`kernels.tumor.place_daughters`); a cell that won leaves its
    voxel empty, taking its state, exhaustion and age along; the others stay.
    No voxel ends with two cells and the number of cells does not change.

    The work is over the list of cells (ascending flat index), then of the
    cells that move, each with its ``K`` neighbours' flat indices, so it grows
    with the number of immune cells, not with the lattice. The draws are
    :func:`kernels.random.uniform_at` of the cell's flat voxel index in the
    sequences that start at the given stream offsets (the values a draw over
    the whole lattice has at that voxel).

    Args:
        xp: array module.
        immune: the immune cells, lattice shape ``(ny, nx)`` or ``(nz, ny, nx)``.
        chance: ``float64``, lattice shape: the move probability of each voxel's cell (read at cells only).
        bias: ``float64``, shape ``(n_agents,)``: each agent's chemotactic bias, in [0, 1].
        agent_field: ``int8``, shape ``(n_agents,)``: the number of the agent's chemotactic field
            in ``fields``, -1 for none.
        fields: ``n_fields`` chemotactic fields (float32 or float64, lattice shape), ``n_fields >= 0``;
            levels are compared as they are (a float32 level as its exact value).
        uphill_offsets: ``uint64``, shape ``(n_fields,)``: the stream offset of each field's
            tie-break draw (on the device of the arrays).
        offsets: the Moore neighbourhood (:func:`kernels.lattice.moore_offsets`).
        move_offset, bias_offset, direction_offset, priority_offset: stream offsets
            (:func:`kernels.random.stream_offset`) of the move, bias, direction and priority draws.

    Returns:
        The new immune layer.
    """
    agent = immune.agent.reshape(-1)
    cells = xp.flatnonzero(agent >= 0)
    movers = cells[uniform_at(xp, move_offset, cells.astype(xp.uint64)) < chance.reshape(-1)[cells]]
    index = movers.astype(xp.uint64)
    neighbour = neighbour_indices(xp, immune.agent.shape, movers, offsets)
    inside = xp.maximum(neighbour, 0)
    allowed = (neighbour >= 0) & (agent[inside] < 0)
    mover_agent = agent[movers]
    uphill = xp.full(movers.shape, -1, dtype=xp.int8)
    if len(fields):
        followed = agent_field[mover_agent]
        for number, field in enumerate(fields):
            level = field.reshape(-1)
            climb = uphill_direction(xp, level[movers], level[inside], allowed,
                                     uniform_at(xp, uphill_offsets[number], index))
            uphill = xp.where(followed == number, climb, uphill).astype(xp.int8)
    choice = move_choice(xp, allowed, uphill, bias[mover_agent], uniform_at(xp, bias_offset, index),
                         uniform_at(xp, direction_offset, index))
    source, target = placed(xp, movers, neighbour, choice, uniform_at(xp, priority_offset, index))
    return immune.moved(source, target)


def neighbour_of(xp: ModuleType, mask: Any, offsets: list[tuple[int, ...]]) -> Any:
    """Bool, lattice shape: some Moore neighbour of the voxel is in ``mask``."""
    found = xp.zeros(mask.shape, dtype=bool)
    for offset in offsets:
        found |= shifted(xp, mask, offset, False)
    return found


@dataclass(frozen=True)
class KillParameters:
    """How an effector T cell kills and tires.

    Attributes:
        kill_rate_per_h: kill rate in contact with a target, 1/h.
        pdl1_inhibition: fraction of the kill blocked by full PD-L1 on free PD-1.
        exhaustion_per_kill: exhaustion added by a kill.
        exhaustion_per_engagement_h: exhaustion per hour of engagement, times PD-L1 x (1 - occupancy).
    """

    kill_rate_per_h: float
    pdl1_inhibition: float
    exhaustion_per_kill: float
    exhaustion_per_engagement_h: float


def t_cell_kill(
    xp: ModuleType, tumor: TumorLayer, immune: ImmuneLayer, *, effectors: Any, t_antigen: Any, tumor_antigens: Any,
    tumor_pdl1: Any, occupancy: Any, kill_factor: Any, targets_offsets: list[tuple[int, ...]],
    parameters: KillParameters, dt_h: float, draw_target: Any, draw_kill: Any,
) -> tuple[TumorLayer, ImmuneLayer, Any, Any]:
    """Each effector T cell engages one live tumor cell presenting its antigen, in its voxel or a Moore neighbour, and may kill it.

    The target is chosen uniformly among the candidates, in the order of
    ``targets_offsets`` (:func:`kernels.lattice.listed_choice`). The kill
    probability is ``1 - exp(-k dt)`` with ``k = kill_rate x (1 -
    pdl1_inhibition x pdl1 x (1 - occupancy)) x kill_factor``: PD-L1 on the
    target brakes the kill unless PD-1 is blocked; ``kill_factor`` carries
    local suppression. The engagement adds exhaustion in proportion to the
    target's PD-L1 on free PD-1, a kill adds ``exhaustion_per_kill``. A target
    killed by any T cell starts apoptosis. The work is over the list of effectors.

    Args:
        tumor, immune: the tumor and immune cells.
        effectors: ``int64``, shape ``(n,)``: the flat voxels of the effector T cells (no voxel twice).
        t_antigen: ``int64``, shape ``(n,)``: the antigen each effector recognises.
        tumor_antigens: per tumor clone, ``uint64`` antigen sets, shape ``(n_clones,)``.
        tumor_pdl1: per tumor clone PD-L1, ``float64``, shape ``(n_clones,)``.
        occupancy: PD-1 occupancy by blocking antibody at each effector, in [0, 1] (``float64`` ``(n,)`` or scalar).
        kill_factor: suppression at each effector, in [0, 1] (``float64`` ``(n,)`` or scalar).
        targets_offsets: the voxel itself ``(0, ..., 0)`` first, then the Moore offsets.
        parameters: kill and exhaustion parameters.
        dt_h: cell step, h.
        draw_target, draw_kill: uniform [0, 1) draws at the effectors, shape ``(n,)``.

    Returns:
        ``(tumor, immune, killers, killed)``: the new tumor layer (killed cells
        apoptotic), the new immune layer (exhaustion added), bool ``(n,)``: the
        effectors that killed, and ``int64`` ``(k,)``: the flat voxels of the
        tumor cells killed, ascending, each once.
    """
    clone = tumor.clone.reshape(-1)
    inside, live = targets(xp, tumor, effectors, targets_offsets, states=LIVE_STATES)
    target_clone = clone[inside]
    bit = xp.maximum(t_antigen, 0).astype(xp.uint64)[:, None]
    presents = (tumor_antigens[xp.maximum(target_clone, 0)] >> bit) & xp.uint64(1)
    choice = listed_choice(xp, live & (presents == 1), draw_target)
    engaged = choice >= 0
    target = chosen(xp, inside, xp.maximum(choice, 0))
    target_pdl1 = xp.where(engaged, tumor_pdl1[xp.maximum(clone[target], 0)], 0.0)
    free_brake = target_pdl1 * (1.0 - occupancy)
    rate = parameters.kill_rate_per_h * (1.0 - parameters.pdl1_inhibition * free_brake) * kill_factor
    killers = engaged & (draw_kill < probability(xp, rate, dt_h))
    killed = xp.unique(target[killers])
    added = xp.where(engaged, parameters.exhaustion_per_engagement_h * dt_h * free_brake, 0.0)
    added = added + xp.where(killers, parameters.exhaustion_per_kill, 0.0)
    exhaustion = immune.exhaustion.copy()
    flat = exhaustion.reshape(-1)
    flat[effectors] = (flat[effectors] + added).astype(exhaustion.dtype)
    return apoptotic(tumor, killed), immune.replace(exhaustion=exhaustion), killers, killed


def targets(xp: ModuleType, tumor: TumorLayer, cells: Any, targets_offsets: list[tuple[int, ...]], *,
            states: tuple[int, ...]) -> tuple[Any, Any]:
    """The voxels listed cells may act on: their own and their Moore neighbours, where a tumor cell in one of ``states`` is.

    Args:
        cells: ``int64``, shape ``(n,)``: flat voxels of the acting cells.
        targets_offsets: the voxel itself ``(0, ..., 0)`` first, then the Moore offsets (``K`` in all).
        states: the tumor states (:mod:`kernels.layers` codes) a target may have.

    Returns:
        ``(inside, found)``: ``int64`` ``(n, K)`` flat indices of the candidate voxels (0 outside the lattice) and
        bool ``(n, K)``: a tumor cell in one of ``states`` is there.
    """
    neighbour = neighbour_indices(xp, tumor.clone.shape, cells, targets_offsets)
    inside = xp.maximum(neighbour, 0)
    state = tumor.state.reshape(-1)[inside]
    in_state = xp.zeros(inside.shape, dtype=bool)
    for code in states:
        in_state |= state == code
    return inside, (neighbour >= 0) & (tumor.clone.reshape(-1)[inside] >= 0) & in_state


#: The states of a live tumor cell (the targets of a kill) and of a dead one (the targets of phagocytosis).
LIVE_STATES, DEAD_STATES = (CYCLING, QUIESCENT), (APOPTOTIC, NECROTIC)


def apoptotic(tumor: TumorLayer, killed: Any) -> TumorLayer:
    """The tumor layer with the cells at the flat voxels ``killed`` (``int64`` ``(k,)``) apoptotic, of age 0."""
    new_state, new_age = tumor.state.copy(), tumor.age_h.copy()
    new_state.reshape(-1)[killed] = APOPTOTIC
    new_age.reshape(-1)[killed] = 0.0
    return tumor.replace(state=new_state, age_h=new_age)


def polarise(xp: ModuleType, polarisation: Any, *, target: Any, rate_per_h: float, dt_h: float) -> Any:
    """Macrophage polarisation after one cell step of ``dm/dt = rate (target - m)``, solved exactly.

    ``m(t + dt) = target + (m - target) exp(-rate dt)``: it never passes the
    target and stays in [0, 1] when both start there.

    Args:
        polarisation: ``float32``, shape ``(n,)``: each cell's polarisation (0: M1-like, 1: M2-like).
        target: ``float64``, shape ``(n,)``: the target each relaxes toward, in [0, 1].
        rate_per_h: relaxation rate, 1/h.
        dt_h: cell step, h.

    Returns:
        ``float32``, shape ``(n,)``.
    """
    decay = math.exp(-rate_per_h * dt_h)  # on the host: the same bits on every backend
    return (target + (polarisation.astype(xp.float64) - target) * decay).astype(xp.float32)


def contact_kill(
    xp: ModuleType, tumor: TumorLayer, *, killers: Any, kill_rate_per_h: Any, targets_offsets: list[tuple[int, ...]],
    dt_h: float, draw_target: Any, draw_kill: Any,
) -> tuple[TumorLayer, Any]:
    """Each listed cell engages one live tumor cell in its voxel or a Moore neighbour, whatever it presents, and may
    kill it (the antigen-independent kill of M1-like macrophages).

    The target is chosen uniformly among the live tumor cells in the order of
    ``targets_offsets`` (:func:`kernels.lattice.listed_choice`); the kill has
    probability ``1 - exp(-kill_rate dt)``; a target killed by any cell starts apoptosis.

    Args:
        tumor: the tumor cells.
        killers: ``int64``, shape ``(n,)``: flat voxels of the attacking cells (no voxel twice).
        kill_rate_per_h: ``float64``, shape ``(n,)``: each one's kill rate in contact, 1/h.
        targets_offsets: the voxel itself ``(0, ..., 0)`` first, then the Moore offsets.
        dt_h: cell step, h.
        draw_target, draw_kill: uniform [0, 1) draws at the attackers, shape ``(n,)``.

    Returns:
        ``(tumor, killed)``: the new tumor layer and ``int64`` ``(k,)``: the flat voxels of the cells killed,
        ascending, each once.
    """
    inside, live = targets(xp, tumor, killers, targets_offsets, states=LIVE_STATES)
    choice = listed_choice(xp, live, draw_target)
    target = chosen(xp, inside, xp.maximum(choice, 0))
    kills = (choice >= 0) & (draw_kill < probability(xp, kill_rate_per_h, dt_h))
    killed = xp.unique(target[kills])
    return apoptotic(tumor, killed), killed


def phagocytose(
    xp: ModuleType, tumor: TumorLayer, *, phagocytes: Any, rate_per_h: Any, targets_offsets: list[tuple[int, ...]],
    dt_h: float, draw_target: Any, draw_clear: Any,
) -> tuple[TumorLayer, Any]:
    """Each listed phagocyte engages one dead tumor cell (apoptotic or necrotic) in its voxel or a Moore neighbour and
    may remove it (the clearance of dead cells by M1-like macrophages).

    The target is chosen uniformly among the dead tumor cells in the order of
    ``targets_offsets`` (:func:`kernels.lattice.listed_choice`: by draw, then by
    offset index); the removal has probability ``1 - exp(-rate dt)``; a cell
    removed by several phagocytes is removed once. Live cells are never touched.

    Args:
        tumor: the tumor cells.
        phagocytes: ``int64``, shape ``(n,)``: flat voxels of the phagocytes (no voxel twice).
        rate_per_h: ``float64``, shape ``(n,)`` or a scalar: each one's removal rate of an engaged dead cell, 1/h.
        targets_offsets: the voxel itself ``(0, ..., 0)`` first, then the Moore offsets.
        dt_h: cell step, h.
        draw_target, draw_clear: uniform [0, 1) draws at the phagocytes, shape ``(n,)``.

    Returns:
        ``(tumor, cleared)``: the new tumor layer (removed cells' voxels as :meth:`TumorLayer.cleared` leaves them)
        and ``int64`` ``(c,)``: the flat voxels of the cells removed, ascending, each once.
    """
    inside, dead = targets(xp, tumor, phagocytes, targets_offsets, states=DEAD_STATES)
    choice = listed_choice(xp, dead, draw_target)
    target = chosen(xp, inside, xp.maximum(choice, 0))
    clears = (choice >= 0) & (draw_clear < probability(xp, rate_per_h, dt_h))
    cleared = xp.unique(target[clears])
    return tumor.cleared(cleared), cleared


def divide(
    xp: ModuleType, immune: ImmuneLayer, *, dividing: Any, offsets: list[tuple[int, ...]], draw_direction: Any,
    draw_priority: Any,
) -> ImmuneLayer:
    """Dividing immune cells place a daughter in a Moore neighbour free of immune cells by the rules of the tumor's
    daughters (:func:`kernels.tumor.place_daughters`: chosen uniformly, conflicts by priority); a daughter is a
    copy of its mother (agent, state, exhaustion) of age 0.

    Args:
        immune: the immune cells.
        dividing: ``int64``, shape ``(n,)``: the flat voxels of the cells that attempt to divide.
        offsets: the neighbourhood (see :func:`kernels.lattice.moore_offsets`).
        draw_direction, draw_priority: uniform [0, 1) draws at those voxels, shape ``(n,)``.

    Returns:
        The new immune layer.
    """
    source, target = place_daughters(xp, dividing, free=immune.agent < 0, offsets=offsets,
                                     draw_direction=draw_direction, draw_priority=draw_priority)
    return immune.divided(source, target)


def die(
    xp: ModuleType, immune: ImmuneLayer, *, cells: Any, death_rate_per_h: Any, dt_h: float, draw: Any,
) -> tuple[ImmuneLayer, Any]:
    """Remove listed immune cells at their death rate; the voxel's immune state is reset (:meth:`ImmuneLayer.cleared`).

    Args:
        immune: the immune cells.
        cells: ``int64``, shape ``(n,)``: the flat voxels of the cells (each holds a cell).
        death_rate_per_h: ``float64``, shape ``(n,)``: each cell's death rate, 1/h.
        dt_h: cell step, h.
        draw: uniform [0, 1) draws at the cells, shape ``(n,)``.

    Returns:
        ``(immune, died)``: the new layer and bool ``(n,)``: the cells that died.
    """
    died = draw < probability(xp, death_rate_per_h, dt_h)
    return immune.cleared(cells[died]), died
