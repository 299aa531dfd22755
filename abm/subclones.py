"""The tumor subclones of a model: Mesa agents, the host trait table and its device mirror, founding of new clones.

The founding clones come from the config; a daughter that mutates
(reported by the division kernel) founds a new :class:`abm.agents.TumorSubclone`,
made on the host between kernels from the mutants' positions and parents (a
loop over new clones, never over cells). The trait table grows by those
rows and is mirrored to the device again.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np

from abm import clones as clone_table
from abm.agents import TumorSubclone
from abm.config import MAX_ANTIGENS, Config
from abm.streams import STREAM_MUTATION_TRAITS
from kernels.random import uniform

if TYPE_CHECKING:
    from abm.step import StepContext


class Subclones:
    """The subclones of one model, ordered by index (founding clones first).

    Args:
        model: the Mesa model the agents belong to.
        config: the whole config (its ``tumor`` section and drugs).
        xp: the array module of the device mirror.

    Attributes:
        agents: the :class:`TumorSubclone` agents, by index.
        traits: the host trait table (:mod:`abm.clones`), one row per clone.
        device: the same columns on the device (``float64``; ``antigens`` ``uint64``), and
            ``antigen_bits``, ``float64`` ``(n_clones, 64)``: 1 where the clone presents the antigen.
        mutations_total: daughters that mutated so far; ``mutations_suppressed`` of them
            founded no clone because ``tumor.mutation.max_clones`` was reached.
    """

    def __init__(self, model: mesa.Model, config: Config, xp: Any) -> None:
        self.model = model
        self.config = config
        self.xp = xp
        self.max_division_rate_per_h = math.log(2.0) / config.time.dt_cell_h
        self.traits = clone_table.founding_table(config)
        self.agents: list[TumorSubclone] = []
        self.mutations_total = 0
        self.mutations_suppressed = 0
        founding = config.tumor.clones
        self._add(self.traits, [clone.name for clone in founding], [None] * len(founding), 0.0, [None] * len(founding))

    def __len__(self) -> int:
        return len(self.agents)

    @property
    def mutating(self) -> bool:
        """Whether any clone can mutate (then the division rule looks for mutant daughters)."""
        return bool(self.traits["mutation_rate"].max() > 0)

    def _add(self, rows: clone_table.CloneTable, names: list[str], parents: list[TumorSubclone | None],
             birth_time_h: float, origins: list[tuple[float, ...] | None]) -> None:
        """Create one agent per row of ``rows`` (indices continue from the existing clones) and mirror the table."""
        first = len(self.agents)
        for offset, (name, parent, origin) in enumerate(zip(names, parents, origins)):
            traits = {column: values[offset] for column, values in rows.items()}
            self.agents.append(TumorSubclone(self.model, first + offset, name, traits, parent, birth_time_h, origin))
        self._mirror()

    def _mirror(self) -> None:
        """Copy the trait table to the device (:attr:`device`)."""
        xp = self.xp
        self.device = {column: xp.asarray(values) for column, values in self.traits.items()}
        bits = (self.traits["antigens"][:, None] >> np.arange(MAX_ANTIGENS, dtype=np.uint64)) & np.uint64(1)
        self.device["antigen_bits"] = xp.asarray(bits.astype(np.float64))

    def restore(self, traits: clone_table.CloneTable, agents: list[tuple], mutations: tuple[int, int]) -> None:
        """Take the clones of a checkpoint (:mod:`abm.checkpoint`) into these just founded: the clones founded by
        mutation become agents again, in index order (so Mesa numbers them as it did), and the table is mirrored.

        Args:
            traits: the whole trait table, one row per clone (founding clones first).
            agents: per clone, ``(name, parent index or None, birth_time_h, origin_um, cell_count, live_cell_count)``.
            mutations: ``(mutations_total, mutations_suppressed)``.
        """
        self.traits = {column: values.copy() for column, values in traits.items()}
        for index, (name, parent, birth_time_h, origin, _, _) in enumerate(agents[len(self.agents):], len(self.agents)):
            row = {column: values[index] for column, values in traits.items()}
            self.agents.append(TumorSubclone(self.model, index, name, row, self.agents[parent], birth_time_h, origin))
        for agent, (_, _, _, _, cells, live) in zip(self.agents, agents):
            agent.cell_count, agent.live_cell_count = cells, live
        self.mutations_total, self.mutations_suppressed = mutations
        self._mirror()

    def found(self, context: "StepContext", mutants: Any) -> None:
        """Give each mutant daughter a new clone: agents, trait rows, the device mirror, the lattice's ``tumor.clone``.

        One scalar is copied from the device (the number of mutants); only in
        steps with mutants are their positions and parents copied too.
        Mutants beyond ``tumor.mutation.max_clones`` keep their parent's clone.

        Args:
            context: the step's context (its lattice, clock and random key).
            mutants: bool, lattice shape: daughters that mutated this step.
        """
        xp, lattice, backend = self.xp, context.lattice, context.run.backend
        count = int(mutants.sum())
        if count == 0:
            return
        self.mutations_total += count
        room = self.config.tumor.mutation.max_clones - len(self.agents)
        kept = max(0, min(count, room))
        self.mutations_suppressed += count - kept
        if kept == 0:
            return
        positions = xp.flatnonzero(mutants.reshape(-1))[:kept]  # ascending voxel order: independent of the device
        clone = xp.ascontiguousarray(lattice.tumor.clone)
        flat = clone.reshape(-1)
        parents = backend.to_host(flat[positions]).astype(np.int64)
        positions_host = backend.to_host(positions).astype(np.uint64)
        first = len(self.agents)
        flat[positions] = xp.arange(first, first + kept, dtype=xp.int32)
        lattice.tumor = lattice.tumor.replace(clone=clone)

        def draw(offset: int) -> np.ndarray:
            return uniform(np, context.run.random_key, context.step, STREAM_MUTATION_TRAITS + offset, positions_host)

        rows = clone_table.mutant_table(clone_table.rows(self.traits, parents), self.config.tumor.mutation,
                                        self.config.drug_names, draw, self.max_division_rate_per_h)
        self.traits = clone_table.append(self.traits, rows)
        coordinates = np.unravel_index(positions_host.astype(np.int64), lattice.shape)
        origins = [tuple(float((axis[k] + 0.5) * lattice.dx_um) for axis in coordinates) for k in range(kept)]
        parent_agents = [self.agents[parent] for parent in parents]
        names = [f"{parent.root.name}/{first + k}" for k, parent in enumerate(parent_agents)]
        self._add(rows, names, parent_agents, (context.step + 1) * context.run.dt_h, origins)

    def lineage(self, ndim: int, first: int = 0):
        """One row per clone ever present, from clone ``first`` on: index, name, parent, founding clone, birth, origin
        and traits.

        ``parent`` is -1 for founding clones; ``origin_*_um`` are the founding
        daughter's coordinates (NaN for founding clones); ``antigens`` is the
        neoantigen set as a 64-bit mask (bit k = antigen k). The run's journal
        asks only for the clones founded since its last record.
        """
        import pandas

        axes = "zyx"[3 - ndim:]
        clones = self.agents[first:]
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
