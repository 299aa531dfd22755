"""The rules of one cell step, in order.

A rule is a function ``rule(model) -> None`` that reads the model's lattice
state and parameters, calls pure kernels, and stores the new arrays. The
model runs :data:`DEFAULT_RULES` in order each cell step; later capabilities
(immune cells, drugs) add rules at their place in this tuple.

Random streams: each rule draws from its own stream ids (``STREAM_*``), so a
new rule never shifts the numbers another rule sees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from kernels import diffusion, lattice, therapy, tumor, vessels
from kernels.random import uniform

if TYPE_CHECKING:
    from abm.model import TumorModel

STREAM_NECROSIS = 1
STREAM_APOPTOSIS = 2
STREAM_CLEARANCE = 3
STREAM_DIVISION = 4
STREAM_DIRECTION = 5
STREAM_PRIORITY = 6
STREAM_MUTATION = 7
STREAM_QUIESCENCE = 8
STREAM_VESSEL_COLLAPSE = 9
STREAM_DRUG_KILL = 10
STREAM_SETUP_VESSELS = 101
STREAM_SETUP_CLONES = 102
STREAM_SETUP_PERFUSION = 103
STREAM_SETUP_CELLS = 104
STREAM_SETUP_NEST_CENTRES = 105
STREAM_SETUP_NEST_ORDER = 106
#: First of the streams that draw a mutant clone's traits (abm.clones adds its offsets, one per change and drug).
STREAM_MUTATION_TRAITS = 200


@dataclass(frozen=True)
class Rule:
    """A named step of the model."""

    name: str
    apply: Callable[["TumorModel"], None]


def _draw(model: "TumorModel", stream: int):
    return uniform(model.xp, model.random_key, model.cell_step, stream, model.state.voxel_index)


def solve_fields(model: "TumorModel") -> None:
    """Bring every field to the current step: a steady-state solve, or implicit steps over one cell step.

    ``model.solver_iterations[name]`` gets the CG iterations of the step
    (summed over substeps; 0 for the split LOD solver).

    Per field, cells and vessels enter as linear terms (arrays of the lattice
    shape): uptake ``k`` adds ``k`` to the sink; secretion at rate ``s``
    toward saturation ``u*`` adds ``s`` to the sink and ``s u*`` to the source;
    vessel exchange at rate ``q`` with blood level ``b`` adds ``q p`` and ``q p b``,
    with ``p`` the vessel's perfusion (0 to 1).
    A transient field with ``dt_min`` takes ``ceil(cell step / dt_min)`` equal steps.
    """
    xp, state, config = model.xp, model.state, model.config
    cell_step_min = model.dt_h * 60.0
    cells = {"tumor": state.live_tumor(), "tumor_dying": (state.clone >= 0) & ~state.live_tumor()}
    for name, field in config.fields.items():
        sink = xp.zeros(state.shape, dtype=xp.float64)
        source = xp.zeros(state.shape, dtype=xp.float64)
        for cell_type, rate in field.uptake_per_min.items():
            sink += rate * cells[cell_type]
        for cell_type, rate in field.secretion_per_min.items():
            sink += rate * cells[cell_type]
            source += rate * field.secretion_saturation * cells[cell_type]
        if field.vessel is not None:
            sink += field.vessel.supply_per_min * state.perfusion
            source += field.vessel.supply_per_min * field.vessel.blood_level * state.perfusion
        parameters = model.field_parameters[name]
        if field.solver == "steady":
            state.fields[name], model.solver_iterations[name] = diffusion.steady_state(
                xp, state.fields[name], parameters, sink, source)
            continue
        substeps = 1 if field.dt_min is None else max(1, math.ceil(cell_step_min / field.dt_min - 1e-9))
        model.solver_iterations[name] = 0
        for _ in range(substeps):
            if field.solver == "transient":
                state.fields[name], iterations = diffusion.backward_euler_step(
                    xp, state.fields[name], cell_step_min / substeps, parameters, sink, source)
                model.solver_iterations[name] += iterations
            else:
                state.fields[name] = diffusion.implicit_step(
                    xp, state.fields[name], cell_step_min / substeps, parameters, sink, source)


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
    """Cytotoxic drugs start apoptosis in the cells they kill (Emax/Hill on the efflux-adjusted local level)."""
    if not model.drug_parameters:
        return
    xp, state, traits = model.xp, model.state, model.clone_traits
    rate = xp.zeros(state.shape, dtype=xp.float64)
    for name, parameters in model.drug_parameters.items():
        rate += therapy.kill_rate(xp, state.clone, state.cell_state, state.fields[name], traits["efflux"],
                                  traits[f"sensitivity_{name}"], parameters)
    state.cell_state, state.state_age_h, killed = therapy.kill(
        xp, state.cell_state, state.state_age_h, rate, model.dt_h, _draw(model, STREAM_DRUG_KILL))
    model.drug_kills_total += killed.sum()


def tumor_death(model: "TumorModel") -> None:
    """Apoptosis, removal of apoptotic cells, clearance of necrotic cells."""
    state, config = model.state, model.config
    state.clone, state.cell_state, state.state_age_h = tumor.death(
        model.xp, state.clone, state.cell_state, state.state_age_h,
        model.clone_traits["apoptosis_per_h"], config.tumor.apoptotic_duration_h,
        config.tumor.necrotic_clearance_per_h, model.dt_h,
        _draw(model, STREAM_APOPTOSIS), _draw(model, STREAM_CLEARANCE))


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
    state.clone = lattice.pull(xp, state.clone, source_direction, model.offsets)
    state.cell_state = xp.where(born, tumor.CYCLING, state.cell_state).astype(state.cell_state.dtype)
    state.state_age_h = xp.where(born | mother_won, 0.0, state.state_age_h).astype(state.state_age_h.dtype)
    model.divisions_total += born.sum()
    if model.mutating:
        model.found_subclones(tumor.mutant_daughters(
            xp, born, state.clone, model.clone_traits["mutation_rate"], _draw(model, STREAM_MUTATION)))


def advance_clocks(model: "TumorModel") -> None:
    """Age every tumor cell by one cell step."""
    state = model.state
    aged = state.state_age_h + state.state_age_h.dtype.type(model.dt_h)
    state.state_age_h = model.xp.where(state.clone >= 0, aged, state.state_age_h)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("vessel_collapse", vessel_collapse),
    Rule("fields", solve_fields),
    Rule("tumor_oxygen_response", tumor_oxygen_response),
    Rule("drug_kill", drug_kill),
    Rule("tumor_death", tumor_death),
    Rule("tumor_division", tumor_division),
    Rule("advance_clocks", advance_clocks),
)
