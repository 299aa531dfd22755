"""The rules of one cell step, in order.

A rule is a function ``rule(model) -> None`` that reads the model's lattice
state and parameters, calls pure kernels, and stores the new arrays. The
model runs :data:`DEFAULT_RULES` in order each cell step; a capability adds
its rules at their place in this tuple. Immune rules do nothing in a model
without immune cells, drug rules nothing without drugs.

Random streams: each rule draws from its own stream ids (``STREAM_*`` of
:mod:`abm.streams`), so a new rule never shifts the numbers another rule sees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from kernels import diffusion, immune, lattice, therapy, tumor, vessels
from abm.config import field_substeps
from abm.streams import (
    IMMUNE_MOVE_STREAMS_PER_SUBSTEP,
    STREAM_APOPTOSIS, STREAM_CLEARANCE, STREAM_DIRECTION, STREAM_DIVISION, STREAM_DRUG_KILL, STREAM_IMMUNE_DEATH,
    STREAM_IMMUNE_DRUG, STREAM_IMMUNE_MOVE, STREAM_IMMUNOGENIC, STREAM_KILL, STREAM_KILL_TARGET,
    STREAM_MUTATION, STREAM_NECROSIS, STREAM_PRIORITY, STREAM_PROLIFERATE, STREAM_PROLIFERATE_DIRECTION,
    STREAM_PROLIFERATE_PRIORITY, STREAM_QUIESCENCE, STREAM_T_ENTER, STREAM_T_WHICH,
    STREAM_VESSEL_COLLAPSE, suppressor_enter_stream,
)
from kernels.random import stream_offset, uniform

if TYPE_CHECKING:
    from abm.model import TumorModel



@dataclass(frozen=True)
class Rule:
    """A named step of the model."""

    name: str
    apply: Callable[["TumorModel"], None]


def _draw(model: "TumorModel", stream: int):
    return uniform(model.xp, model.random_key, model.cell_step, stream, model.state.voxel_index)


def _field_solver(model: "TumorModel", name: str, parameters: diffusion.FieldParameters, sink: Any,
                  dt_min: float | None) -> diffusion.FieldSolver:
    """The field's :class:`kernels.diffusion.FieldSolver` with this sink: built on the first cell step, then kept on
    the model and its sink updated in place (same arrays, call lists and CUDA graphs; the same bits as a new solver).
    The lattice, the field's parameters and its step do not change during a run."""
    solver = model.field_solvers.get(name)
    if solver is None:
        solver = model.field_solvers[name] = diffusion.FieldSolver(
            model.xp, model.state.shape, parameters, sink, dt_min=dt_min,
            replayable=model.backend.operation("replayable"))
    else:
        solver.update_sink(sink)
    return solver


def solve_fields(model: "TumorModel") -> None:
    """Bring every field to the current step: a steady-state solve, or implicit steps over one cell step.

    ``model.solver_iterations[name]`` gets the CG iterations of the step
    (summed over substeps; 0 for the split LOD solver).

    Per field, cells and vessels enter as linear terms (arrays of the lattice
    shape): uptake ``k`` adds ``k`` to the sink; secretion at rate ``s``
    toward saturation ``u*`` adds ``s`` to the sink and ``s u*`` to the source;
    vessel exchange at rate ``q`` with blood level ``b`` adds ``q p`` and ``q p b``,
    with ``p`` the vessel's perfusion (0 to 1) and ``b`` the field's plasma level
    this step (:meth:`abm.model.TumorModel.blood_level`: a dosed drug's from its doses).
    A transient field with ``dt_min`` takes ``ceil(cell step / dt_min)`` equal steps.
    Steady and transient fields keep one solver each on the model (``model.field_solvers``)
    across cell steps, its sink updated each step.

    Raises:
        kernels.diffusion.FieldSolverError: a field's solve failed; the message
            starts with ``field <name> (solver <solver>):`` and the exception's
            ``field`` and ``solver`` are set.
    """
    xp, state, config = model.xp, model.state, model.config
    live = state.live_tumor()
    dying = (state.clone >= 0) & ~live
    cells = {"tumor": live, "tumor_dying": dying, "tumor_immunogenic": dying & state.immunogenic}
    if model.immune.enabled:
        kinds = model.immune.kind_of(xp, state.immune)
        slots = config.immune.suppressor_slots  # every slot, declared or not: a field may name a preset type the config lacks
        cells.update({name: kinds == code for name, code in ((immune.T_CELL_ROLE, immune.T_CELL), *((name, slot + 1) for slot, name in enumerate(slots)))})
    for name, field in config.fields.items():
        try:
            _solve_field(model, name, field, cells)
        except diffusion.FieldSolverError as exc:
            raise diffusion.FieldSolverError(f"field {name} (solver {field.solver}): {exc}", field=name,
                                             solver=field.solver) from exc


def _solve_field(model: "TumorModel", name: str, field: Any, cells: dict[str, Any]) -> None:
    """Bring field ``name`` (its :class:`abm.config.FieldConfig` ``field``) to the current step (see :func:`solve_fields`)."""
    xp, state = model.xp, model.state
    cell_step_min = model.dt_h * 60.0
    sink = xp.zeros(state.shape, dtype=xp.float64)
    source = xp.zeros(state.shape, dtype=xp.float64)
    for cell_type, rate in field.uptake_per_min.items():
        sink += rate * cells[cell_type]
    for cell_type, rate in field.secretion_per_min.items():
        sink += rate * cells[cell_type]
        source += rate * field.secretion_saturation * cells[cell_type]
    if field.vessel is not None:
        sink += field.vessel.supply_per_min * state.perfusion
        source += field.vessel.supply_per_min * model.blood_level(name) * state.perfusion
    parameters = model.field_parameters[name]
    if field.solver == "steady":
        solver = _field_solver(model, name, parameters, sink, None)
        state.fields[name], model.solver_iterations[name] = solver.solve(state.fields[name], source)
        return
    substeps = field_substeps(field.dt_min, model.dt_h)
    model.solver_iterations[name] = 0
    if field.solver == "transient":
        # One operator for all substeps (same sink and step): its multigrid V-cycle is built once.
        solver = _field_solver(model, name, parameters, sink, cell_step_min / substeps)
    for _ in range(substeps):
        if field.solver == "transient":
            state.fields[name], iterations = solver.step(state.fields[name], source)
            model.solver_iterations[name] += iterations
        else:
            state.fields[name] = diffusion.implicit_step(
                xp, state.fields[name], cell_step_min / substeps, parameters, sink, source,
                line_sweep=model.backend.operation("field_line_sweep"))


def vessel_collapse(model: "TumorModel") -> None:
    """Dense tumor compresses vessels; a compressed vessel collapses (no-op unless ``vessels.collapse`` is set)."""
    rule = model.config.vessels.collapse
    if rule is None:
        return
    state = model.state
    crowding = vessels.tumor_neighbour_fraction(model.xp, state.clone >= 0, model.offsets)
    state.perfusion = vessels.collapse(model.xp, state.perfusion, crowding, rule.tumor_neighbour_fraction,
                                       rule.rate_per_h, model.dt_h, _draw(model, STREAM_VESSEL_COLLAPSE))


def tumor_oxygen_response(model: "TumorModel") -> None:
    """Cycling or quiescent by local oxygen and the clone's dormancy rates; necrosis in hypoxia."""
    state, traits = model.state, model.clone_traits
    state.cell_state, state.state_age_h = tumor.oxygen_response(
        model.xp, state.clone, state.cell_state, state.state_age_h, state.fields["oxygen"], model.hypoxia,
        traits["quiescence_entry_per_h"], traits["quiescence_exit_per_h"], model.dt_h,
        _draw(model, STREAM_NECROSIS), _draw(model, STREAM_QUIESCENCE))


def drug_kill(model: "TumorModel") -> None:
    """The drugs' kill rates, summed over the drugs whose kind has them: tumor cells start apoptosis (a share of
    them by immunogenic death), immune cells in tissue die (lymphodepletion)."""
    actions = model.drug_actions
    if not (actions["tumor_kill_rate"] or actions["immune_kill_rate"]):
        return
    xp, state, traits = model.xp, model.state, model.clone_traits
    rate = xp.zeros(state.shape, dtype=xp.float64)
    immunogenic_rate = xp.zeros(state.shape, dtype=xp.float64)
    for name, drug in actions["tumor_kill_rate"]:
        drug_rate = drug.tumor_kill_rate(xp, state.clone, state.cell_state, state.fields[name], traits["efflux"],
                                         traits.get(f"sensitivity_{name}"))
        rate += drug_rate
        immunogenic = drug.immunogenic_kill_rate(drug_rate)
        if immunogenic is not None:
            immunogenic_rate += immunogenic
    state.cell_state, state.state_age_h, killed = therapy.kill(
        xp, state.cell_state, state.state_age_h, rate, model.dt_h, _draw(model, STREAM_DRUG_KILL))
    immunogenic = killed & (_draw(model, STREAM_IMMUNOGENIC) * rate < immunogenic_rate)
    state.immunogenic = state.immunogenic | immunogenic
    model.drug_kills_total += killed.sum()
    system = model.immune
    if system.enabled:
        agent = xp.maximum(state.immune, 0)
        rate = xp.zeros(state.shape, dtype=xp.float64)
        for name, drug in actions["immune_kill_rate"]:
            rate += drug.immune_kill_rate(xp, agent, state.fields[name], system.traits.get(f"sensitivity_{name}"))
        state.immune, state.immune_state, state.exhaustion, state.immune_age_h, died = immune.die(
            xp, state.immune, state.immune_state, state.exhaustion, state.immune_age_h, rate, model.dt_h,
            _draw(model, STREAM_IMMUNE_DRUG))
        system.drug_deaths_total += died.sum()


def immune_priming(model: "TumorModel") -> None:
    """The systemic priming compartment takes one step (antigen release, delayed activation, pool size)."""
    model.immune.prime(model)


def immune_entry(model: "TumorModel") -> None:
    """T cells (in proportion to the primed pools) and suppressor cells enter at perfused vessels free of immune cells."""
    system = model.immune
    if not system.enabled:
        return
    xp, state = model.xp, model.state

    def signal(recruitment) -> Any:
        if recruitment.field is None:
            return 1.0
        level = state.fields[recruitment.field].astype(xp.float64)
        return level / (level + recruitment.half_saturation)

    entered = xp.zeros(state.shape, dtype=bool)
    if system.t_clones:
        t_cells = system.config.t_cells
        weights = system.primed_weights(xp)
        total = weights.sum()
        rate = t_cells.recruitment.rate_per_h * state.perfusion * signal(t_cells.recruitment) * total / t_cells.pool_reference
        cumulative = xp.cumsum(weights) / xp.maximum(total, 1e-300)
        state.immune, new = immune.enter(xp, state.immune, rate, model.dt_h, cumulative, 0,
                                         _draw(model, STREAM_T_ENTER), _draw(model, STREAM_T_WHICH))
        entered |= new
    for kind, agent in sorted(system.suppressors.items(), key=lambda item: item[1].slot):  # slot order: presets first
        recruitment = system.config.suppressors[kind].recruitment
        rate = recruitment.rate_per_h * state.perfusion * signal(recruitment)
        state.immune, new = immune.enter(xp, state.immune, rate, model.dt_h, xp.ones(1), agent.index,
                                         _draw(model, suppressor_enter_stream(agent.slot)), _draw(model, STREAM_T_WHICH))
        entered |= new
    state.immune_state = xp.where(entered, immune.EFFECTOR, state.immune_state).astype(state.immune_state.dtype)
    state.exhaustion = xp.where(entered, 0.0, state.exhaustion).astype(state.exhaustion.dtype)
    state.immune_age_h = xp.where(entered, 0.0, state.immune_age_h).astype(state.immune_age_h.dtype)


def immune_movement(model: "TumorModel") -> None:
    """Immune cells take ``substeps`` biased random-walk substeps; T cells slow down under suppression.

    In a substep a cell moves with probability ``speed x dt_sub / dx`` (times
    the suppression factor for T cells) into a Moore neighbour free of
    immune cells: uphill on its chemotactic field with probability ``bias``,
    else a uniformly chosen free one. Claims on one voxel go by random priority.
    """
    system = model.immune
    if not system.enabled:
        return
    xp, state = model.xp, model.state
    substep_min = model.dt_h * 60.0 / system.substeps
    field_names = sorted({field for field in system.kind_fields.values() if field is not None})
    number_of_kind = np.full(system.n_kinds, -1, dtype=np.int8)
    for kind, name in system.kind_fields.items():
        if name is not None:
            number_of_kind[kind] = field_names.index(name)
    agent_field = xp.asarray(number_of_kind)[system.traits["kind"].astype(xp.int64)]

    def offset_of(stream: int) -> int:
        return stream_offset(model.random_key, model.cell_step, stream)
    # Per substep, the stream offset of each field's tie-break draw: one upload per cell step, not per substep
    # (an upload from host memory waits for the device).
    uphill_offsets = xp.asarray(np.array(
        [[offset_of(STREAM_IMMUNE_MOVE + IMMUNE_MOVE_STREAMS_PER_SUBSTEP * substep + 4 + number) for number in range(len(field_names))]
         for substep in range(system.substeps)], dtype=np.uint64).reshape(system.substeps, len(field_names)))
    move = model.backend.operation("immune_movement_substep")  # kernels.immune.movement_substep, or its CUDA twin
    for substep in range(system.substeps):
        agent = xp.maximum(state.immune, 0)
        base = STREAM_IMMUNE_MOVE + IMMUNE_MOVE_STREAMS_PER_SUBSTEP * substep
        chance = system.traits["speed_um_per_min"][agent] * substep_min / state.dx_um
        if system.t_clones:
            kinds = system.kind_of(xp, state.immune)
            chance = xp.where(kinds == immune.T_CELL, chance * system.suppression(model), chance)
        state.immune, state.immune_state, state.exhaustion, state.immune_age_h = move(
            xp, immune=state.immune, immune_state=state.immune_state, exhaustion=state.exhaustion,
            immune_age_h=state.immune_age_h, chance=chance, bias=system.traits["bias"], agent_field=agent_field,
            fields=[state.fields[name] for name in field_names], uphill_offsets=uphill_offsets[substep],
            offsets=model.offsets, move_offset=offset_of(base), bias_offset=offset_of(base + 1),
            direction_offset=offset_of(base + 2), priority_offset=offset_of(base + 3))


def immune_kill(model: "TumorModel") -> None:
    """Effector T cells engage tumor cells presenting their antigen, kill, tire; some proliferate after a kill."""
    system = model.immune
    if not system.t_clones:
        return
    xp, state, offsets = model.xp, model.state, model.offsets
    kinds = system.kind_of(xp, state.immune)
    effector = (kinds == immune.T_CELL) & (state.immune_state == immune.EFFECTOR)
    t_antigen = system.traits["antigen"][xp.maximum(state.immune, 0)]
    targets = [(0,) * state.ndim] + offsets
    state.cell_state, state.state_age_h, state.exhaustion, killers, killed = immune.t_cell_kill(
        xp, effector, t_antigen, state.clone, state.cell_state, state.state_age_h, model.clone_traits["antigens"],
        model.clone_traits["pdl1"], system.occupancy(model), system.suppression(model), state.exhaustion, targets,
        system.kill, model.dt_h, _draw(model, STREAM_KILL_TARGET), _draw(model, STREAM_KILL))
    state.immune_state = xp.where((kinds == immune.T_CELL) & (state.exhaustion >= 1.0), immune.EXHAUSTED,
                                  state.immune_state).astype(xp.int8)
    system.kills_total += killed.sum()
    chance = system.config.t_cells.proliferation_after_kill
    if chance > 0:
        dividing = killers & (_draw(model, STREAM_PROLIFERATE) < chance)
        source, _ = tumor.place_daughters(xp, dividing, state.immune < 0, offsets,
                                          _draw(model, STREAM_PROLIFERATE_DIRECTION), _draw(model, STREAM_PROLIFERATE_PRIORITY))
        origin = lattice.source_index(xp, source, offsets)
        state.immune = lattice.gather(state.immune, origin)
        state.immune_state = lattice.gather(state.immune_state, origin)
        state.exhaustion = lattice.gather(state.exhaustion, origin)
        state.immune_age_h = xp.where(source >= 0, 0.0, state.immune_age_h).astype(xp.float32)


def immune_death(model: "TumorModel") -> None:
    """Immune cells die at the rate of their kind (exhausted T cells at theirs)."""
    system = model.immune
    if not system.enabled:
        return
    xp, state = model.xp, model.state
    agent = xp.maximum(state.immune, 0)
    rate = xp.where(state.immune_state == immune.EXHAUSTED, system.traits["exhausted_death_per_h"][agent],
                    system.traits["death_per_h"][agent])
    state.immune, state.immune_state, state.exhaustion, state.immune_age_h, _ = immune.die(
        xp, state.immune, state.immune_state, state.exhaustion, state.immune_age_h, rate, model.dt_h,
        _draw(model, STREAM_IMMUNE_DEATH))


def tumor_death(model: "TumorModel") -> None:
    """Apoptosis, removal of apoptotic cells, clearance of necrotic cells."""
    state, config = model.state, model.config
    state.clone, state.cell_state, state.state_age_h = tumor.death(
        model.xp, state.clone, state.cell_state, state.state_age_h,
        model.clone_traits["apoptosis_per_h"], config.tumor.apoptotic_duration_h,
        config.tumor.necrotic_clearance_per_h, model.dt_h,
        _draw(model, STREAM_APOPTOSIS), _draw(model, STREAM_CLEARANCE))
    state.immunogenic = state.immunogenic & (state.clone >= 0)


def start_of_step_therapy(model: "TumorModel") -> None:
    """The treatment's lines and doses of this step, and the dosed drugs' plasma levels (:class:`abm.therapy.Therapy`)."""
    model.therapy.begin_step(model)


def response_assessment(model: "TumorModel") -> None:
    """At the assessment cadence: response, and the end rules of the current line."""
    model.therapy.end_step(model)


def tumor_division(model: "TumorModel") -> None:
    """Cycling cells divide into a free Moore neighbour (conflicts by random priority); mutant daughters found clones."""
    xp, state = model.xp, model.state
    p_divide = tumor.division_probability(
        xp, state.clone, state.cell_state, state.fields["oxygen"],
        model.clone_traits["division_rate_per_h"], model.hypoxia, model.dt_h)
    dividing = _draw(model, STREAM_DIVISION) < p_divide
    free = (state.clone < 0) & ~state.vessel
    source_direction, mother_won = tumor.place_daughters(
        xp, dividing, free, model.offsets, _draw(model, STREAM_DIRECTION), _draw(model, STREAM_PRIORITY))
    born = source_direction >= 0
    state.clone = lattice.gather(state.clone, lattice.source_index(xp, source_direction, model.offsets))
    state.cell_state = xp.where(born, tumor.CYCLING, state.cell_state).astype(state.cell_state.dtype)
    state.state_age_h = xp.where(born | mother_won, 0.0, state.state_age_h).astype(state.state_age_h.dtype)
    model.divisions_total += born.sum()
    if model.mutating:
        model.found_subclones(tumor.mutant_daughters(
            xp, born, state.clone, model.clone_traits["mutation_rate"], _draw(model, STREAM_MUTATION)))


def advance_clocks(model: "TumorModel") -> None:
    """Age every tumor cell and immune cell by one cell step."""
    state, xp = model.state, model.xp
    step = state.state_age_h.dtype.type(model.dt_h)
    state.state_age_h = xp.where(state.clone >= 0, state.state_age_h + step, state.state_age_h)
    state.immune_age_h = xp.where(state.immune >= 0, state.immune_age_h + step, state.immune_age_h)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("therapy", start_of_step_therapy),
    Rule("vessel_collapse", vessel_collapse),
    Rule("fields", solve_fields),
    Rule("immune_priming", immune_priming),
    Rule("immune_entry", immune_entry),
    Rule("immune_movement", immune_movement),
    Rule("tumor_oxygen_response", tumor_oxygen_response),
    Rule("drug_kill", drug_kill),
    Rule("immune_kill", immune_kill),
    Rule("tumor_death", tumor_death),
    Rule("immune_death", immune_death),
    Rule("tumor_division", tumor_division),
    Rule("advance_clocks", advance_clocks),
    Rule("assessment", response_assessment),
)
