"""Paper figures of one run with matplotlib: PNG, and vector PDF and SVG.

Each figure is a :class:`RunFigure`: a name (the file stem), a caption, a
function ``RunData -> matplotlib Figure``, and a test of whether the run has
the data it needs. ``tme plot RUN_DIR`` draws every figure of
:data:`RUN_FIGURES` whose test passes. A figure added by a later model issue
is one more function and one more entry (as the immune infiltration
and treatment figures were); figures of ``tme compare`` outputs (arm
timelines with dosing bars, Kaplan-Meier curves, waterfall and swimmer
plots) take the comparison's data the same way, in a list of their own
(:data:`viz.comparison.COMPARE_FIGURES`). The Muller plot's layout is in
:mod:`viz.muller`; the immune figure is drawn for runs with immune cells,
the treatment figure for treated runs (:mod:`viz.treatment` has its pieces).

Figures are drawn on ``matplotlib.figure.Figure`` objects, not pyplot, so no
display and no global figure state are involved. Colours come from
:mod:`viz.palette`, the same as in renders.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kernels.tumor import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, STATE_NAMES
from abm.rundir import __version__
from abm import rundir as files
from viz import figurecache, legend, optional, palette, treatment
from viz.muller import MullerBands, muller_bands
from viz.output import FIGURE_FORMATS, atomic_output
from viz.rundir import RunData, Snapshot, VizError
from viz.scales import contour_levels, scale_bar_length_um

WIDTH_IN = 7.0  # a two-column journal figure
PNG_DPI = 200
MAX_SLICE_COLUMNS = 4
SLICE_LEGEND_CLONES = 6  # clones named in the section figure's legend (the largest over the panels shown)
SLICE_MARKER_VOXELS = 0.7  # immune markers in sections: this many voxels wide (the tissue shows between neighbours) ...
SLICE_MARKER_RANGE = (0.5, 1.0)  # ... within these fractions of the style's lines.markersize (6 pt paper, 8 pt talk)
STYLE = {
    "font.size": 8.5,
    "figure.titlesize": 10,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",  # SVG text stays editable text
    "pdf.fonttype": 42,      # TrueType fonts embedded in PDF
}
_PURPOSE = "tme plot"
#: ``--style``: name -> (factor on every font size, matplotlib settings over :data:`STYLE`). ``paper``: a two-column
#: journal figure; ``talk``: the same layout with text and lines large enough for a slide.
STYLES = {"paper": (1.0, {}), "talk": (1.5, {"lines.linewidth": 2.0, "axes.linewidth": 1.2, "lines.markersize": 8.0})}
FONT_SCALES = (0.5, 3.0)  # the range of --font-scale


@dataclass(frozen=True)
class FigureStyle:
    """How ``tme plot`` draws its figures (the same for every figure of a call).

    Attributes:
        style: a key of :data:`STYLES`.
        font_scale: a factor on every font size (on top of the style's), within :data:`FONT_SCALES`.
        title: a subject added to every figure's title (``Tumor burden — TITLE``); None for none (titles never name
            the run directory).
    """

    style: str = "paper"
    font_scale: float = 1.0
    title: str | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise VizError(f"--style {self.style!r}: choose one of {', '.join(STYLES)}")
        low, high = FONT_SCALES
        if not low <= self.font_scale <= high:
            raise VizError(f"--font-scale {self.font_scale:g}: give a factor from {low:g} to {high:g}")

    @property
    def record(self) -> dict[str, Any]:
        """What a figure drawn in this style is recorded with (:mod:`viz.figurecache`)."""
        return {"tme_abm_version": __version__, "style": self.style, "font_scale": self.font_scale, "title": self.title}

    def apply(self, figure) -> None:
        """Add :attr:`title` to ``figure``'s title and scale its fonts (after the figure is drawn, so every text, given
        a size in points or not, scales alike); a figure whose fonts grow grows in height by the same factor, so that
        its panels keep their room beside the larger text and the legends above them, and keeps its width unless the
        larger text leaves its panels side by side too narrow (:func:`_widen_for_text`)."""
        if self.title:
            figure.suptitle(f"{figure.get_suptitle()} — {self.title}" if figure.get_suptitle() else self.title)
        factor = STYLES[self.style][0] * self.font_scale
        widths = _panel_widths_in(figure) if factor > 1.0 else None
        if factor != 1.0:
            _scale_fonts(figure, factor)
        if widths is not None:
            width, height = figure.get_size_inches()
            figure.set_size_inches(width, height * factor)
            _widen_for_text(figure, factor, widths)
        fit_legends(figure)


#: The most of its figure's width that a legend beside the panels may take (a legend above or below them: all of it,
#: less :data:`LEGEND_MARGIN`).
LEGEND_SHARE_BESIDE = 0.5
LEGEND_MARGIN = 0.02
_FIT_ROUNDS = 8


def fit_legends(figure) -> None:
    """Wrap the labels and title of each figure legend of ``figure`` that is wider than its room (long arm or line
    names), at spaces, underscores and hyphens (:func:`viz.legend.wrapped`), until it fits: the figure's width for a
    legend above or below the panels, :data:`LEGEND_SHARE_BESIDE` of it for one beside them. Each round lays the
    figure out and wraps every text of a legend still too wide to one line length in characters, shorter by the
    share the legend is over (at most :data:`_FIT_ROUNDS` rounds). The figure grows in height by what the wrapped
    legends grew, so that its panels keep their room."""
    original: dict[Any, str] = {}  # each text wrapped, as it was drawn
    heights: dict[Any, float] = {}  # each legend wrapped: its height before, pixels
    for _ in range(_FIT_ROUNDS):
        figure.draw_without_rendering()
        over = False
        for made in figure.legends:
            box = made.get_window_extent()
            beside = any(ax.get_window_extent().y0 < box.y1 and box.y0 < ax.get_window_extent().y1
                         for ax in figure.axes)
            room = figure.bbox.width * (LEGEND_SHARE_BESIDE if beside else 1.0 - 2 * LEGEND_MARGIN)
            texts = [text for text in (*made.get_texts(), made.get_title()) if text.get_text()]
            longest = max((len(line) for text in texts for line in text.get_text().split("\n")), default=0)
            characters = min(longest - 1, int(longest * room / box.width))
            if box.width <= room or characters < 1:
                continue
            heights.setdefault(made, box.height)
            for text in texts:
                text.set_text(legend.wrapped(original.setdefault(text, text.get_text()), characters))
            over = True
        if not over:
            break
    if heights:
        figure.draw_without_rendering()
        grown = sum(max(0.0, made.get_window_extent().height - height) for made, height in heights.items())
        width, height = figure.get_size_inches()
        figure.set_size_inches(width, height + grown / figure.dpi)


#: The least share of its width at the unscaled fonts that a panel keeps when the fonts grow (else the figure widens).
MIN_PANEL_SHARE = 0.6
_WIDEN_STEP = 1.2


def _panel_widths_in(figure) -> np.ndarray | None:
    """The width of each axes of ``figure`` laid out (inches, ``float``, ``(n_axes,)``); None where the constrained
    layout does not fit (matplotlib then warns and leaves the panels where they were)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.draw_without_rendering()
    if any(str(warning.message).startswith("constrained_layout not applied") for warning in caught):
        return None
    return np.array([ax.get_position().width for ax in figure.axes]) * figure.get_size_inches()[0]


def _widen_for_text(figure, factor: float, widths: np.ndarray | None) -> None:
    """Widen ``figure``, its fonts grown by ``factor``, by steps of :data:`_WIDEN_STEP` up to ``factor`` times its
    width (text that fitted before fits again) while its layout does not fit or a panel is narrower than
    :data:`MIN_PANEL_SHARE` of its width in ``widths`` (inches, per axes, at the unscaled fonts), so that large fonts
    (``--font-scale 3``, ``--style talk``) never squeeze panels side by side into slivers."""
    width, height = figure.get_size_inches()
    scale = 1.0
    while scale < factor:
        now = _panel_widths_in(figure)
        if now is not None and (widths is None or np.all(now >= MIN_PANEL_SHARE * widths)):
            return
        scale = min(scale * _WIDEN_STEP, factor)
        figure.set_size_inches(width * scale, height)


def parse_font_scale(text: str) -> float:
    """``--font-scale F`` as a float (its range checked by :class:`FigureStyle`).

    Raises:
        VizError: not a number.
    """
    try:
        return float(text)
    except ValueError:
        low, high = FONT_SCALES
        raise VizError(f"--font-scale {text!r}: give a factor from {low:g} to {high:g}, e.g. 1.25") from None


def _scale_fonts(figure, factor: float) -> None:
    """Multiply the size of every text of ``figure`` by ``factor``: tick labels through their axes (ticks made at
    drawing time take the axes' size), the rest one by one."""
    from matplotlib.text import Text

    ticks = set()
    for ax in figure.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = [tick.label1 for tick in axis.get_major_ticks() + axis.get_minor_ticks()]
            ticks.update(id(label) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                         for label in (tick.label1, tick.label2))
            if labels:
                ax.tick_params(axis=name, which="both", labelsize=labels[0].get_fontsize() * factor)
    for text in figure.findobj(Text):
        if id(text) not in ticks:
            text.set_fontsize(text.get_fontsize() * factor)


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
    ax.set_xlim(0.0, run.duration_days)


def burden_figure(run: RunData):
    """Tumor burden over time: (a) cells by state, stacked; (b) volume and equivalent diameter. The legends are above
    the panels, so that no style or font scale makes them cover the data."""
    frame = run.timeseries
    days = frame["time_days"].to_numpy()
    figure = _new_figure(3.1)
    left, right = figure.subplots(1, 2)
    columns = {CYCLING: "cells_cycling", QUIESCENT: "cells_quiescent", APOPTOTIC: "cells_apoptotic", NECROTIC: "cells_necrotic"}
    left.stackplot(days, [frame[columns[code]].to_numpy() for code in columns],
                   colors=[palette.to_float(palette.STATE_COLORS[code]) for code in columns],
                   labels=[STATE_NAMES[code] for code in columns], linewidth=0)
    left.set_ylabel("tumor cells")
    left.set_ylim(bottom=0)
    handles, labels = left.get_legend_handles_labels()
    _legend_above(left, handles[::-1])  # necrotic first, as the stack is from the top
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
    _legend_above(right, right.get_lines() + twin.get_lines())
    _panel_label(right, "b")
    figure.suptitle("Tumor burden")
    return figure


def oxygen_figure(run: RunData):
    """Oxygen over time: (a) hypoxic fraction of live tumor cells; (b) mean and tumor-minimum oxygen with thresholds
    (legend above the panel)."""
    frame = run.timeseries
    days = frame["time_days"].to_numpy()
    hypoxia = {key: run.setting("tumor", "hypoxia", key) for key in ("quiescence_below_mmHg", "necrosis_max_mmHg")}
    units = run.field_units("oxygen") or "mmHg"
    figure = _new_figure(3.1)
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
    _legend_above(right, right.get_lines())
    _time_axis(right, run)
    _panel_label(right, "b")
    figure.suptitle("Oxygen")
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


def _section_marker_pt(columns: int, voxels_across: int) -> float:
    """The size, points, of the immune markers of a section figure of ``columns`` panels each ``voxels_across`` voxels
    wide: :data:`SLICE_MARKER_VOXELS` voxels, within :data:`SLICE_MARKER_RANGE` of the style's marker size (so that
    a marker stays legible over a wide section, and grows with the style)."""
    from matplotlib import rcParams

    voxel_pt = (WIDTH_IN - 2.0) / max(columns, 2) * 72.0 / voxels_across
    low, high = (fraction * rcParams["lines.markersize"] for fraction in SLICE_MARKER_RANGE)
    return min(high, max(low, SLICE_MARKER_VOXELS * voxel_pt))


def _immune_markers(ax, classes: np.ndarray, extent: tuple[float, ...], dx: float, size_pt: float) -> None:
    """Immune cells of a plane (glyph classes, -1 for none; cropped like the image) as markers of ``size_pt`` points."""
    for code, glyph in enumerate(palette.glyphs_covering(classes)):
        rows, cols = np.nonzero(classes == code)
        if rows.size == 0:
            continue
        ax.plot(extent[0] + (cols + 0.5) * dx, extent[2] + (rows + 0.5) * dx, linestyle="none", marker=glyph.marker,
                markersize=legend.marker_size(glyph, size_pt), markerfacecolor=palette.to_float(glyph.color),
                markeredgecolor=palette.to_float(glyph.edge), markeredgewidth=max(0.25, 0.12 * size_pt), zorder=3)


def slices_figure(run: RunData):
    """Mid-plane of the tumor at up to four times: by clone (top) and by state (bottom), oxygen isolines.

    For a 3-D run the plane is ``z`` through the centroid of the last
    snapshot's tumor, the same for every column; a 2-D run shows its lattice.
    Immune cells (runs with them) are markers over both rows,
    sized by :func:`_section_marker_pt`, with a legend row below the panels.
    """
    from matplotlib import rcParams
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
    shown_planes: list[tuple[np.ndarray, np.ndarray]] = []
    immune_planes: list[np.ndarray] = []
    marker_pt = _section_marker_pt(n, max(rows.stop - rows.start, cols.stop - cols.start))
    any_vessel = False
    for column, snapshot in enumerate(snapshots):
        clone, state, vessel = (array[section][rows, cols] for array in (snapshot.clone, snapshot.cell_state, snapshot.vessel))
        shown_planes.append((clone.ravel(), state.ravel()))
        any_vessel |= bool(vessel.any())
        classes = run.immune_glyph_classes(snapshot)
        if classes is not None:
            immune_planes.append(classes[section][rows, cols])
        for row, by in enumerate(("clone", "state")):
            ax = axes[row, column]
            ax.imshow(palette.voxel_colors(clone, state, vessel, by), origin="lower", extent=extent, interpolation="nearest")
            if classes is not None:
                _immune_markers(ax, immune_planes[-1], extent, dx, marker_pt)
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
    all_clones, all_states = (np.concatenate(arrays) for arrays in zip(*shown_planes))  # every panel's voxels
    no_vessel = np.zeros(all_clones.shape, dtype=bool)
    by_clone = legend.entries(all_clones, all_states, no_vessel, "clone", run.clone_name, SLICE_LEGEND_CLONES)
    states = legend.entries(all_clones, all_states, no_vessel, "state", run.clone_name)
    for row, (title, shown) in enumerate((("clone", by_clone), ("cell state", states))):
        axes[row, -1].legend(handles=legend.handles(shown + extras) + isolines, title=title, frameon=False,
                             loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, alignment="left")
    immune_rows = legend.immune_entries(np.concatenate([plane.ravel() for plane in immune_planes]), run.immune_glyphs) if immune_planes else []
    if immune_rows:
        figure.legend(handles=legend.handles(immune_rows, marker_size_pt=rcParams["lines.markersize"]), loc="outside lower center", ncols=len(immune_rows),
                      frameon=False, handletextpad=0.3, columnspacing=1.5)
    plane = f"plane z = {(section[0] + 0.5) * dx:g} µm through the tumor centre" if section else "2-D lattice"
    figure.suptitle(f"Tumor sections ({plane})")
    return figure


MULLER_LABELS = 8  # clones named in the Muller plot's legend (the largest by peak share)
MULLER_GID = "muller-bands"  # gid of the PolyCollection of the bands


def run_muller_bands(run: RunData) -> MullerBands:
    """The Muller bands of ``run``: live cells of each clone, at every record (see :func:`viz.muller.muller_bands`)."""
    if run.clone_series is None or run.lineage is None:
        raise VizError(f"{run.path}: no clones.parquet or lineage.parquet (written by tme run since clone tracking)")
    return muller_bands(run.lineage, run.clone_series, "cells_live", run.timeseries["time_h"].to_numpy())


def _draw_muller(ax, bands: MullerBands):
    """Fill every clone's envelope in drawing order, one PolyCollection (gid :data:`MULLER_GID`); returns it."""
    from matplotlib.collections import PolyCollection

    polygons = bands.polygons()
    collection = PolyCollection([vertices for _, vertices in polygons],
                                facecolors=[palette.to_float(palette.clone_color(clone)) for clone, _ in polygons],
                                edgecolors="none", linewidths=0.0)
    collection.set_gid(MULLER_GID)
    ax.add_collection(collection, autolim=False)
    return collection


def muller_figure(run: RunData):
    """Clonal composition over time: (a) Muller plot of live-cell shares; (b) live cells of the largest clones, log axis.

    In (a) each clone's band is its share of the live tumor cells (0-1) and
    its descendants' bands lie inside it, so a subclone emerges from its
    parent at its birth time. Every clone is drawn; the legend names the
    :data:`MULLER_LABELS` with the largest peak share. Colours are
    ``palette.clone_color``, as in renders and sections.
    """
    from matplotlib.ticker import PercentFormatter

    bands = run_muller_bands(run)
    days = bands.time_days
    figure = _new_figure(3.0)
    left, right = figure.subplots(1, 2, width_ratios=(3, 2), sharex=True)  # one time axis: the same ticks in both
    _draw_muller(left, bands)
    left.set_ylim(0.0, 1.0)
    left.yaxis.set_major_formatter(PercentFormatter(1.0))
    left.set_ylabel("share of live tumor cells")
    _time_axis(left, run)
    _panel_label(left, "a")

    named = bands.largest(MULLER_LABELS)
    record = np.isin(bands.time_h, run.timeseries["time_h"].to_numpy())  # interpolated birth points are not data
    for clone in named:
        _log_line(right, days[record], bands.cells[bands.row(clone), record], palette.clone_color(clone), linewidth=1.0)
    total = _log_line(right, days[record], bands.total[record], (0, 0, 0), linewidth=1.2, linestyle=(0, (3, 2)), zorder=3)
    right.set_yscale("log")
    right.set_ylabel("live tumor cells")
    _time_axis(right, run)
    _panel_label(right, "b")

    present = int((bands.share.max(axis=1) > 0).sum()) if bands.share.size else 0
    rows = [(run.clone_name(clone), palette.clone_color(clone)) for clone in named]
    if present > len(named):
        rows.append((f"+{present - len(named)} smaller clones", palette.OUTLINE_COLOR))
    total.set_label("all clones")
    figure.legend(handles=legend.handles(rows) + [total], title="clone", loc="outside right center", frameon=False,
                  alignment="left", handlelength=1.4, handleheight=1.0)
    founding = int((bands.parents < 0).sum())
    figure.suptitle(f"Clonal composition ({len(bands.clones)} clones, {founding} founding)")
    return figure


def _log_line(ax, days: np.ndarray, values: np.ndarray, color: palette.RGB, **style):
    """Plot ``values`` over ``days`` with zeros as gaps (for a log axis); points with no neighbour get a dot."""
    values = np.where(values > 0, values, np.nan)
    line = ax.plot(days, values, color=palette.to_float(color), **style)[0]
    finite = np.isfinite(values)
    alone = finite & ~np.r_[False, finite[:-1]] & ~np.r_[finite[1:], False]
    if alone.any():
        ax.plot(days[alone], values[alone], linestyle="none", marker="o", markersize=2.5, color=palette.to_float(color),
                zorder=line.get_zorder())
    return line


def _plot_series(ax, days: np.ndarray, values, color: palette.RGB, label: str, style: str = "-"):
    """One time-series line (NaN values are gaps); returns the Line2D."""
    return ax.plot(days, np.asarray(values, dtype=float), linestyle=style, color=palette.to_float(color),
                   label=label, linewidth=1.2)[0]


def _finite_range(*series, default: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """Smallest and largest finite value of ``series`` (``default`` if none is finite)."""
    values = np.concatenate([np.asarray(item, dtype=float).ravel() for item in series])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else default


def _limits(ax, low: float, high: float) -> None:
    """Linear y limits from the data: ``low`` to ``high`` and 5 % of that span above it (the panel's legend is outside
    the axes, :func:`_legend_above`, so no room is left for it inside)."""
    ax.set_ylim(low, high + 0.05 * max(high - low, 1e-9))


def _log_limits(ax, data_range: tuple[float, float]) -> None:
    """Log-axis y limits from the data (``data_range``, both > 0), a factor 1.5 beyond it on each side (a legend on
    such an axis goes outside it, :func:`_legend_above`)."""
    ax.set_ylim(data_range[0] / 1.5, data_range[1] * 1.5)


def _legend_above(ax, handles: list, **options) -> None:
    """A legend just above ``ax``, left-aligned (the figure's constrained layout makes room for it)."""
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.02), borderaxespad=0.0, frameon=False, **options)


def _relative_to_start(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their first finite, nonzero value (all NaN if there is none)."""
    usable = np.flatnonzero(np.isfinite(values) & (values != 0))
    return values / values[usable[0]] if usable.size else np.full(values.shape, np.nan)


def _any_positive(values: np.ndarray) -> bool:
    """Whether any finite value is above 0 (a trait that is 0 throughout is left out of a panel)."""
    return bool(np.any(np.isfinite(values) & (values > 0)))


def heterogeneity_figure(run: RunData):
    """Clonal heterogeneity over time, four panels.

    (a) clones with live cells and clones founded so far; (b) Shannon
    diversity ``H`` (nats) and Gini-Simpson diversity ``1 - sum p^2`` of the
    live-cell clone shares ``p``; (c) the mean fraction of a live cell's live
    neighbours that are in its own clone, against ``sum p^2``, its value if
    clones were mixed at random (above it: clones are spatially segregated);
    (d) fractions of live cells resistant to any drug and to each drug (when
    the run has drugs), mean PD-L1 and efflux (when not 0 throughout), and,
    on the right axis, the live-cell-weighted mean division rate relative to
    day 0. NaN values (times with no live cell) are gaps. Each panel has
    its legend above it and axes limits from its data.
    """
    from matplotlib.ticker import MaxNLocator

    frame = run.timeseries
    days = frame["time_days"].to_numpy()
    colors = palette.MEASURE_COLORS
    figure = _new_figure(5.0)
    (clones, diversity), (segregation, traits) = figure.subplots(2, 2)

    _plot_series(clones, days, frame["clones_alive"], colors["primary"], "with live cells")
    _plot_series(clones, days, frame["clones_total"], colors["reference"], "founded so far", "--")
    clones.set_ylabel("clones")
    clones.yaxis.set_major_locator(MaxNLocator(integer=True))
    _limits(clones, 0.0, max(1.0, _finite_range(frame["clones_total"], frame["clones_alive"])[1]))
    _legend_above(clones, clones.get_lines())

    _plot_series(diversity, days, frame["shannon_diversity"], colors["primary"], "Shannon H (nats)")
    _plot_series(diversity, days, frame["simpson_diversity"], colors["reference"], "Gini-Simpson 1 − Σp²", "--")
    diversity.set_ylabel("clonal diversity")
    _limits(diversity, 0.0, max(0.1, _finite_range(frame["shannon_diversity"], frame["simpson_diversity"])[1]))
    _legend_above(diversity, diversity.get_lines())

    observed = frame["same_clone_neighbour_fraction"].to_numpy(dtype=float)
    random = frame["same_clone_neighbour_fraction_random"].to_numpy(dtype=float)
    _plot_series(segregation, days, observed, colors["primary"], "observed")
    _plot_series(segregation, days, random, colors["reference"], "random mixing (Σp²)", "--")
    segregation.fill_between(days, random, observed, where=observed >= random, color="0.85", linewidth=0,
                             label="segregation", interpolate=True)
    segregation.set_ylabel("same-clone neighbour fraction")
    low = _finite_range(observed, random, default=(1.0, 1.0))[0]
    segregation.set_ylim(min(low, 0.95), 1.0 + 0.02 * (1.0 - min(low, 0.95)))
    _legend_above(segregation, segregation.get_legend_handles_labels()[0])

    drugs = [column[len("fraction_resistant_"):] for column in frame.columns if column.startswith("fraction_resistant_")]
    left_lines = []
    if drugs:
        left_lines.append(_plot_series(traits, days, frame["fraction_resistant"], colors["resistance"],
                                       "resistant (any drug)" if len(drugs) > 1 else f"resistant to {drugs[0]}"))
        if len(drugs) > 1:
            for drug, style in zip(drugs, ("--", ":", "-.") * len(drugs)):
                left_lines.append(_plot_series(traits, days, frame[f"fraction_resistant_{drug}"], colors["resistance"],
                                               f"resistant to {drug}", style))
    for column, key, label in (("mean_pdl1", "pdl1", "mean PD-L1"), ("mean_efflux", "efflux", "mean efflux")):
        if column in frame and _any_positive(frame[column].to_numpy(dtype=float)):
            left_lines.append(_plot_series(traits, days, frame[column], colors[key], label, "-."))
    columns = 2 if len(left_lines) + 1 > 3 else 1
    if left_lines:
        traits.set_ylabel("fraction of live cells; trait level")
        highest = _finite_range(*[line.get_ydata() for line in left_lines])[1]
        traits.set_ylim(0.0, min(1.0, max(0.05, 1.05 * highest)))
        rate = traits.twinx()
        rate.spines["right"].set_visible(True)
    else:
        rate = traits
    relative = _relative_to_start(frame["mean_division_rate_per_h"].to_numpy(dtype=float))
    rate_line = _plot_series(rate, days, relative, colors["division"], "mean division rate")
    rate.axhline(1.0, color=palette.to_float(colors["division"]), linewidth=0.5, linestyle=":")
    rate.set_ylabel("mean division rate (× day 0)", color=palette.to_float(colors["division"]))
    low, high = _finite_range(relative, [1.0])
    pad = max(0.02, 0.1 * (high - low))
    rate.set_ylim(max(0.0, low - pad), high + pad)
    compact = {"fontsize": 7, "handlelength": 1.4, "handletextpad": 0.4, "columnspacing": 0.8} if columns > 1 else {}
    _legend_above(traits, left_lines + [rate_line], ncols=columns, **compact)

    for ax, letter in zip((clones, diversity, segregation, traits), "abcd"):
        _time_axis(ax, run)
        _panel_label(ax, letter)
    figure.suptitle("Clonal heterogeneity")
    return figure


#: The columns the immune figure needs (each suppressor type's count, ``<name>s``, is drawn where the timeseries has it).
IMMUNE_FIGURE_COLUMNS = ("t_cells_effector", "t_cells_exhausted", "t_cells_in_tumor",
                         "cd8_density_core_per_mm3", "cd8_density_margin_per_mm3", "immune_kills_per_h", "primed_pool_total")
IMMUNE_CLONE_LINES = 8  # T-cell clones drawn in panel (d) of the immune figure (the largest by peak cells)
_CLONE_LINE_STYLES = ("-", "--", "-.", ":")


def _tcell_clone_style(rank: int) -> tuple[palette.RGB, str]:
    """Colour and line style of the ``rank``-th T-cell clone line: black, then grey, each in four dash patterns.

    Hue is left out on purpose: every hue names a tumor clone in these figures.
    """
    colors = (palette.MEASURE_COLORS["primary"], palette.MEASURE_COLORS["reference"])
    return colors[(rank // len(_CLONE_LINE_STYLES)) % len(colors)], _CLONE_LINE_STYLES[rank % len(_CLONE_LINE_STYLES)]


def _note(ax, text: str) -> None:
    """A grey note in the middle of an empty panel."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.35", fontsize=7.5, wrap=True)


def immune_figure(run: RunData):
    """Immune infiltration over time, four panels.

    Each panel has its legend above it, and axes limits from its data (on a
    log axis, room for a legend inside would add decades of nothing). (a) immune cells on the lattice: effector and exhausted T cells, Tregs
    and MDSCs (the kinds the run has, in their glyph colours), and T cells
    in tumor voxels; (b) CD8 (T-cell) density in the tumor core and in the
    invasive margin; (c) tumor cells killed by T cells per hour and, on a log
    right axis, the systemic primed T-cell pool; (d) T cells of each T-cell
    clone on the lattice (effector and exhausted), from ``immune.parquet``.
    NaN values (no core, no tumor) are gaps.
    """
    from matplotlib.ticker import MaxNLocator

    frame = run.timeseries
    days = frame["time_days"].to_numpy()
    glyphs = run.immune_glyphs
    agents = run.immune_agents
    kinds = {agent.kind for agent in agents} or {"t_cell"}
    figure = _new_figure(5.0)
    (cells, density), (killing, clones) = figure.subplots(2, 2)

    lines = []
    drawn = [(palette.GLYPH_T_EFFECTOR, "t_cell", "t_cells_effector", "effector T cells"),
             (palette.GLYPH_T_EXHAUSTED, "t_cell", "t_cells_exhausted", "exhausted T cells"),
             (None, "t_cell", "t_cells_in_tumor", "T cells in tumor")]
    drawn += [(palette.GLYPH_SUPPRESSOR_FIRST + agent.code - 1, agent.kind, files.suppressor_column(agent.name), f"{agent.label}s")
              for agent in agents if agent.role != "t_cell" and files.suppressor_column(agent.name) in frame.columns]
    for code, kind, column, label in drawn:
        if kind not in kinds:
            continue
        color, style = ((glyphs[code].line, glyphs[code].line_style) if code is not None
                        else (palette.MEASURE_COLORS["primary"], ":"))
        line = _log_line(cells, days, frame[column].to_numpy(dtype=float), color, linewidth=1.2, linestyle=style)
        line.set_label(label)
        lines.append(line)
    cells.set_yscale("log")
    cells.set_ylabel("immune cells on the lattice")
    counts = np.concatenate([frame[column].to_numpy(dtype=float) for _, kind, column, _ in drawn if kind in kinds])
    columns = 2 if len(lines) > 3 else 1
    _log_limits(cells, _finite_range(counts[counts > 0], default=(1.0, 10.0)))
    compact = {"fontsize": 7, "handlelength": 1.6, "handletextpad": 0.4, "columnspacing": 0.8} if columns > 1 else {}
    _legend_above(cells, lines, ncols=columns, **compact)

    core = frame["cd8_density_core_per_mm3"].to_numpy(dtype=float)
    margin = frame["cd8_density_margin_per_mm3"].to_numpy(dtype=float)
    highest = _finite_range(core, margin)[1]
    scale = 1e3 if highest >= 1e4 else 1.0
    depth = (run.config.get("immune") or {}).get("margin_um")
    no_core = f"tumor core: none (the tumor\nis never over {depth:g} µm deep)" if depth else "tumor core: none"
    has_core = bool(np.isfinite(core).any())
    _plot_series(density, days, core / scale, palette.MEASURE_COLORS["primary"], "tumor core" if has_core else no_core)
    _plot_series(density, days, margin / scale, palette.MEASURE_COLORS["reference"], "invasive margin", "--")
    density.set_ylabel("T-cell density (10³ cells/mm³)" if scale > 1 else "T-cell density (cells/mm³)")
    _limits(density, 0.0, max(1.0 / scale, highest / scale))
    _legend_above(density, density.get_lines())

    kills = frame["immune_kills_per_h"].to_numpy(dtype=float)
    kill_line = _plot_series(killing, days, kills, palette.MEASURE_COLORS["primary"], "tumor cells killed by T cells")
    killing.set_ylabel("kills per hour")
    _limits(killing, 0.0, max(1.0, _finite_range(kills)[1]))
    pool = killing.twinx()
    pool.spines["right"].set_visible(True)
    pool_values = frame["primed_pool_total"].to_numpy(dtype=float)
    pool_line = _log_line(pool, days, pool_values, palette.MEASURE_COLORS["reference"], linewidth=1.2, linestyle="--")
    pool_line.set_label("primed T cells (systemic pool)")
    pool.set_yscale("log")
    _log_limits(pool, _finite_range(pool_values[pool_values > 0], default=(1.0, 10.0)))
    pool.set_ylabel("primed T cells", color=palette.to_float(palette.MEASURE_COLORS["reference"]))
    _legend_above(killing, [kill_line, pool_line])

    series = run.immune_series
    t_rows = series[series["kind"] == "t_cell"] if series is not None else None
    if t_rows is None or t_rows.empty:
        _note(clones, "no T-cell clones" if series is not None else "no immune.parquet in the run directory")
        clones.set_ylabel("T cells on the lattice")
    else:
        totals = t_rows.assign(cells=t_rows["cells_effector"] + t_rows["cells_exhausted"])
        table = totals.pivot_table(index="time_days", columns="agent", values="cells", aggfunc="sum").sort_index()
        peak = table.max(axis=0).sort_values(ascending=False, kind="stable")
        named = sorted(int(agent) for agent in peak.index[:IMMUNE_CLONE_LINES])
        by_index = {agent.index: agent for agent in run.immune_agents}
        handles = []
        for rank, agent in enumerate(named):
            color, style = _tcell_clone_style(rank)
            label = by_index[agent].label if agent in by_index else str(totals.loc[totals["agent"] == agent, "name"].iloc[0])
            handles.append(_plot_series(clones, table.index.to_numpy(), table[agent].to_numpy(), color, label, style))
        if len(peak) > len(named):
            rest = table[[agent for agent in table.columns if int(agent) not in named]].sum(axis=1)
            handles.append(_plot_series(clones, table.index.to_numpy(), rest.to_numpy(), palette.OUTLINE_COLOR,
                                        f"{len(peak) - len(named)} smaller clones, summed", "-"))
        clones.set_ylabel("T cells on the lattice")
        clones.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
        columns = 2 if len(handles) > 4 else 1
        titled = len(handles) > 1
        highest = max(1.0, float(np.nanmax(table.to_numpy())) if table.size else 1.0)
        _limits(clones, 0.0, highest)
        compact = {"fontsize": 7, "handlelength": 1.6, "handletextpad": 0.4, "columnspacing": 0.8} if columns > 1 else {}
        _legend_above(clones, handles, title="T-cell clone" if titled else None, ncols=columns, alignment="left", **compact)

    for ax, letter in zip((cells, density, killing, clones), "abcd"):
        _time_axis(ax, run)
        _panel_label(ax, letter)
    figure.suptitle("Immune infiltration")
    return figure


def _legend_right(ax, handles: list, title: str | None = None, **options) -> None:
    """A legend just right of ``ax``, top-aligned (the figure's constrained layout makes room for it)."""
    ax.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False,
              alignment="left", handlelength=1.2, handleheight=0.9, **options)


def _treated(run: RunData) -> bool:
    """Whether the run has treatment events (``events.parquet`` with at least one row)."""
    return run.events is not None and len(run.events) > 0


def treatment_figure(run: RunData):
    """One treated run: burden, assessments, plasma levels and the dosing track on one time axis.

    (a) live tumor cells, the background tinted by the line of therapy
    given; (b) the burden the criteria measure (lesion diameter, or the
    marker for myeloma) at each assessment, coloured by its response
    category, baselines of lines as open circles; (c) plasma level of each
    dosed drug, from the doses and the drug's pharmacokinetics (closed form,
    so exact between records); (d) the line of therapy (a tick where one
    follows another) and each drug's doses (bars as long as the infusion, a
    bolus a thin bar). Drug and line colours are those of the comparison
    figures (:func:`viz.treatment.treatment_colors`).
    """
    from matplotlib.lines import Line2D

    events = run.events
    spans = treatment.line_spans(run.treatment)
    given = treatment.doses(events)
    colors = treatment.treatment_colors(run.config, [str(drug) for drug in given["drug"]], [span[0] for span in spans])
    drugs = [drug for drug in colors.drugs if drug in set(given["drug"])]
    assessed = treatment.assessments(events, baselines=True)
    arm = run.config.get("treatment") or {}
    criteria = (arm.get("assessment") or {}).get("criteria", run.treatment.get("criteria", "recist"))
    duration = run.duration_days
    frame = run.timeseries
    days = frame["time_days"].to_numpy()

    start_day = float(arm.get("start_day", spans[0][1] if spans else 0.0))
    track_rows = ["line"] + drugs
    heights = [1.7, 1.3] + ([1.2] if drugs else []) + [0.28 * len(track_rows) + 0.1]
    figure = _new_figure(sum(heights) + 1.0)
    axes = list(figure.subplots(len(heights), 1, sharex=True, height_ratios=heights))
    burden_ax, assess_ax = axes[0], axes[1]
    plasma_ax = axes[2] if drugs else None
    track_ax = axes[-1]

    for line, start, end in spans:
        for ax in axes[:-1]:
            ax.axvspan(start, end, color=palette.to_float(colors.line(line)), alpha=0.35, linewidth=0, zorder=0)
    live = _plot_series(burden_ax, days, frame["tumor_cells_live"], palette.MEASURE_COLORS["primary"], "live tumor cells")
    burden_ax.set_ylabel("live tumor cells")
    burden_ax.set_ylim(bottom=0)
    for ax in axes:
        ax.axvline(start_day, color="0.35", linestyle=":", linewidth=0.9, zorder=1)
    started = Line2D([], [], color="0.35", linestyle=":", linewidth=0.9, label=f"start of treatment (day {start_day:g})")
    _legend_right(burden_ax, [live, started])

    measured = assessed.dropna(subset=["burden"])
    assess_ax.plot(measured["time_days"], measured["burden"], color="0.6", linewidth=0.8, zorder=2)
    base = measured[measured["event"] == "baseline"]
    assess_ax.plot(base["time_days"], base["burden"], linestyle="none", marker="o", markersize=5, markerfacecolor="white",
                   markeredgecolor="black", markeredgewidth=0.8, zorder=3)
    points = measured[measured["event"] == "assessment"]
    if not points.empty:  # (unclipped, an empty collection would count as an artist at the figure's corner)
        assess_ax.scatter(points["time_days"], points["burden"], s=26, zorder=4, edgecolors="0.25", linewidths=0.5,
                          clip_on=False, c=[palette.to_float(palette.response_color(category)) for category in points["category"]])
    first = None
    if not run.treatment.get("progression_censored", True) and run.treatment.get("time_to_progression_days") is not None:
        time = start_day + float(run.treatment["time_to_progression_days"])
        at = points[np.isclose(points["time_days"].to_numpy(dtype=float), time)]
        if not at.empty:
            first = assess_ax.plot([time], [float(at["burden"].iloc[0])], linestyle="none", marker="o", markersize=11,
                                   markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.0, zorder=5,
                                   clip_on=False, label=f"first progression (day {time:g})")[0]
    assess_ax.set_ylabel("marker" if criteria == "myeloma" else "lesion diameter (µm)")
    high = _finite_range(measured["burden"], default=(0.0, 1.0))[1]
    assess_ax.set_ylim(0.0, max(high * 1.12, 1e-9))
    present = treatment.ordered_categories({str(category) for category in points["category"].dropna()})
    baseline_handle = Line2D([], [], linestyle="none", marker="o", markersize=5, markerfacecolor="white",
                             markeredgecolor="black", markeredgewidth=0.8, label="baseline of a line")
    category_handles = [Line2D([], [], linestyle="none", marker="o", markersize=5.5, markeredgecolor="0.25",
                               markeredgewidth=0.5, markerfacecolor=palette.to_float(color), label=label)
                        for label, color in treatment.response_legend_rows(present)]
    _legend_right(assess_ax, [baseline_handle] + category_handles + ([first] if first is not None else []),
                  title=f"assessment ({criteria}; response per line)")

    if plasma_ax is not None:
        end_h = duration * 24.0
        handles = []
        for drug in drugs:
            mine = given[given["drug"] == drug]
            times = treatment.plasma_times(mine, end_h)
            levels = treatment.plasma_levels((run.config.get("drugs") or {}).get(drug) or {}, mine, times)
            units = run.field_units(drug)
            handles.append(plasma_ax.plot(times / 24.0, levels, color=palette.to_float(colors.drug(drug)), linewidth=1.1,
                                          label=f"{drug} ({units})" if units else drug)[0])
        plasma_ax.set_ylabel("plasma level")
        plasma_ax.set_ylim(bottom=0)
        _legend_right(plasma_ax, handles, title="drug")

    treatment.setup_track(track_ax, track_rows)
    treatment.draw_line_lanes(track_ax, 0, [spans], colors)
    for row, drug in enumerate(drugs, start=1):
        treatment.draw_dose_lanes(track_ax, row, [given], drug, colors.drug(drug), duration)
    _legend_right(track_ax, legend.handles(treatment.line_legend_rows(colors, [span[0] for span in spans])),
                  title="line of therapy")

    for ax, letter in zip(axes, "abcd"):
        _time_axis(ax, run)
        _panel_label(ax, letter)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    outcome = run.treatment
    if outcome.get("time_to_progression_days") is not None:
        days = float(outcome["time_to_progression_days"])
        progression = ("no progression" if outcome.get("progression_censored")
                       else f"progression {days:g} day{'' if days == 1 else 's'} after the start of treatment")
        best = outcome.get("best_overall_response")
        figure.suptitle(f"Treatment: best response {best or 'n/a'}, {progression}")
    else:
        figure.suptitle("Treatment")
    return figure


def _has_columns(*columns: str) -> Callable[[RunData], bool]:
    return lambda run: set(columns) <= set(run.timeseries.columns)


def _has_clone_files(run: RunData) -> bool:
    """Whether the run has ``lineage.parquet`` and a ``clones.parquet`` with at least one row."""
    return run.lineage is not None and run.clone_series is not None and len(run.clone_series) > 0


HETEROGENEITY_COLUMNS = ("clones_alive", "clones_total", "shannon_diversity", "simpson_diversity",
                         "same_clone_neighbour_fraction", "same_clone_neighbour_fraction_random",
                         "fraction_resistant", "mean_division_rate_per_h")


RUN_FIGURES: tuple[RunFigure, ...] = (
    RunFigure("burden", "Tumor cells by state (stacked) and tumor volume with equivalent diameter over time.",
              burden_figure, _has_columns("cells_cycling", "tumor_volume_mm3", "equivalent_diameter_um")),
    RunFigure("oxygen", "Hypoxic fraction of live tumor cells, and mean and tumor-minimum oxygen over time with the hypoxia thresholds.",
              oxygen_figure, _has_columns("hypoxic_fraction", "oxygen_mean_mmHg", "oxygen_min_tumor_mmHg")),
    RunFigure("muller", "Muller plot of the clones' shares of the live tumor cells, each subclone inside its parent "
              "from its birth, and live cells of the largest clones (log scale).",
              muller_figure, _has_clone_files),
    RunFigure("heterogeneity", "Clones alive and founded, Shannon and Gini-Simpson diversity, spatial segregation "
              "(same-clone neighbours against random mixing), and resistant fractions and mean traits over time.",
              heterogeneity_figure, _has_columns(*HETEROGENEITY_COLUMNS)),
    RunFigure("immune", "Immune cells on the lattice by kind and state, T-cell density in the tumor core and invasive margin, "
              "tumor cells killed by T cells per hour with the primed T-cell pool, and T cells of each T-cell clone over time.",
              immune_figure, _has_columns(*IMMUNE_FIGURE_COLUMNS)),
    RunFigure("treatment", "Live tumor cells with the line of therapy given, the burden at each assessment coloured by "
              "response, plasma levels of the dosed drugs, and the lines and doses over time.",
              treatment_figure, _treated),
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


def draw_figures(specs, data: Any, out: Path, formats: tuple[str, ...], names: tuple[str, ...] | None,
                 what: str, reuse: bool = False, progress: bool = False,
                 style: FigureStyle = FigureStyle()) -> dict[str, list[Path]]:
    """Draw every figure of ``specs`` that applies to ``data`` (or those in ``names``) into ``out``.

    Each figure drawn is recorded in ``out`` (:mod:`viz.figurecache`) with
    the options it was drawn with.

    Args:
        specs: the figure specifications (each with ``name``, ``applies`` and ``make``).
        data: what the figures are drawn from (a run or a comparison; its ``path`` is the directory).
        out: the output folder.
        formats: file formats, from :data:`viz.output.FIGURE_FORMATS`.
        names: figure names to draw (None: every one that applies).
        what: "a run's" or "a comparison's", for the message about unknown names.
        reuse: keep a figure whose files in ``out`` are up to date (same options, no older than the data) instead of
            drawing it again.
        progress: print a line per figure to stderr, as it is drawn (or kept).
        style: the style, font scale and title of every figure.

    Returns:
        Figure name -> its files (written or kept).
    """
    matplotlib = optional.matplotlib(_PURPOSE)
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise VizError(f"--formats {','.join(unknown)}: choose from {', '.join(FIGURE_FORMATS)}")
    known = {spec.name for spec in specs}
    if names is not None and set(names) - known:
        raise VizError(f"--only {','.join(sorted(set(names) - known))}: {what} figures are {', '.join(sorted(known))}")
    chosen = [spec for spec in specs if (names is None or spec.name in names) and spec.applies(data)]  # reads the tables
    options = style.record
    record = figurecache.read(out)
    stamp = figurecache.data_stamp(data.path) if reuse else 0
    written: dict[str, list[Path]] = {}
    with matplotlib.rc_context({**STYLE, **STYLES[style.style][1]}):
        for number, spec in enumerate(chosen, 1):
            kept = figurecache.up_to_date(record, out, spec.name, options, formats, stamp) if reuse else None
            if progress:
                print(f"figure {number}/{len(chosen)}: {spec.name}" + (" (up to date, kept)" if kept else ""),
                      file=sys.stderr, flush=True)
            if kept:
                written[spec.name] = kept
                continue
            figurecache.forget(record, out, spec.name, formats)
            figure = spec.make(data)
            style.apply(figure)
            written[spec.name] = save_figure(figure, out / spec.name, formats)
            figurecache.remember(record, out, spec.name, options, written[spec.name])
    return written


def plot_run(run: RunData, out: Path | None = None, formats: tuple[str, ...] = FIGURE_FORMATS,
             names: tuple[str, ...] | None = None, reuse: bool = False, progress: bool = False,
             style: FigureStyle = FigureStyle()) -> dict[str, list[Path]]:
    """Draw every applicable figure of ``run`` (or those in ``names``) into ``out`` (default ``RUN_DIR/figures``);
    ``reuse``, ``progress`` and ``style`` as :func:`draw_figures` takes them.

    Returns:
        Figure name -> files written (or kept).
    """
    return draw_figures(RUN_FIGURES, run, Path(out) if out is not None else run.path / "figures", formats, names, "a run's",
                        reuse, progress, style)
