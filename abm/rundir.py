"""The run directory: its file names, the record journals written while a run goes, and the one reader.

Layout of ``tme run CONFIG --out DIR``::

    DIR/config.yaml          resolved config, with package version, backend and the config's hash
    DIR/timeseries.parquet   one row per record step (see abm.measurement.record_columns)
    DIR/clones.parquet       cells per clone per record step (rows where the clone had cells)
    DIR/lineage.parquet      one row per clone: parent, birth time, founding position, traits
    DIR/immune.parquet       cells of each T-cell clone (by state) and suppressor type per record (with immune cells)
    DIR/events.parquet       doses, lines and assessments (with a treatment)
    DIR/agents.parquet       the immune agents by index: kind code, name, role, parent, traits (with immune cells; at start)
    DIR/summary.json         status, timing, the first contact with the lattice's boundary, final values
    DIR/snapshots/step_NNNNNNNN.npz   per-voxel arrays at the snapshot cadence
    DIR/records/<table>.jsonl         the journals: rows appended at every record while the run goes
    DIR/checkpoint.pkl       the state after the last checkpoint (time.checkpoint_every_h, an interruption;
                             abm.checkpoint); removed when the run completes
    DIR/.lock                the lock a writer holds (see :func:`abm.io.lock_directory`)

While a run goes, each table's rows are appended to its journal at record
cadence (one JSON header line with the columns, then one JSON array per row,
flushed each record), so a run killed in any way keeps its records up to the
last record. At the end the tables are written as Parquet and the journals
removed. :func:`read_table` reads a table from its Parquet file, or from its
journal where the run did not finish; a torn last line (a kill during the
write) is left out.

Layout of ``tme compare CONFIG --out DIR`` (:mod:`abm.comparison` writes it)::

    DIR/compare.json         per-arm statistics, in the order of the arms
    DIR/runs.parquet         one row per run; km.parquet and burden.parquet (see :data:`COMPARE_COLUMNS`)
    DIR/runs/<arm>/seed_<n>/ each an ordinary run directory (:func:`compare_run_path`)
    DIR/paired.parquet       with two or more arms: per patient and seed, each arm's endpoints minus the reference arm's
    DIR/patients.parquet     with a cohort: one row per virtual patient, the values drawn (:mod:`abm.cohort`)

Layout of ``tme compare CONFIG --out DIR --sweep KEY=V1,V2,...`` (:mod:`abm.sweep`)::

    DIR/sweep.json           the swept keys and each point's values and folder
    DIR/sweep.parquet        per point and arm, the endpoints (see :data:`SWEEP_COLUMNS`)
    DIR/patients.parquet     with a cohort: the patients, the same at every point
    DIR/points/point_<k>/    each a comparison directory as above (:func:`sweep_point_path`)

The names, the columns of each table (:data:`EVENT_COLUMNS`,
:data:`COMPARE_COLUMNS`), the arrays every snapshot holds and the response
categories are defined here once, for the writers (:mod:`abm.runner`,
:mod:`abm.therapy`, :mod:`abm.comparison`) and the readers (:mod:`viz`).

:func:`open_run` opens a run directory as a :class:`RunDirectory`: its
config (read at once), its summary and tables (read on first use), its
snapshots (each read on first use, so going through many large snapshots
holds one in memory). Every reader here turns a file it cannot read into one
:class:`abm.io.RunDirectoryError` naming the file (a subclass of
:class:`RunDirectory` may raise its own error class instead, see
:attr:`RunDirectory.error`).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field as dataclass_field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, TypeVar

import numpy as np

from abm.config import SUPPRESSOR_LABELS, SUPPRESSOR_PRESETS, T_CELL_ROLE  # noqa: F401 - the agents' names, for viz
from abm import __version__  # noqa: F401 - the version that writes run directories and figures, for viz
from abm.io import LOCK_NAME, RunDirectoryError, is_leftover, lock_directory, write_text

CONFIG = "config.yaml"
SUMMARY = "summary.json"
SNAPSHOTS = "snapshots"
#: The run's latest checkpoint (:mod:`abm.checkpoint`), what ``tme run --resume`` continues from.
CHECKPOINT = "checkpoint.pkl"
RECORDS = "records"
LOCK = LOCK_NAME
#: The tables of a run directory, each ``<name>.parquet`` (journal ``records/<name>.jsonl``).
TABLES = ("timeseries", "clones", "lineage", "immune", "events")
#: The immune agents' table ``agents.parquet``, written once when the run starts (with immune cells): the agent
#: numbering of the snapshots' ``immune`` array. Columns :data:`AGENT_COLUMNS`, then one per trait
#: (``antigen``, ``speed_um_per_min``, ``bias``, ``death_per_h``, ``exhausted_death_per_h``, ``sensitivity_<drug>``).
AGENTS = "agents"
#: The columns of ``agents.parquet`` before the traits: ``kind`` is the kind code of the snapshots, ``role``
#: ``t_cell`` or ``suppressor``, ``parent`` -1 (no agent derives from another yet).
AGENT_COLUMNS = ("index", "kind", "name", "role", "parent")
#: A snapshot's file name in ``snapshots/``; group 1 is the cell step after which it was taken.
SNAPSHOT_PATTERN = re.compile(r"^step_(\d{8})\.npz$")
#: The arrays every snapshot holds; per-voxel arrays are those of the lattice's shape.
SNAPSHOT_ARRAYS = ("time_h", "dx_um", "clone", "cell_state", "vessel")
#: A snapshot's substrate field ``NAME`` is its array ``field_NAME``, in the units of the config's ``fields.NAME``.
FIELD_PREFIX = "field_"
#: Columns of ``events.parquet``: the treatment's line starts and ends, doses, baselines and assessments.
EVENT_COLUMNS = ("time_h", "time_days", "event", "line", "cycle", "drug", "amount", "infusion_h", "category",
                 "burden", "change_from_baseline", "detail", "treatment_category", "treatment_change_from_baseline")

#: The result file of a comparison directory (a directory with it is a comparison, one with :data:`CONFIG` a run).
COMPARE_RESULT = "compare.json"
#: The folder of a comparison directory that holds its runs (:func:`compare_run_path`).
COMPARE_RUNS = "runs"
#: The tables of a comparison directory (each ``<name>.parquet``) and their columns, in order.
COMPARE_COLUMNS = {
    "runs": ("arm", "patient", "seed", "time_to_progression_days", "censored", "best_overall_response",
             "best_change_from_baseline", "final_tumor_cells_live", "lines"),
    "km": ("time", "at_risk", "events", "censored", "survival", "survival_lower", "survival_upper", "arm"),
    "burden": ("arm", "time_days", "cells_median", "cells_q25", "cells_q75", "diameter_median_um",
               "diameter_q25_um", "diameter_q75_um", "runs"),
}
COMPARE_TABLES = tuple(COMPARE_COLUMNS)
#: The files every complete comparison directory holds.
COMPARE_FILES = (COMPARE_RESULT,) + tuple(f"{table}.parquet" for table in COMPARE_TABLES)
#: The paired differences of a comparison of two or more arms (``paired.parquet``) and their columns: per run of an arm
#: other than the reference and endpoint, the run's value, the reference arm's on the same patient and seed, their
#: difference (arm minus reference) and whether either run was censored (for the time to progression).
PAIRED = "paired"
PAIRED_COLUMNS = ("arm", "reference_arm", "patient", "seed", "endpoint", "value", "reference_value", "difference",
                  "censored")
#: The patients of a comparison with a cohort (``patients.parquet``): ``patient``, then one column per drawn key.
PATIENTS = "patients"
#: The result file of a sweep directory, and the folder of its points (:func:`sweep_point_path`).
SWEEP_RESULT = "sweep.json"
SWEEP_POINTS = "points"
#: The table of a sweep (``sweep.parquet``): ``point``, one column per swept key (its value; lists and mappings as
#: JSON text), then these, per arm: runs and progressions, the median and restricted mean time to progression
#: (days; NaN where not reached), the objective response rate, the mean final live tumor cells and the median
#: best change of the burden from baseline.
SWEEP_COLUMNS = ("arm", "runs", "progressions", "median_time_to_progression_days",
                 "restricted_mean_time_to_progression_days", "objective_response_rate", "final_tumor_cells_live_mean",
                 "best_change_from_baseline_median")
#: The response categories that count as objective responses (``compare.json``'s ``objective_response_rate``), per criteria.
RESPONDERS = {"recist": ("CR", "PR"), "irecist": ("iCR", "iPR"), "myeloma": ("CR", "VGPR", "PR")}


def __getattr__(name: str) -> Any:
    """``RESPONSE_CATEGORIES``: the response categories per criteria, best first (the values of the ``category``
    column of ``events.parquet`` and of ``best_overall_response``): :data:`abm.config.RESPONSE_CATEGORIES`, the
    one definition, imported on first use so that reading a run directory does not load the config schema."""
    if name == "RESPONSE_CATEGORIES":
        from abm.config import RESPONSE_CATEGORIES

        return RESPONSE_CATEGORIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def suppressor_column(name: str) -> str:
    """The timeseries column counting the cells of suppressor type ``name``: its name with an ``s``."""
    return f"{name}s"


def snapshot_name(step: int) -> str:
    """File name of the snapshot taken after cell step ``step``."""
    return f"step_{step:08d}.npz"


def table_path(run_dir: Path, table: str) -> Path:
    """The Parquet file of ``table`` in ``run_dir``."""
    return Path(run_dir) / f"{table}.parquet"


def journal_path(run_dir: Path, table: str) -> Path:
    """The journal of ``table`` in ``run_dir``."""
    return Path(run_dir) / RECORDS / f"{table}.jsonl"


def compare_run_path(out: Path, arm: str, seed: int | str) -> Path:
    """The run directory of ``arm`` and ``seed`` in the comparison directory ``out`` (not checked to lie inside it)."""
    return Path(out) / COMPARE_RUNS / arm / f"seed_{seed}"


def sweep_point_path(out: Path, point: int) -> Path:
    """The comparison directory of point ``point`` of the sweep directory ``out``."""
    return Path(out) / SWEEP_POINTS / f"point_{point}"


def is_sweep(path: Path) -> bool:
    """Whether ``path`` looks like a ``tme compare --sweep`` directory (it holds :data:`SWEEP_RESULT`)."""
    return (Path(path) / SWEEP_RESULT).is_file()


def is_comparison(path: Path) -> bool:
    """Whether ``path`` looks like a ``tme compare`` directory (it holds :data:`COMPARE_RESULT`)."""
    return (Path(path) / COMPARE_RESULT).is_file()


def _json_value(value: Any) -> Any:
    """A JSON-ready copy of one cell: NumPy scalars as Python numbers (floats keep their exact value)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _header_line(table: str, columns: Iterable[str], dtypes: dict[str, str] | None) -> str:
    """A journal's first line: the table, its columns and the dtypes the reader gives them."""
    return json.dumps({"table": table, "columns": list(columns), "dtypes": dict(dtypes or {})}) + "\n"


def _row_line(row: Iterable[Any]) -> str:
    """One row of a journal, a JSON array."""
    return json.dumps([_json_value(value) for value in row]) + "\n"


class Journal:
    """Append-only record journals of one run directory (see the module doc).

    Each table's file is opened on its first rows and written with its
    header line then; every :meth:`append` writes whole lines and flushes
    them, so what reached the file survives a kill of the process.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._files: dict[str, Any] = {}

    def append(self, table: str, columns: Iterable[str], rows: Iterable[Iterable[Any]],
               dtypes: dict[str, str] | None = None) -> None:
        """Append ``rows`` (each a sequence of values in ``columns`` order) to the journal of ``table``.

        ``dtypes`` (column -> NumPy dtype name), written in the header with the
        first rows, are the dtypes the reader gives those columns (JSON keeps
        only int, float, str, bool and null).
        """
        handle = self._files.get(table)
        if handle is None:
            path = journal_path(self.run_dir, table)
            path.parent.mkdir(exist_ok=True)
            handle = self._files[table] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
            handle.write(_header_line(table, columns, dtypes))
        handle.write("".join(_row_line(row) for row in rows))
        handle.flush()

    def replace(self, table: str, columns: Iterable[str], rows: Iterable[Iterable[Any]],
                dtypes: dict[str, str] | None = None) -> None:
        """Make the journal of ``table`` hold ``rows`` alone (written atomically: a run restored from a checkpoint
        journals the records up to it), then :meth:`append` adds to it. Arguments as :meth:`append`."""
        handle = self._files.pop(table, None)
        if handle is not None:
            handle.close()
        path = journal_path(self.run_dir, table)
        write_text(path, _header_line(table, columns, dtypes) + "".join(_row_line(row) for row in rows))
        self._files[table] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run

    def close(self) -> None:
        """Close every journal file (they stay on disk)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def remove(self) -> None:
        """Close and delete the journals this object wrote, and the ``records`` folder if that leaves it empty."""
        tables = list(self._files)
        self.close()
        for table in tables:
            journal_path(self.run_dir, table).unlink(missing_ok=True)
        folder = self.run_dir / RECORDS
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def read_journal(path: Path):
    """A journal as a pandas DataFrame; a torn last line is left out.

    Raises:
        RunDirectoryError: the file is unreadable, or a line other than the last is not JSON.
    """
    import pandas

    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirectoryError(f"{path}: cannot read the journal ({exc})") from None
    try:
        header = json.loads(lines[0])
        columns = list(header["columns"])
        dtypes = dict(header.get("dtypes") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RunDirectoryError(f"{path}: not a record journal (its first line names no columns)") from None
    # Every row ends with a newline, so the text after the last one is empty unless a write was torn by a kill.
    rows = []
    for number, line in enumerate(lines[1:-1], start=2):
        try:
            row = json.loads(line)
        except ValueError:
            raise RunDirectoryError(f"{path}: line {number} is not JSON") from None
        if not isinstance(row, list) or len(row) != len(columns):
            raise RunDirectoryError(f"{path}: line {number} does not hold one value per column ({len(columns)})")
        rows.append(row)
    frame = pandas.DataFrame(rows, columns=columns)
    try:
        return frame.astype(dtypes)
    except (ValueError, TypeError, KeyError) as exc:
        raise RunDirectoryError(f"{path}: values that do not fit the dtypes of its header ({exc})") from None


def read_table(run_dir: Path, table: str):
    """``table`` of ``run_dir`` as a pandas DataFrame: its Parquet file, else its journal; None if neither exists.

    Raises:
        RunDirectoryError: the file exists but cannot be read, naming it.
    """
    import pandas

    path = table_path(run_dir, table)
    if path.is_file():
        try:
            return pandas.read_parquet(path)
        except Exception as exc:  # pyarrow raises its own types (ArrowInvalid, OSError) for a damaged file
            raise RunDirectoryError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from None
    journal = journal_path(run_dir, table)
    if journal.is_file():
        return read_journal(journal)
    return None


def _read_mapping(path: Path, parse: Callable[[str], Any], what: str) -> dict[str, Any]:
    """The mapping that ``parse`` makes of the text of ``path``; RunDirectoryError naming the file otherwise."""
    try:
        data = parse(Path(path).read_text(encoding="utf-8"))
    except Exception as exc:  # OSError, UnicodeDecodeError and each parser's own errors
        detail = " ".join(str(exc).split())  # one line: YAML's messages span several
        raise RunDirectoryError(f"{path}: cannot read it as {what} ({type(exc).__name__}: {detail})") from None
    if not isinstance(data, dict):
        raise RunDirectoryError(f"{path}: holds no {what} mapping of keys (an empty or truncated file?)")
    return data


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` (RunDirectoryError naming the file if it is unreadable or not an object)."""
    return _read_mapping(path, json.loads, "JSON")


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, a run's resolved ``config.yaml`` (RunDirectoryError naming the file otherwise)."""
    import yaml

    return _read_mapping(path, yaml.safe_load, "YAML")


def read_snapshot(path: Path) -> dict[str, np.ndarray]:
    """Every array of a snapshot ``.npz``.

    Raises:
        RunDirectoryError: unreadable or truncated, naming the file.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError for a damaged file
        raise RunDirectoryError(f"{path}: cannot read the snapshot ({type(exc).__name__}: {exc})") from None


def summary_status(run_dir: Path) -> str | None:
    """The ``status`` of ``run_dir``'s summary.json; None without a readable one."""
    try:
        return read_json(Path(run_dir) / SUMMARY).get("status")
    except RunDirectoryError:
        return None


def finite_or_none(value: Any) -> Any:
    """``value``, or None where it is a float NaN (JSON has no NaN)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def converting(error: type[Exception], reader: Callable[..., Any], *arguments: Any, **options: Any) -> Any:
    """``reader(*arguments, **options)``, with the RunDirectoryError it raises (naming the file) raised as ``error``."""
    try:
        return reader(*arguments, **options)
    except RunDirectoryError as exc:
        if isinstance(exc, error):
            raise
        raise error(str(exc)) from None


_KIND_NAMES = {int: "number", float: "number", list: "list", dict: "mapping", str: "text"}


def value_at(mapping: Any, source: Path, *keys: str, kinds: tuple[type, ...] = (int, float), where: str = "") -> Any:
    """``mapping[keys[0]][keys[1]]...``, read from the file ``source``; a value of one of ``kinds`` (not a bool).

    Args:
        where: the dotted key of ``mapping`` itself in the file, for messages (empty: the file's top level).

    Raises:
        RunDirectoryError: a key is missing, or its value is of another type, naming the file and the key.
    """
    value: Any = mapping
    names = [where] if where else []
    for key in keys:
        names.append(key)
        if not isinstance(value, dict) or key not in value:
            raise RunDirectoryError(f"{source}: no {'.'.join(names)} (not written by this version of tme?)")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = " or ".join(dict.fromkeys(_KIND_NAMES.get(kind, kind.__name__) for kind in kinds))
        raise RunDirectoryError(f"{source}: {'.'.join(names)} is {value!r}, not a {wanted}")
    return value


def read_columns(folder: Path, table: str, columns: Iterable[str] = ()):
    """Table ``table`` of ``folder`` (:func:`read_table`: Parquet, else journal), None if it has neither.

    Raises:
        RunDirectoryError: the file is unreadable, or lacks one of ``columns``, naming it.
    """
    frame = read_table(folder, table)
    missing = [column for column in columns if frame is not None and column not in frame.columns]
    if missing:
        source = table_path(folder, table)
        source = source if source.is_file() else journal_path(folder, table)
        raise RunDirectoryError(f"{source}: no column {', '.join(missing)} (not a {table} table written by tme?)")
    return frame


def list_snapshots(run_dir: Path) -> list[tuple[Path, int]]:
    """``(file, cell step)`` of each snapshot of ``run_dir``, in step order (none are read)."""
    folder = Path(run_dir) / SNAPSHOTS
    found = []
    if folder.is_dir():
        for file in folder.iterdir():
            match = SNAPSHOT_PATTERN.match(file.name)
            if match:
                found.append((file, int(match.group(1))))
    return sorted(found, key=lambda item: item[1])


@dataclass(frozen=True)
class Snapshot:
    """One snapshot file of a run; its arrays are read on first use.

    Attributes:
        path: the ``.npz`` file.
        step: cell step after which it was taken.
    """

    path: Path
    step: int

    #: The error raised for a file that cannot be read or lacks an array (a subclass may raise its own).
    error: ClassVar[type[Exception]] = RunDirectoryError

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array in the file (read on first use).

        Raises:
            error: the file is unreadable or lacks an array of :data:`SNAPSHOT_ARRAYS`, naming it.
        """
        arrays = converting(self.error, read_snapshot, self.path)
        missing = [name for name in SNAPSHOT_ARRAYS if name not in arrays]
        if missing:
            raise self.error(f"{self.path}: no array {', '.join(missing)} (not a snapshot written by tme?)")
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
        """``float32``, lattice shape: T-cell exhaustion (exhausted from 1), 0 at other cells; None without immune
        cells."""
        return self.arrays.get("exhaustion")

    @property
    def polarisation(self) -> np.ndarray | None:
        """``float32``, lattice shape: each macrophage's polarisation (0 M1-like to 1 M2-like), NaN where no
        macrophage is; None in a run without a macrophage type (or written before it had this array, when the
        ``exhaustion`` array held it)."""
        return self.arrays.get("polarisation")

    @property
    def has_immune(self) -> bool:
        """Whether the snapshot holds immune cell arrays (it may still hold no immune cell)."""
        return self.immune is not None and self.immune_state is not None

    def field(self, name: str) -> np.ndarray:
        """Substrate field ``name``, lattice shape, in its config units."""
        key = FIELD_PREFIX + name
        if key not in self.arrays:
            have = ", ".join(self.field_names) or "none"
            raise self.error(f"field {name!r} is not in {self.path.name} (fields: {have})")
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


R = TypeVar("R", bound="RunDirectory")


@dataclass
class RunDirectory:
    """A run directory opened for reading (:func:`open_run`): finished, or stopped before its end (then its tables
    are read from their journals).

    Attributes:
        path: the run directory.
        config: the resolved config (``config.yaml``) as a mapping.
        snapshots: the snapshot files, in step order (each read on first use).
    """

    path: Path
    config: dict[str, Any]
    snapshots: list[Snapshot]
    _tables: dict[str, Any] = dataclass_field(default_factory=dict, init=False, repr=False, compare=False)

    #: The error every reader raises, naming the file (and key, column or array): :class:`abm.io.RunDirectoryError`
    #: here; a subclass sets its own (viz: :class:`viz.rundir.VizError`).
    error: ClassVar[type[Exception]] = RunDirectoryError
    #: The class of :attr:`snapshots`.
    snapshot_type: ClassVar[type[Snapshot]] = Snapshot
    #: Columns :meth:`table` requires of each table (a subclass names those it reads).
    table_columns: ClassVar[Mapping[str, Iterable[str]]] = {}

    @classmethod
    def open(cls: type[R], path: str | Path) -> R:
        """Open the run directory ``path``: read ``config.yaml`` and list the snapshots.

        Raises:
            error: no such directory, no ``config.yaml`` in it (a comparison directory is named as such), or one
                that cannot be read.
        """
        path = Path(path)
        if not path.is_dir():
            raise cls.error(f"{path}: no such run directory")
        config_path = path / CONFIG
        if not config_path.is_file():
            if is_comparison(path):
                raise cls.error(f"{path}: a tme compare directory, not a run directory; give one of its runs, "
                                f"{compare_run_path(path, 'ARM', 'N')}")
            raise cls.error(f"{path}: not a run directory (no {CONFIG}; make one with `tme run CONFIG --out DIR`)")
        snapshots = [cls.snapshot_type(file, step) for file, step in list_snapshots(path)]
        return cls(path, converting(cls.error, read_yaml, config_path), snapshots)

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.path.resolve().name

    def setting(self, *keys: str, kinds: tuple[type, ...] = (int, float)) -> Any:
        """The config's value at ``keys`` (:func:`value_at`); :attr:`error` naming ``config.yaml`` and the key without it."""
        return converting(self.error, value_at, self.config, self.path / CONFIG, *keys, kinds=kinds)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` as a mapping; empty where the run wrote none (it was killed, or is still going)."""
        path = self.path / SUMMARY
        if not path.is_file():
            return {}
        summary = converting(self.error, read_json, path)
        for key in ("final", "treatment"):
            if not isinstance(summary.get(key) or {}, dict):
                raise self.error(f"{path}: {key} is {summary[key]!r}, not a mapping")
        return summary

    @property
    def finished(self) -> bool:
        """Whether the run wrote its ``summary.json`` (it ended: complete, interrupted or failed)."""
        return (self.path / SUMMARY).is_file()

    @property
    def status(self) -> str:
        """``complete``, ``interrupted`` or ``failed`` (``summary.json``), or ``unfinished`` where the run wrote no
        summary (it was killed, or is still going: its tables are read from its journals)."""
        return self.summary_value("status", kinds=(str,)) if self.finished else "unfinished"

    def summary_value(self, *keys: str, kinds: tuple[type, ...] = (int, float)) -> Any:
        """``summary.json``'s value at ``keys`` (:func:`value_at`); :attr:`error` naming the file and the key without it."""
        return converting(self.error, value_at, self.summary, self.path / SUMMARY, *keys, kinds=kinds)

    @property
    def boundary_contact(self) -> tuple[float, list[str]] | None:
        """The day of the first record at which a tumor cell sat on a face of the lattice, and the faces it sat on then
        (``summary.json``'s ``boundary_contact_day`` and ``boundary_contact_faces``, :class:`abm.runner.BoundaryWatch`);
        None where none did, and where the run wrote no summary (or one without these keys: an older version).

        Raises:
            error: the values are not a number and a list of names, naming the file and the key.
        """
        if self.summary.get("boundary_contact_day") is None:
            return None
        faces = self.summary_value("boundary_contact_faces", kinds=(list,))
        if not all(isinstance(face, str) for face in faces):
            raise self.error(f"{self.path / SUMMARY}: boundary_contact_faces is {faces!r}, not a list of face names")
        return float(self.summary_value("boundary_contact_day")), faces

    def table(self, name: str):
        """Table ``name`` (one of :data:`TABLES`) as a pandas DataFrame, read on first use: its Parquet file, else its
        journal (an unfinished run); None where the run has neither (no immune cells, no treatment).

        Raises:
            error: the file is unreadable, or lacks a column of :attr:`table_columns`, naming it.
        """
        if name not in self._tables:
            self._tables[name] = converting(self.error, read_columns, self.path, name, self.table_columns.get(name, ()))
        return self._tables[name]

    @cached_property
    def timeseries(self):
        """The time series (one row per record step; columns :func:`abm.measurement.record_columns`).

        Raises:
            error: the run has no record yet (neither ``timeseries.parquet`` nor its journal, or an empty journal).
        """
        frame = self.table("timeseries")
        if frame is None or frame.empty:
            where = "no timeseries.parquet nor journal" if frame is None else f"{journal_path(self.path, 'timeseries')} has no row"
            raise self.error(f"{self.path}: no record yet ({where}; the run stopped before its first record)")
        return frame

    @cached_property
    def lineage(self):
        """The lineage (one row per clone: parent, birth, traits), or None if the run has none."""
        return self.table("lineage")

    @cached_property
    def clone_series(self):
        """Cells per clone per record step (``clones.parquet``), or None if the run has none."""
        return self.table("clones")

    @cached_property
    def immune_series(self):
        """Cells of each immune agent per record (``immune.parquet``), or None if the run has none.

        Columns: ``time_h``, ``time_days``, ``agent``, ``name``, ``kind``
        (``t_cell``, or the suppressor type's name), ``antigen``, ``cells_effector``,
        ``cells_exhausted``, ``primed_pool``, ``activation`` (a suppressor's
        cells are its ``cells_effector``; its pool and activation are NaN);
        in a run with a macrophage type also ``polarisation_mean`` (the
        type's mean polarisation, NaN for other agents and without cells).
        """
        return self.table("immune")

    @cached_property
    def agents(self):
        """The immune agents by index (``agents.parquet``; :data:`AGENT_COLUMNS` then traits), or None: no immune cells,
        or a run directory from before the table."""
        return self.table(AGENTS)

    @cached_property
    def events(self):
        """The treatment's doses, lines and assessments (``events.parquet``; columns :data:`EVENT_COLUMNS`), or None
        for an untreated run."""
        return self.table("events")

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

    def snapshot_at(self, time_h: float, option: str = "time_h") -> Snapshot:
        """The snapshot whose time is nearest ``time_h`` (hours), which must lie within the snapshots' times.

        Raises:
            error: no snapshots, or ``time_h`` not finite or outside the first to the last snapshot's time (the
                message names ``option``, the argument that gave it, and the range).
        """
        if not self.snapshots:
            raise self.error(f"{self.path}: no snapshots (set time.snapshot_every_h in the config)")
        dt_h = self.dt_cell_h
        first, last = self.snapshots[0].step * dt_h, self.snapshots[-1].step * dt_h
        slack = 1e-9 * max(1.0, abs(last))  # a time printed with %g and read back
        if not first - slack <= time_h <= last + slack:
            raise self.error(f"{option} {time_h:g}: outside the run's snapshots, which span {first:g} to {last:g} h "
                             f"({len(self.snapshots)} snapshot(s) in {self.path}); give a time in that range")
        return min(self.snapshots, key=lambda snapshot: abs(snapshot.step * dt_h - time_h))

    def last_snapshot(self) -> Snapshot:
        """The latest snapshot."""
        if not self.snapshots:
            raise self.error(f"{self.path}: no snapshots (set time.snapshot_every_h in the config)")
        return self.snapshots[-1]


def open_run(path: str | Path) -> RunDirectory:
    """Open the run directory ``path`` (made by ``tme run`` or :func:`abm.runner.run`; finished, or stopped before its
    end) as a :class:`RunDirectory`.

    Raises:
        RunDirectoryError: no such directory, or no readable ``config.yaml`` in it, naming it.
    """
    return RunDirectory.open(path)


def plasma_levels(pk: Mapping[str, Any] | None, doses, times_h: np.ndarray) -> np.ndarray:
    """Plasma level of one drug at ``times_h`` (h) from its ``pk`` entry in ``config.yaml`` and its dose rows (of
    ``events.parquet``: ``time_h``, ``amount``, ``infusion_h``), by the simulator's closed form
    (:class:`abm.therapy.Pharmacokinetics`), so it is exact between records. Zero for a drug without ``pk``."""
    if not pk:
        return np.zeros(len(times_h))
    from abm.config import PharmacokineticsConfig
    from abm.therapy import Dose, Pharmacokinetics

    kinetics = Pharmacokinetics(PharmacokineticsConfig(**pk))
    given = [Dose(float(start), float(amount), float(infusion or 0.0))
             for start, amount, infusion in zip(doses["time_h"], doses["amount"], doses["infusion_h"])]
    return np.array([kinetics.level(given, float(time)) for time in times_h])


def _written_by_a_run(relative: Path) -> bool:
    """Whether the path (relative to a run directory) is one a run writes (or the ``.part`` file of such a write)."""
    parts = relative.parts
    if is_leftover(relative):
        return len(parts) == 1 or parts[0] in (RECORDS, SNAPSHOTS) and len(parts) == 2
    if len(parts) == 1:
        return relative.name in (CONFIG, SUMMARY, CHECKPOINT) or relative.name in {f"{table}.parquet" for table in (*TABLES, AGENTS)}
    if len(parts) == 2 and parts[0] == RECORDS:
        return relative.name in {f"{table}.jsonl" for table in TABLES}
    if len(parts) == 2 and parts[0] == SNAPSHOTS:
        return SNAPSHOT_PATTERN.match(relative.name) is not None
    return False


def clear_run_directory(path: Path) -> bool:
    """Empty the unfinished run directory ``path`` of the files a run writes, so the run can start again.

    Nothing else is deleted: a file or link a run does not write (something
    a user put there) stops it before it deletes anything. The directory's
    lock is taken first and held meanwhile, so a run still writing there (a
    worker of an earlier, killed comparison) stops it too; and the status is
    read again under the lock, so a run that completed since the caller
    looked (that worker finishing) is kept.

    Returns:
        True: the directory is empty of a run's files (or does not exist); False: it holds a complete run, kept.

    Raises:
        RunDirectoryError: naming the file that no run wrote, or the directory another process writes.
    """
    path = Path(path)
    if not path.exists():
        return True
    lock = lock_directory(path)
    try:
        if summary_status(path) == "complete":
            return False
        entries = sorted(path.rglob("*"), reverse=True)  # files before the folders that hold them
        for entry in entries:
            relative = entry.relative_to(path)
            if entry.is_symlink() or (entry.is_dir() and relative.as_posix() not in (RECORDS, SNAPSHOTS)) or \
                    (not entry.is_dir() and not _written_by_a_run(relative)):
                raise RunDirectoryError(f"{entry}: in the unfinished run directory {path}, but no run writes it; "
                                        f"move it away so that the run can start again")
        for entry in entries:
            if entry.name == LOCK:
                continue
            entry.rmdir() if entry.is_dir() else entry.unlink()
        return True
    finally:
        lock.close()
