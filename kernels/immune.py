"""Immune cells on the lattice as whole-grid kernels: entry, movement, killing, exhaustion, death.

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
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kernels.lattice import claim, shifted, source_index, uniform_choice
from kernels.layers import APOPTOTIC, ImmuneLayer, TumorLayer
from kernels.random import uniform_at, voxel_index
from kernels.tumor import place_daughters, probability

#: Kind code of the T cells; every other code is a suppressor type's (the config assigns them at load).
T_CELL = 0
#: The role of the cells of code :data:`T_CELL` (every other code has role ``suppressor``).
T_CELL_ROLE = "t_cell"
IMMUNE_STATE_NAMES = ("effector", "exhausted")


def enter(
    xp: ModuleType, immune: ImmuneLayer, *, entry_rate_per_h: Any, dt_h: float, cumulative_weights: Any,
    first_agent: int, draw_enter: Any, draw_which: Any,
) -> tuple[ImmuneLayer, Any]:
    """Cells enter from blood where the entry rate is positive and no immune cell is.

    Args:
        immune: the immune cells.
        entry_rate_per_h: ``float64``, lattice shape: entry rate (0 off perfused vessels), 1/h.
        dt_h: cell step, h.
        cumulative_weights: ``float64`` of shape ``(n,)``, rising to 1: an
            entering cell belongs to agent ``first_agent + j`` with probability
            ``cumulative_weights[j] - cumulative_weights[j - 1]``.
        first_agent: index of the first of those agents.
        draw_enter, draw_which: uniform [0, 1) draws, lattice shape.

    Returns:
        ``(immune, entered)``: the new layer (a new cell is an effector of exhaustion 0 and age 0)
        and the bool mask of new cells.
    """
    agent = immune.agent
    entered = (agent < 0) & (draw_enter < probability(xp, entry_rate_per_h, dt_h))
    which = xp.minimum(xp.searchsorted(cumulative_weights, draw_which, side="right"), cumulative_weights.shape[0] - 1)
    return immune.replace(agent=xp.where(entered, first_agent + which, agent).astype(agent.dtype)).arrived(xp, entered), entered


def uphill_direction(xp: ModuleType, field: Any, allowed: list[Any], offsets: list[tuple[int, ...]], draw: Any) -> Any:
    """Index of the allowed neighbour with the highest ``field`` level, if that level is above the voxel's own; else -1.

    Neighbours tied at the highest level are chosen among uniformly (by
    ``draw``), so a symmetric peak biases no direction; on a plateau (no
    neighbour higher) there is no uphill direction and the cell moves at random.

    Args:
        field: the chemotactic field, lattice shape.
        allowed: one bool array per offset (lattice shape): the neighbour may be entered.
        offsets: the neighbourhood.
        draw: uniform [0, 1) draws, lattice shape (the choice among tied neighbours).

    Returns:
        ``int8``, lattice shape.
    """
    best = field.copy()  # a neighbour must beat the voxel's own level
    for k, offset in enumerate(offsets):
        level = shifted(xp, field, offset, -xp.inf)
        best = xp.where(allowed[k] & (level > best), level, best)
    climbs = best > field
    tied = xp.zeros(field.shape, dtype=xp.int32)
    for k, offset in enumerate(offsets):
        tied += allowed[k] & (shifted(xp, field, offset, -xp.inf) == best)
    rank = xp.floor(draw * tied).astype(xp.int32)
    choice = xp.full(field.shape, -1, dtype=xp.int8)
    seen = xp.zeros(field.shape, dtype=xp.int32)
    for k, offset in enumerate(offsets):  # the shifts again, rather than holding one per direction
        top = allowed[k] & (shifted(xp, field, offset, -xp.inf) == best)
        choice = xp.where(climbs & top & (seen == rank), k, choice).astype(xp.int8)
        seen += top
    return choice


def move_choice(
    xp: ModuleType, movers: Any, allowed: list[Any], uphill: Any, bias: Any, draw_bias: Any, draw_direction: Any,
) -> Any:
    """Direction of each moving cell: uphill with probability ``bias``, else a uniformly chosen allowed neighbour.

    Args:
        movers: bool, lattice shape: cells that try to move this substep.
        allowed: one bool array per offset: the neighbour may be entered.
        uphill: ``int8`` from :func:`uphill_direction` (-1: no chemotactic direction).
        bias: chemotactic bias of each voxel's cell, lattice shape (or scalar), in [0, 1].
        draw_bias, draw_direction: uniform [0, 1) draws, lattice shape.

    Returns:
        ``int8``, lattice shape: the chosen offset index, -1 where no move.
    """
    random_choice = uniform_choice(xp, movers, allowed, draw_direction)
    climbs = movers & (uphill >= 0) & (draw_bias < bias)
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
    voxel go to the claimant with the highest priority draw
    (:func:`kernels.lattice.claim`); a cell that won leaves its voxel empty,
    taking its state, exhaustion and age along; the others stay. No voxel
    ends with two cells and the number of cells does not change.

    The draws are :func:`kernels.random.uniform_at` of the flat voxel index
    in the sequences that start at the given stream offsets.

    Args:
        xp: array module.
        immune: the immune cells, lattice shape ``(ny, nx)`` or ``(nz, ny, nx)``.
        chance: ``float64``, lattice shape: the move probability of each voxel's cell.
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
    index = voxel_index(xp, immune.agent.shape)
    occupied = immune.occupied()
    agent = xp.maximum(immune.agent, 0)
    free = ~occupied
    allowed = [shifted(xp, free, offset, False) for offset in offsets]
    uphill = xp.full(immune.agent.shape, -1, dtype=xp.int8)
    if len(fields):
        followed = xp.take(agent_field, agent)  # at empty voxels agent 0's, never read: only movers climb
        for number, field in enumerate(fields):
            climb = uphill_direction(xp, field, allowed, offsets, uniform_at(xp, uphill_offsets[number], index))
            uphill = xp.where(followed == number, climb, uphill).astype(xp.int8)
    movers = occupied & (uniform_at(xp, move_offset, index) < chance)
    choice = move_choice(xp, movers, allowed, uphill, bias[agent], uniform_at(xp, bias_offset, index),
                         uniform_at(xp, direction_offset, index))
    source, won = claim(xp, choice, free, offsets, uniform_at(xp, priority_offset, index))
    return immune.gathered(source_index(xp, source, offsets)).cleared(xp, won)


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
    xp: ModuleType, tumor: TumorLayer, immune: ImmuneLayer, *, effector: Any, t_antigen: Any, tumor_antigens: Any,
    tumor_pdl1: Any, occupancy: Any, kill_factor: Any, targets_offsets: list[tuple[int, ...]],
    parameters: KillParameters, dt_h: float, draw_target: Any, draw_kill: Any,
) -> tuple[TumorLayer, ImmuneLayer, Any, Any]:
    """Each effector T cell engages one live tumor cell presenting its antigen, in its voxel or a Moore neighbour, and may kill it.

    The kill probability is ``1 - exp(-k dt)`` with ``k = kill_rate x (1 -
    pdl1_inhibition x pdl1 x (1 - occupancy)) x kill_factor``: PD-L1 on the
    target brakes the kill unless PD-1 is blocked; ``kill_factor`` carries
    local suppression. The engagement adds exhaustion in proportion to the
    target's PD-L1 on free PD-1, a kill adds ``exhaustion_per_kill``. A target
    killed by any T cell starts apoptosis.

    Args:
        tumor, immune: the tumor and immune cells.
        effector: bool, lattice shape: voxels with an effector T cell.
        t_antigen: ``int64``, lattice shape: the antigen the voxel's T cell
            recognises (any value where no effector).
        tumor_antigens: per tumor clone, ``uint64`` antigen sets, shape ``(n_clones,)``.
        tumor_pdl1: per tumor clone PD-L1, ``float64``, shape ``(n_clones,)``.
        occupancy: PD-1 occupancy by blocking antibody at each voxel, in [0, 1] (array or scalar).
        kill_factor: suppression at each voxel, in [0, 1] (array or scalar).
        targets_offsets: the voxel itself ``(0, ..., 0)`` first, then the Moore offsets.
        parameters: kill and exhaustion parameters.
        dt_h: cell step, h.
        draw_target, draw_kill: uniform [0, 1) draws, lattice shape.

    Returns:
        ``(tumor, immune, killers, killed)``: the new tumor layer (killed cells
        apoptotic), the new immune layer (exhaustion added), bool masks of the
        T cells that killed and of the tumor cells killed.
    """
    clone = tumor.clone
    live = tumor.live()
    bit = xp.maximum(t_antigen, 0).astype(xp.uint64)
    candidates = []
    for offset in targets_offsets:
        neighbour = shifted(xp, clone, offset, -1)
        presents = (tumor_antigens[xp.maximum(neighbour, 0)] >> bit) & xp.uint64(1)
        candidates.append(effector & shifted(xp, live, offset, False) & (presents == 1))
    choice = uniform_choice(xp, effector, candidates, draw_target)
    engaged = choice >= 0
    voxel_pdl1 = xp.where(clone >= 0, tumor_pdl1[xp.maximum(clone, 0)], 0.0)
    target_pdl1 = xp.zeros(clone.shape, dtype=xp.float64)
    for k, offset in enumerate(targets_offsets):
        target_pdl1 = xp.where(choice == k, shifted(xp, voxel_pdl1, offset, 0.0), target_pdl1)
    free_brake = target_pdl1 * (1.0 - occupancy)
    rate = parameters.kill_rate_per_h * (1.0 - parameters.pdl1_inhibition * free_brake) * kill_factor
    killers = engaged & (draw_kill < probability(xp, rate, dt_h))
    killed = xp.zeros(clone.shape, dtype=bool)
    for k, offset in enumerate(targets_offsets):
        back = tuple(-step for step in offset)
        killed |= shifted(xp, killers & (choice == k), back, False)
    added = xp.where(engaged, parameters.exhaustion_per_engagement_h * dt_h * free_brake, 0.0)
    added = added + xp.where(killers, parameters.exhaustion_per_kill, 0.0)
    new_state = xp.where(killed, APOPTOTIC, tumor.state).astype(tumor.state.dtype)
    new_age = xp.where(killed, 0.0, tumor.age_h).astype(tumor.age_h.dtype)
    exhaustion = immune.exhaustion
    return (tumor.replace(state=new_state, age_h=new_age),
            immune.replace(exhaustion=(exhaustion + added).astype(exhaustion.dtype)), killers, killed)


def divide(
    xp: ModuleType, immune: ImmuneLayer, *, dividing: Any, offsets: list[tuple[int, ...]], draw_direction: Any,
    draw_priority: Any,
) -> ImmuneLayer:
    """Dividing immune cells place a daughter in a Moore neighbour free of immune cells (conflicts by priority,
    :func:`kernels.tumor.place_daughters`); a daughter is a copy of its mother (agent, state, exhaustion) of age 0.

    Args:
        immune: the immune cells.
        dividing: bool, lattice shape: cells that attempt to divide.
        offsets: the neighbourhood (see :func:`kernels.lattice.moore_offsets`).
        draw_direction, draw_priority: uniform [0, 1) draws, lattice shape.

    Returns:
        The new immune layer.
    """
    source, _ = place_daughters(xp, dividing, free=immune.agent < 0, offsets=offsets, draw_direction=draw_direction,
                                draw_priority=draw_priority)
    daughters = immune.gathered(source_index(xp, source, offsets))
    return daughters.replace(age_h=xp.where(source >= 0, 0.0, immune.age_h).astype(xp.float32))


def die(
    xp: ModuleType, immune: ImmuneLayer, *, death_rate_per_h: Any, dt_h: float, draw: Any,
) -> tuple[ImmuneLayer, Any]:
    """Remove immune cells at their death rate; the voxel's immune state is reset (:meth:`ImmuneLayer.cleared`).

    Args:
        immune: the immune cells.
        death_rate_per_h: ``float64``, lattice shape: each cell's death rate, 1/h.
        dt_h: cell step, h.
        draw: uniform [0, 1) draws, lattice shape.

    Returns:
        ``(immune, died)``: the new layer and the bool mask of cells that died.
    """
    died = immune.occupied() & (draw < probability(xp, death_rate_per_h, dt_h))
    return immune.cleared(xp, died), died
