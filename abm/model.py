"""The Mesa model: lattice state on one device, clone agents, rules in order, records.

:class:`TumorModel` is a ``mesa.Model``. Mesa's ``model.rng`` (seeded from the
config) draws the 64-bit key of the counter-based random streams, so the seed
alone fixes a run. Each ``model.step()`` runs the rules of
:data:`abm.rules.DEFAULT_RULES` once (one cell step of ``time.dt_cell_h``)
and records the time series every ``time.record_every_h``.

Clones: the founding clones come from the config; a daughter that mutates
(reported by the division kernel) founds a new :class:`TumorSubclone`, made
on the host between kernels from the mutants' positions and parents (a loop
over new clones, never over cells). The trait table grows by those rows and
is mirrored to the device again.
"""
from __future__ import annotations

import math
from typing import Any

import mesa
import numpy as np

from abm import clones as clone_table
from abm.agents import SuppressorType, TCellClone, TumorSubclone
from abm.config import (DRUG_ACTIONS, MAX_ANTIGENS, AssessmentConfig, Config, ConfigError, field_parameters,
                        hypoxia_parameters)
from abm.immunity import IMMUNE_NO_DATA_COLUMNS, IMMUNE_SERIES_COLUMNS, ImmuneSystem, immune_columns
from abm.therapy import EVENT_COLUMNS, Therapy
from abm.rules import DEFAULT_RULES, Rule
from abm.streams import (
    STREAM_MUTATION_TRAITS, STREAM_SETUP_CELLS, STREAM_SETUP_CLONES, STREAM_SETUP_NEST_CENTRES, STREAM_SETUP_NEST_ORDER,
    STREAM_SETUP_PERFUSION, STREAM_SETUP_VESSELS,
)
from abm.state import LatticeState
from kernels import heterogeneity, setup
from kernels.immune import neighbour_of
from kernels.backend import Backend, get_backend
from kernels.lattice import moore_offsets
from kernels.random import uniform
from kernels.tumor import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT

RECORD_COLUMNS = (
    "time_h", "time_days", "cells_cycling", "cells_quiescent", "cells_apoptotic", "cells_necrotic",
    "tumor_cells_live", "tumor_cells_total", "tumor_volume_mm3", "equivalent_diameter_um",
    "hypoxic_fraction", "oxygen_mean_mmHg", "oxygen_min_tumor_mmHg",
    "clones_alive", "clones_total", "shannon_diversity", "simpson_diversity",
    "same_clone_neighbour_fraction", "same_clone_neighbour_fraction_random", "fraction_resistant",
    "mean_division_rate_per_h", "mean_apoptosis_per_h", "mean_resistance_cost", "mean_efflux",
    "mean_quiescence_entry_per_h", "mean_pdl1", "mean_mutation_rate", "mean_antigen_count",
    "divisions_total", "drug_kills_total", "mutations_total", "mutations_suppressed",
    "vessels", "vessels_perfused", "mean_perfusion",
)
#: Traits whose live-cell-weighted mean is recorded as ``mean_<trait>``.
MEAN_TRAITS = ("division_rate_per_h", "apoptosis_per_h", "resistance_cost", "efflux",
               "quiescence_entry_per_h", "pdl1", "mutation_rate")
CLONE_COLUMNS = ("time_h", "time_days", "clone", "cells", "cells_live")


class NonFiniteRecord(ArithmeticError):
    """A field, compartment or record value became NaN or infinite; the message names it and the day.

    Raised by :meth:`TumorModel.record` (every ``record_every_h``, and once
    when the model is built) before the record is kept, so the records kept
    are all finite but for :func:`no_data_columns`. Checked, in this order:
    the dosed drugs' plasma levels, the T-cells' priming compartment (pools,
    activations), every field (one reduction each), then each column of the
    record.
    """


def _kind_of_number(value: float) -> str:
    return "nan" if math.isnan(value) else "inf"


def no_data_columns(config: Config) -> frozenset[str]:
    """Columns of :func:`record_columns` that are NaN where they have no data: no tumor cell (oxygen and
    ``<field>`` minimum and mean over the tumor), no live tumor cell (trait means, resistant fractions,
    PD-L1-positive fraction, the random-mixing neighbour fraction), no live cell with a live neighbour
    (``same_clone_neighbour_fraction``), no vessel (``mean_perfusion``), no tumor core or margin (CD8 densities).
    Every other column, and any infinity, is non-finite arithmetic (:class:`NonFiniteRecord`)."""
    columns = {"oxygen_min_tumor_mmHg", "same_clone_neighbour_fraction", "same_clone_neighbour_fraction_random",
               "fraction_resistant", "mean_antigen_count", "mean_perfusion"}
    columns |= {f"mean_{trait}" for trait in MEAN_TRAITS}
    columns |= {f"{what}_{drug}" for drug in config.drug_names for what in ("mean_sensitivity", "fraction_resistant")}
    columns |= {f"{name}_tumor_{what}" for name in config.fields if name != "oxygen" for what in ("mean", "min")}
    if config.immune.enabled:
        columns |= set(IMMUNE_NO_DATA_COLUMNS)
    return frozenset(columns)


def record_columns(config: Config) -> tuple[str, ...]:
    """Columns of the time series of ``config``: :data:`RECORD_COLUMNS`, two per drug, two per other field, immune ones.

    Per drug: ``mean_sensitivity_<drug>``, ``fraction_resistant_<drug>``. Per
    field besides oxygen: ``<field>_tumor_mean`` and ``<field>_tumor_min``
    (over voxels with a tumor cell, in the field's units; NaN without tumor).
    With immune cells: :func:`abm.immunity.immune_columns`. With a treatment:
    ``line`` (index of the current line, -1 before and after treatment) and
    ``plasma_<drug>`` (mean plasma level over the step, field units) per dosed drug.
    """
    per_drug = [f"{what}_{drug}" for drug in config.drug_names for what in ("mean_sensitivity", "fraction_resistant")]
    per_field = [f"{name}_tumor_{what}" for name in config.fields if name != "oxygen" for what in ("mean", "min")]
    immune = immune_columns(config) if config.immune.enabled else ()
    treatment = ("line",) + tuple(f"plasma_{name}" for name, drug in config.drugs.items() if drug.pk is not None) \
        if config.treatment is not None else ()
    return RECORD_COLUMNS + tuple(per_drug) + tuple(per_field) + immune + treatment


class TumorModel(mesa.Model):
    """A heterogeneous tumor growing on a 2-D or 3-D lattice under its substrate fields.

    Args:
        config: a validated :class:`abm.config.Config`.
        backend: the array backend; default: the one the config names.
        rules: the rules of one step, in order (default :data:`DEFAULT_RULES`).

    Attributes:
        state: the :class:`abm.state.LatticeState` (arrays on the backend's device).
        clones: the :class:`TumorSubclone` agents, ordered by index (founding clones first).
        traits: the host trait table (:mod:`abm.clones`), one row per clone.
        clone_traits: the same columns on the device (``float64``; ``antigens`` ``uint64``), and
            ``antigen_bits``, ``float64`` ``(n_clones, 64)``: 1 where the clone presents the antigen.
        immune: the :class:`abm.immunity.ImmuneSystem` (T-cell clones and suppressor types).
        therapy: the :class:`abm.therapy.Therapy` (lines, doses, plasma levels, assessments, events).
        cell_step: completed cell steps; ``time_h = cell_step * dt_h``.
        mutations_total: daughters that mutated so far; ``mutations_suppressed`` of them
            founded no clone because ``tumor.mutation.max_clones`` was reached.
        datacollector: Mesa's collector; model series every record step,
            ``cells`` and ``cells_live`` per subclone as agent-type series.

    Raises:
        ConfigError: the initial cells do not fit on the lattice.
    """

    def __init__(self, config: Config, backend: Backend | None = None, rules: tuple[Rule, ...] = DEFAULT_RULES) -> None:
        super().__init__(seed=config.seed)
        self.config = config
        self.backend = backend or get_backend(config.backend)
        self.xp = self.backend.xp
        self.rules = rules
        self.random_key = int(self.rng.integers(0, 2**63))
        self.dt_h = config.time.dt_cell_h
        self.cell_step = 0
        self.record_steps = config.time.steps(config.time.record_every_h, "record_every_h")
        self.offsets = moore_offsets(config.lattice.ndim)
        self.hypoxia = hypoxia_parameters(config)
        self.field_parameters = {name: field_parameters(config, name) for name in config.fields}
        self.solver_iterations: dict[str, int] = {}
        # Per field: its FieldSolver, kept across cell steps by solve_fields (the sink is updated each step).
        self.field_solvers: dict[str, Any] = {}
        self.drugs = config.drug_names
        # action -> (name, drug) of the drugs whose kind has it, in field order: what the rules sum over.
        self.drug_actions = {action: config.drugs_acting(action) for action in DRUG_ACTIONS}
        self.therapy = Therapy(config.treatment, config.drugs, self.dt_h)
        self.max_division_rate_per_h = math.log(2.0) / self.dt_h

        self.traits = clone_table.founding_table(config)
        self.clones: list[TumorSubclone] = []
        self._add_agents(self.traits, [clone.name for clone in config.tumor.clones], [None] * len(config.tumor.clones),
                         0.0, [None] * len(config.tumor.clones))
        self.state = self._initial_state()
        self.immune = ImmuneSystem(self, config)
        self.divisions_total = self.xp.zeros((), dtype=self.xp.int64)
        self.drug_kills_total = self.xp.zeros((), dtype=self.xp.int64)
        self.mutations_total = 0
        self.mutations_suppressed = 0
        self.columns = record_columns(config)
        self.no_data_columns = no_data_columns(config)
        self.latest: dict[str, float] = {}
        agent_series: dict[type, dict[str, str]] = {TumorSubclone: {"cells": "cell_count", "cells_live": "live_cell_count"}}
        if self.immune.t_clones:
            agent_series[TCellClone] = {name: name for name in ("cells_effector", "cells_exhausted", "primed_pool", "activation")}
        if self.immune.suppressors:
            agent_series[SuppressorType] = {"cells": "cells"}
        self.datacollector = mesa.DataCollector(
            model_reporters={column: (lambda m, c=column: m.latest[c]) for column in self.columns},
            agenttype_reporters=agent_series,
        )
        for rule in self.rules:
            if rule.name == "fields":
                rule.apply(self)
        self.record()

    @property
    def time_h(self) -> float:
        return self.cell_step * self.dt_h

    @property
    def mutating(self) -> bool:
        """Whether any clone can mutate (then the division rule looks for mutant daughters)."""
        return bool(self.traits["mutation_rate"].max() > 0)

    # ------------------------------------------------------------------ clones

    def _add_agents(self, rows: clone_table.CloneTable, names: list[str], parents: list[TumorSubclone | None],
                    birth_time_h: float, origins: list[tuple[float, ...] | None]) -> None:
        """Create one agent per row of ``rows`` (indices continue from the existing clones) and mirror the table."""
        first = len(self.clones)
        for offset, (name, parent, origin) in enumerate(zip(names, parents, origins)):
            traits = {column: values[offset] for column, values in rows.items()}
            self.clones.append(TumorSubclone(self, first + offset, name, traits, parent, birth_time_h, origin))
        xp = self.xp
        self.clone_traits = {column: xp.asarray(values) for column, values in self.traits.items()}
        bits = (self.traits["antigens"][:, None] >> np.arange(MAX_ANTIGENS, dtype=np.uint64)) & np.uint64(1)
        self.clone_traits["antigen_bits"] = xp.asarray(bits.astype(np.float64))

    def found_subclones(self, mutants: Any) -> None:
        """Give each mutant daughter a new clone: agents, trait rows, the device mirror, the lattice.

        One scalar is copied from the device (the number of mutants); only in
        steps with mutants are their positions and parents copied too.
        Mutants beyond ``tumor.mutation.max_clones`` keep their parent's clone.

        Args:
            mutants: bool, lattice shape: daughters that mutated this step.
        """
        xp = self.xp
        count = int(mutants.sum())
        if count == 0:
            return
        self.mutations_total += count
        room = self.config.tumor.mutation.max_clones - len(self.clones)
        kept = max(0, min(count, room))
        self.mutations_suppressed += count - kept
        if kept == 0:
            return
        positions = xp.flatnonzero(mutants.reshape(-1))[:kept]  # ascending voxel order: independent of the device
        clone = xp.ascontiguousarray(self.state.clone)
        flat = clone.reshape(-1)
        parents = self.backend.to_host(flat[positions]).astype(np.int64)
        positions_host = self.backend.to_host(positions).astype(np.uint64)
        first = len(self.clones)
        flat[positions] = xp.arange(first, first + kept, dtype=xp.int32)
        self.state.clone = clone

        def draw(offset: int) -> np.ndarray:
            return uniform(np, self.random_key, self.cell_step, STREAM_MUTATION_TRAITS + offset, positions_host)

        rows = clone_table.mutant_table(clone_table.rows(self.traits, parents), self.config.tumor.mutation,
                                        self.drugs, draw, self.max_division_rate_per_h)
        self.traits = clone_table.append(self.traits, rows)
        coordinates = np.unravel_index(positions_host.astype(np.int64), self.state.shape)
        origins = [tuple(float((axis[k] + 0.5) * self.state.dx_um) for axis in coordinates) for k in range(kept)]
        parent_agents = [self.clones[parent] for parent in parents]
        names = [f"{parent.root.name}/{first + k}" for k, parent in enumerate(parent_agents)]
        self._add_agents(rows, names, parent_agents, (self.cell_step + 1) * self.dt_h, origins)

    # ------------------------------------------------------------------ initial state

    def _setup_draw(self, stream: int, index: Any) -> Any:
        return uniform(self.xp, self.random_key, 0, stream, index)

    def _initial_state(self) -> LatticeState:
        """Vessels and their perfusion, the initial cells with their clones, and initial fields."""
        xp, config = self.xp, self.config
        shape = tuple(config.lattice.shape)
        state = LatticeState.empty(xp, shape, config.lattice.dx_um)
        coordinates = state.coordinates_um()
        center = config.tumor.initial.center_um or [extent * config.lattice.dx_um / 2.0 for extent in shape]
        distance_sq = sum((axis - c) ** 2 for axis, c in zip(coordinates, center))

        vessels = config.vessels
        if vessels.pattern in ("uniform", "sparse_core"):
            density: Any = vessels.density
            if vessels.pattern == "sparse_core":
                density = xp.where(distance_sq < vessels.core_radius_um**2, vessels.density * vessels.core_density_factor,
                                   vessels.density)
            state.vessel, state.perfusion = setup.random_vessels(
                xp, density, vessels.perfusion_min, vessels.perfusion_max,
                self._setup_draw(STREAM_SETUP_VESSELS, state.voxel_index),
                self._setup_draw(STREAM_SETUP_PERFUSION, state.voxel_index))
        elif vessels.pattern == "file":
            state.vessel, state.perfusion = setup.vessels_from_array(xp, np.load(vessels.file, allow_pickle=False))

        initial = config.tumor.initial
        free = ~state.vessel
        if initial.geometry == "ball":
            seeded = (distance_sq <= initial.radius_um**2) & free
        else:
            try:
                seeded = setup.scattered_cells(xp, free, initial.cells, self._setup_draw(STREAM_SETUP_CELLS, state.voxel_index))
            except ValueError as exc:
                raise ConfigError(f"tumor.initial.cells: {exc}") from None
        index = state.voxel_index[seeded]
        if int(index.size) == 0:  # the geometry holds voxel centres (checked at load), but vessels fill them all
            raise ConfigError("tumor.initial: no initial tumor cell: every voxel of the seed cluster is a vessel; "
                              "use a larger radius_um or fewer vessels")
        if initial.arrangement == "mixed":
            key = self._setup_draw(STREAM_SETUP_CLONES, index)
        elif initial.arrangement == "sectors":
            key = setup.sector_key(xp, coordinates, center, shape)[seeded]
        else:
            points = xp.stack([xp.broadcast_to(axis, shape)[seeded] for axis in coordinates], axis=1)
            key = setup.nest_key(xp, points, setup.ball_volume_voxels(initial.nest_radius_um, state.dx_um, state.ndim),
                                 self._setup_draw(STREAM_SETUP_NEST_CENTRES, index),
                                 self._setup_draw(STREAM_SETUP_NEST_ORDER, index))
        counts = setup.exact_counts(int(index.size), [clone.fraction for clone in config.tumor.clones])
        state.clone = setup.assign_clones(xp, seeded, key, counts)
        state.cell_state = xp.full(shape, CYCLING, dtype=xp.int8)

        for name, field in config.fields.items():
            state.fields[name] = xp.full(shape, field.initial, dtype=getattr(xp, field.dtype))
        return state

    # ------------------------------------------------------------------ stepping and records

    def step(self) -> None:
        """Run every rule once, advance time by one cell step, record on cadence."""
        for rule in self.rules:
            rule.apply(self)
        self.cell_step += 1
        if self.cell_step % self.record_steps == 0:
            self.record()

    def measure(self) -> dict[str, float]:
        """The record of the current state (host numbers; a few device syncs)."""
        xp, state, backend = self.xp, self.state, self.backend
        occupied = state.clone >= 0
        live = state.live_tumor()
        n_clones = len(self.clones)
        by_state = backend.to_host(xp.bincount(state.cell_state[occupied].astype(xp.int64), minlength=4))
        cells = backend.to_host(xp.bincount(state.clone[occupied].astype(xp.int64), minlength=n_clones))
        live_cells = backend.to_host(xp.bincount(state.clone[live].astype(xp.int64), minlength=n_clones))
        for clone, count, live_count in zip(self.clones, cells.tolist(), live_cells.tolist()):
            clone.cell_count = count
            clone.live_cell_count = live_count
        oxygen = state.fields["oxygen"]
        hypoxic = live & (oxygen < self.hypoxia.quiescence_below_mmHg)
        live_total = int(by_state[CYCLING] + by_state[QUIESCENT])
        total = int(by_state.sum())
        volume_um3 = total * state.voxel_volume_um3
        if state.ndim == 3:
            diameter_um = (6.0 * volume_um3 / math.pi) ** (1.0 / 3.0)
        else:
            diameter_um = math.sqrt(4.0 * total * state.dx_um**2 / math.pi)
        vessels = int(state.vessel.sum())
        record: dict[str, float] = {
            "time_h": self.time_h,
            "time_days": self.time_h / 24.0,
            "cells_cycling": int(by_state[CYCLING]),
            "cells_quiescent": int(by_state[QUIESCENT]),
            "cells_apoptotic": int(by_state[APOPTOTIC]),
            "cells_necrotic": int(by_state[NECROTIC]),
            "tumor_cells_live": live_total,
            "tumor_cells_total": total,
            "tumor_volume_mm3": volume_um3 * 1e-9,
            "equivalent_diameter_um": diameter_um,
            "hypoxic_fraction": float(hypoxic.sum()) / live_total if live_total else 0.0,
            "oxygen_mean_mmHg": float(oxygen.mean(dtype=xp.float64)),
            "oxygen_min_tumor_mmHg": float(xp.where(occupied, oxygen, xp.inf).min()) if total else float("nan"),
            "clones_alive": int((live_cells > 0).sum()),
            "clones_total": n_clones,
            "shannon_diversity": heterogeneity.shannon_index(np, live_cells),
            "simpson_diversity": heterogeneity.simpson_index(np, live_cells),
            "same_clone_neighbour_fraction": heterogeneity.same_clone_neighbour_fraction(xp, state.clone, live, self.offsets),
            "same_clone_neighbour_fraction_random": 1.0 - heterogeneity.simpson_index(np, live_cells) if live_total else float("nan"),
            "divisions_total": int(self.divisions_total),
            "drug_kills_total": int(self.drug_kills_total),
            "mutations_total": self.mutations_total,
            "mutations_suppressed": self.mutations_suppressed,
            "vessels": vessels,
            "vessels_perfused": int((state.perfusion > 0).sum()),
            "mean_perfusion": float(state.perfusion[state.vessel].mean(dtype=xp.float64)) if vessels else float("nan"),
        }
        record.update(self._trait_measures(live_cells))
        for name, values in state.fields.items():
            if name != "oxygen":
                record[f"{name}_tumor_mean"] = float(values[occupied].mean(dtype=xp.float64)) if total else float("nan")
                record[f"{name}_tumor_min"] = float(values[occupied].min()) if total else float("nan")
        if self.immune.enabled:
            record.update(self.immune.measure(self))
        if self.config.treatment is not None:
            record["line"] = -1 if self.therapy.line is None else self.therapy.line
            record.update({f"plasma_{name}": level for name, level in self.therapy.plasma.items()})
        return {column: record[column] for column in self.columns}

    def blood_level(self, name: str) -> float:
        """Plasma level of field ``name`` at vessels this step: a dosed drug's from its doses, else the config's."""
        if name in self.therapy.plasma:
            return self.therapy.plasma[name]
        return self.config.fields[name].vessel.blood_level

    def burden(self, assessment: AssessmentConfig) -> tuple[float, int]:
        """Tumor burden for response assessment, and the live tumor cells (one device sync).

        recist, irecist: the equivalent diameter (um) of the lesion: voxels with
        a tumor cell of any state, or with an immune cell next to one (so
        infiltrate counts toward size). myeloma: ``marker_per_cell`` x live cells.
        """
        xp, state = self.xp, self.state
        live = int(state.live_tumor().sum())
        if assessment.criteria == "myeloma":
            return assessment.marker_per_cell * live, live
        tumor = state.clone >= 0
        lesion = tumor | ((state.immune >= 0) & neighbour_of(xp, tumor, self.offsets))
        voxels = int(lesion.sum())
        if state.ndim == 3:
            return (6.0 * voxels * state.voxel_volume_um3 / math.pi) ** (1.0 / 3.0), live
        return math.sqrt(4.0 * voxels * state.dx_um**2 / math.pi), live

    def events(self):
        """The treatment's events (doses, lines, assessments) as a DataFrame, columns :data:`abm.therapy.EVENT_COLUMNS`."""
        import pandas

        return pandas.DataFrame(self.therapy.events, columns=list(EVENT_COLUMNS))

    def _trait_measures(self, live_cells: np.ndarray) -> dict[str, float]:
        """Live-cell-weighted trait means and resistant fractions (NaN where no cell is alive)."""
        live_total = int(live_cells.sum())
        weights = live_cells / live_total if live_total else np.full(len(live_cells), np.nan)
        traits = self.traits
        out = {f"mean_{trait}": float(weights @ traits[trait]) for trait in MEAN_TRAITS}
        antigen_bits = np.unpackbits(traits["antigens"].astype("<u8").view(np.uint8)).reshape(-1, 64)
        out["mean_antigen_count"] = float(weights @ antigen_bits.sum(axis=1))
        threshold = self.config.tumor.resistant_below
        resistant_any = np.zeros(len(live_cells), dtype=bool)
        for drug in self.drugs:
            sensitivity = traits[clone_table.sensitivity_column(drug)]
            resistant = sensitivity * (1.0 - traits["efflux"]) < threshold
            resistant_any |= resistant
            out[f"mean_sensitivity_{drug}"] = float(weights @ sensitivity)
            out[f"fraction_resistant_{drug}"] = float(weights[resistant].sum()) if live_total else float("nan")
        out["fraction_resistant"] = float(weights[resistant_any].sum()) if live_total else float("nan")
        return out

    def record(self) -> None:
        """Check that the state is finite, measure it, check the record and hand it to Mesa's DataCollector.

        Raises:
            NonFiniteRecord: a plasma level, the priming compartment, a field or
                a record column is NaN or infinite (a column may be NaN where
                it has no data, :func:`no_data_columns`); nothing is recorded.
        """
        self._check_finite_state()
        record = self.measure()
        self._check_finite_record(record)
        self.latest = record
        self.datacollector.collect(self)

    def _non_finite(self, what: str, kinds: str, hint: str) -> NonFiniteRecord:
        return NonFiniteRecord(f"{what}: non-finite values ({kinds}) at day {self.time_h / 24.0:g}; {hint}")

    def _check_finite_state(self) -> None:
        """The plasma levels (host numbers), then one device reduction per field and per array of the priming
        compartment, brought to the host together (one device sync)."""
        for name, level in self.therapy.plasma.items():
            if not math.isfinite(level):
                raise self._non_finite(f"plasma level of {name}", _kind_of_number(level),
                                       "check its doses and pharmacokinetics")
        xp = self.xp
        checked = [(f"field {name}", values, "voxels", "check its rates, doses and initial value")
                   for name, values in self.state.fields.items()]
        if self.immune.t_clones:
            hint = "check immune.t_cells.priming and the drugs' doses"
            checked += [("T-cell primed pools", self.immune.pool, "clones", hint),
                        ("T-cell activations", self.immune.activation, "clones", hint)]
        finite = self.backend.to_host(xp.stack([xp.isfinite(values).all() for _, values, _, _ in checked]))
        for (what, values, units, hint), ok in zip(checked, finite.tolist()):
            if not ok:
                counts = (("nan", int(xp.isnan(values).sum())), ("inf", int(xp.isinf(values).sum())))
                raise self._non_finite(what, ", ".join(f"{kind} in {count} of {values.size} {units}"
                                                       for kind, count in counts if count), hint)

    def _check_finite_record(self, record: dict[str, Any]) -> None:
        """Every float of ``record`` is finite, or NaN in a column that may lack data."""
        for column, value in record.items():
            if isinstance(value, float) and not math.isfinite(value) and not (
                    math.isnan(value) and column in self.no_data_columns):
                raise self._non_finite(f"record column {column}", _kind_of_number(value),
                                       "an extreme parameter took the model's arithmetic beyond float64")

    def snapshot(self) -> dict[str, np.ndarray]:
        """Host copies of the per-voxel arrays, for the run directory's snapshots."""
        state = self.state
        arrays = {
            "time_h": np.asarray(self.time_h),
            "dx_um": np.asarray(state.dx_um),
            "clone": self.backend.to_host(state.clone),
            "cell_state": self.backend.to_host(state.cell_state),
            "vessel": self.backend.to_host(state.vessel),
            "perfusion": self.backend.to_host(state.perfusion),
        }
        if self.immune.enabled:
            arrays["immune"] = self.backend.to_host(state.immune)
            arrays["immune_state"] = self.backend.to_host(state.immune_state)
            arrays["exhaustion"] = self.backend.to_host(state.exhaustion)
        for name, values in state.fields.items():
            arrays[f"field_{name}"] = self.backend.to_host(values)
        return arrays

    def timeseries(self):
        """The model series as a pandas DataFrame, one row per record."""
        return self.datacollector.get_model_vars_dataframe().reset_index(drop=True)

    def clone_series(self):
        """Cells per clone per record (Mesa's agent-type series), rows only where the clone had cells.

        Columns :data:`CLONE_COLUMNS`: time, clone index, cells of any state,
        live (cycling or quiescent) cells. The data for Muller plots.
        """
        import pandas

        frame = self.datacollector.get_agenttype_vars_dataframe(TumorSubclone).reset_index()
        if frame.empty:
            return pandas.DataFrame({column: [] for column in CLONE_COLUMNS})
        index_of = {clone.unique_id: clone.index for clone in self.clones}
        frame = frame[frame["cells"] > 0]
        time_h = frame["Step"].to_numpy() * self.dt_h
        return pandas.DataFrame({
            "time_h": time_h,
            "time_days": time_h / 24.0,
            "clone": frame["AgentID"].map(index_of).to_numpy(dtype=np.int64),
            "cells": frame["cells"].to_numpy(dtype=np.int64),
            "cells_live": frame["cells_live"].to_numpy(dtype=np.int64),
        }).sort_values(["time_h", "clone"], kind="stable").reset_index(drop=True)

    def immune_series(self):
        """Cells of each immune agent per record (Mesa's agent-type series), one row per agent and record.

        Columns :data:`abm.immunity.IMMUNE_SERIES_COLUMNS`: time, agent index,
        name, kind (``t_cell`` for a T-cell clone, else the suppressor type's name), antigen (-1 for
        suppressors), effector and exhausted cells (a suppressor's cells are
        its effectors), the clone's systemic pool and activation (NaN for
        suppressors). Empty without immune cells.
        """
        import pandas

        frames = []
        for agent_class in (TCellClone, SuppressorType):
            if agent_class not in self.datacollector.agenttype_reporters:
                continue
            frame = self.datacollector.get_agenttype_vars_dataframe(agent_class).reset_index()
            agents = {agent.unique_id: agent for agent in self.immune.agents}
            rows = frame["AgentID"].map(agents)
            time_h = frame["Step"].to_numpy() * self.dt_h
            is_t = agent_class is TCellClone
            frames.append(pandas.DataFrame({
                "time_h": time_h,
                "time_days": time_h / 24.0,
                "agent": [agent.index for agent in rows],
                "name": [agent.name for agent in rows],
                "kind": [agent.kind for agent in rows],
                "antigen": [agent.antigen if is_t else -1 for agent in rows],
                "cells_effector": frame["cells_effector" if is_t else "cells"].to_numpy(dtype=np.int64),
                "cells_exhausted": frame["cells_exhausted"].to_numpy(dtype=np.int64) if is_t else np.zeros(len(frame), dtype=np.int64),
                "primed_pool": frame["primed_pool"].to_numpy(dtype=np.float64) if is_t else np.full(len(frame), np.nan),
                "activation": frame["activation"].to_numpy(dtype=np.float64) if is_t else np.full(len(frame), np.nan),
            }))
        if not frames:
            return pandas.DataFrame({column: [] for column in IMMUNE_SERIES_COLUMNS})
        return pandas.concat(frames).sort_values(["time_h", "agent"], kind="stable").reset_index(drop=True)

    def lineage(self, first: int = 0):
        """One row per clone ever present, from clone ``first`` on: index, name, parent, founding clone, birth, origin
        and traits.

        ``parent`` is -1 for founding clones; ``origin_*_um`` are the founding
        daughter's coordinates (NaN for founding clones); ``antigens`` is the
        neoantigen set as a 64-bit mask (bit k = antigen k). The run's journal
        asks only for the clones founded since its last record.
        """
        import pandas

        axes = "zyx"[3 - self.state.ndim:]
        clones = self.clones[first:]
        frame = pandas.DataFrame({
            "clone": [clone.index for clone in clones],
            "name": [clone.name for clone in clones],
            "parent": [clone.parent.index if clone.parent is not None else -1 for clone in clones],
            "root": [clone.root.index for clone in clones],
            "generation": [clone.generation for clone in clones],
            "birth_time_h": [clone.birth_time_h for clone in clones],
        })
        for number, axis in enumerate(axes):
            frame[f"origin_{axis}_um"] = [clone.origin_um[number] if clone.origin_um else math.nan for clone in clones]
        for column, values in self.traits.items():
            frame[column] = values[first:]
        return frame
