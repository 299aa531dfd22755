"""The Mesa model: lattice state on one device, clone agents, rules in order, records.

:class:`TumorModel` is a ``mesa.Model``. Mesa's ``model.rng`` (seeded from the
config) draws the 64-bit key of the counter-based random streams, so the seed
alone fixes a run. Each ``model.step()`` runs the rules of
:data:`abm.rules.DEFAULT_RULES` once (one cell step of ``time.dt_cell_h``)
and records the time series every ``time.record_every_h``.
"""
from __future__ import annotations

import math
from typing import Any

import mesa
import numpy as np

from abm.agents import TumorSubclone
from abm.config import Config, field_parameters, hypoxia_parameters
from abm.rules import DEFAULT_RULES, STREAM_SETUP_CLONES, STREAM_SETUP_VESSELS, Rule
from abm.state import LatticeState
from kernels import diffusion
from kernels.backend import Backend, get_backend
from kernels.lattice import moore_offsets
from kernels.random import uniform
from kernels.tumor import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT

RECORD_COLUMNS = (
    "time_h", "time_days", "cells_cycling", "cells_quiescent", "cells_apoptotic", "cells_necrotic",
    "tumor_cells_live", "tumor_cells_total", "tumor_volume_mm3", "equivalent_diameter_um",
    "hypoxic_fraction", "oxygen_mean_mmHg", "oxygen_min_tumor_mmHg",
)


class TumorModel(mesa.Model):
    """A tumor growing on a 2-D or 3-D lattice under an oxygen field.

    Args:
        config: a validated :class:`abm.config.Config`.
        backend: the array backend; default: the one the config names.
        rules: the rules of one step, in order (default :data:`DEFAULT_RULES`).

    Attributes:
        state: the :class:`abm.state.LatticeState` (arrays on the backend's device).
        clones: the :class:`TumorSubclone` agents, ordered by index.
        clone_traits: trait name -> ``float64`` device array of shape ``(n_clones,)``.
        cell_step: completed cell steps; ``time_h = cell_step * dt_h``.
        datacollector: Mesa's collector; model series every record step,
            ``cells`` per subclone as agent-type series.
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

        self.clones = [
            TumorSubclone(self, index, clone.name, 1.0 / clone.cycle_time_h, clone.apoptosis_per_h)
            for index, clone in enumerate(config.tumor.clones)
        ]
        self.clone_traits = self._mirror_traits()
        self.state = self._initial_state()
        self.latest: dict[str, float] = {}
        self.datacollector = mesa.DataCollector(
            model_reporters={column: (lambda m, c=column: m.latest[c]) for column in RECORD_COLUMNS},
            agenttype_reporters={TumorSubclone: {"cells": "cell_count"}},
        )
        for rule in self.rules:
            if rule.name == "fields":
                rule.apply(self)
        self.record()

    @property
    def time_h(self) -> float:
        return self.cell_step * self.dt_h

    def _mirror_traits(self) -> dict[str, Any]:
        """Copy each clone trait into a device array indexed by clone index."""
        return {
            trait: self.xp.asarray(np.array([getattr(clone, trait) for clone in self.clones], dtype=np.float64))
            for trait in TumorSubclone.TRAITS
        }

    def _initial_state(self) -> LatticeState:
        """Vessels, the seed cluster with clones drawn by their fractions, and initial fields."""
        xp, config = self.xp, self.config
        shape = tuple(config.lattice.shape)
        state = LatticeState.empty(xp, shape, config.lattice.dx_um)
        coordinates = state.coordinates_um()
        center = config.tumor.initial.center_um or [extent * config.lattice.dx_um / 2.0 for extent in shape]
        distance_sq = sum((axis - c) ** 2 for axis, c in zip(coordinates, center))

        if config.vessels.pattern == "uniform" and config.vessels.density > 0:
            draw = uniform(xp, self.random_key, 0, STREAM_SETUP_VESSELS, state.voxel_index)
            outside_core = distance_sq >= config.vessels.keep_clear_um**2
            state.vessel = (draw < config.vessels.density) & outside_core

        seeded = (distance_sq <= config.tumor.initial.radius_um**2) & ~state.vessel
        draw = uniform(xp, self.random_key, 0, STREAM_SETUP_CLONES, state.voxel_index)
        edges = np.cumsum([clone.fraction for clone in config.tumor.clones])[:-1]
        clone_of_draw = xp.searchsorted(xp.asarray(edges), draw, side="right").astype(xp.int32)
        state.clone = xp.where(seeded, clone_of_draw, -1).astype(xp.int32)
        state.cell_state = xp.full(shape, CYCLING, dtype=xp.int8)

        for name, field in config.fields.items():
            state.fields[name] = xp.full(shape, field.initial, dtype=getattr(xp, field.dtype))
        return state

    def step(self) -> None:
        """Run every rule once, advance time by one cell step, record on cadence."""
        for rule in self.rules:
            rule.apply(self)
        self.cell_step += 1
        if self.cell_step % self.record_steps == 0:
            self.record()

    def measure(self) -> dict[str, float]:
        """The record of the current state (host numbers; one device sync)."""
        xp, state = self.xp, self.state
        occupied = state.clone >= 0
        by_state = self.backend.to_host(xp.bincount(state.cell_state[occupied].astype(xp.int64), minlength=4))
        by_clone = self.backend.to_host(xp.bincount(state.clone[occupied].astype(xp.int64), minlength=len(self.clones)))
        live = state.live_tumor()
        oxygen = state.fields["oxygen"]
        hypoxic = live & (oxygen < self.hypoxia.quiescence_below_mmHg)
        live_count = int(by_state[CYCLING] + by_state[QUIESCENT])
        total = int(by_state.sum())
        volume_um3 = total * state.voxel_volume_um3
        if state.ndim == 3:
            diameter_um = (6.0 * volume_um3 / math.pi) ** (1.0 / 3.0)
        else:
            diameter_um = math.sqrt(4.0 * total * state.dx_um**2 / math.pi)
        for clone in self.clones:
            clone.cell_count = int(by_clone[clone.index])
        return {
            "time_h": self.time_h,
            "time_days": self.time_h / 24.0,
            "cells_cycling": int(by_state[CYCLING]),
            "cells_quiescent": int(by_state[QUIESCENT]),
            "cells_apoptotic": int(by_state[APOPTOTIC]),
            "cells_necrotic": int(by_state[NECROTIC]),
            "tumor_cells_live": live_count,
            "tumor_cells_total": total,
            "tumor_volume_mm3": volume_um3 * 1e-9,
            "equivalent_diameter_um": diameter_um,
            "hypoxic_fraction": float(hypoxic.sum()) / live_count if live_count else 0.0,
            "oxygen_mean_mmHg": float(oxygen.mean()),
            "oxygen_min_tumor_mmHg": float(xp.where(occupied, oxygen, xp.inf).min()) if total else float("nan"),
        }

    def record(self) -> None:
        """Measure the state and hand it to Mesa's DataCollector."""
        self.latest = self.measure()
        self.datacollector.collect(self)

    def snapshot(self) -> dict[str, np.ndarray]:
        """Host copies of the per-voxel arrays, for the run directory's snapshots."""
        state = self.state
        arrays = {
            "time_h": np.asarray(self.time_h),
            "dx_um": np.asarray(state.dx_um),
            "clone": self.backend.to_host(state.clone),
            "cell_state": self.backend.to_host(state.cell_state),
            "vessel": self.backend.to_host(state.vessel),
        }
        for name, values in state.fields.items():
            arrays[f"field_{name}"] = self.backend.to_host(values)
        return arrays

    def timeseries(self):
        """The model series as a pandas DataFrame, one row per record."""
        return self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
