"""The immune system of a model: its agents, their traits on the device, the systemic priming compartment, its records.

Immune agents are numbered in one table (the value of ``immune`` in the
lattice): the T-cell clones of the config first, then the suppressor types
of the config's table ``immune.suppressors`` in table order. Their traits are mirrored into device
arrays indexed by agent (:attr:`ImmuneSystem.traits`).

Priming (per T-cell clone ``j`` with antigen ``a_j``, all on the device):
the release of antigen ``k`` in a step is the sum of the priming field (the
antigen / danger signal) over voxels whose tumor cell presents ``k``; the
clone's activation is ``A = R / (R + half_saturation)`` of the release
``delay_h`` earlier (a ring buffer of past releases); its systemic pool
``P`` grows as ``dP/dt = expansion x A x P (1 - P / max_pool)`` (one
exponential step per cell step, bounded by ``max_pool`` as the logistic
solution is) and relaxes
toward its precursors at ``contraction x (1 - A)``; drugs in plasma kill
it at the sum of their kinds' systemic kill rates on T cells
(lymphodepletion; :mod:`abm.config.drugs`). The primed cells above the precursors,
``P - precursors``, are the cells blood can deliver.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np

from abm.agents import SuppressorType, TCellClone
from abm.rundir import suppressor_column
from abm.config import IMMUNE_DRUG_SENSITIVITY, T_CELL_ROLE, Config, margin_steps, movement_substeps
from kernels.immune import T_CELL, KillParameters
from kernels.lattice import neighbour_indices, shifted
from kernels.layers import EFFECTOR, EXHAUSTED

if TYPE_CHECKING:
    from abm.step import StepContext

#: Immune columns of the timeseries around the suppressor counts (:func:`immune_columns`).
IMMUNE_COLUMNS_BEFORE = ("t_cells_effector", "t_cells_exhausted")
IMMUNE_COLUMNS_AFTER = (
    "t_cells_in_tumor", "cd8_density_core_per_mm3", "cd8_density_margin_per_mm3", "immune_kills_total", "immune_kills_per_h",
    "immune_drug_deaths_total", "primed_pool_total", "fraction_pdl1_positive",
)
#: Immune columns that are NaN where they have no data: no tumor core or margin (the CD8 densities), no live tumor cell.
IMMUNE_NO_DATA_COLUMNS = ("cd8_density_core_per_mm3", "cd8_density_margin_per_mm3", "fraction_pdl1_positive")
IMMUNE_SERIES_COLUMNS = ("time_h", "time_days", "agent", "name", "kind", "antigen", "cells_effector",
                         "cells_exhausted", "primed_pool", "activation")
#: The column ``immune.parquet`` adds in a run with a macrophage type: the mean polarisation of the type's cells on
#: the lattice (0 M1-like to 1 M2-like; NaN without cells, and for T-cell clones and other suppressor types).
POLARISATION_COLUMN = "polarisation_mean"
#: Bound on a priming step's growth exponent, (expansion - depletion) x dt: exp() of it stays finite.
MAX_GROWTH_EXPONENT = 700.0


def immune_series_columns(config: Config) -> tuple[str, ...]:
    """The columns of ``immune.parquet``: :data:`IMMUNE_SERIES_COLUMNS`, and :data:`POLARISATION_COLUMN` with a
    macrophage type."""
    return IMMUNE_SERIES_COLUMNS + ((POLARISATION_COLUMN,) if config.immune.macrophages else ())


def immune_columns(config: Config) -> tuple[str, ...]:
    """The immune columns of the timeseries: T-cell counts, one count per suppressor slot (the preset types always), the rest."""
    counts = tuple(suppressor_column(name) for name in config.immune.suppressor_slots)
    return IMMUNE_COLUMNS_BEFORE + counts + IMMUNE_COLUMNS_AFTER


class ImmuneSystem:
    """Immune agents, their device traits and the priming compartment of one model.

    Args:
        model: the Mesa model the agents belong to.
        config: the whole config (its ``immune`` section, the step, the lattice and the drugs).
        xp: the array module of the device arrays.

    Attributes:
        agents: the immune agents in table order (:class:`TCellClone` first, then :class:`SuppressorType`).
        t_clones: the T-cell clones (indices ``0 .. n_t - 1``).
        suppressors: suppressor type name -> agent, in the config's table order.
        traits: device arrays per agent: ``kind`` (int8), ``antigen`` (int64),
            ``speed_um_per_min``, ``bias``, ``death_per_h``,
            ``exhausted_death_per_h`` and ``sensitivity_<drug>`` (float64).
        pool: device ``float64`` ``(n_t,)``, the systemic pools; ``activation`` likewise.
        substeps: movement substeps per cell step (a cell moves at most one voxel per substep).
        kills_at_last_record, time_at_last_record_h: the immune kills so far and the time (h) at the last record,
            from which a record's ``immune_kills_per_h`` is computed.
    """

    def __init__(self, model: mesa.Model, config: Config, xp: Any) -> None:
        dt_h = config.time.dt_cell_h
        self.config = config.immune
        t_cells = self.config.t_cells
        self.agents: list[Any] = []
        self.t_clones = [TCellClone(model, index, clone.name, clone.antigen, clone.precursors)
                         for index, clone in enumerate(t_cells.clones)]
        self.agents += self.t_clones
        self.suppressors: dict[str, SuppressorType] = {}
        codes = self.config.kind_codes
        for kind, section in self.config.suppressors.items():
            agent = SuppressorType(model, len(self.agents), kind, codes[kind], section.role)
            self.suppressors[kind] = agent
            self.agents.append(agent)
        #: Kind codes: one per suppressor slot beside the T cells' (slots of types the config lacks have no cells).
        self.n_kinds = 1 + len(self.config.suppressor_slots)
        sections = [t_cells] * len(self.t_clones) + list(self.config.suppressors.values())
        kinds = [T_CELL] * len(self.t_clones) + [agent.code for agent in self.suppressors.values()]
        host = {
            "kind": np.array(kinds, dtype=np.int8),
            "antigen": np.array([clone.antigen for clone in self.t_clones] + [-1] * len(self.suppressors), dtype=np.int64),
            "speed_um_per_min": np.array([section.motility.speed_um_per_min for section in sections], dtype=np.float64),
            "bias": np.array([section.motility.chemotaxis_bias for section in sections], dtype=np.float64),
            "death_per_h": np.array([1.0 / section.lifespan_h for section in sections], dtype=np.float64),
            "exhausted_death_per_h": np.array(
                [1.0 / t_cells.exhausted_lifespan_h] * len(self.t_clones) + [1.0 / s.lifespan_h for s in sections[len(self.t_clones):]],
                dtype=np.float64),
        }
        for drug in config.drug_names:
            host[f"sensitivity_{drug}"] = np.array(
                [section.drug_sensitivity.get(drug, IMMUNE_DRUG_SENSITIVITY) for section in sections], dtype=np.float64)
        self.host_traits = host
        self.traits = {name: xp.asarray(values) for name, values in host.items()}
        self.kind_fields = {T_CELL: t_cells.motility.chemotaxis_field}
        self.kind_fields.update({agent.code: self.config.suppressors[kind].motility.chemotaxis_field
                                 for kind, agent in self.suppressors.items()})
        self.kill = KillParameters(t_cells.kill_rate_per_h, t_cells.pdl1_inhibition,
                                   t_cells.exhaustion_per_kill, t_cells.exhaustion_per_engagement_h)
        max_speed = float(host["speed_um_per_min"].max()) if self.agents else 0.0
        self.substeps = movement_substeps(max_speed, dt_h, config.lattice.dx_um)

        n_t = len(self.t_clones)
        self.precursors = xp.asarray(np.array([clone.precursors for clone in self.t_clones], dtype=np.float64))
        self.pool = self.precursors.copy()
        self.activation = xp.zeros(n_t, dtype=xp.float64)
        self.delay_steps = round(t_cells.priming.delay_h / dt_h)
        self.release_history = xp.zeros((max(self.delay_steps, 1), n_t), dtype=xp.float64)
        self.kills_at_last_record = 0
        self.time_at_last_record_h = 0.0

    @property
    def enabled(self) -> bool:
        """Whether the config has any immune cell."""
        return bool(self.agents)

    def agent_table(self):
        """The agents as ``agents.parquet`` holds them (:data:`abm.rundir.AGENT_COLUMNS`, then the traits), one row per agent."""
        import pandas

        columns = {
            "index": np.arange(len(self.agents), dtype=np.int64),
            "kind": self.host_traits["kind"],
            "name": [agent.name for agent in self.agents],
            "role": [getattr(agent, "role", T_CELL_ROLE) for agent in self.agents],
            "parent": np.full(len(self.agents), -1, dtype=np.int64),
        }
        columns.update({name: values for name, values in self.host_traits.items() if name != "kind"})
        return pandas.DataFrame(columns)

    def kind_of(self, xp: Any, immune: Any) -> Any:
        """``int8``, the shape of ``immune`` (agent indices, any shape): the kind of each cell, -1 where none."""
        return xp.where(immune >= 0, self.traits["kind"][xp.maximum(immune, 0)], -1).astype(xp.int8)

    # ------------------------------------------------------------------ priming

    def prime(self, context: "StepContext") -> None:
        """One step of the priming compartment: antigen release, delayed activation, pool growth and contraction."""
        if not self.t_clones:
            return
        xp, lattice, dt_h = context.xp, context.lattice, context.run.dt_h
        priming = self.config.t_cells.priming
        clone = lattice.tumor.clone
        occupied = clone >= 0
        per_clone = xp.bincount(clone[occupied].astype(xp.int64),
                                weights=lattice.fields[priming.field][occupied].astype(xp.float64),
                                minlength=len(context.subclones))
        release = (per_clone @ context.subclones.device["antigen_bits"])[self.traits["antigen"][: len(self.t_clones)]]
        if self.delay_steps > 0:
            slot = context.step % self.delay_steps
            delayed = self.release_history[slot].copy()
            self.release_history[slot] = release
        else:
            delayed = release
        self.activation = delayed / (delayed + priming.half_saturation)
        growth = priming.expansion_per_h * self.activation * (1.0 - self.pool / priming.max_pool)
        exponent = xp.minimum((growth - self._depletion_per_h(context)) * dt_h, MAX_GROWTH_EXPONENT)
        # Logistic growth never passes max_pool from below (a pool above it, from precursors above it, only
        # shrinks). The exponential step overshoots it once expansion x dt passes 1; without the bound a huge
        # expansion rate took the pool to inf, and the next step to NaN (inf x exp(-inf)). Within the bound
        # the step is unchanged; the overflow of pool x exp(...) before it is intended.
        with np.errstate(over="ignore"):
            self.pool = xp.minimum(self.pool * xp.exp(exponent), xp.maximum(self.pool, priming.max_pool))
        relax = xp.exp(-priming.contraction_per_h * (1.0 - self.activation) * dt_h)
        self.pool = self.precursors + (self.pool - self.precursors) * relax

    def _depletion_per_h(self, context: "StepContext") -> float:
        """Kill rate of the circulating T cells by the drugs' plasma levels (lymphodepletion), 1/h: the drugs' systemic kill rates summed."""
        rate = 0.0
        sensitivity = self.config.t_cells.drug_sensitivity
        fields = context.run.config.fields
        for name, drug in context.run.drug_actions["systemic_kill_rate"]:
            vessel = fields[name].vessel
            plasma = context.therapy.plasma.get(name, vessel.blood_level) if vessel is not None else 0.0
            rate += drug.systemic_kill_rate(plasma, sensitivity.get(name, IMMUNE_DRUG_SENSITIVITY))
        return rate

    def primed_weights(self, xp: Any) -> Any:
        """Primed cells above the precursors per T-cell clone (``float64`` ``(n_t,)``), never negative."""
        return xp.maximum(self.pool - self.precursors, 0.0)

    # ------------------------------------------------------------------ local factors

    def suppression(self, context: "StepContext", index: Any) -> Any:
        """Factor in [0, 1] on T-cell killing and motility at listed voxels: the cytokine and the suppressors in contact
        (a macrophage type's inhibition times the highest polarisation among its cells in contact).

        Args:
            index: ``int64``, shape ``(n,)``: flat voxel indices (the T cells').

        Returns:
            ``float64``, shape ``(n,)``.
        """
        xp, lattice = context.xp, context.lattice
        t_cells = self.config.t_cells
        factor = xp.ones(index.shape, dtype=xp.float64)
        if t_cells.suppression_field is not None:
            factor = factor / (1.0 + lattice.fields[t_cells.suppression_field].reshape(-1)[index] / t_cells.suppression_ec50)
        contacts = [(agent.code, self.config.suppressors[kind].contact_inhibition, kind in self.config.macrophages)
                    for kind, agent in self.suppressors.items() if self.config.suppressors[kind].contact_inhibition > 0]
        if contacts:
            inside, kinds = self._contacts(context, index, context.run.offsets)
            for code, inhibition, macrophage in contacts:
                if macrophage:  # scaled by the most M2-like macrophage of the type in contact
                    factor = factor * (1.0 - inhibition * self._most_m2(context, inside, kinds, code))
                else:
                    factor = factor * xp.where((kinds == code).any(axis=1), 1.0 - inhibition, 1.0)
        return factor

    def vessel_regression_factor(self, context: "StepContext", index: Any) -> Any:
        """Factor in [0, 1] on the regression rate of immature vessels at listed voxels: for each macrophage type with a
        ``vessel_support``, ``1 - vessel_support x`` the highest polarisation among its cells in the voxel or its Moore
        neighbourhood (M2-like macrophages keep new vessels; docs/model.md, Macrophages).

        Args:
            index: ``int64``, shape ``(n,)``: flat voxel indices (the immature vessels').

        Returns:
            ``float64``, shape ``(n,)``.
        """
        xp = context.xp
        factor = xp.ones(index.shape, dtype=xp.float64)
        supporting = [(self.suppressors[name].code, section.vessel_support)
                      for name, section in self.config.macrophages.items() if section.vessel_support > 0]
        if supporting:
            inside, kinds = self._contacts(context, index, [(0,) * context.lattice.ndim] + context.run.offsets)
            for code, support in supporting:
                factor = factor * (1.0 - support * self._most_m2(context, inside, kinds, code))
        return factor

    def _contacts(self, context: "StepContext", index: Any, offsets: list[tuple[int, ...]]) -> tuple[Any, Any]:
        """The voxels at ``offsets`` from listed voxels (``int64`` ``(n, K)``, 0 outside) and the kind of the immune cell
        in each (``int8`` ``(n, K)``, -1 where none or outside)."""
        xp, lattice = context.xp, context.lattice
        neighbour = neighbour_indices(xp, lattice.shape, index, offsets)
        inside = xp.maximum(neighbour, 0)
        return inside, self.kind_of(xp, xp.where(neighbour >= 0, lattice.immune.agent.reshape(-1)[inside], -1))

    @staticmethod
    def _most_m2(context: "StepContext", inside: Any, kinds: Any, code: int) -> Any:
        """``float64`` ``(n,)``: the highest polarisation (a macrophage's ``exhaustion``) among the cells of kind ``code``
        at ``inside`` (``(n, K)``, from :meth:`_contacts`), 0 where none."""
        xp = context.xp
        m2 = xp.where(kinds == code, context.lattice.immune.exhaustion.reshape(-1)[inside].astype(xp.float64), 0.0)
        return m2.max(axis=1)

    def occupancy(self, context: "StepContext", index: Any) -> Any:
        """PD-1 occupancy at listed voxels (``int64`` ``(n,)`` flat indices): ``1 - prod(1 - occupancy)`` over the drugs
        whose kind blocks PD-1 (``float64`` ``(n,)``; the scalar 0 without)."""
        free = 1.0
        for name, drug in context.run.drug_actions["pd1_occupancy"]:
            free = free * (1.0 - drug.pd1_occupancy(context.xp, context.lattice.fields[name].reshape(-1)[index]))
        return 1.0 - free

    # ------------------------------------------------------------------ records

    def measure(self, context: "StepContext") -> dict[str, float]:
        """The immune columns of a record (host numbers), and the per-agent counts on the agents."""
        xp, lattice, backend = context.xp, context.lattice, context.run.backend
        cells = lattice.immune
        occupied = cells.occupied()
        kinds = context.immune_kinds()
        t_cell = kinds == T_CELL
        effector = t_cell & (cells.state == EFFECTOR)
        exhausted = t_cell & (cells.state == EXHAUSTED)
        n = len(self.agents)
        per_agent = [backend.to_host(xp.bincount(cells.agent[mask].astype(xp.int64), minlength=n)).tolist()
                     for mask in (effector, exhausted, occupied)]
        pool = backend.to_host(self.pool).tolist()
        activation = backend.to_host(self.activation).tolist()
        for index, clone in enumerate(self.t_clones):
            clone.cells_effector, clone.cells_exhausted = per_agent[0][index], per_agent[1][index]
            clone.primed_pool, clone.activation = pool[index], activation[index]
        for agent in self.suppressors.values():
            agent.cells = per_agent[2][agent.index]
            if agent.kind in self.config.macrophages:  # a macrophage's polarisation is its exhaustion array
                mine = cells.agent == agent.index
                agent.polarisation_mean = float(cells.exhaustion[mine].astype(xp.float64).mean()) if agent.cells \
                    else math.nan
        tumor = lattice.tumor.occupied()
        core, margin = self._core_and_margin(context, tumor)
        mm3_per_voxel = lattice.voxel_volume_um3 * 1e-9
        live = context.live_tumor()
        live_total = int(live.sum())
        pdl1 = context.subclones.device["pdl1"][xp.maximum(lattice.tumor.clone, 0)]
        positive = int((live & (pdl1 >= self.config.pdl1_positive_at)).sum())
        kills = int(context.totals.immune_kills)
        elapsed_h = context.time_h - self.time_at_last_record_h
        kills_per_h = (kills - self.kills_at_last_record) / elapsed_h if elapsed_h > 0 else 0.0
        self.kills_at_last_record, self.time_at_last_record_h = kills, context.time_h

        def density(region: Any) -> float:
            voxels = int(region.sum())
            return float((t_cell & region).sum()) / (voxels * mm3_per_voxel) if voxels else math.nan

        counts = {suppressor_column(name): int((kinds == slot + 1).sum()) for slot, name in enumerate(self.config.suppressor_slots)}
        return {
            "t_cells_effector": int(effector.sum()),
            "t_cells_exhausted": int(exhausted.sum()),
            **counts,
            "t_cells_in_tumor": int((t_cell & tumor).sum()),
            "cd8_density_core_per_mm3": density(core),
            "cd8_density_margin_per_mm3": density(margin),
            "immune_kills_total": kills,
            "immune_kills_per_h": kills_per_h,
            "immune_drug_deaths_total": int(context.totals.immune_drug_deaths),
            "primed_pool_total": float(sum(pool)),
            "fraction_pdl1_positive": positive / live_total if live_total else math.nan,
        }

    def _core_and_margin(self, context: "StepContext", tumor: Any) -> tuple[Any, Any]:
        """Tumor core (deeper than ``margin_um`` inside the border) and invasive margin (within ``margin_um`` of it, both sides).

        The border is that of the tumor mask closed by two voxels (dilated,
        then eroded), so vessels and cleared voxels inside the tumor do not
        count as border.
        """
        xp, offsets = context.xp, context.run.offsets
        steps = margin_steps(self.config.margin_um, context.lattice.dx_um)
        filled = _erode(xp, offsets, _dilate(xp, offsets, tumor, 2), 2)
        core = _erode(xp, offsets, filled, steps)
        return core, _dilate(xp, offsets, filled, steps) & ~core


def _dilate(xp: Any, offsets: list[tuple[int, ...]], mask: Any, steps: int) -> Any:
    """``mask`` grown by ``steps`` Moore neighbourhoods."""
    for _ in range(steps):
        grown = mask.copy()
        for offset in offsets:
            grown |= shifted(xp, mask, offset, False)
        mask = grown
    return mask


def _erode(xp: Any, offsets: list[tuple[int, ...]], mask: Any, steps: int) -> Any:
    """``mask`` shrunk by ``steps`` Moore neighbourhoods (outside the domain counts as outside the mask)."""
    for _ in range(steps):
        kept = mask.copy()
        for offset in offsets:
            kept &= shifted(xp, mask, offset, False)
        mask = kept
    return mask
