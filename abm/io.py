"""The run directory: atomic writes of configs, tables, summaries and snapshots.

Layout of ``tme run CONFIG --out DIR``::

    DIR/config.yaml          resolved config, with package version and backend
    DIR/timeseries.parquet   one row per record step (see abm.model.record_columns)
    DIR/clones.parquet       cells per clone per record step (rows where the clone had cells)
    DIR/lineage.parquet      one row per clone: parent, birth time, founding position, traits
    DIR/immune.parquet       cells of each T-cell clone (by state) and suppressor type per record (with immune cells)
    DIR/summary.json         status, timing and final values
    DIR/snapshots/step_NNNNNNNN.npz   per-voxel arrays at the snapshot cadence

Every file is written to a temporary name in its final folder and renamed
into place, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


class RunDirectoryError(ValueError):
    """The output directory cannot be used."""


class RunFailed(RuntimeError):
    """The simulation stopped on a numerical failure; the run directory holds the records up to it."""


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_parquet(path: Path, frame: Any) -> None:
    """Write a pandas DataFrame to Parquet atomically."""
    _atomic(path, lambda handle: frame.to_parquet(handle, index=False))


def write_snapshot(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write host arrays to a compressed ``.npz`` atomically."""
    _atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def snapshot_name(step: int) -> str:
    """File name of the snapshot taken after cell step ``step``."""
    return f"step_{step:08d}.npz"


def check_output_directory(path: Path) -> None:
    """Refuse an output directory that already holds files (nothing is created here)."""
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"--out {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunDirectoryError(f"--out {path}: directory exists and is not empty; choose a new --out")


def create_output_directory(path: Path) -> None:
    """Create the run directory ``path`` (and its parents); RunDirectoryError if the OS refuses."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirectoryError(f"--out {path}: cannot create the directory ({exc.strerror or exc})") from None
