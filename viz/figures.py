"""Paper figures of one run with matplotlib: PNG, and vector PDF and SVG.

Each figure is a :class:`RunFigure`: a name (the file stem), a caption, a
function ``RunData -> matplotlib Figure``, and a test of whether the run has
the data it needs. ``tme plot RUN_DIR`` draws every figure of
:data:`RUN_FIGURES` whose test passes. A figure added by a later model issue
(a Muller plot from ``clones.parquet``, immune infiltration over time) is one
more function and one more entry; figures of ``tme compare`` outputs (arm
timelines with dosing bars, Kaplan-Meier curves, waterfall and swimmer plots)
will take the comparison's data the same way, in a list of their own.

Figures are drawn on ``matplotlib.figure.Figure`` objects, not pyplot, so no
display and no global figure state are involved. Colours come from
:mod:`viz.palette`, the same as in renders.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kernels.tumor import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, STATE_NAMES
from viz import legend, optional, palette
from viz.output import FIGURE_FORMATS, atomic_output
from viz.rundir import RunData, Snapshot, VizError
from viz.scales import contour_levels, scale_bar_length_um

WIDTH_IN = 7.0  # a two-column journal figure
PNG_DPI = 200
MAX_SLICE_COLUMNS = 4
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",  # SVG text stays editable text
    "pdf.fonttype": 42,      # TrueType fonts embedded in PDF
}
_PURPOSE = "tme plot"


@dataclass(frozen=True)
class RunFigure:
    """One figure of a run.

    Attributes:
        name: file stem, e.g. ``burden`` -> ``burden.png``, ``.pdf``, ``.svg``.
        caption: one sentence for reports.
        make: draws the figure from the run.
        applies: whether the run has the data the figure needs.
    """

    name: str
    caption: str
    make: Callable[[RunData], Any]
    applies: Callable[[RunData], bool]


def _new_figure(height_in: float):
    figure_class = optional.matplotlib_figure_class(_PURPOSE)
    return figure_class(figsize=(WIDTH_IN, height_in), layout="constrained")


def _panel_label(ax, letter: str) -> None:
    ax.text(-0.02, 1.02, letter, transform=ax.transAxes, fontweight="bold", fontsize=10, ha="right", va="bottom")


def _time_axis(ax, run: RunData) -> None:
    """Time in days on x, from 0 to the run's duration (the axis that dosing bars will share)."""
    ax.set_xlabel("time (days)")
    ax.set_xlim(0.0, float(run.config["time"]["duration_days"]))


def burden_figure(run: RunData):
    """Tumor burden over time: (a) cells by state, stacked; (b) volume and equivalent diameter."""
    frame = run.timeseries
    days = frame["time_days"].to_numpy()
    figure = _new_figure(2.8)
    left, right = figure.subplots(1, 2)
    columns = {CYCLING: "cells_cycling", QUIESCENT: "cells_quiescent", APOPTOTIC: "cells_apoptotic", NECROTIC: "cells_necrotic"}
    left.stackplot(days, [frame[columns[code]].to_numpy() for code in columns],
                   colors=[palette.to_float(palette.STATE_COLORS[code]) for code in columns],
                   labels=[STATE_NAMES[code] for code in columns], linewidth=0)
    left.set_ylabel("tumor cells")
    left.set_ylim(bottom=0)
    left.legend(loc="upper left", frameon=False, reverse=True)
    _time_axis(left, run)
    _panel_label(left, "a")

    right.plot(days, frame["tumor_volume_mm3"], color="black", label="volume")
    right.set_ylabel("tumor volume (mm³)")
    right.set_ylim(bottom=0)
    _time_axis(right, run)
    twin = right.twinx()
    twin.spines["right"].set_visible(True)
    twin.plot(days, frame["equivalent_diameter_um"], color="0.45", linestyle="--", label="equivalent diameter")
    twin.set_ylabel("equivalent diameter (µm)" if run.ndim == 3 else "equivalent circle diameter (µm)", color="0.3")
    twin.set_ylim(bottom=0)
    right.legend(handles=right.get_lines() + twin.get_lines(), loc="upper left", frameon=False)
    _panel_label(right, "b")
    figure.suptitle(f"Tumor burden, {run.name}", fontsize=10)
    return figure


def oxygen_figure(run: RunData):
    """Oxygen over time: (a) hypoxic fraction of live tumor cells; (b) mean and tumor-minimum oxygen with thresholds."""
    frame = run.timeseries
    days = frame["time_days"].to_numpy()
    hypoxia = run.config["tumor"]["hypoxia"]
    units = run.field_units("oxygen") or "mmHg"
    figure = _new_figure(2.8)
    left, right = figure.subplots(1, 2)
    left.plot(days, frame["hypoxic_fraction"], color=palette.to_float(palette.STATE_COLORS[QUIESCENT]))
    left.set_ylabel(f"hypoxic fraction of live cells\n(oxygen < {hypoxia['quiescence_below_mmHg']:g} {units})")
    left.set_ylim(0.0, 1.0)
    _time_axis(left, run)
    _panel_label(left, "a")

    right.plot(days, frame["oxygen_mean_mmHg"], color="black", label="mean, whole domain")
    right.plot(days, frame["oxygen_min_tumor_mmHg"], color=palette.to_float(palette.VESSEL_COLOR), label="minimum in tumor")
    thresholds = (("quiescence", hypoxia["quiescence_below_mmHg"], ":"), ("necrosis max", hypoxia["necrosis_max_mmHg"], "--"))
    for label, level, style in thresholds:
        right.axhline(level, color="0.5", linestyle=style, linewidth=0.8, label=f"{label} ({level:g} {units})")
    right.set_ylabel(f"oxygen ({units})")
    right.set_ylim(bottom=0)
    right.legend(loc="best", frameon=False)
    _time_axis(right, run)
    _panel_label(right, "b")
    figure.suptitle(f"Oxygen, {run.name}", fontsize=10)
    return figure


def _slice_snapshots(run: RunData) -> list[Snapshot]:
    """Up to :data:`MAX_SLICE_COLUMNS` snapshots evenly spaced in the run, first and last included."""
    count = min(len(run.snapshots), MAX_SLICE_COLUMNS)
    picks = np.unique(np.round(np.linspace(0, len(run.snapshots) - 1, count)).astype(int))
    return [run.snapshots[index] for index in picks]


def _crop(planes: list[np.ndarray]) -> tuple[slice, slice]:
    """Rows and columns around the tumor in any of ``planes`` (bool 2-D masks), padded, kept square-ish."""
    union = np.logical_or.reduce(planes)
    ny, nx = union.shape
    if not union.any():
        return slice(0, ny), slice(0, nx)
    rows, cols = np.nonzero(union)
    half = max(rows.max() - rows.min(), cols.max() - cols.min()) * 0.65 + 4
    cy, cx = (rows.max() + rows.min()) / 2, (cols.max() + cols.min()) / 2
    return (slice(max(0, int(cy - half)), min(ny, int(np.ceil(cy + half)) + 1)),
            slice(max(0, int(cx - half)), min(nx, int(np.ceil(cx + half)) + 1)))


def slices_figure(run: RunData):
    """Mid-plane of the tumor at up to four times: by clone (top) and by state (bottom), oxygen isolines.

    For a 3-D run the plane is ``z`` through the centroid of the last
    snapshot's tumor, the same for every column; a 2-D run shows its lattice.
    """
    from matplotlib.ticker import MaxNLocator
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    snapshots = _slice_snapshots(run)
    last = snapshots[-1]
    section: tuple = (last.tumor_center_index()[0],) if len(last.shape) == 3 else ()
    dx = last.dx_um
    rows, cols = _crop([snapshot.clone[section] >= 0 for snapshot in snapshots])
    extent = (cols.start * dx, cols.stop * dx, rows.start * dx, rows.stop * dx)
    has_oxygen = "oxygen" in last.field_names
    units = run.field_units("oxygen") or "mmHg"
    oxygen_planes = [snapshot.field("oxygen")[section][rows, cols] for snapshot in snapshots] if has_oxygen else []
    levels = contour_levels(min(map(np.min, oxygen_planes)), max(map(np.max, oxygen_planes))) if has_oxygen else np.empty(0)

    n = len(snapshots)
    figure = _new_figure(2 * (WIDTH_IN - 2.0) / max(n, 2) + 1.0)
    axes = np.asarray(figure.subplots(2, n, sharex=True, sharey=True, squeeze=False))
    legend_rows: dict[str, dict[str, palette.RGB]] = {"clone": {}, "state": {}}
    any_vessel = False
    for column, snapshot in enumerate(snapshots):
        clone, state, vessel = (array[section][rows, cols] for array in (snapshot.clone, snapshot.cell_state, snapshot.vessel))
        for row, by in enumerate(("clone", "state")):
            ax = axes[row, column]
            ax.imshow(palette.voxel_colors(clone, state, vessel, by), origin="lower", extent=extent, interpolation="nearest")
            legend_rows[by].update(legend.entries(clone, state, np.zeros_like(vessel), by, run.clone_name))
            any_vessel |= bool(vessel.any())
            if levels.size:
                lines = ax.contour(oxygen_planes[column], levels=levels, colors="black", linewidths=0.6,
                                   extent=extent, origin="lower")
                ax.clabel(lines, fmt="%g", fontsize=6.5, inline_spacing=2)
            ax.set_aspect("equal")
            for side in ("top", "right"):
                ax.spines[side].set_visible(True)
            if row == 0:
                ax.set_title(f"day {snapshot.time_h / 24:g}")
        axes[0, column].set_xlabel("")
        axes[1, column].set_xlabel("x (µm)")
    for axis in (axes[0, 0].xaxis, axes[0, 0].yaxis):  # shared by every panel; few ticks, so neighbours' labels never touch
        axis.set_major_locator(MaxNLocator(nbins=3))
    axes[0, 0].set_ylabel("by clone\ny (µm)")
    axes[1, 0].set_ylabel("by cell state\ny (µm)")
    length = scale_bar_length_um(extent[1] - extent[0])
    axes[0, 0].add_artist(AnchoredSizeBar(axes[0, 0].transData, length, f"{length:g} µm", "lower left",
                                          frameon=False, size_vertical=(extent[3] - extent[2]) / 80, pad=0.3, fontproperties={"size": 7}))
    extras = [("vessel", palette.VESSEL_COLOR)] if any_vessel else []
    isolines = []
    if levels.size:
        from matplotlib.lines import Line2D

        isolines.append(Line2D([], [], color="black", linewidth=0.6, label=f"oxygen ({units})"))
    states = [(name, legend_rows["state"][name]) for name in STATE_NAMES if name in legend_rows["state"]]
    for row, (title, shown) in enumerate((("clone", list(legend_rows["clone"].items())), ("cell state", states))):
        axes[row, -1].legend(handles=legend.handles(shown + extras) + isolines, title=title, frameon=False,
                             loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, alignment="left")
    plane = f"plane z = {(section[0] + 0.5) * dx:g} µm through the tumor centre" if section else "2-D lattice"
    figure.suptitle(f"Tumor sections, {run.name} ({plane})", fontsize=10)
    return figure


def _has_columns(*columns: str) -> Callable[[RunData], bool]:
    return lambda run: set(columns) <= set(run.timeseries.columns)


RUN_FIGURES: tuple[RunFigure, ...] = (
    RunFigure("burden", "Tumor cells by state (stacked) and tumor volume with equivalent diameter over time.",
              burden_figure, _has_columns("cells_cycling", "tumor_volume_mm3", "equivalent_diameter_um")),
    RunFigure("oxygen", "Hypoxic fraction of live tumor cells, and mean and tumor-minimum oxygen over time with the hypoxia thresholds.",
              oxygen_figure, _has_columns("hypoxic_fraction", "oxygen_mean_mmHg", "oxygen_min_tumor_mmHg")),
    RunFigure("slices", "Sections through the tumor centre coloured by clone and by cell state, with oxygen isolines.",
              slices_figure, lambda run: bool(run.snapshots)),
)


def save_figure(figure, stem: Path, formats: tuple[str, ...] = FIGURE_FORMATS) -> list[Path]:
    """Save ``figure`` as ``stem.<format>`` for each format, atomically; PNG at :data:`PNG_DPI`.

    Returns:
        The files written.
    """
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_output(path) as temporary:
            figure.savefig(temporary, format=fmt, dpi=PNG_DPI, metadata={"Software": None} if fmt == "png" else None)
        written.append(path)
    return written


def plot_run(run: RunData, out: Path | None = None, formats: tuple[str, ...] = FIGURE_FORMATS,
             names: tuple[str, ...] | None = None) -> dict[str, list[Path]]:
    """Draw every applicable figure of ``run`` (or those in ``names``) into ``out`` (default ``RUN_DIR/figures``).

    Returns:
        Figure name -> files written.
    """
    matplotlib = optional.matplotlib(_PURPOSE)
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise VizError(f"--formats {','.join(unknown)}: choose from {', '.join(FIGURE_FORMATS)}")
    known = {figure.name for figure in RUN_FIGURES}
    if names is not None and set(names) - known:
        raise VizError(f"--only {','.join(sorted(set(names) - known))}: choose from {', '.join(sorted(known))}")
    out = Path(out) if out is not None else run.path / "figures"
    written: dict[str, list[Path]] = {}
    with matplotlib.rc_context(STYLE):
        for spec in RUN_FIGURES:
            if (names is None or spec.name in names) and spec.applies(run):
                written[spec.name] = save_figure(spec.make(run), out / spec.name, formats)
    return written
