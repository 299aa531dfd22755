"""Reading a ``tme compare`` directory (see :mod:`abm.comparison`) for figures and reports.

A comparison directory (its names and columns are :mod:`abm.rundir`'s) holds
``compare.json`` (per-arm statistics, in the order of the arms),
``runs.parquet`` (one row per run), ``km.parquet`` (Kaplan-Meier tables),
``burden.parquet`` (burden quartiles per arm and time) and
``runs/<arm>/seed_<n>/``, each an ordinary run directory
(:class:`viz.rundir.RunData`) with its ``events.parquet``. Figures that need
the runs themselves (dosing, lines) use those that are there (finished, or
read from their journals).

Every file is read through :mod:`abm.rundir`'s readers: one that cannot be
read, a table without a column viz uses, or a ``compare.json`` without its
arms is one :class:`viz.rundir.VizError` naming the file.

:func:`open_target` tells a run directory from a comparison directory, for
``tme plot`` and ``tme report``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from abm import rundir as files
from viz import palette
from viz.rundir import RunData, VizError, open_run, read_columns, reading, setting
from viz.treatment import TreatmentColors, treatment_colors

#: The columns viz reads from each table of a comparison directory (:data:`abm.rundir.COMPARE_COLUMNS`).
COMPARE_TABLE_COLUMNS = {
    "runs": ("arm", "seed", "censored", "time_to_progression_days", "best_change_from_baseline", "best_overall_response"),
    "km": ("arm", "time", "at_risk", "censored", "survival"),
    "burden": ("arm", "time_days", "cells_median", "cells_q25", "cells_q75"),
}


@dataclass
class CompareData:
    """A comparison directory opened for reading.

    Attributes:
        path: the directory.
        result: ``compare.json`` as a mapping (``replicates``, ``first_seed``, ``arms``).
    """

    path: Path
    result: dict[str, Any]

    @property
    def name(self) -> str:
        """The directory's name."""
        return self.path.resolve().name

    @property
    def arms(self) -> list[str]:
        """The arms, in the comparison's order (the first is the log-rank reference)."""
        return list(self.result["arms"])

    @property
    def reference_arm(self) -> str:
        """The arm the log-rank tests compare with (``log_rank_vs_<arm>``): the first arm with completed runs."""
        for arm in self.arms:
            for key in self.arm_stats(arm):
                if key.startswith("log_rank_vs_"):
                    return key[len("log_rank_vs_"):]
        return self.arms[0]

    @property
    def failed_runs(self) -> list[str]:
        """Run directories (relative) that failed and that the statistics leave out (``compare.json`` ``failed_runs``)."""
        return [str(path) for path in self.result.get("failed_runs") or []]

    def arm_stats(self, arm: str) -> dict[str, Any]:
        """``compare.json``'s entry of ``arm``."""
        return self.result["arms"][arm]

    def arm_color(self, arm: str) -> palette.RGB:
        """The arm's colour: :func:`viz.palette.arm_color` of its place among the config's ``arms``, so an arm keeps
        its colour in a comparison of fewer arms (``--arms``); its place in the comparison when no run directory
        holds the config."""
        known = list(self.config.get("arms") or {})
        if arm in known:
            return palette.arm_color(known.index(arm))
        return palette.arm_color(len(known) + self.arms.index(arm))

    def _table(self, name: str):
        frame = read_columns(self.path, name, COMPARE_TABLE_COLUMNS[name])
        if frame is None:
            raise VizError(f"{files.table_path(self.path, name)}: no such file (`tme compare CONFIG --out DIR` writes it)")
        return frame

    @cached_property
    def runs(self):
        """``runs.parquet``: arm, seed, time to progression, censored, best response, best change, final cells, lines."""
        return self._table("runs")

    @cached_property
    def km(self):
        """``km.parquet``: per arm the Kaplan-Meier table (time, at_risk, events, censored, survival and its 95 % band: survival_lower, survival_upper)."""
        return self._table("km")

    @cached_property
    def burden(self):
        """``burden.parquet``: per arm and time, median and quartiles of live cells and of the diameter."""
        return self._table("burden")

    def arm_runs(self, arm: str):
        """The rows of ``runs.parquet`` of ``arm``, by seed."""
        return self.runs[self.runs["arm"] == arm].sort_values("seed", kind="stable")

    def run_path(self, arm: str, seed: int) -> Path:
        """The run directory of ``arm`` and ``seed``."""
        return files.compare_run_path(self.path, arm, int(seed))

    @cached_property
    def run_data(self) -> dict[tuple[str, int], RunData]:
        """The run directories that are there, by ``(arm, seed)``, for each row of ``runs.parquet``."""
        found = {}
        for arm, seed in zip(self.runs["arm"], self.runs["seed"]):
            path = self.run_path(arm, seed)
            if (path / files.CONFIG).is_file():
                found[(str(arm), int(seed))] = open_run(path)
        return found

    def arm_run_data(self, arm: str) -> list[RunData]:
        """The run directories of ``arm`` that are there, by seed."""
        return [self.run_data[(arm, int(seed))] for seed in self.arm_runs(arm)["seed"] if (arm, int(seed)) in self.run_data]

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved config of the comparison (that of its first run directory; empty if none is there)."""
        return next(iter(self.run_data.values())).config if self.run_data else {}

    def arm_treatment(self, arm: str) -> dict[str, Any]:
        """The arm's treatment section of the config (empty if unknown)."""
        return (self.config.get("arms") or {}).get(arm) or {}

    @cached_property
    def duration_days(self) -> float:
        """Simulated days of each run (from the config, else the last burden time)."""
        time = self.config.get("time") or {}
        if "duration_days" in time:
            return float(time["duration_days"])
        return float(self.burden["time_days"].max())

    @cached_property
    def colors(self) -> TreatmentColors:
        """Drug and line colours (:func:`viz.treatment.treatment_colors` of the config and the runs' events)."""
        drugs, lines = [], []
        for run in self.run_data.values():
            events = run.events
            if events is not None and not events.empty:
                drugs += [str(drug) for drug in events.loc[events["event"] == "dose", "drug"]]
            lines += [str(line["line"]) for line in run.treatment.get("lines") or []]
        return treatment_colors(self.config, drugs, lines)

    @cached_property
    def dosed_drugs(self) -> list[str]:
        """The drugs some run was given, in colour order."""
        given = set()
        for run in self.run_data.values():
            events = run.events
            if events is not None and not events.empty:
                given |= {str(drug) for drug in events.loc[events["event"] == "dose", "drug"]}
        return [drug for drug in self.colors.drugs if drug in given]


def open_comparison(path: str | Path) -> CompareData:
    """Open the comparison directory ``path`` (made by ``tme compare``).

    Raises:
        VizError: no such directory, or a file of :data:`abm.rundir.COMPARE_FILES` missing or unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise VizError(f"{path}: no such comparison directory")
    missing = [name for name in files.COMPARE_FILES if not (path / name).is_file()]
    if missing:
        raise VizError(f"{path}: not a complete comparison directory (no {', '.join(missing)}; "
                       f"`tme compare CONFIG --out DIR` writes them, and completes an interrupted comparison)")
    source = path / files.COMPARE_RESULT
    result = reading(files.read_json, source)
    arms = setting(result, source, "arms", kinds=(dict,))
    if not arms:
        raise VizError(f"{source}: no arms in it (not written by tme compare?)")
    for arm in arms:
        setting(arms, source, arm, kinds=(dict,), where="arms")
    for key in ("replicates", "first_seed"):
        if result.get(key) is not None:
            setting(result, source, key, kinds=(int,))
    if result.get("failed_runs") is not None:
        setting(result, source, "failed_runs", kinds=(list,))
    return CompareData(path, result)


def open_target(path: str | Path) -> Any:
    """A run directory (``config.yaml``), a comparison directory (``compare.json``) or a sweep directory
    (``sweep.json``, :func:`viz.sweep.open_sweep`), opened.

    Raises:
        VizError: ``path`` is neither, naming what each would need.
    """
    path = Path(path)
    if not path.is_dir():
        raise VizError(f"{path}: no such run or comparison directory")
    if (path / files.CONFIG).is_file():
        return open_run(path)
    if files.is_comparison(path):
        return open_comparison(path)
    if files.is_sweep(path):
        from viz.sweep import open_sweep  # viz.sweep draws with viz.comparison, which imports this module

        return open_sweep(path)
    raise VizError(f"{path}: neither a run directory (no config.yaml; `tme run CONFIG --out DIR` makes one) nor a "
                   f"comparison directory (no compare.json; `tme compare CONFIG --out DIR` makes one) nor a sweep "
                   f"directory (no sweep.json; `tme compare CONFIG --out DIR --sweep KEY=V1,V2` makes one)")
