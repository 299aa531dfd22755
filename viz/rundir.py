"""Reading a run directory for figures and exports: :class:`abm.rundir.RunDirectory`, with viz's checks and errors.

Only NumPy, pandas and PyYAML are needed here. Snapshots load lazily, one at a
time, so an animation over many large snapshots holds one in memory.

The run directory's layout, its names and columns, and its reader are
:mod:`abm.rundir`'s: a table is read from its Parquet file, or from its
journal (``records/<table>.jsonl``) where the run did not finish (killed, or
still going), so an unfinished run reads like a finished one up to its last
record. :func:`open_run` reads ``config.yaml`` only; the tables,
``summary.json`` and each snapshot are read on first use, so a command reads
only the files it needs. :class:`RunData` adds what viz checks: a file that
cannot be read (empty, truncated, not of its format), a table without a
column viz uses (:data:`TABLE_COLUMNS`), a snapshot without an array, or a
``config.yaml`` or ``summary.json`` without a key viz uses, is one
:class:`VizError` naming the file (and the column, array or key).

Per-voxel arrays of a snapshot are every array of the lattice's shape; the
``field_<name>`` ones are substrate fields, in the units their config entry
names. Runs with immune cells add ``immune`` (agent index, -1 for none),
``immune_state`` and ``exhaustion`` (:attr:`Snapshot.immune` and its
siblings, None without them), and runs with macrophages ``polarisation``; the immune agents are named from the
resolved config (:attr:`RunData.immune_agents`), their cells per record
are in ``immune.parquet`` (:attr:`RunData.immune_series`). Arrays that later
model issues add to snapshots show up in :attr:`Snapshot.arrays` without
changes here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from abm import rundir as files
from abm.rundir import SUPPRESSOR_PRESETS, T_CELL_ROLE
from kernels.immune import T_CELL
from viz.palette import ImmuneGlyph, immune_glyph_classes, immune_glyphs, suppressor_label

#: The columns viz reads from each table of a run directory (the others are optional: figures check for them).
TABLE_COLUMNS = {
    "timeseries": ("time_h", "time_days"),
    "clones": ("time_h", "clone", "cells_live"),
    "lineage": ("clone", "name", "parent"),
    "immune": ("time_days", "agent", "name", "kind", "cells_effector", "cells_exhausted"),
    "events": files.EVENT_COLUMNS,
    files.AGENTS: files.AGENT_COLUMNS,
}
#: The sections of ``config.yaml`` viz reads (a resolved config writes each, ``arms`` last, so a truncated file lacks one).
CONFIG_SECTIONS = ("lattice", "time", "fields", "tumor", "drugs", "immune", "treatment", "arms")
#: Keys of each line of therapy in ``summary.json``'s ``treatment.lines``.
LINE_KEYS = ("line", "start_day", "end_day", "days", "ended_by")
#: Keys of each drug's entry in ``summary.json``'s ``treatment.exposure``.
EXPOSURE_KEYS = ("doses", "plasma_auc_unit_h")


class VizError(ValueError):
    """A user error of a viz command: a missing or unreadable run file, a bad option, a missing package."""


def reading(reader: Callable[..., Any], *arguments: Any, **options: Any) -> Any:
    """``reader(*arguments, **options)``, a reader of :mod:`abm.rundir`; the RunDirectoryError it raises, naming the
    file, as a VizError."""
    return files.converting(VizError, reader, *arguments, **options)


def read_columns(folder: Path, table: str, columns: tuple[str, ...]):
    """Table ``table`` of ``folder`` (:func:`abm.rundir.read_columns`: Parquet, else journal), None if it has neither.

    Raises:
        VizError: the file is unreadable, or lacks one of ``columns``, naming it.
    """
    return reading(files.read_columns, folder, table, columns)


def setting(mapping: Any, source: Path, *keys: str, kinds: tuple[type, ...] = (int, float), where: str = "") -> Any:
    """``mapping[keys[0]][keys[1]]...``, read from the file ``source`` (:func:`abm.rundir.value_at`).

    Raises:
        VizError: a key is missing, or its value is of another type, naming the file and the key.
    """
    return reading(files.value_at, mapping, source, *keys, kinds=kinds, where=where)


class Snapshot(files.Snapshot):
    """One snapshot file of a run (:class:`abm.rundir.Snapshot`); an unreadable file or a missing array or field is a
    :class:`VizError`."""

    error = VizError


@dataclass(frozen=True)
class ImmuneAgent:
    """One immune agent of a run: a T-cell clone or a suppressor type.

    Attributes:
        index: the agent index held by the snapshots' ``immune`` array.
        name: the T-cell clone's name, or the suppressor type's.
        kind: ``t_cell`` for a T-cell clone, else the suppressor type's name.
        antigen: the antigen a T-cell clone recognises; -1 for suppressors.
        code: the kind code (the ``kind`` trait): 0 for T cells, a suppressor type's slot + 1.
        role: ``t_cell`` or ``suppressor``.
    """

    index: int
    name: str
    kind: str
    antigen: int = -1
    code: int = T_CELL
    role: str = T_CELL_ROLE

    @property
    def kind_code(self) -> int:
        """The kind code of the snapshots (``agents.parquet``'s ``kind``)."""
        return self.code

    @property
    def label(self) -> str:
        """Legend text: ``anti0 (antigen 0)`` for a T-cell clone, the suppressor type's label (:func:`viz.palette.suppressor_label`)."""
        return f"{self.name} (antigen {self.antigen})" if self.role == T_CELL_ROLE else suppressor_label(self.name)


def immune_agents_of(config: dict[str, Any]) -> list[ImmuneAgent]:
    """The immune agents a resolved config declares, by index: T-cell clones in config order, then the suppressor types.

    The numbering of the model (:class:`abm.immunity.ImmuneSystem`), for run
    directories without ``agents.parquet``: suppressor types are the table
    ``immune.suppressors`` after the legacy keys' types (``SUPPRESSOR_PRESETS``);
    their kind codes are their slots + 1 (preset types first). Empty for a
    config without immune cells (or from before them).
    """
    section = config.get("immune") or {}
    clones = (section.get("t_cells") or {}).get("clones") or []
    agents = [ImmuneAgent(index, str(clone["name"]), T_CELL_ROLE, int(clone.get("antigen", -1)))
              for index, clone in enumerate(clones)]
    names = [name for key, name in SUPPRESSOR_PRESETS.items() if section.get(key) is not None]
    names += [str(name) for name in (section.get("suppressors") or {}) if name not in names]
    slots = list(dict.fromkeys([*SUPPRESSOR_PRESETS.values(), *names]))
    for name in names:
        agents.append(ImmuneAgent(len(agents), name, name, -1, slots.index(name) + 1, "suppressor"))
    return agents


def immune_agents_from_table(frame: Any) -> list[ImmuneAgent]:
    """The immune agents of ``agents.parquet`` (:data:`abm.rundir.AGENT_COLUMNS`), by index."""
    agents = []
    for row in frame.sort_values("index").to_dict("records"):
        role, name = str(row["role"]), str(row["name"])
        agents.append(ImmuneAgent(int(row["index"]), name, T_CELL_ROLE if role == T_CELL_ROLE else name,
                                  int(row.get("antigen", -1)), int(row["kind"]), role))
    return agents


class RunData(files.RunDirectory):
    """A run directory opened for reading (:class:`abm.rundir.RunDirectory`) with viz's checks: every error is a
    :class:`VizError`; tables must hold the columns of :data:`TABLE_COLUMNS`.

    Attributes:
        path: the run directory.
        config: the resolved config (``config.yaml``) as a mapping.
        snapshots: the snapshot files (:class:`Snapshot`), in step order.
    """

    error = VizError
    snapshot_type = Snapshot
    table_columns = TABLE_COLUMNS

    @cached_property
    def treatment(self) -> dict[str, Any]:
        """The ``treatment`` section of ``summary.json`` (endpoints, lines); empty if the run has none.

        Raises:
            VizError: a line of therapy or a drug's exposure lacks a key, naming the file and the key.
        """
        outcome = self.summary.get("treatment") or {}
        source = self.path / files.SUMMARY
        lines = setting(outcome, source, "lines", kinds=(list,), where="treatment") if outcome.get("lines") else []
        for number, line in enumerate(lines):
            for key in LINE_KEYS:
                setting(line, source, key, kinds=(str,) if key in ("line", "ended_by") else (int, float),
                        where=f"treatment.lines[{number}]")
        exposure = setting(outcome, source, "exposure", kinds=(dict,), where="treatment") if outcome.get("exposure") else {}
        for drug, values in exposure.items():
            for key in EXPOSURE_KEYS:
                setting(values, source, key, where=f"treatment.exposure.{drug}")
        return outcome

    @cached_property
    def immune_agents(self) -> list[ImmuneAgent]:
        """The run's immune agents by index: ``agents.parquet``, else (a run from before it) :func:`immune_agents_of` its
        config; empty without immune cells."""
        table = self.agents
        if table is not None:
            try:
                return immune_agents_from_table(table)
            except (AttributeError, KeyError, TypeError, ValueError):
                raise VizError(f"{files.table_path(self.path, files.AGENTS)}: not a table of immune agents (columns "
                               f"{', '.join(files.AGENT_COLUMNS)})") from None
        try:
            return immune_agents_of(self.config)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise VizError(f"{self.path / files.CONFIG}: immune is not a section of T-cell clones (each with a name and "
                           f"an antigen) and suppressors (not written by this version of tme?)") from None

    @property
    def has_immune(self) -> bool:
        """Whether the run's config declares any immune cell."""
        return bool(self.immune_agents)

    def immune_agent_kinds(self) -> np.ndarray:
        """``int8 (n_agents,)``: each immune agent's kind code (0 for T cells, a suppressor type's slot + 1)."""
        return np.array([agent.kind_code for agent in self.immune_agents], dtype=np.int8)

    @property
    def immune_glyphs(self) -> tuple[ImmuneGlyph, ...]:
        """The glyphs by glyph class (:func:`viz.palette.immune_glyphs`), suppressors labelled by the run's type names."""
        slots = list(SUPPRESSOR_PRESETS.values())
        for agent in self.immune_agents:
            if agent.role != T_CELL_ROLE:
                slots += [f"suppressor {slot}" for slot in range(len(slots), agent.code)]
                slots[agent.code - 1] = agent.name
        return immune_glyphs(slots)

    def immune_glyph_classes(self, snapshot: Snapshot) -> np.ndarray | None:
        """``int8``, lattice shape: glyph class of each voxel's immune cell (:func:`viz.palette.immune_glyph_classes`).

        -1 where no immune cell; None when the snapshot has no immune arrays.
        """
        if not snapshot.has_immune:
            return None
        return immune_glyph_classes(snapshot.immune, snapshot.immune_state, self.immune_agent_kinds())

    def clone_name(self, index: int) -> str:
        """Name of clone ``index``: from the lineage, else the config (``clone <index>`` if neither has it)."""
        lineage = self.lineage
        if lineage is not None and 0 <= index < len(lineage):
            return str(lineage["name"].iloc[index])
        clones = _section(self.config, "tumor").get("clones") or []
        found = clones[index] if isinstance(clones, list) and index < len(clones) else None
        return str(found["name"]) if isinstance(found, dict) and "name" in found else f"clone {index}"

    def field_units(self, name: str) -> str:
        """Units of field ``name`` from the config (empty if it names none)."""
        return str(_section(_section(self.config, "fields"), name).get("units") or "")


def _section(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    """``mapping[key]`` where it is a mapping, else empty (an optional section of a config)."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _check_config(run: RunData) -> None:
    """The sections and keys of ``config.yaml`` every viz command uses: VizError naming the file and the key without them."""
    missing = [section for section in CONFIG_SECTIONS if section not in run.config]
    if missing:
        raise VizError(f"{run.path / files.CONFIG}: no {', '.join(missing)} (a truncated file, or not the resolved "
                       f"config tme run writes?)")
    shape = run.shape
    if len(shape) not in (2, 3) or not all(isinstance(extent, int) and extent > 0 for extent in shape):
        raise VizError(f"{run.path / files.CONFIG}: lattice.shape is {list(shape)!r}, not 2 or 3 positive whole numbers")
    run.dx_um, run.dt_cell_h  # noqa: B018 - each raises without its key


def open_run(path: str | Path) -> RunData:
    """Open the run directory ``path`` (made by ``tme run``; finished, or stopped before its end).

    Reads ``config.yaml`` only (:meth:`abm.rundir.RunDirectory.open`); the tables, ``summary.json`` and the snapshots
    are read on first use.

    Raises:
        VizError: no such directory, no ``config.yaml`` in it, or one that cannot be read or lacks a key viz uses.
    """
    run = RunData.open(path)
    _check_config(run)
    return run
