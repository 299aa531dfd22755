"""Writing output directories safely: atomic files, an exclusive lock, paths proven inside ``--out``.

Every file is written to a temporary name in its final folder and renamed
into place, so an interrupted write never leaves a half-written file under
its final name (its ``.part`` file is removed, and readers ignore one a kill
left behind). The layout of a run directory is :mod:`abm.rundir`'s.
"""
from __future__ import annotations

import errno
import fcntl
import json
import math
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
    except BaseException as exc:
        Path(handle.name).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file; the caller reports this one
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic(path, lambda handle: handle.write(data))


def write_stream(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` atomically by calling ``write(handle)`` on a binary file: for data written in parts, or too
    large to hold twice in memory."""
    _atomic(path, write)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def without_negative_zero(value: Any) -> Any:
    """``value`` with every float ``-0.0`` in it (nested in dicts, lists and tuples) replaced by ``0.0``.

    A sum of nothing but negative zeros (a diversity of one clone, a change of
    nothing) is ``-0.0`` in floating point; JSON would print it as ``-0.0``,
    a value that reads as a sign where there is none.
    """
    if isinstance(value, float):
        return 0.0 if value == 0.0 else value
    if isinstance(value, dict):
        return {key: without_negative_zero(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_negative_zero(item) for item in value]
    if isinstance(value, tuple):
        return tuple(without_negative_zero(item) for item in value)
    return value


def json_ready(value: Any) -> Any:
    """``value`` as JSON can hold it: :func:`without_negative_zero`, and NaN and infinities (nested in dicts, lists
    and tuples) replaced by None, JSON's null: JSON has no NaN, and a value without data reads as null."""
    value = without_negative_zero(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically, as :func:`json_ready` makes it."""
    write_text(path, json.dumps(json_ready(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_parquet(path: Path, frame: Any) -> None:
    """Write a pandas DataFrame to Parquet atomically."""
    _atomic(path, lambda handle: frame.to_parquet(handle, index=False))


def write_snapshot(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write host arrays to a compressed ``.npz`` atomically."""
    _atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


#: The lock file every writer of an output directory holds (:func:`lock_directory`).
LOCK_NAME = ".lock"


def is_leftover(entry: Path) -> bool:
    """Whether a directory entry is the lock file or the ``.part`` file of a killed write (not a file a user made)."""
    return entry.name == LOCK_NAME or (entry.name.startswith(".") and entry.name.endswith(".part"))


def check_output_directory(path: Path) -> None:
    """Refuse an output directory that already holds files (nothing is created here).

    A directory holding only a lock file or ``.part`` files of an earlier
    killed write counts as empty.
    """
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"--out {path}: exists and is not a directory")
    if path.is_dir() and any(not is_leftover(entry) for entry in path.iterdir()):
        raise RunDirectoryError(f"--out {path}: directory exists and is not empty; choose a new --out")


def create_output_directory(path: Path) -> None:
    """Create the run directory ``path`` (and its parents); RunDirectoryError if the OS refuses."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirectoryError(f"--out {path}: cannot create the directory ({exc.strerror or exc})") from None


def lock_directory(path: Path) -> Any:
    """Hold an exclusive lock on the output directory ``path`` (its ``.lock`` file) until the returned handle closes.

    The lock is advisory (``flock``): every tme writer takes it, so a second
    ``tme run`` or ``tme compare`` into the same directory is refused instead
    of mixing its files with the first's. The OS releases it when the process
    ends, however it ends; the ``.lock`` file stays.

    Raises:
        RunDirectoryError: another process holds the lock, or the file cannot be opened.
    """
    lock = path / LOCK_NAME
    try:
        handle = open(lock, "a")  # noqa: SIM115 - held until the caller closes it
    except OSError as exc:
        raise RunDirectoryError(f"--out {path}: cannot open its lock file ({exc.strerror or exc})") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirectoryError(f"--out {path}: another tme process is writing this directory; "
                                    f"wait for it to end, or choose another --out") from None
        raise RunDirectoryError(f"--out {path}: cannot lock it ({exc.strerror or exc})") from None
    return handle


def inside(root: Path, path: Path) -> Path:
    """``path``, after proving that it resolves (links followed) to a place inside the directory ``root``.

    Raises:
        RunDirectoryError: it would land outside ``root``.
    """
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise RunDirectoryError(f"{path}: resolves to {path.resolve()}, outside the output directory {resolved_root}; "
                                f"nothing is written outside --out")
    return path


def describe_os_error(exc: OSError) -> str:
    """A one-line account of a failed write: the file and the reason (disk full, file too large, permission)."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file size limit was reached",
               errno.EDQUOT: "the disk quota is exceeded", errno.EACCES: "permission denied",
               errno.EROFS: "the file system is read-only", errno.EPERM: "operation not permitted"}
    reason = reasons.get(exc.errno, exc.strerror or str(exc))
    return f"cannot write {exc.filename}: {reason}" if exc.filename else f"cannot write: {reason}"
