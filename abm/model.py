"""The Mesa model: glue between Mesa (clock, agents, DataCollector) and the rules, plus the loop.

:class:`TumorModel` is a ``mesa.Model``. Mesa's ``model.rng`` (seeded from
the config) draws the 64-bit key of the counter-based random streams, so the
seed alone fixes a run; Mesa's clock ``model.steps`` counts the cell steps.
Each ``model.step()`` runs the rules (:data:`abm.rules.DEFAULT_RULES`, built
once per run) on the step context (:class:`abm.step.StepContext`) and
records every ``time.record_every_h``. The parts live in their own modules:
the initial lattice in :mod:`abm.initial`, the subclones in
:mod:`abm.subclones`, the immune compartment in :mod:`abm.immunity`, the
treatment in :mod:`abm.therapy`, what a record measures in
:mod:`abm.measurement`, the output tables in :mod:`abm.tables`.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import mesa
import numpy as np

from abm import measurement, tables
from abm.agents import SuppressorType, TCellClone, TumorSubclone
from abm.config import DRUG_ACTIONS, Config, field_parameters, hypoxia_parameters
from abm.immunity import POLARISATION_COLUMN, ImmuneSystem
from abm.initial import initial_lattice
from abm.rules import DEFAULT_RULES, Rule
from abm.state import Lattice
from abm.step import RunParameters, StepContext, Totals
from abm.subclones import Subclones
from abm.therapy import Therapy
from kernels.backend import Backend, get_backend
from kernels.lattice import moore_offsets


class TumorModel(mesa.Model):
    """A heterogeneous tumor growing on a 2-D or 3-D lattice under its substrate fields.

    Args:
        config: a validated :class:`abm.config.Config`.
        backend: the array backend; default: the one the config names.
        rules: the rule classes of one step, in order (default :data:`abm.rules.DEFAULT_RULES`); each is built
            once with the run's :class:`abm.step.RunParameters`.
        time_rules: add each rule's wall time (device work included: the backend is synchronised after each
            rule) to :attr:`rule_seconds`; for benchmarks, as the synchronisation costs time on a GPU.

    Attributes:
        run: the run's fixed :class:`abm.step.RunParameters`.
        context: the :class:`abm.step.StepContext` the rules get.
        lattice: the :class:`abm.state.Lattice` (layers on the backend's device).
        subclones: the :class:`abm.subclones.Subclones` (agents, trait tables, founding).
        immune: the :class:`abm.immunity.ImmuneSystem` (T-cell clones and suppressor types).
        therapy: the :class:`abm.therapy.Therapy` (lines, doses, plasma levels, assessments, events).
        totals: running totals (:class:`abm.step.Totals`).
        rules: the built rules, in order.
        steps: completed cell steps (Mesa's clock); ``time_h = steps * dt_h``.
        latest: the last record (column -> host number).
        rule_seconds: rule name -> wall seconds summed over steps (only with ``time_rules``).
        datacollector: Mesa's collector; model series every record step,
            ``cells`` and ``cells_live`` per subclone as agent-type series.

    Raises:
        ConfigError: the initial cells do not fit on the lattice.
    """

    def __init__(self, config: Config, backend: Backend | None = None,
                 rules: Iterable[type[Rule]] = DEFAULT_RULES, time_rules: bool = False) -> None:
        super().__init__(seed=config.seed)
        self.config = config
        backend = backend or get_backend(config.backend)
        xp = backend.xp
        self.run = RunParameters(
            config=config, backend=backend, random_key=int(self.rng.integers(0, 2**63)), dt_h=config.time.dt_cell_h,
            offsets=moore_offsets(config.lattice.ndim), hypoxia=hypoxia_parameters(config),
            field_parameters={name: field_parameters(config, name) for name in config.fields},
            drug_actions={action: config.drugs_acting(action) for action in DRUG_ACTIONS})
        self.record_steps = config.time.steps(config.time.record_every_h, "record_every_h")
        self.subclones = Subclones(self, config, xp)
        self.context = StepContext(
            run=self.run, lattice=initial_lattice(config, xp, self.run.random_key), subclones=self.subclones,
            immune=ImmuneSystem(self, config, xp), therapy=Therapy(config.treatment, config.drugs, self.run.dt_h),
            totals=Totals.zero(xp), burden=lambda assessment: measurement.burden(self.context, assessment))
        self.rules = tuple(rule(self.run) for rule in rules)
        self.rule_seconds: dict[str, float] | None = {rule.name: 0.0 for rule in self.rules} if time_rules else None
        self.columns = measurement.record_columns(config)
        self.no_data_columns = measurement.no_data_columns(config)
        self.latest: dict[str, float] = {}
        agent_series: dict[type, dict[str, str]] = {TumorSubclone: {"cells": "cell_count", "cells_live": "live_cell_count"}}
        if self.immune.t_clones:
            agent_series[TCellClone] = {name: name for name in ("cells_effector", "cells_exhausted", "primed_pool", "activation")}
        if self.immune.suppressors:
            agent_series[SuppressorType] = {"cells": "cells"}
            if config.immune.macrophages:
                agent_series[SuppressorType][POLARISATION_COLUMN] = "polarisation_mean"
        self.datacollector = mesa.DataCollector(
            model_reporters={column: (lambda m, c=column: m.latest[c]) for column in self.columns},
            agenttype_reporters=agent_series,
        )
        for rule in self.rules:
            if rule.at_setup:
                rule.apply(self.context)
        self.record()

    # ------------------------------------------------------------------ parts, by name

    @property
    def backend(self) -> Backend:
        return self.run.backend

    @property
    def xp(self) -> Any:
        return self.run.xp

    @property
    def lattice(self) -> Lattice:
        return self.context.lattice

    @property
    def immune(self) -> ImmuneSystem:
        return self.context.immune

    @property
    def therapy(self) -> Therapy:
        return self.context.therapy

    @property
    def totals(self) -> Totals:
        return self.context.totals

    @property
    def time_h(self) -> float:
        """Time at the end of the completed steps, h."""
        return self.steps * self.run.dt_h

    def rule(self, name: str) -> Rule:
        """The built rule named ``name`` (e.g. ``model.rule("fields").solvers``).

        Raises:
            KeyError: no rule of the model has that name.
        """
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"no rule {name!r}; the model's rules: {', '.join(rule.name for rule in self.rules)}")

    # ------------------------------------------------------------------ the loop

    def step(self) -> None:
        """Run every rule once (Mesa has counted the step), move the clock to the step's end, record on cadence."""
        context = self.context
        context.new_step(self.steps - 1)
        for rule in self.rules:
            if self.rule_seconds is None:
                rule.apply(context)
            else:
                started = time.perf_counter()
                rule.apply(context)
                self.backend.synchronize()
                self.rule_seconds[rule.name] += time.perf_counter() - started
            context.written(rule.writes)
        context.new_step(self.steps)
        if self.steps % self.record_steps == 0:
            self.record()

    def record(self) -> None:
        """Check that the state is finite, measure it, check the record and hand it to Mesa's DataCollector.

        Raises:
            abm.measurement.NonFiniteRecord: a plasma level, the priming compartment, a field or
                a record column is NaN or infinite (a column may be NaN where
                it has no data, :func:`abm.measurement.no_data_columns`); nothing is recorded.
        """
        measurement.check_state(self.context)
        record = self.measure()
        measurement.check_record(self.context, record, self.no_data_columns)
        self.latest = record
        self.datacollector.collect(self)

    def measure(self) -> dict[str, float]:
        """The record of the current state, its columns in order (:func:`abm.measurement.measure`); unchecked."""
        return measurement.measure(self.context, self.columns)

    # ------------------------------------------------------------------ outputs

    def snapshot(self) -> dict[str, np.ndarray]:
        """Host copies of the per-voxel arrays (:func:`abm.tables.snapshot`)."""
        return tables.snapshot(self.context)

    def timeseries(self):
        """The model series, one row per record (:func:`abm.tables.timeseries`)."""
        return tables.timeseries(self.datacollector)

    def clone_series(self):
        """Cells per clone per record (:func:`abm.tables.clone_series`)."""
        return tables.clone_series(self.datacollector, self.subclones.agents, self.run.dt_h)

    def immune_series(self):
        """Cells of each immune agent per record (:func:`abm.tables.immune_series`)."""
        return tables.immune_series(self.datacollector, self.immune.agents, self.run.dt_h)

    def lineage(self, first: int = 0):
        """One row per clone from clone ``first`` on (:meth:`abm.subclones.Subclones.lineage`)."""
        return self.subclones.lineage(self.lattice.ndim, first)

    def events(self):
        """The treatment's events (:func:`abm.tables.events`)."""
        return tables.events(self.therapy)
