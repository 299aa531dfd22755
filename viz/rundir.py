"""Reading a run directory (see :mod:`abm.io` for its layout) for figures and exports.

Only NumPy, pandas and PyYAML are needed here. Snapshots load lazily, one at a
time, so an animation over many large snapshots holds one in memory.

Per-voxel arrays of a snapshot are every array of the lattice's shape; the
``field_<name>`` ones are substrate fields, in the units their config entry
names. Arrays that later model issues add to snapshots (immune cells, drugs)
show up in :attr:`Snapshot.arrays` without changes here.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml


FIELD_PREFIX = "field_"
_SNAPSHOT_NAME = re.compile(r"^step_(\d{8})\.npz$")


class VizError(ValueError):
    """A user error of a viz command: a missing run file, a bad option, a missing package."""


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
        """Every array in the file (read on first use)."""
        try:
            with np.load(self.path) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise VizError(f"{self.path}: cannot read the snapshot ({exc})") from None

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


@dataclass
class RunData:
    """A run directory opened for reading.

    Attributes:
        path: the run directory.
        config: the resolved config (``config.yaml``) as a mapping.
        summary: ``summary.json`` as a mapping (empty if the run wrote none yet).
        snapshots: the snapshot files, in step order.
    """

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    snapshots: list[Snapshot]

    @cached_property
    def timeseries(self):
        """``timeseries.parquet`` as a pandas DataFrame (one row per record step)."""
        import pandas

        path = self.path / "timeseries.parquet"
        if not path.is_file():
            raise VizError(f"{self.path}: no timeseries.parquet (the run has not finished a record)")
        return pandas.read_parquet(path)

    @cached_property
    def lineage(self):
        """``lineage.parquet`` (one row per clone: parent, birth, traits), or None if the run has none."""
        import pandas

        path = self.path / "lineage.parquet"
        return pandas.read_parquet(path) if path.is_file() else None

    @cached_property
    def clone_series(self):
        """``clones.parquet`` (cells per clone per record step), or None if the run has none."""
        import pandas

        path = self.path / "clones.parquet"
        return pandas.read_parquet(path) if path.is_file() else None

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.path.resolve().name

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return len(self.config["lattice"]["shape"])

    def clone_name(self, index: int) -> str:
        """Name of clone ``index``: from the lineage, else the config (``clone <index>`` if neither has it)."""
        lineage = self.lineage
        if lineage is not None and 0 <= index < len(lineage):
            return str(lineage["name"].iloc[index])
        clones = self.config.get("tumor", {}).get("clones", [])
        return clones[index]["name"] if index < len(clones) else f"clone {index}"

    def field_units(self, name: str) -> str:
        """Units of field ``name`` from the config (empty if it names none)."""
        return str(self.config.get("fields", {}).get(name, {}).get("units") or "")

    def snapshot_at(self, time_h: float) -> Snapshot:
        """The snapshot whose time is nearest ``time_h`` (hours)."""
        if not self.snapshots:
            raise VizError(f"{self.path}: no snapshots (set time.snapshot_every_h in the config)")
        dt_h = float(self.config["time"]["dt_cell_h"])
        return min(self.snapshots, key=lambda snapshot: abs(snapshot.step * dt_h - time_h))

    def last_snapshot(self) -> Snapshot:
        """The latest snapshot."""
        if not self.snapshots:
            raise VizError(f"{self.path}: no snapshots (set time.snapshot_every_h in the config)")
        return self.snapshots[-1]


def open_run(path: str | Path) -> RunData:
    """Open the run directory ``path`` (made by ``tme run``).

    Raises:
        VizError: no such directory, or no ``config.yaml`` in it.
    """
    path = Path(path)
    if not path.is_dir():
        raise VizError(f"{path}: no such run directory")
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise VizError(f"{path}: not a run directory (no config.yaml; make one with `tme run CONFIG --out DIR`)")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    snapshots = []
    folder = path / "snapshots"
    if folder.is_dir():
        for file in folder.iterdir():
            match = _SNAPSHOT_NAME.match(file.name)
            if match:
                snapshots.append(Snapshot(file, int(match.group(1))))
    snapshots.sort(key=lambda snapshot: snapshot.step)
    return RunData(path, config, summary, snapshots)
