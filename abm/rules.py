"""The rules of one cell step, in order, as objects that declare what they touch.

A rule is a :class:`Rule` subclass. It declares

* ``reads`` and ``writes``: the lattice arrays (``tumor.clone``,
  ``immune.agent``, ``vessels.perfusion``, ``fields.<name>`` or ``fields.*``)
  and compartments (:data:`abm.step.COMPARTMENTS`) it touches;
* ``streams``: the random stream ids it draws from (:mod:`abm.streams`), as ranges;

is built once per run from the run's fixed parameters (it binds its
kernels' static parameters then), and each cell step gets the
:class:`abm.step.StepContext` in :meth:`Rule.apply`, never the model.
:data:`DEFAULT_RULES` is the order of one step; a capability adds its rule
classes at their place in that tuple. Immune rules do nothing in a model
without immune cells, drug rules nothing without drugs.

tests/test_rules.py checks the declarations: every read was written by the
set-up or an earlier rule, no two rules share a stream, every stream lies in
a reserved range, and a run of every preset touches only what each rule
declares.
"""
from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from abm.config import MAX_SUBSTEPS, field_substeps
from abm.step import RunParameters, StepContext
from abm.streams import (
    IMMUNE_MOVE_STREAMS_PER_SUBSTEP, STREAM_APOPTOSIS, STREAM_CLEARANCE, STREAM_DIRECTION, STREAM_DIVISION,
    STREAM_DRUG_KILL, STREAM_IMMUNE_DEATH, STREAM_IMMUNE_DRUG, STREAM_IMMUNE_MOVE, STREAM_IMMUNOGENIC, STREAM_KILL,
    STREAM_KILL_TARGET, STREAM_MACROPHAGE_DEPLETION, STREAM_MACROPHAGE_KILL, STREAM_MACROPHAGE_TARGET, STREAM_MUTATION,
    STREAM_PHAGOCYTOSIS, STREAM_PHAGOCYTOSIS_TARGET, STREAM_NECROSIS, STREAM_PRIORITY, STREAM_PROLIFERATE,
    STREAM_PROLIFERATE_DIRECTION, STREAM_PROLIFERATE_PRIORITY, STREAM_PUSH_DIRECTION, STREAM_PUSH_PRIORITY,
    STREAM_QUIESCENCE, STREAM_SPROUT, STREAM_SPROUT_DIRECTION, STREAM_SUPPRESSOR_ENTER,
    STREAM_SUPPRESSOR_ENTER_FIRST, STREAM_SUPPRESSOR_ENTER_SECOND, STREAM_T_ENTER, STREAM_T_WHICH, STREAM_TIP_DIRECTION,
    STREAM_VESSEL_COLLAPSE, STREAM_VESSEL_REGRESSION, SUPPRESSOR_ENTER_STREAMS, suppressor_enter_stream,
)
from kernels import diffusion, immune, therapy, tumor, vessels
from kernels.lattice import on_lattice
from kernels.layers import CYCLING, EFFECTOR, EXHAUSTED
from kernels.random import stream_offset

#: Every array of the tumor / immune layer (a kernel that returns a whole layer may write any of them).
TUMOR = frozenset({"tumor.clone", "tumor.state", "tumor.age_h", "tumor.immunogenic"})
IMMUNE = frozenset({"immune.agent", "immune.state", "immune.exhaustion", "immune.age_h"})
VESSELS = frozenset({"vessels.present", "vessels.perfusion", "vessels.immature", "vessels.tip", "vessels.age_h"})
#: Every field.
FIELDS = frozenset({"fields.*"})


def _streams(*ids: int) -> tuple[range, ...]:
    return tuple(range(stream, stream + 1) for stream in ids)


class Rule:
    """One step of the model (see the module doc). Subclasses set the class attributes and :meth:`apply`.

    Attributes:
        name: the rule's name (timings and messages).
        reads, writes: what it touches, by name (module doc).
        streams: the stream ids it draws from, as ranges.
        at_setup: run once when the model is built, before the first record (the initial field solve).
    """

    name: ClassVar[str]
    reads: ClassVar[frozenset[str]] = frozenset()
    writes: ClassVar[frozenset[str]] = frozenset()
    streams: ClassVar[tuple[range, ...]] = ()
    at_setup: ClassVar[bool] = False

    def __init__(self, run: RunParameters) -> None:
        self.run = run

    def apply(self, context: StepContext) -> None:
        raise NotImplementedError


def immune_cells(context: StepContext) -> Any:
    """``int64``, shape ``(n,)``: the flat voxels that hold an immune cell, ascending."""
    return context.xp.flatnonzero(context.lattice.immune.agent.reshape(-1) >= 0)


def with_polarisation(cells: Any, index: Any, values: Any) -> Any:
    """The immune layer ``cells`` with the polarisation of the macrophages at the flat voxels ``index`` (``int64``
    ``(n,)``) set to ``values`` (a scalar or ``(n,)``): a macrophage's polarisation is its ``exhaustion`` array."""
    polarisation = cells.exhaustion.copy()
    polarisation.reshape(-1)[index] = values
    return cells.replace(exhaustion=polarisation)


class Therapy(Rule):
    """The treatment's lines and doses of this step, and the dosed drugs' plasma levels (:class:`abm.therapy.Therapy`)."""

    name = "therapy"
    reads = frozenset({"treatment", "tumor.clone", "tumor.state", "immune.agent"})  # a line's baseline assessment
    writes = frozenset({"treatment", "plasma"})

    def apply(self, context: StepContext) -> None:
        context.therapy.begin_step(context.time_h, context.burden)


class VesselCollapse(Rule):
    """Dense tumor compresses vessels; a compressed vessel collapses (no-op unless ``vessels.collapse`` is set)."""

    name = "vessel_collapse"
    reads = frozenset({"tumor.clone", "vessels.perfusion"})
    writes = frozenset({"vessels.perfusion"})
    streams = _streams(STREAM_VESSEL_COLLAPSE)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        rule = run.config.vessels.collapse
        self.collapse = None if rule is None else functools.partial(
            vessels.collapse, run.xp, fraction_at_least=rule.tumor_neighbour_fraction, rate_per_h=rule.rate_per_h,
            dt_h=run.dt_h)

    def apply(self, context: StepContext) -> None:
        if self.collapse is None:
            return
        lattice = context.lattice
        crowding = vessels.tumor_neighbour_fraction(context.xp, lattice.tumor.clone >= 0, self.run.offsets)
        lattice.vessels = self.collapse(lattice.vessels, tumor_fraction=crowding, draw=context.draw(STREAM_VESSEL_COLLAPSE))


class Angiogenesis(Rule):
    """New vessels up the angiogenic signal, less its blockade by anti-VEGF drugs (no-op unless
    ``vessels.angiogenesis`` is set): immature vessels regress (without support, or pruned by a drug), mature after
    a delay, tips migrate and anastomose, perfused vessels sprout (:mod:`kernels.vessels`).

    The signal is the field ``vessels.angiogenesis.field`` of the previous
    step times ``prod(1 - blockade)`` over the drugs with a ``vegf_blockade``;
    the drugs' ``vessel_prune_rate`` add up; M2-like macrophages of a type with
    a ``vessel_support`` slow the regression of the immature vessels next to
    them (:meth:`abm.immunity.ImmuneSystem.vessel_regression_factor`). Vessels
    grow only into voxels free of tumor cells.
    """

    name = "angiogenesis"
    reads = VESSELS | FIELDS | frozenset({"tumor.clone", "immune.agent", "immune.exhaustion"})
    writes = VESSELS
    streams = _streams(STREAM_VESSEL_REGRESSION, STREAM_SPROUT, STREAM_SPROUT_DIRECTION, STREAM_TIP_DIRECTION)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        growth = self.growth = run.config.vessels.angiogenesis
        self.blockers = run.drug_actions["vegf_blockade"]
        self.pruners = run.drug_actions["vessel_prune_rate"]
        self.supported = any(section.vessel_support > 0 for section in run.config.immune.macrophages.values())
        if growth is None:
            return
        xp, offsets = run.xp, run.offsets
        self.regress = functools.partial(vessels.regress, xp, threshold=growth.regression_threshold,
                                         rate_per_h=growth.regression_rate_per_h, dt_h=run.dt_h)
        self.mature = functools.partial(vessels.mature, xp, maturation_h=growth.maturation_h,
                                        perfusion=growth.perfusion, dt_h=run.dt_h)
        self.migrate = functools.partial(vessels.migrate_tips, xp, offsets=offsets)
        self.sprout = functools.partial(vessels.sprout, xp, threshold=growth.sprout_threshold,
                                        rate_per_h=growth.sprout_rate_per_h, dt_h=run.dt_h, offsets=offsets)

    def apply(self, context: StepContext) -> None:
        if self.growth is None:
            return
        xp, lattice = context.xp, context.lattice
        fields = lattice.fields
        signal = fields[self.growth.field].astype(xp.float64)
        for name, drug in self.blockers:
            signal = signal * (1.0 - drug.vegf_blockade(xp, fields[name]))
        prune = xp.zeros(lattice.shape, dtype=xp.float64)
        for name, drug in self.pruners:
            prune += drug.vessel_prune_rate(xp, fields[name])
        tissue = lattice.tumor.clone < 0
        factor = 1.0
        if self.supported:
            immature = xp.flatnonzero(lattice.vessels.immature.reshape(-1))
            factor = xp.ones(lattice.shape, dtype=xp.float64)
            factor.reshape(-1)[immature] = context.immune.vessel_regression_factor(context, immature)
        grown = self.regress(lattice.vessels, signal=signal, prune_rate_per_h=prune, rate_factor=factor,
                             draw=context.draw(STREAM_VESSEL_REGRESSION))
        grown = self.migrate(self.mature(grown), signal=signal, tissue=tissue, draw=context.draw(STREAM_TIP_DIRECTION))
        lattice.vessels = self.sprout(grown, signal=signal, tissue=tissue, draw=context.draw(STREAM_SPROUT),
                                      draw_direction=context.draw(STREAM_SPROUT_DIRECTION))


class SolveFields(Rule):
    """Bring every field to the current step: a steady-state solve, or implicit steps over one cell step.

    ``context.solver_iterations[name]`` gets the CG iterations of the step
    (summed over substeps; 0 for the split LOD solver).

    Per field, cells and vessels enter as linear terms (arrays of the
    substrate grid: the lattice shape divided by ``lattice.field_coarsening``,
    each term the mean over a block of cell voxels; the field is solved there
    and each cell voxel gets its block's value): uptake ``k`` adds ``k`` to the sink; secretion at rate ``s``
    toward saturation ``u*`` adds ``s`` to the sink and ``s u*`` to the source;
    vessel exchange at rate ``q`` with blood level ``b`` adds ``q p`` and ``q p b``,
    with ``p`` the vessel's perfusion (0 to 1) and ``b`` the field's plasma level
    this step (a dosed drug's from its doses, :attr:`abm.therapy.Therapy.plasma`),
    ``q`` times the product of the drugs' ``perfusion_factor`` (an anti-VEGF
    drug's normalisation window after a dose; 1 outside it).
    A transient field with ``dt_min`` takes ``ceil(cell step / dt_min)`` equal steps.
    Steady and transient fields keep one :class:`kernels.diffusion.FieldSolver`
    each (:attr:`solvers`) across cell steps, its sink updated each step; all
    of them work in one :class:`kernels.diffusion.Workspace` (:attr:`workspace`),
    since the fields are solved one after another.
    Runs once at set-up too (the initial fields).

    Raises:
        kernels.diffusion.FieldSolverError: a field's solve failed; the message
            starts with ``field <name> (solver <solver>):`` and the exception's
            ``field`` and ``solver`` are set.
    """

    name = "fields"
    reads = frozenset({"tumor.clone", "tumor.state", "tumor.immunogenic", "immune.agent", "vessels.perfusion",
                       "plasma", "treatment"}) | FIELDS
    writes = FIELDS
    at_setup = True

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        #: field name -> its FieldSolver, built at the first solve, then kept (the lattice, the field's parameters
        #: and its step do not change during a run; the same arrays, call lists and CUDA graphs: the same bits).
        self.solvers: dict[str, diffusion.FieldSolver] = {}
        #: the work arrays every solver shares (CG vectors, the V-cycle's levels): memory for one solve, not one per field.
        self.workspace = diffusion.Workspace(run.xp)

    def apply(self, context: StepContext) -> None:
        xp, lattice, config = context.xp, context.lattice, self.run.config
        live = context.live_tumor()
        dying = (lattice.tumor.clone >= 0) & ~live
        hypoxic = live & (lattice.fields["oxygen"] < self.run.hypoxia.quiescence_below_mmHg)  # before this step's solve
        cells = {"tumor": live, "tumor_dying": dying, "tumor_immunogenic": dying & lattice.tumor.immunogenic,
                 "tumor_hypoxic": hypoxic}
        if context.immune.enabled:
            kinds = context.immune_kinds()
            slots = config.immune.suppressor_slots  # every slot, declared or not: a field may name a preset type the config lacks
            cells.update({name: kinds == code for name, code in ((immune.T_CELL_ROLE, immune.T_CELL),
                                                                   *((name, slot + 1) for slot, name in enumerate(slots)))})
        # Per substrate voxel: the fraction of its cell voxels holding each type, and the mean perfusion (linear, so the
        # rates built from them are the means of the per-cell-voxel rates; at factor 1 the arrays themselves).
        factor = config.lattice.field_coarsening
        cells = {name: diffusion.block_mean(xp, mask, factor) for name, mask in cells.items()}
        perfusion = diffusion.block_mean(xp, lattice.vessels.perfusion, factor)
        normalised = 1.0
        for name, drug in self.run.drug_actions["perfusion_factor"]:
            normalised *= drug.perfusion_factor([context.time_h - dose.start_h for dose in context.therapy.doses.get(name, ())])
        if normalised != 1.0:
            perfusion = perfusion * normalised
        for name, field in config.fields.items():
            try:
                self._solve_field(context, name, field, cells, perfusion)
            except diffusion.FieldSolverError as exc:
                raise diffusion.FieldSolverError(f"field {name} (solver {field.solver}): {exc}", field=name,
                                                 solver=field.solver) from exc

    def _solver(self, name: str, shape: tuple[int, ...], sink: Any, dt_min: float | None) -> diffusion.FieldSolver:
        """Field ``name``'s solver with this sink: built on the first solve, then kept with its sink updated in place."""
        solver = self.solvers.get(name)
        if solver is None:
            solver = self.solvers[name] = diffusion.FieldSolver(
                self.run.xp, shape, self.run.field_parameters[name], sink, dt_min=dt_min,
                replayable=self.run.backend.operation("replayable"), workspace=self.workspace,
                threads=self.run.backend.threads, solver_kernels=self.run.backend.operation("field_solver_kernels"))
        else:
            solver.update_sink(sink)
        return solver

    def _solve_field(self, context: StepContext, name: str, field: Any, cells: dict[str, Any], perfusion: Any) -> None:
        """Bring field ``name`` (its :class:`abm.config.FieldConfig` ``field``) to the current step.

        ``cells`` (cell type -> the fraction of each substrate voxel's cell
        voxels holding one) and ``perfusion`` (the mean over them) are on the
        substrate grid (``lattice.field_coarsening``; at 1, the cell
        lattice's masks and perfusion): sink and source are built there, the
        field solved there, and the result spread over each block's cell
        voxels (docs/fields.md).
        """
        xp, lattice = context.xp, context.lattice
        factor, shape = self.run.config.lattice.field_coarsening, self.run.config.lattice.field_shape
        cell_step_min = self.run.dt_h * 60.0
        sink_terms = [(rate, cells[cell_type]) for cell_type, rate in field.uptake_per_min.items()]
        sink_terms += [(rate, cells[cell_type]) for cell_type, rate in field.secretion_per_min.items()]
        source_terms = [(rate * field.secretion_saturation, cells[cell_type])
                        for cell_type, rate in field.secretion_per_min.items()]
        if field.vessel is not None:
            blood = context.therapy.plasma.get(name, field.vessel.blood_level)
            sink_terms.append((field.vessel.supply_per_min, perfusion))
            source_terms.append((field.vessel.supply_per_min * blood, perfusion))
        weighted_sum = self.run.backend.operation("field_solver_kernels").weighted_sum
        threads = self.run.backend.threads
        sink, source = (weighted_sum(xp, shape, terms, threads) for terms in (sink_terms, source_terms))
        u = diffusion.block_sample(xp, lattice.fields[name], factor)
        if field.solver == "steady":
            solver = self._solver(name, shape, sink, None)
            u, context.solver_iterations[name] = solver.solve(u, source)
        else:
            substeps = field_substeps(field.dt_min, self.run.dt_h)
            context.solver_iterations[name] = 0
            if field.solver == "transient":
                # One operator for all substeps (same sink and step): its multigrid V-cycle is built once.
                solver = self._solver(name, shape, sink, cell_step_min / substeps)
            for _ in range(substeps):
                if field.solver == "transient":
                    u, iterations = solver.step(u, source)
                    context.solver_iterations[name] += iterations
                else:
                    u = diffusion.implicit_step(
                        xp, u, cell_step_min / substeps, self.run.field_parameters[name], sink, source,
                        line_sweep=self.run.backend.operation("field_line_sweep"), threads=self.run.backend.threads)
        lattice.fields[name] = diffusion.block_spread(xp, u, factor)


class ImmunePriming(Rule):
    """The systemic priming compartment takes one step (antigen release, delayed activation, pool size)."""

    name = "immune_priming"
    reads = frozenset({"tumor.clone", "clones", "priming", "plasma"}) | FIELDS
    writes = frozenset({"priming"})

    def apply(self, context: StepContext) -> None:
        context.immune.prime(context)


class ImmuneEntry(Rule):
    """T cells (in proportion to the primed pools) and suppressor cells enter at perfused vessels free of immune cells."""

    name = "immune_entry"
    reads = frozenset({"immune.agent", "vessels.perfusion", "priming"}) | FIELDS
    writes = IMMUNE
    streams = _streams(STREAM_T_ENTER, STREAM_T_WHICH, STREAM_SUPPRESSOR_ENTER_FIRST, STREAM_SUPPRESSOR_ENTER_SECOND) + (
        range(STREAM_SUPPRESSOR_ENTER, STREAM_SUPPRESSOR_ENTER + SUPPRESSOR_ENTER_STREAMS),)

    def apply(self, context: StepContext) -> None:
        system = context.immune
        if not system.enabled:
            return
        xp, lattice = context.xp, context.lattice
        sites = xp.flatnonzero(lattice.vessels.perfusion.reshape(-1) > 0)  # the entry rate is 0 at every other voxel
        perfusion = lattice.vessels.perfusion.reshape(-1)[sites]

        def signal(recruitment) -> Any:
            if recruitment.field is None:
                return 1.0
            level = lattice.fields[recruitment.field].reshape(-1)[sites].astype(xp.float64)
            return level / (level + recruitment.half_saturation)

        enter = functools.partial(immune.enter, xp, sites=sites, dt_h=self.run.dt_h,
                                  draw_which=context.draw(STREAM_T_WHICH, sites))
        if system.t_clones:
            t_cells = system.config.t_cells
            weights = system.primed_weights(xp)
            total = weights.sum()
            rate = t_cells.recruitment.rate_per_h * perfusion * signal(t_cells.recruitment) * total / t_cells.pool_reference
            cumulative = xp.cumsum(weights) / xp.maximum(total, 1e-300)
            lattice.immune, _ = enter(lattice.immune, entry_rate_per_h=rate, cumulative_weights=cumulative,
                                      first_agent=0, draw_enter=context.draw(STREAM_T_ENTER, sites))
        for kind, agent in sorted(system.suppressors.items(), key=lambda item: item[1].slot):  # slot order: presets first
            recruitment = system.config.suppressors[kind].recruitment
            rate = recruitment.rate_per_h * perfusion * signal(recruitment)
            lattice.immune, entered = enter(lattice.immune, entry_rate_per_h=rate, cumulative_weights=xp.ones(1),
                                            first_agent=agent.index,
                                            draw_enter=context.draw(suppressor_enter_stream(agent.slot), sites))
            macrophage = system.config.macrophages.get(kind)
            if macrophage is not None:
                lattice.immune = with_polarisation(lattice.immune, entered, macrophage.polarisation.initial)


class ImmuneMovement(Rule):
    """Immune cells take ``substeps`` biased random-walk substeps; T cells slow down under suppression.

    In a substep a cell moves with probability ``speed x dt_sub / dx`` (times
    the suppression factor for T cells) into a Moore neighbour free of
    immune cells: uphill on its chemotactic field with probability ``bias``,
    else a uniformly chosen free one. Claims on one voxel go by random
    priority. The substep is the accelerated operation
    ``immune_movement_substep`` (:mod:`kernels.accelerated`).
    """

    name = "immune_movement"
    reads = IMMUNE | FIELDS
    writes = IMMUNE
    streams = (range(STREAM_IMMUNE_MOVE, STREAM_IMMUNE_MOVE + IMMUNE_MOVE_STREAMS_PER_SUBSTEP * MAX_SUBSTEPS),)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.move = functools.partial(run.backend.operation("immune_movement_substep"), run.xp, offsets=run.offsets)

    def apply(self, context: StepContext) -> None:
        system = context.immune
        if not system.enabled:
            return
        xp, lattice, key, step = context.xp, context.lattice, self.run.random_key, context.step
        substep_min = self.run.dt_h * 60.0 / system.substeps
        field_names = sorted({field for field in system.kind_fields.values() if field is not None})
        number_of_kind = np.full(system.n_kinds, -1, dtype=np.int8)
        for kind, name in system.kind_fields.items():
            if name is not None:
                number_of_kind[kind] = field_names.index(name)
        agent_field = xp.asarray(number_of_kind)[system.traits["kind"].astype(xp.int64)]
        # Per substep, the stream offset of each field's tie-break draw: one upload per cell step, not per substep
        # (an upload from host memory waits for the device).
        uphill_offsets = xp.asarray(np.array(
            [[stream_offset(key, step, STREAM_IMMUNE_MOVE + IMMUNE_MOVE_STREAMS_PER_SUBSTEP * substep + 4 + number)
              for number in range(len(field_names))] for substep in range(system.substeps)],
            dtype=np.uint64).reshape(system.substeps, len(field_names)))
        for substep in range(system.substeps):
            cells = lattice.immune
            occupied = immune_cells(context)  # not cached: the cells move each substep
            agent = cells.agent.reshape(-1)[occupied]
            base = STREAM_IMMUNE_MOVE + IMMUNE_MOVE_STREAMS_PER_SUBSTEP * substep
            moving = system.traits["speed_um_per_min"][agent] * substep_min / lattice.dx_um
            if system.t_clones:
                moving = xp.where(system.traits["kind"][agent] == immune.T_CELL,
                                  moving * system.suppression(context, occupied), moving)
            chance = xp.zeros(cells.agent.size, dtype=xp.float64)  # the operation reads it at the cells only
            chance[occupied] = moving
            lattice.immune = self.move(
                cells, chance=chance.reshape(lattice.shape), bias=system.traits["bias"], agent_field=agent_field,
                fields=[lattice.fields[name] for name in field_names], uphill_offsets=uphill_offsets[substep],
                move_offset=stream_offset(key, step, base), bias_offset=stream_offset(key, step, base + 1),
                direction_offset=stream_offset(key, step, base + 2), priority_offset=stream_offset(key, step, base + 3))


class TumorOxygenResponse(Rule):
    """Cycling or quiescent by local oxygen and the clone's dormancy rates; necrosis in hypoxia."""

    name = "tumor_oxygen_response"
    reads = frozenset({"tumor.clone", "tumor.state", "tumor.age_h", "fields.oxygen", "clones"})
    writes = frozenset({"tumor.state", "tumor.age_h"})
    streams = _streams(STREAM_NECROSIS, STREAM_QUIESCENCE)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.respond = functools.partial(tumor.oxygen_response, run.xp, hypoxia=run.hypoxia, dt_h=run.dt_h)

    def apply(self, context: StepContext) -> None:
        lattice, traits = context.lattice, context.subclones.device
        live = context.xp.flatnonzero(context.live_tumor().reshape(-1))
        lattice.tumor = self.respond(
            lattice.tumor, cells=live, oxygen_mmHg=lattice.fields["oxygen"].reshape(-1)[live],
            quiescence_entry_per_h=traits["quiescence_entry_per_h"], quiescence_exit_per_h=traits["quiescence_exit_per_h"],
            draw_necrosis=context.draw(STREAM_NECROSIS, live), draw_quiescence=context.draw(STREAM_QUIESCENCE, live))


class DrugKill(Rule):
    """The drugs' kill rates, summed over the drugs whose kind has them: tumor cells start apoptosis (a share of
    them by immunogenic death), immune cells in tissue die (lymphodepletion)."""

    name = "drug_kill"
    reads = TUMOR | IMMUNE | FIELDS | frozenset({"clones"})
    writes = frozenset({"tumor.state", "tumor.age_h", "tumor.immunogenic", "totals.drug_kills",
                        "totals.immune_drug_deaths"}) | IMMUNE
    streams = _streams(STREAM_DRUG_KILL, STREAM_IMMUNOGENIC, STREAM_IMMUNE_DRUG)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.tumor_drugs = run.drug_actions["tumor_kill_rate"]
        self.immune_drugs = run.drug_actions["immune_kill_rate"]

    def apply(self, context: StepContext) -> None:
        if not (self.tumor_drugs or self.immune_drugs):
            return
        xp, lattice, traits, totals = context.xp, context.lattice, context.subclones.device, context.totals
        cells = lattice.tumor
        rate = xp.zeros(lattice.shape, dtype=xp.float64)
        immunogenic_rate = xp.zeros(lattice.shape, dtype=xp.float64)
        for name, drug in self.tumor_drugs:
            drug_rate = drug.tumor_kill_rate(xp, cells.clone, cells.state, lattice.fields[name], traits["efflux"],
                                             traits.get(f"sensitivity_{name}"))
            rate += drug_rate
            immunogenic = drug.immunogenic_kill_rate(drug_rate)
            if immunogenic is not None:
                immunogenic_rate += immunogenic
        lattice.tumor, killed = therapy.kill(xp, cells, rate_per_h=rate, immunogenic_rate_per_h=immunogenic_rate,
                                             dt_h=self.run.dt_h, draw=context.draw(STREAM_DRUG_KILL),
                                             draw_immunogenic=context.draw(STREAM_IMMUNOGENIC))
        totals.drug_kills += killed.sum()
        system = context.immune
        if system.enabled:
            occupied = immune_cells(context)
            agent = lattice.immune.agent.reshape(-1)[occupied]
            rate = xp.zeros(occupied.shape, dtype=xp.float64)
            for name, drug in self.immune_drugs:
                rate += drug.immune_kill_rate(xp, agent, lattice.fields[name].reshape(-1)[occupied],
                                              system.traits.get(f"sensitivity_{name}"))
            lattice.immune, died = immune.die(xp, lattice.immune, cells=occupied, death_rate_per_h=rate,
                                              dt_h=self.run.dt_h, draw=context.draw(STREAM_IMMUNE_DRUG, occupied))
            totals.immune_drug_deaths += died.sum()


class Macrophages(Rule):
    """Macrophages (immune types of role macrophage): CSF1R inhibitors deplete them, they polarise toward the target
    their signals and the inhibitors set, M1-like ones kill live tumor cells in contact and remove dead ones
    (docs/model.md, Macrophages).

    Polarisation ``m`` (the cell's ``immune.exhaustion``; 0 M1-like, 1 M2-like) relaxes as
    ``dm/dt = k (m* - m)`` with ``m* = (1 - b) (baseline + s2) / (1 + s1 + s2)``, ``s1``, ``s2`` the
    M1 and M2 signals over their half-saturation levels and ``b = 1 - prod(1 - blockade)`` of the drugs
    whose kind blocks M2 (:func:`kernels.immune.polarise`). A macrophage kills at
    ``kill_rate_per_h x (1 - m)`` (:func:`kernels.immune.contact_kill`); its M2 side inhibits T cells
    (:meth:`abm.immunity.ImmuneSystem.suppression`). A macrophage of polarisation below ``phagocytosis.m1_below``
    removes a dead tumor cell in contact at ``phagocytosis.rate_per_h`` (:func:`kernels.immune.phagocytose`).
    """

    name = "macrophages"
    reads = TUMOR | IMMUNE | FIELDS
    writes = TUMOR | IMMUNE
    streams = _streams(STREAM_MACROPHAGE_TARGET, STREAM_MACROPHAGE_KILL, STREAM_MACROPHAGE_DEPLETION,
                       STREAM_PHAGOCYTOSIS_TARGET, STREAM_PHAGOCYTOSIS)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.types = run.config.immune.macrophages
        self.depleting = run.drug_actions["macrophage_depletion_rate"]
        self.blocking = run.drug_actions["m2_blockade"]
        self.targets_offsets = [(0,) * len(run.offsets[0])] + run.offsets

    def apply(self, context: StepContext) -> None:
        if not self.types:
            return
        xp, lattice, agents = context.xp, context.lattice, context.immune.suppressors
        occupied = immune_cells(context)
        agent = lattice.immune.agent.reshape(-1)[occupied]
        if self.depleting:
            cells = occupied[xp.isin(agent, xp.asarray([agents[name].index for name in self.types]))]
            rate = xp.zeros(cells.shape, dtype=xp.float64)
            for name, drug in self.depleting:
                rate += drug.macrophage_depletion_rate(xp, lattice.fields[name].reshape(-1)[cells])
            lattice.immune, _ = immune.die(xp, lattice.immune, cells=cells, death_rate_per_h=rate, dt_h=self.run.dt_h,
                                           draw=context.draw(STREAM_MACROPHAGE_DEPLETION, cells))
            occupied = immune_cells(context)
            agent = lattice.immune.agent.reshape(-1)[occupied]
        killers, kill_rates, phagocytes = [], [], []
        for name, section in self.types.items():
            cells = occupied[agent == agents[name].index]
            polarisation = self.polarised(context, cells, section)
            lattice.immune = with_polarisation(lattice.immune, cells, polarisation)
            killers.append(cells)
            kill_rates.append(section.kill_rate_per_h * (1.0 - polarisation.astype(xp.float64)))
            if section.phagocytosis.rate_per_h > 0:
                below = polarisation.astype(xp.float64) < section.phagocytosis.m1_below
                phagocytes.append((cells[below], section.phagocytosis.rate_per_h))
        killers, kill_rates = xp.concatenate(killers), xp.concatenate(kill_rates)
        lattice.tumor, _ = immune.contact_kill(
            xp, lattice.tumor, killers=killers, kill_rate_per_h=kill_rates, targets_offsets=self.targets_offsets,
            dt_h=self.run.dt_h, draw_target=context.draw(STREAM_MACROPHAGE_TARGET, killers),
            draw_kill=context.draw(STREAM_MACROPHAGE_KILL, killers))
        if phagocytes:
            eaters = xp.concatenate([listed for listed, _ in phagocytes])
            rates = xp.concatenate([xp.full(listed.shape, rate, dtype=xp.float64) for listed, rate in phagocytes])
            lattice.tumor, _ = immune.phagocytose(
                xp, lattice.tumor, phagocytes=eaters, rate_per_h=rates, targets_offsets=self.targets_offsets,
                dt_h=self.run.dt_h, draw_target=context.draw(STREAM_PHAGOCYTOSIS_TARGET, eaters),
                draw_clear=context.draw(STREAM_PHAGOCYTOSIS, eaters))

    def polarised(self, context: StepContext, cells: Any, section: Any) -> Any:
        """``float32`` ``(n,)``: the polarisation of the macrophages at the flat voxels ``cells`` after this step."""
        xp, fields, rule = context.xp, context.lattice.fields, section.polarisation

        def signal(name: str | None, half_saturation: float) -> Any:
            if name is None:
                return xp.zeros(cells.shape, dtype=xp.float64)
            return fields[name].reshape(-1)[cells].astype(xp.float64) / half_saturation

        m1, m2 = signal(rule.m1_field, rule.m1_half_saturation), signal(rule.m2_field, rule.m2_half_saturation)
        free = 1.0
        for name, drug in self.blocking:
            free = free * (1.0 - drug.m2_blockade(xp, fields[name].reshape(-1)[cells]))
        target = free * (rule.baseline + m2) / (1.0 + m1 + m2)
        return immune.polarise(xp, context.lattice.immune.exhaustion.reshape(-1)[cells], target=target,
                               rate_per_h=rule.rate_per_h, dt_h=self.run.dt_h)


class ImmuneKill(Rule):
    """Effector T cells engage tumor cells presenting their antigen, kill, tire; some proliferate after a kill."""

    name = "immune_kill"
    reads = frozenset({"tumor.clone", "tumor.state", "tumor.age_h", "clones"}) | IMMUNE | FIELDS
    writes = frozenset({"tumor.state", "tumor.age_h", "totals.immune_kills"}) | IMMUNE
    streams = _streams(STREAM_KILL_TARGET, STREAM_KILL, STREAM_PROLIFERATE, STREAM_PROLIFERATE_DIRECTION,
                       STREAM_PROLIFERATE_PRIORITY)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.proliferation = run.config.immune.t_cells.proliferation_after_kill
        self.divide = functools.partial(immune.divide, run.xp, offsets=run.offsets)

    def apply(self, context: StepContext) -> None:
        system = context.immune
        if not system.t_clones:
            return
        xp, lattice, traits = context.xp, context.lattice, context.subclones.device
        cells = lattice.immune
        occupied = immune_cells(context)
        t_cells = occupied[system.traits["kind"][cells.agent.reshape(-1)[occupied]] == immune.T_CELL]
        effectors = t_cells[cells.state.reshape(-1)[t_cells] == EFFECTOR]
        lattice.tumor, cells, killers, killed = immune.t_cell_kill(
            xp, lattice.tumor, cells, effectors=effectors,
            t_antigen=system.traits["antigen"][cells.agent.reshape(-1)[effectors]], tumor_antigens=traits["antigens"],
            tumor_pdl1=traits["pdl1"], occupancy=system.occupancy(context, effectors),
            kill_factor=system.suppression(context, effectors), targets_offsets=[(0,) * lattice.ndim] + self.run.offsets,
            parameters=system.kill, dt_h=self.run.dt_h, draw_target=context.draw(STREAM_KILL_TARGET, effectors),
            draw_kill=context.draw(STREAM_KILL, effectors))
        state = cells.state.copy()
        state.reshape(-1)[t_cells[cells.exhaustion.reshape(-1)[t_cells] >= 1.0]] = EXHAUSTED
        cells = cells.replace(state=state)
        context.totals.immune_kills += killed.shape[0]
        if self.proliferation > 0:
            dividing = effectors[killers & (context.draw(STREAM_PROLIFERATE, effectors) < self.proliferation)]
            cells = self.divide(cells, dividing=dividing,
                                draw_direction=context.draw(STREAM_PROLIFERATE_DIRECTION, dividing),
                                draw_priority=context.draw(STREAM_PROLIFERATE_PRIORITY, dividing))
        lattice.immune = cells


class TumorDeath(Rule):
    """Apoptosis, removal of apoptotic cells, clearance of necrotic cells."""

    name = "tumor_death"
    reads = TUMOR | frozenset({"clones"})
    writes = TUMOR
    streams = _streams(STREAM_APOPTOSIS, STREAM_CLEARANCE)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.death = functools.partial(tumor.death, run.xp, apoptotic_duration_h=run.config.tumor.apoptotic_duration_h,
                                       necrotic_clearance_per_h=run.config.tumor.necrotic_clearance_per_h, dt_h=run.dt_h)

    def apply(self, context: StepContext) -> None:
        lattice = context.lattice
        occupied = context.xp.flatnonzero(lattice.tumor.clone.reshape(-1) >= 0)
        lattice.tumor = self.death(lattice.tumor, cells=occupied, apoptosis_rate_per_h=context.subclones.device["apoptosis_per_h"],
                                   draw_apoptosis=context.draw(STREAM_APOPTOSIS, occupied),
                                   draw_clearance=context.draw(STREAM_CLEARANCE, occupied))


class ImmuneDeath(Rule):
    """Immune cells die at the rate of their kind (exhausted T cells at theirs)."""

    name = "immune_death"
    reads = frozenset({"immune.agent", "immune.state"})
    writes = IMMUNE
    streams = _streams(STREAM_IMMUNE_DEATH)

    def apply(self, context: StepContext) -> None:
        system = context.immune
        if not system.enabled:
            return
        xp, lattice = context.xp, context.lattice
        occupied = immune_cells(context)
        agent = lattice.immune.agent.reshape(-1)[occupied]
        rate = xp.where(lattice.immune.state.reshape(-1)[occupied] == EXHAUSTED,
                        system.traits["exhausted_death_per_h"][agent], system.traits["death_per_h"][agent])
        lattice.immune, _ = immune.die(xp, lattice.immune, cells=occupied, death_rate_per_h=rate, dt_h=self.run.dt_h,
                                       draw=context.draw(STREAM_IMMUNE_DEATH, occupied))


class TumorDivision(Rule):
    """Cycling cells divide into a free Moore neighbour (conflicts by random priority), or with
    ``tumor.max_push_distance`` shove a chain of cells toward a free voxel; mutant daughters found clones."""

    name = "tumor_division"
    reads = frozenset({"tumor.clone", "tumor.state", "tumor.age_h", "tumor.immunogenic", "vessels.present",
                       "fields.oxygen", "clones"})
    writes = frozenset({"tumor.clone", "tumor.state", "tumor.age_h", "tumor.immunogenic", "clones", "totals.divisions"})
    streams = _streams(STREAM_DIVISION, STREAM_DIRECTION, STREAM_PRIORITY, STREAM_MUTATION, STREAM_PUSH_DIRECTION,
                       STREAM_PUSH_PRIORITY)

    def __init__(self, run: RunParameters) -> None:
        super().__init__(run)
        self.probability = functools.partial(tumor.division_probability, run.xp, hypoxia=run.hypoxia, dt_h=run.dt_h)
        self.divide = functools.partial(tumor.divide, run.xp, offsets=run.offsets,
                                        place=run.backend.operation("place_daughters"))
        self.max_push = run.config.tumor.max_push_distance
        self.push = functools.partial(tumor.push, run.xp, offsets=run.offsets, max_cells=self.max_push)
        self.enclosed = run.backend.operation("enclosed")

    def apply(self, context: StepContext) -> None:
        xp, lattice, subclones = context.xp, context.lattice, context.subclones
        cells = lattice.tumor
        clone = cells.clone.reshape(-1)
        cycling = xp.flatnonzero((clone >= 0) & (cells.state.reshape(-1) == CYCLING))
        p_divide = self.probability(clone[cycling], oxygen_mmHg=lattice.fields["oxygen"].reshape(-1)[cycling],
                                    division_rate_per_h=subclones.device["division_rate_per_h"])
        mothers = cycling[context.draw(STREAM_DIVISION, cycling) < p_divide]
        free = (cells.clone < 0) & ~lattice.vessels.present
        lattice.tumor, daughters = self.divide(cells, mothers=mothers, free=free,
                                               draw_direction=context.draw(STREAM_DIRECTION, mothers),
                                               draw_priority=context.draw(STREAM_PRIORITY, mothers))
        context.totals.divisions += daughters.shape[0]
        if not (self.max_push or subclones.mutating):
            return
        born = on_lattice(xp, lattice.shape, daughters)
        if self.max_push:
            enclosed = self.enclosed(xp, free, self.run.offsets)  # no free neighbour before this step's divisions
            lattice.tumor, pushed_born, _ = self.push(
                lattice.tumor, pushing=on_lattice(xp, lattice.shape, mothers) & enclosed,
                free=(lattice.tumor.clone < 0) & ~lattice.vessels.present,
                draw_direction=context.draw(STREAM_PUSH_DIRECTION), draw_priority=context.draw(STREAM_PUSH_PRIORITY))
            context.totals.divisions += pushed_born.sum()
            born |= pushed_born
        if subclones.mutating:
            subclones.found(context, tumor.mutant_daughters(
                xp, born, clone=lattice.tumor.clone, mutation_rate=subclones.device["mutation_rate"],
                draw_mutation=context.draw(STREAM_MUTATION)))


class AdvanceClocks(Rule):
    """Age every tumor cell and immune cell by one cell step."""

    name = "advance_clocks"
    reads = frozenset({"tumor.clone", "tumor.age_h", "immune.agent", "immune.age_h"})
    writes = frozenset({"tumor.age_h", "immune.age_h"})

    def apply(self, context: StepContext) -> None:
        xp, lattice = context.xp, context.lattice
        cells, immune_cells = lattice.tumor, lattice.immune
        step = cells.age_h.dtype.type(self.run.dt_h)
        lattice.tumor = cells.replace(age_h=xp.where(cells.clone >= 0, cells.age_h + step, cells.age_h))
        lattice.immune = immune_cells.replace(
            age_h=xp.where(immune_cells.agent >= 0, immune_cells.age_h + step, immune_cells.age_h))


class Assessment(Rule):
    """At the assessment cadence: response, and the end rules of the current line."""

    name = "assessment"
    reads = frozenset({"treatment", "tumor.clone", "tumor.state", "immune.agent"})
    writes = frozenset({"treatment"})

    def apply(self, context: StepContext) -> None:
        context.therapy.end_step(context.time_h, context.burden)


#: The rules of one cell step, in order.
DEFAULT_RULES: tuple[type[Rule], ...] = (
    Therapy, VesselCollapse, Angiogenesis, SolveFields, ImmunePriming, ImmuneEntry, ImmuneMovement,
    TumorOxygenResponse, DrugKill, Macrophages, ImmuneKill, TumorDeath, ImmuneDeath, TumorDivision, AdvanceClocks,
    Assessment,
)
