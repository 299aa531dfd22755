"""The run directory: its file names, the record journals written while a run goes, and the one reader.

Layout of ``tme run CONFIG --out DIR``::

    DIR/config.yaml          resolved config, with package version, backend and the config's hash
    DIR/timeseries.parquet   one row per record step (see abm.model.record_columns)
    DIR/clones.parquet       cells per clone per record step (rows where the clone had cells)
    DIR/lineage.parquet      one row per clone: parent, birth time, founding position, traits
    DIR/immune.parquet       cells of each T-cell clone (by state) and suppressor type per record (with immune cells)
    DIR/events.parquet       doses, lines and assessments (with a treatment)
    DIR/summary.json         status, timing and final values
    DIR/snapshots/step_NNNNNNNN.npz   per-voxel arrays at the snapshot cadence
    DIR/records/<table>.jsonl         the journals: rows appended at every record while the run goes
    DIR/.lock                the lock a writer holds (see :func:`abm.io.lock_directory`)

While a run goes, each table's rows are appended to its journal at record
cadence (one JSON header line with the columns, then one JSON array per row,
flushed each record), so a run killed in any way keeps its records up to the
last record. At the end the tables are written as Parquet and the journals
removed. :func:`read_table` reads a table from its Parquet file, or from its
journal where the run did not finish; a torn last line (a kill during the
write) is left out.

Every reader here turns a file it cannot read into one
:class:`abm.io.RunDirectoryError` naming the file.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from abm.io import LOCK_NAME, RunDirectoryError, is_leftover, lock_directory

CONFIG = "config.yaml"
SUMMARY = "summary.json"
SNAPSHOTS = "snapshots"
RECORDS = "records"
LOCK = LOCK_NAME
#: The tables of a run directory, each ``<name>.parquet`` (journal ``records/<name>.jsonl``).
TABLES = ("timeseries", "clones", "lineage", "immune", "events")
#: A snapshot's file name in ``snapshots/``; group 1 is the cell step after which it was taken.
SNAPSHOT_PATTERN = re.compile(r"^step_(\d{8})\.npz$")


def snapshot_name(step: int) -> str:
    """File name of the snapshot taken after cell step ``step``."""
    return f"step_{step:08d}.npz"


def table_path(run_dir: Path, table: str) -> Path:
    """The Parquet file of ``table`` in ``run_dir``."""
    return Path(run_dir) / f"{table}.parquet"


def journal_path(run_dir: Path, table: str) -> Path:
    """The journal of ``table`` in ``run_dir``."""
    return Path(run_dir) / RECORDS / f"{table}.jsonl"


def _json_value(value: Any) -> Any:
    """A JSON-ready copy of one cell: NumPy scalars as Python numbers (floats keep their exact value)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


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
            header = {"table": table, "columns": list(columns), "dtypes": dict(dtypes or {})}
            handle.write(json.dumps(header) + "\n")
        handle.write("".join(json.dumps([_json_value(value) for value in row]) + "\n" for row in rows))
        handle.flush()

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


def _written_by_a_run(relative: Path) -> bool:
    """Whether the path (relative to a run directory) is one a run writes (or the ``.part`` file of such a write)."""
    parts = relative.parts
    if is_leftover(relative):
        return len(parts) == 1 or parts[0] in (RECORDS, SNAPSHOTS) and len(parts) == 2
    if len(parts) == 1:
        return relative.name in (CONFIG, SUMMARY) or relative.name in {f"{table}.parquet" for table in TABLES}
    if len(parts) == 2 and parts[0] == RECORDS:
        return relative.name in {f"{table}.jsonl" for table in TABLES}
    if len(parts) == 2 and parts[0] == SNAPSHOTS:
        return SNAPSHOT_PATTERN.match(relative.name) is not None
    return False


def clear_run_directory(path: Path) -> None:
    """Empty the unfinished run directory ``path`` of the files a run writes, so the run can start again.

    Nothing else is deleted: a file or link a run does not write (something
    a user put there) stops it before it deletes anything. The directory's
    lock is held meanwhile, so a run still writing there (a worker of an
    earlier, killed comparison) stops it too.

    Raises:
        RunDirectoryError: naming the file that no run wrote, or the directory another process writes.
    """
    path = Path(path)
    if not path.exists():
        return
    entries = sorted(path.rglob("*"), reverse=True)  # files before the folders that hold them
    for entry in entries:
        relative = entry.relative_to(path)
        if entry.is_symlink() or (entry.is_dir() and relative.as_posix() not in (RECORDS, SNAPSHOTS)) or \
                (not entry.is_dir() and not _written_by_a_run(relative)):
            raise RunDirectoryError(f"{entry}: in the unfinished run directory {path}, but no run writes it; "
                                    f"move it away so that the run can start again")
    lock = lock_directory(path)
    try:
        for entry in entries:
            if entry.name == LOCK:
                continue
            entry.rmdir() if entry.is_dir() else entry.unlink()
    finally:
        lock.close()
