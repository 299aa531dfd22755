"""Reading a run directory (see :mod:`abm.io` for its layout) for figures and exports.

Only NumPy, pandas and PyYAML are needed here. Snapshots load lazily, one at a
time, so an animation over many large snapshots holds one in memory.

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

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kernels.immune import KIND_NAMES
from viz.palette import immune_glyph_classes


FIELD_PREFIX = "field_"
#: Readable names of the immune kinds of :data:`kernels.immune.KIND_NAMES`.
IMMUNE_KIND_LABELS = {"t_cell": "T cell", "treg": "Treg", "mdsc": "MDSC"}
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

    @cached_property
    def immune_series(self):
        """``immune.parquet`` (cells of each immune agent per record), or None if the run has none.

        Columns: ``time_h``, ``time_days``, ``agent``, ``name``, ``kind``
        (``t_cell``, ``treg``, ``mdsc``), ``antigen``, ``cells_effector``,
        ``cells_exhausted``, ``primed_pool``, ``activation`` (a suppressor's
        cells are its ``cells_effector``; its pool and activation are NaN).
        """
        import pandas

        path = self.path / "immune.parquet"
        return pandas.read_parquet(path) if path.is_file() else None

    @cached_property
    def events(self):
        """``events.parquet`` (the treatment's doses, lines and assessments; columns
        :data:`abm.therapy.EVENT_COLUMNS`), or None for an untreated run."""
        import pandas

        path = self.path / "events.parquet"
        return pandas.read_parquet(path) if path.is_file() else None

    @property
    def treatment(self) -> dict[str, Any]:
        """The ``treatment`` section of ``summary.json`` (endpoints, lines); empty if the run has none."""
        return self.summary.get("treatment") or {}

    @cached_property
    def immune_agents(self) -> list[ImmuneAgent]:
        """The run's immune agents by index (:func:`immune_agents_of` its config); empty without immune cells."""
        return immune_agents_of(self.config)

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
        if (path / "compare.json").is_file():
            raise VizError(f"{path}: a tme compare directory, not a run directory; give one of its runs, "
                           f"{path / 'runs' / 'ARM' / 'seed_N'}")
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
