"""Which figures in a folder are up to date, so that ``tme report`` reuses what ``tme plot`` drew.

A figure folder keeps a record, :data:`MANIFEST` (JSON), of the figures
drawn into it: per figure, the options it was drawn with (the tme-abm
version among them) and its file per format. A figure is up to date for a
set of options and formats when its record has the same options, each of
the formats has its file in the record, and each file exists and was
modified no earlier than the newest file of the data it was drawn from
(:func:`data_stamp`). A record is removed before its figure is redrawn and
written after, so a figure interrupted halfway, or overwritten with other
options, is never taken for up to date. The record is a cache: one that
cannot be read counts as empty (everything is redrawn).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from abm.io import write_json

#: The record's file name in the figure folder.
MANIFEST = ".figures.json"
#: Names of what ``tme plot``, ``report`` and ``export`` write into a run or comparison directory: not data.
OUTPUTS = frozenset({"figures", "vtk", "report.md"})


def data_stamp(path: Path) -> int:
    """The newest modification time (ns) of the files under ``path`` that figures are drawn from.

    Every file counts (tables, journals of an unfinished run, snapshots,
    ``summary.json``, ``config.yaml``, a comparison's run directories) but
    the outputs of :data:`OUTPUTS`, at any depth; so a run that is still
    writing, or a comparison that was completed, makes older figures stale.
    """
    newest = 0
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = [name for name in subfolders if name not in OUTPUTS]
        for name in names:
            if name not in OUTPUTS:
                try:
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
                except FileNotFoundError:  # a .part file renamed meanwhile
                    continue
    return newest


def read(folder: Path) -> dict[str, Any]:
    """The record of ``folder``: figure name -> ``{"options": ..., "files": {format: file name}}``; empty where there is
    none or it cannot be read."""
    try:
        record = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and all(isinstance(entry, dict) for entry in record.values()) else {}


def up_to_date(record: dict[str, Any], folder: Path, name: str, options: dict[str, Any], formats: tuple[str, ...],
               stamp: int) -> list[Path] | None:
    """The files of figure ``name`` in ``folder``, one per format of ``formats``, where they are up to date for
    ``options`` (see the module doc) and data last modified at ``stamp`` (ns); else None."""
    entry = record.get(name) or {}
    files = entry.get("files")
    if entry.get("options") != options or not isinstance(files, dict) or not set(formats) <= set(files):
        return None
    paths = [Path(folder) / str(files[fmt]) for fmt in formats]
    try:
        if all(path.stat().st_mtime_ns >= stamp for path in paths):
            return paths
    except OSError:
        pass
    return None


def forget(record: dict[str, Any], folder: Path, name: str, formats: tuple[str, ...]) -> None:
    """Remove the files of ``formats`` of figure ``name`` from ``record`` and ``folder``'s record file (before they are
    redrawn)."""
    files = (record.get(name) or {}).get("files")
    if isinstance(files, dict) and set(files) & set(formats):
        record[name]["files"] = {fmt: file for fmt, file in files.items() if fmt not in formats}
        write_json(Path(folder) / MANIFEST, record)


def remember(record: dict[str, Any], folder: Path, name: str, options: dict[str, Any], paths: list[Path]) -> None:
    """Record figure ``name``, drawn with ``options`` into ``paths``, in ``record`` and ``folder``'s record file (with
    its files of other formats where they were drawn with the same options)."""
    entry = record.get(name) or {}
    files = dict(entry.get("files") or {}) if entry.get("options") == options else {}
    files.update({path.suffix.lstrip("."): path.name for path in paths})
    record[name] = {"options": options, "files": files}
    write_json(Path(folder) / MANIFEST, record)
