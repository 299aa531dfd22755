"""Reading a run directory (see :mod:`abm.rundir` for its layout) for figures and exports.

Only NumPy, pandas and PyYAML are needed here. Snapshots load lazily, one at a
time, so an animation over many large snapshots holds one in memory.

Every file is read through :mod:`abm.rundir`'s readers: a table from its
Parquet file, or from its journal (``records/<table>.jsonl``) where the run
did not finish (killed, or still going), so an unfinished run reads like a
finished one up to its last record. :func:`open_run` reads ``config.yaml``
only; the tables, ``summary.json`` and each snapshot are read on first use,
so a command reads only the files it needs. A file that cannot be read
(empty, truncated, not of its format), a table without a column viz uses, a
snapshot without an array, or a ``config.yaml`` or ``summary.json`` without a
key viz uses, is one :class:`VizError` naming the file (and the column,
array or key).

Per-voxel arrays of a snapshot are every array of the lattice's shape; the
``field_<name>`` ones are substrate fields, in the units their config entry
names. Runs with immune cells add ``immune`` (agent index, -1 for none),
``immune_state`` and ``exhaustion`` (:attr:`Snapshot.immune` and its
siblings, None without them); the immune agents are named from the
resolved config (:attr:`RunData.immune_agents`), their cells per record
are in ``immune.parquet`` (:attr:`RunData.immune_series`). Arrays that later
model issues add to snapshots show up in :attr:`Snapshot.arrays` without
changes here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from abm import rundir as files
from abm.io import RunDirectoryError
from abm.therapy import EVENT_COLUMNS
from kernels.immune import KIND_NAMES
from viz.palette import immune_glyph_classes


FIELD_PREFIX = "field_"
#: Readable names of the immune kinds of :data:`kernels.immune.KIND_NAMES`.
IMMUNE_KIND_LABELS = {"t_cell": "T cell", "treg": "Treg", "mdsc": "MDSC"}
_SNAPSHOT_NAME = re.compile(r"^step_(\d{8})\.npz$")
#: The columns viz reads from each table of a run directory (the others are optional: figures check for them).
TABLE_COLUMNS = {
    "timeseries": ("time_h", "time_days"),
    "clones": ("time_h", "clone", "cells_live"),
    "lineage": ("clone", "name", "parent"),
    "immune": ("time_days", "agent", "name", "kind", "cells_effector", "cells_exhausted"),
    "events": EVENT_COLUMNS,
}
#: The result file of a ``tme compare`` directory (told apart from a run directory by it).
COMPARE_RESULT = "compare.json"
#: The sections of ``config.yaml`` viz reads (a resolved config writes each, ``arms`` last, so a truncated file lacks one).
CONFIG_SECTIONS = ("lattice", "time", "fields", "tumor", "drugs", "immune", "treatment", "arms")
#: The arrays every snapshot holds.
SNAPSHOT_ARRAYS = ("time_h", "dx_um", "clone", "cell_state", "vessel")
#: Keys of each line of therapy in ``summary.json``'s ``treatment.lines``.
LINE_KEYS = ("line", "start_day", "end_day", "days", "ended_by")
#: Keys of each drug's entry in ``summary.json``'s ``treatment.exposure``.
EXPOSURE_KEYS = ("doses", "plasma_auc_unit_h")


class VizError(ValueError):
    """A user error of a viz command: a missing or unreadable run file, a bad option, a missing package."""


def reading(reader: Callable[..., Any], *arguments: Any) -> Any:
    """``reader(*arguments)``, a reader of :mod:`abm.rundir`; the RunDirectoryError it raises, naming the file, as a VizError."""
    try:
        return reader(*arguments)
    except RunDirectoryError as exc:
        raise VizError(str(exc)) from None


def read_columns(folder: Path, table: str, columns: tuple[str, ...]):
    """Table ``table`` of ``folder`` (:func:`abm.rundir.read_table`: Parquet, else journal), None if it has neither.

    Raises:
        VizError: the file is unreadable, or lacks one of ``columns``, naming it.
    """
    frame = reading(files.read_table, folder, table)
    missing = [column for column in columns if frame is not None and column not in frame.columns]
    if missing:
        source = files.table_path(folder, table)
        source = source if source.is_file() else files.journal_path(folder, table)
        raise VizError(f"{source}: no column {', '.join(missing)} (not a {table} table written by tme?)")
    return frame


_KIND_NAMES = {int: "number", float: "number", list: "list", dict: "mapping", str: "text"}


def setting(mapping: Any, source: Path, *keys: str, kinds: tuple[type, ...] = (int, float), where: str = "") -> Any:
    """``mapping[keys[0]][keys[1]]...``, read from the file ``source``; a value of one of ``kinds`` (not a bool).

    Args:
        where: the dotted key of ``mapping`` itself in the file, for messages (empty: the file's top level).

    Raises:
        VizError: a key is missing, or its value is of another type, naming the file and the key.
    """
    value: Any = mapping
    names = [where] if where else []
    for key in keys:
        names.append(key)
        if not isinstance(value, dict) or key not in value:
            raise VizError(f"{source}: no {'.'.join(names)} (not written by this version of tme?)")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = " or ".join(dict.fromkeys(_KIND_NAMES.get(kind, kind.__name__) for kind in kinds))
        raise VizError(f"{source}: {'.'.join(names)} is {value!r}, not a {wanted}")
    return value


@dataclass(frozen=True)
class Snapshot:
    """One snapshot file of a run.

    Attributes:
        path: the ``.npz`` file.
        step: cell step after which it was taken.
    """

    path: Path
    step: int

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array in the file (read on first use).

        Raises:
            VizError: the file is unreadable or lacks an array of :data:`SNAPSHOT_ARRAYS`, naming it.
        """
        arrays = reading(files.read_snapshot, self.path)
        missing = [name for name in SNAPSHOT_ARRAYS if name not in arrays]
        if missing:
            raise VizError(f"{self.path}: no array {', '.join(missing)} (not a snapshot written by tme?)")
        return arrays

    @property
    def time_h(self) -> float:
        """Simulated time of the snapshot, hours."""
        return float(self.arrays["time_h"])

    @property
    def dx_um(self) -> float:
        """Voxel edge, um."""
        return float(self.arrays["dx_um"])

    @property
    def clone(self) -> np.ndarray:
        """``int32``, lattice shape: clone index, -1 where no tumor cell."""
        return self.arrays["clone"]

    @property
    def cell_state(self) -> np.ndarray:
        """``int8``, lattice shape: tumor cell state code (:mod:`kernels.tumor`)."""
        return self.arrays["cell_state"]

    @property
    def vessel(self) -> np.ndarray:
        """``bool``, lattice shape: vessel voxels."""
        return self.arrays["vessel"].astype(bool)

    @property
    def shape(self) -> tuple[int, ...]:
        """Lattice shape, ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return tuple(self.clone.shape)

    @property
    def immune(self) -> np.ndarray | None:
        """``int32``, lattice shape: immune agent index of each voxel's immune cell, -1 for none; None without immune cells."""
        return self.arrays.get("immune")

    @property
    def immune_state(self) -> np.ndarray | None:
        """``int8``, lattice shape: 0 effector, 1 exhausted (:mod:`kernels.immune`); None without immune cells."""
        return self.arrays.get("immune_state")

    @property
    def exhaustion(self) -> np.ndarray | None:
        """``float32``, lattice shape: T-cell exhaustion (exhausted from 1); None without immune cells."""
        return self.arrays.get("exhaustion")

    @property
    def has_immune(self) -> bool:
        """Whether the snapshot holds immune cell arrays (it may still hold no immune cell)."""
        return self.immune is not None and self.immune_state is not None

    def field(self, name: str) -> np.ndarray:
        """Substrate field ``name``, lattice shape, in its config units."""
        key = FIELD_PREFIX + name
        if key not in self.arrays:
            have = ", ".join(self.field_names) or "none"
            raise VizError(f"field {name!r} is not in {self.path.name} (fields: {have})")
        return self.arrays[key]

    @property
    def field_names(self) -> list[str]:
        """Names of the fields stored in the snapshot."""
        return [name[len(FIELD_PREFIX):] for name in self.arrays if name.startswith(FIELD_PREFIX)]

    def voxel_arrays(self) -> dict[str, np.ndarray]:
        """Every per-voxel array (those of the lattice shape), by file name."""
        return {name: values for name, values in self.arrays.items() if values.shape == self.shape}

    def tumor_center_index(self) -> tuple[int, ...]:
        """Voxel index of the tumor's centroid (the lattice centre if there is no tumor)."""
        occupied = np.argwhere(self.clone >= 0)
        if len(occupied) == 0:
            return tuple(extent // 2 for extent in self.shape)
        return tuple(int(round(value)) for value in occupied.mean(axis=0))


@dataclass(frozen=True)
class ImmuneAgent:
    """One immune agent of a run: a T-cell clone or a suppressor type.

    Attributes:
        index: the agent index held by the snapshots' ``immune`` array.
        name: the T-cell clone's name, or ``treg`` / ``mdsc``.
        kind: ``t_cell``, ``treg`` or ``mdsc``.
        antigen: the antigen a T-cell clone recognises; -1 for suppressors.
    """

    index: int
    name: str
    kind: str
    antigen: int = -1

    @property
    def kind_code(self) -> int:
        """The kind as :data:`kernels.immune.KIND_NAMES` codes it."""
        return KIND_NAMES.index(self.kind)

    @property
    def label(self) -> str:
        """Legend text: ``anti0 (antigen 0)`` for a T-cell clone, ``Treg`` / ``MDSC`` for a suppressor type."""
        return f"{self.name} (antigen {self.antigen})" if self.kind == "t_cell" else IMMUNE_KIND_LABELS[self.kind]


def immune_agents_of(config: dict[str, Any]) -> list[ImmuneAgent]:
    """The immune agents a resolved config declares, by index: T-cell clones in config order, then ``treg``, then ``mdsc``.

    The same numbering as the model's (:class:`abm.immunity.ImmuneSystem`);
    empty for a config without immune cells (or from before them).
    """
    section = config.get("immune") or {}
    clones = (section.get("t_cells") or {}).get("clones") or []
    agents = [ImmuneAgent(index, str(clone["name"]), "t_cell", int(clone.get("antigen", -1)))
              for index, clone in enumerate(clones)]
    for kind in ("treg", "mdsc"):
        if section.get(kind + "s") is not None:
            agents.append(ImmuneAgent(len(agents), kind, kind))
    return agents


@dataclass
class RunData:
    """A run directory opened for reading: finished, or stopped before its end (then read from its journals).

    Attributes:
        path: the run directory.
        config: the resolved config (``config.yaml``) as a mapping.
        snapshots: the snapshot files, in step order.
    """

    path: Path
    config: dict[str, Any]
    snapshots: list[Snapshot]

    def setting(self, *keys: str, kinds: tuple[type, ...] = (int, float)) -> Any:
        """The config's value at ``keys`` (:func:`setting`): VizError naming ``config.yaml`` and the key without it."""
        return setting(self.config, self.path / files.CONFIG, *keys, kinds=kinds)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` as a mapping; empty where the run wrote none (it was killed, or is still going)."""
        path = self.path / files.SUMMARY
        if not path.is_file():
            return {}
        summary = reading(files.read_json, path)
        for key in ("final", "treatment"):
            if not isinstance(summary.get(key) or {}, dict):
                raise VizError(f"{path}: {key} is {summary[key]!r}, not a mapping")
        return summary

    @property
    def finished(self) -> bool:
        """Whether the run wrote its ``summary.json`` (it ended: complete, interrupted or failed)."""
        return (self.path / files.SUMMARY).is_file()

    @property
    def status(self) -> str:
        """``complete``, ``interrupted`` or ``failed`` (``summary.json``), or ``unfinished`` where the run wrote no
        summary (it was killed, or is still going: its tables are read from its journals)."""
        return self.summary_value("status", kinds=(str,)) if self.finished else "unfinished"

    def summary_value(self, *keys: str, kinds: tuple[type, ...] = (int, float)) -> Any:
        """``summary.json``'s value at ``keys`` (:func:`setting`): VizError naming the file and the key without it."""
        return setting(self.summary, self.path / files.SUMMARY, *keys, kinds=kinds)

    def _table(self, table: str):
        return read_columns(self.path, table, TABLE_COLUMNS[table])

    @cached_property
    def timeseries(self):
        """The time series (one row per record step) as a pandas DataFrame.

        Raises:
            VizError: the run has no record yet (neither ``timeseries.parquet`` nor its journal, or an empty journal).
        """
        frame = self._table("timeseries")
        if frame is None or frame.empty:
            where = "no timeseries.parquet nor journal" if frame is None else f"{files.journal_path(self.path, 'timeseries')} has no row"
            raise VizError(f"{self.path}: no record yet ({where}; the run stopped before its first record)")
        return frame

    @cached_property
    def lineage(self):
        """The lineage (one row per clone: parent, birth, traits), or None if the run has none."""
        return self._table("lineage")

    @cached_property
    def clone_series(self):
        """Cells per clone per record step (``clones.parquet``), or None if the run has none."""
        return self._table("clones")

    @cached_property
    def immune_series(self):
        """Cells of each immune agent per record (``immune.parquet``), or None if the run has none.

        Columns: ``time_h``, ``time_days``, ``agent``, ``name``, ``kind``
        (``t_cell``, ``treg``, ``mdsc``), ``antigen``, ``cells_effector``,
        ``cells_exhausted``, ``primed_pool``, ``activation`` (a suppressor's
        cells are its ``cells_effector``; its pool and activation are NaN).
        """
        return self._table("immune")

    @cached_property
    def events(self):
        """The treatment's doses, lines and assessments (``events.parquet``; columns
        :data:`abm.therapy.EVENT_COLUMNS`), or None for an untreated run."""
        return self._table("events")

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
        """The run's immune agents by index (:func:`immune_agents_of` its config); empty without immune cells."""
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
        """``int8 (n_agents,)``: each immune agent's kind code (:data:`kernels.immune.KIND_NAMES`)."""
        return np.array([agent.kind_code for agent in self.immune_agents], dtype=np.int8)

    def immune_glyph_classes(self, snapshot: Snapshot) -> np.ndarray | None:
        """``int8``, lattice shape: glyph class of each voxel's immune cell (:func:`viz.palette.immune_glyph_classes`).

        -1 where no immune cell; None when the snapshot has no immune arrays.
        """
        if not snapshot.has_immune:
            return None
        return immune_glyph_classes(snapshot.immune, snapshot.immune_state, self.immune_agent_kinds())

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.path.resolve().name

    @property
    def shape(self) -> tuple[int, ...]:
        """Lattice shape (``lattice.shape``), ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return tuple(self.setting("lattice", "shape", kinds=(list,)))

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return len(self.shape)

    @property
    def dx_um(self) -> float:
        """Voxel edge (``lattice.dx_um``), um."""
        return float(self.setting("lattice", "dx_um"))

    @property
    def dt_cell_h(self) -> float:
        """Cell step (``time.dt_cell_h``), hours."""
        return float(self.setting("time", "dt_cell_h"))

    @property
    def duration_days(self) -> float:
        """Simulated days the config asks for (``time.duration_days``; an unfinished run's records end before)."""
        return float(self.setting("time", "duration_days"))

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

    def snapshot_at(self, time_h: float) -> Snapshot:
        """The snapshot whose time is nearest ``time_h`` (hours)."""
        if not self.snapshots:
            raise VizError(f"{self.path}: no snapshots (set time.snapshot_every_h in the config)")
        dt_h = self.dt_cell_h
        return min(self.snapshots, key=lambda snapshot: abs(snapshot.step * dt_h - time_h))

    def last_snapshot(self) -> Snapshot:
        """The latest snapshot."""
        if not self.snapshots:
            raise VizError(f"{self.path}: no snapshots (set time.snapshot_every_h in the config)")
        return self.snapshots[-1]


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

    Reads ``config.yaml`` and lists the snapshots; the tables, ``summary.json``
    and the snapshots are read on first use.

    Raises:
        VizError: no such directory, no ``config.yaml`` in it, or one that cannot be read or lacks a key viz uses.
    """
    path = Path(path)
    if not path.is_dir():
        raise VizError(f"{path}: no such run directory")
    config_path = path / files.CONFIG
    if not config_path.is_file():
        if (path / COMPARE_RESULT).is_file():
            raise VizError(f"{path}: a tme compare directory, not a run directory; give one of its runs, "
                           f"{path / 'runs' / 'ARM' / 'seed_N'}")
        raise VizError(f"{path}: not a run directory (no {files.CONFIG}; make one with `tme run CONFIG --out DIR`)")
    snapshots = []
    folder = path / files.SNAPSHOTS
    if folder.is_dir():
        for file in folder.iterdir():
            match = _SNAPSHOT_NAME.match(file.name)
            if match:
                snapshots.append(Snapshot(file, int(match.group(1))))
    snapshots.sort(key=lambda snapshot: snapshot.step)
    run = RunData(path, reading(files.read_yaml, config_path), snapshots)
    _check_config(run)
    return run
