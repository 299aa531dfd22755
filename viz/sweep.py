"""The figure of a ``tme compare --sweep`` directory: each endpoint against the swept values, one line per arm.

A sweep directory (:mod:`abm.sweep`; names and columns are :mod:`abm.rundir`'s)
holds ``sweep.json`` (the keys and each point's values and folder) and
``sweep.parquet`` (per point and arm, the endpoints of that point's
comparison). ``tme plot SWEEP_DIR`` draws :data:`SWEEP_FIGURES` from them;
each point's folder is an ordinary comparison directory for the comparison
figures (``tme plot SWEEP_DIR/points/point_0``).

With one swept key whose values are numbers the x axis is that key; with
several keys, or values that are not numbers, it is the points in grid order,
each labelled with its values. Each line carries the gid ``sweep <arm>
<endpoint>``, for the tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from abm import rundir as files
from viz import palette
from viz.comparison import CompareFigure
from viz.figures import FigureStyle, _new_figure, _panel_label, draw_figures
from viz.output import FIGURE_FORMATS
from viz.rundir import VizError, read_columns, reading, setting

#: The endpoints drawn, in panel order: ``sweep.parquet`` column -> axis label.
ENDPOINTS = {
    "median_time_to_progression_days": "median time to\nprogression (days)",
    "restricted_mean_time_to_progression_days": "restricted mean time\nto progression (days)",
    "objective_response_rate": "objective response rate",
    "final_tumor_cells_live_mean": "final live tumor cells (mean)",
    "best_change_from_baseline_median": "best change from baseline\n(median)",
}


@dataclass
class SweepData:
    """A sweep directory opened for reading: its path and ``sweep.json`` (``keys``, ``points``)."""

    path: Path
    result: dict[str, Any]

    @property
    def keys(self) -> list[str]:
        """The swept dotted keys, the first varying slowest."""
        return [str(key) for key in self.result["keys"]]

    @cached_property
    def table(self):
        """``sweep.parquet``: point, one column per swept key, arm, the endpoints (:data:`abm.rundir.SWEEP_COLUMNS`)."""
        frame = read_columns(self.path, "sweep", ("point", *self.keys, *files.SWEEP_COLUMNS))
        if frame is None:
            raise VizError(f"{files.table_path(self.path, 'sweep')}: no such file (`tme compare --sweep` writes it)")
        return frame

    @property
    def arms(self) -> list[str]:
        """The arms, in the order of the table."""
        return [str(arm) for arm in dict.fromkeys(self.table["arm"])]

    def point_labels(self) -> list[str]:
        """Each point's values, one ``key=value`` line per key (the last part of the key), in point order."""
        return ["\n".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point["values"].items())
                for point in self.result["points"]]


def open_sweep(path: str | Path) -> SweepData:
    """Open the sweep directory ``path`` (made by ``tme compare --sweep``).

    Raises:
        VizError: ``sweep.json`` unreadable, or without its keys and points, naming the file.
    """
    path = Path(path)
    source = path / files.SWEEP_RESULT
    result = reading(files.read_json, source)
    setting(result, source, "keys", kinds=(list,))
    points = setting(result, source, "points", kinds=(list,))
    if not points:
        raise VizError(f"{source}: no points in it (not written by tme compare --sweep?)")
    if not all(isinstance(point, dict) and isinstance(point.get("values"), dict) for point in points):
        raise VizError(f"{source}: points: each point needs its values, a mapping of key -> value")
    return SweepData(path, result)


#: Markers and dashes of the arms in turn, so that arms with equal values stay visible where their lines overlap.
_MARKERS = ("o", "s", "^", "D", "v", "P")
_DASHES = ("-", "--", ":", "-.")


def _arm_style(number: int) -> dict[str, Any]:
    """The line of the ``number``-th arm: its colour (:func:`viz.palette.arm_color`), a marker and a dash of its own."""
    return {"color": palette.to_float(palette.arm_color(number)), "marker": _MARKERS[number % len(_MARKERS)],
            "markersize": 5 - number % 3, "linestyle": _DASHES[number % len(_DASHES)], "linewidth": 1.2}


def sweep_figure(data: SweepData):
    """One panel per endpoint of :data:`ENDPOINTS` against the swept values, one line (with markers) per arm; a
    median time to progression that was not reached leaves a gap."""
    from matplotlib.lines import Line2D

    table = data.table
    numeric = len(data.keys) == 1 and np.issubdtype(table[data.keys[0]].dtype, np.number)
    figure = _new_figure(5.4)
    axes = figure.subplots(3, 2).ravel()
    for letter, ax, (column, label) in zip("abcde", axes, ENDPOINTS.items()):
        for number, arm in enumerate(data.arms):
            rows = table[table["arm"] == arm].sort_values("point", kind="stable")
            x = rows[data.keys[0]].to_numpy(float) if numeric else rows["point"].to_numpy(float)
            ax.plot(x, rows[column].to_numpy(float), **_arm_style(number), gid=f"sweep {arm} {column}")
        if not np.isfinite(table[column].to_numpy(float)).any():
            ax.text(0.5, 0.5, "not reached at any point", transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel(label)
        if numeric:
            ax.set_xlabel(data.keys[0])
        else:
            points = sorted(dict.fromkeys(table["point"].astype(int)))
            ax.set_xticks(points, [data.point_labels()[point] for point in points], fontsize="x-small")
        _panel_label(ax, letter)
    axes[2].set_ylim(-0.05, 1.05)
    legend_ax = axes[-1]
    legend_ax.axis("off")
    handles = [Line2D([], [], **_arm_style(number), label=arm) for number, arm in enumerate(data.arms)]
    legend_ax.legend(handles=handles, title="arm", loc="center", frameon=False)
    return figure


SWEEP_FIGURES: tuple[CompareFigure, ...] = (
    CompareFigure("sweep", "Each endpoint of the comparison at each point of the sweep, one line per arm: median and "
                  "restricted mean time to progression, objective response rate, mean final live tumor cells and "
                  "median best change of the burden from baseline.", sweep_figure, lambda data: len(data.table) > 0),
)


def plot_sweep(data: SweepData, out: Path | None = None, formats: tuple[str, ...] = FIGURE_FORMATS,
               names: tuple[str, ...] | None = None, reuse: bool = False, progress: bool = False,
               style: FigureStyle = FigureStyle()) -> dict[str, list[Path]]:
    """Draw the sweep's figures into ``out`` (default ``SWEEP_DIR/figures``), as :func:`viz.comparison.plot_comparison`."""
    return draw_figures(SWEEP_FIGURES, data, Path(out) if out is not None else data.path / "figures", formats, names,
                        "a sweep's", reuse, progress, style)
