"""Treatment data for figures, and the tracks that draw it: doses, lines of therapy, responses, plasma levels.

The figures of a treated run (``treatment`` in :data:`viz.figures.RUN_FIGURES`)
and of a ``tme compare`` output (:mod:`viz.comparison`) share these pieces:

* colours: :func:`treatment_colors` numbers a config's drugs (its ``drugs``
  order) and lines of therapy (the lines of its ``arms`` in order, then of its
  ``treatment``), so a drug or a line has the same colour in a run's figure
  and in the comparison that holds the run;
* data: doses, assessments and line spans of one run from its
  ``events.parquet`` and ``summary.json``; closed-form plasma levels
  (:func:`abm.rundir.plasma_levels`, the simulator's own); the most
  common response category across replicates; numbers at risk of a
  Kaplan-Meier table;
* tracks: a track axis has one row per item (a drug, the line of therapy,
  the response), row 0 on top; a row is split into one lane per replicate
  (a single run: one lane), so a bar across the whole row means every
  replicate had it.

Matplotlib is imported only by the drawing functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from abm import rundir as files
from viz import palette

ROW_HEIGHT = 0.8  # of a track row (rows are 1 apart)
MAX_SPACED_LANES = 6  # lanes of a row are spaced apart up to this many
BOLUS_WIDTH = 0.004  # a bolus (or short infusion) is drawn at least this fraction of the time axis wide
CHANGE_TICK = (0, 0, 0)  # line changes in line lanes
TRACK_LABEL_SIZE = 7.5  # row names of tracks, points
STRIP_TEXT_SIZE = 6.5  # category names in response strips, points
PROGRESSION_MARKER = "X"
ONGOING_MARKER = ">"  # the end of a run without progression (censored)


@dataclass(frozen=True)
class TreatmentColors:
    """Colours of the drugs and lines of therapy of one config (see :func:`treatment_colors`).

    Attributes:
        drugs: drug names by colour index.
        lines: line names by colour index.
        no_dose_lines: lines that give no drug in any arm (observation, holidays): pale grey.
    """

    drugs: tuple[str, ...]
    lines: tuple[str, ...]
    no_dose_lines: frozenset[str]

    def drug(self, name: str) -> palette.RGB:
        """The colour of drug ``name`` (an unknown drug after the known ones)."""
        return palette.drug_color(self.drugs.index(name) if name in self.drugs else len(self.drugs))

    def line(self, name: str) -> palette.RGB:
        """The colour of line ``name``."""
        if name in self.no_dose_lines:
            return palette.NO_DOSE_LINE_COLOR
        dosed = [line for line in self.lines if line not in self.no_dose_lines]
        return palette.line_color(dosed.index(name) if name in dosed else len(dosed))


def treatment_colors(config: dict[str, Any], extra_drugs: Sequence[str] = (), extra_lines: Sequence[str] = ()) -> TreatmentColors:
    """The drug and line colours of a resolved config (a mapping, as in ``config.yaml``).

    Args:
        config: the config; its ``drugs``, ``arms`` and ``treatment``.
        extra_drugs, extra_lines: names seen in events but not in the config
            (an edited config); they come after the config's, in this order.
    """
    drugs = list(config.get("drugs") or {})
    treatments = list((config.get("arms") or {}).values()) + [config.get("treatment")]
    lines: list[str] = []
    dosed: set[str] = set()
    for treatment in treatments:
        for line in (treatment or {}).get("lines") or []:
            if line["name"] not in lines:
                lines.append(line["name"])
            if line.get("doses"):
                dosed.add(line["name"])
    no_dose = frozenset(name for name in lines if name not in dosed)
    drugs += [name for name in dict.fromkeys(extra_drugs) if name not in drugs]
    lines += [name for name in dict.fromkeys(extra_lines) if name not in lines]
    return TreatmentColors(tuple(drugs), tuple(lines), no_dose)


# ---------------------------------------------------------------- one run's treatment


def doses(events) -> Any:
    """The dose rows of an events table (``time_days``, ``drug``, ``amount``, ``infusion_h``), in time order."""
    if events is None or events.empty:
        return _empty(("time_h", "time_days", "drug", "amount", "infusion_h"))
    rows = events[events["event"] == "dose"]
    out = rows[["time_h", "time_days", "drug", "amount", "infusion_h"]].astype(
        {"time_h": float, "time_days": float, "amount": float, "infusion_h": float})
    return out.sort_values("time_h", kind="stable").reset_index(drop=True)


def assessments(events, baselines: bool = False) -> Any:
    """The assessment rows (``time_days``, ``category``, ``burden``, ``change_from_baseline``; with ``baselines``
    also the baseline of each line, ``event`` telling them apart), in time order."""
    kinds = ("assessment", "baseline") if baselines else ("assessment",)
    columns = ("event", "time_days", "category", "burden", "change_from_baseline")
    if events is None or events.empty:
        return _empty(columns)
    rows = events[events["event"].isin(kinds)][list(columns)]
    return rows.astype({"time_days": float, "burden": float, "change_from_baseline": float}).reset_index(drop=True)


def _empty(columns: Sequence[str]):
    import pandas

    return pandas.DataFrame({column: pandas.Series(dtype=object if column in ("drug", "category", "event") else float)
                             for column in columns})


def line_spans(treatment: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(line, start_day, end_day)`` of each line given, from ``summary.json``'s ``treatment`` section."""
    return [(str(line["line"]), float(line["start_day"]), float(line["end_day"])) for line in treatment.get("lines") or []]


def treatment_responses(events) -> tuple[Any, bool]:
    """The assessments with the response measured from the start of treatment (``time_days``, ``category``): the
    endpoints' definition, from ``treatment_category``; for a run directory written before that column, the
    lines' own categories. Returns ``(rows, from_treatment_start)``."""
    if events is not None and not events.empty and "treatment_category" in events:
        rows = events[events["event"] == "assessment"][["time_days", "treatment_category"]]
        return rows.rename(columns={"treatment_category": "category"}).astype({"time_days": float}).reset_index(drop=True), True
    return assessments(events), False


def first_responses(assessed, responders: Sequence[str]) -> list[tuple[float, str]]:
    """``(time_days, category)`` of the first assessment in each responding category (e.g. the first PR, the first CR)."""
    seen: dict[str, float] = {}
    for time, category in zip(assessed["time_days"], assessed["category"]):
        if category in responders and category not in seen:
            seen[category] = float(time)
    return sorted((time, category) for category, time in seen.items())


def plasma_levels(drug: dict[str, Any], given, times_h: np.ndarray) -> np.ndarray:
    """Plasma level of one drug at ``times_h``, from its config entry (``pk``) and its dose rows (:func:`doses`).

    The simulator's closed form (:func:`abm.rundir.plasma_levels`), so the
    curve is exact between records. Zero for a drug without ``pk``.
    """
    return files.plasma_levels(drug.get("pk"), given, times_h)


def plasma_times(given, end_h: float, points: int = 1500) -> np.ndarray:
    """Times (h) to draw plasma levels at: an even grid, with each dose's start and infusion end and the moment before."""
    grid = np.linspace(0.0, end_h, points)
    starts = given["time_h"].to_numpy(dtype=float)
    ends = starts + given["infusion_h"].to_numpy(dtype=float)
    edges = np.concatenate([starts, ends])
    return np.unique(np.clip(np.concatenate([grid, edges, edges - 1e-6]), 0.0, end_h))


# ---------------------------------------------------------------- replicates


def response_mode(per_run: Sequence[Any], order: Sequence[str]) -> list[tuple[float, str, int, int]]:
    """The most common category at each assessment time across runs: ``(time_days, category, runs with it, runs assessed)``.

    Args:
        per_run: each run's assessments (:func:`assessment` frames).
        order: the criteria's categories, best first; a tie goes to the worse
            category (the conservative reading).
    """
    by_time: dict[float, list[str]] = {}
    for assessed in per_run:
        for time, category in zip(assessed["time_days"], assessed["category"]):
            if category is not None and category == category:  # not None, not NaN
                by_time.setdefault(round(float(time), 6), []).append(str(category))
    out = []
    for time in sorted(by_time):
        categories = by_time[time]
        counts = {category: categories.count(category) for category in set(categories)}
        rank = {category: index for index, category in enumerate(order)}
        best = max(counts, key=lambda category: (counts[category], rank.get(category, len(order))))
        out.append((time, best, counts[best], len(categories)))
    return out


def at_risk(curve, times: Sequence[float]) -> list[int]:
    """Numbers at risk at ``times`` from one arm's Kaplan-Meier table (``km.parquet`` rows: ``time``, ``at_risk``).

    The runs still followed and without progression just before ``t``: the
    ``at_risk`` of the first row at or after ``t`` (0 after the last row).
    """
    table_times = curve["time"].to_numpy(dtype=float)
    table_risk = curve["at_risk"].to_numpy(dtype=float)
    out = []
    for time in times:
        later = np.flatnonzero(table_times >= time - 1e-9)
        out.append(int(table_risk[later[0]]) if later.size else 0)
    return out


# ---------------------------------------------------------------- drawing


def setup_track(ax, rows: Sequence[str]) -> None:
    """A track axis with ``rows`` named on the left, row 0 on top; no y spine, light row guides."""
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), rows, fontsize=TRACK_LABEL_SIZE)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    for row in range(len(rows)):
        ax.axhspan(row - ROW_HEIGHT / 2, row + ROW_HEIGHT / 2, color="0.965", linewidth=0, zorder=0)


def lane(row: int, index: int, lanes: int) -> tuple[float, float]:
    """``(bottom, height)`` of lane ``index`` of ``lanes`` in track row ``row`` (lane 0 at the top of the row)."""
    height = ROW_HEIGHT / max(lanes, 1)
    gap = min(0.15 * height, 0.02) if 1 < lanes <= MAX_SPACED_LANES else 0.0  # many thin lanes: no gaps (they would stripe)
    return row - ROW_HEIGHT / 2 + index * height + gap / 2, height - gap


def draw_dose_lanes(ax, row: int, per_run: Sequence[Any], drug: str, color: palette.RGB, span_days: float) -> int:
    """Each run's doses of ``drug`` as bars in its lane of ``row`` (infusions as long as they run); returns the bars drawn."""
    minimum = BOLUS_WIDTH * span_days
    drawn = 0
    for index, given in enumerate(per_run):
        mine = given[given["drug"] == drug]
        if mine.empty:
            continue
        widths = np.maximum(mine["infusion_h"].to_numpy(dtype=float) / 24.0, minimum)
        ranges = list(zip(mine["time_days"].to_numpy(dtype=float), widths))
        ax.broken_barh(ranges, lane(row, index, len(per_run)), facecolors=palette.to_float(color), linewidth=0)
        drawn += len(ranges)
    return drawn


def draw_line_lanes(ax, row: int, per_run: Sequence[list[tuple[str, float, float]]], colors: TreatmentColors) -> None:
    """Each run's lines of therapy as coloured segments in its lane of ``row``, a black tick where a line follows another."""
    for index, spans in enumerate(per_run):
        bottom, height = lane(row, index, len(per_run))
        for number, (line, start, end) in enumerate(spans):
            ax.broken_barh([(start, max(end - start, 0.0))], (bottom, height), facecolors=palette.to_float(colors.line(line)),
                           linewidth=0)
            if number:
                ax.plot([start, start], [bottom, bottom + height], color=palette.to_float(CHANGE_TICK), linewidth=0.8,
                        solid_capstyle="butt")


def draw_response_strip(ax, row: int, cells: Sequence[tuple[float, str]], width_days: float, axis_width_in: float,
                        span_days: float) -> bool:
    """Response categories as cells of ``width_days`` in ``row``, each ending at its assessment time
    (it judges the interval since the assessment before).

    The cells are named inside when the longest name fits, for an axis about
    ``axis_width_in`` wide showing ``span_days`` (the layout is not final
    while drawing). Returns whether they were named.
    """
    for time, category in cells:
        ax.broken_barh([(time - width_days, width_days)], (row - ROW_HEIGHT / 2, ROW_HEIGHT),
                       facecolors=palette.to_float(palette.response_color(category)), edgecolor="white", linewidth=0.6)
    if not cells:
        return False
    cell_pt = width_days / span_days * axis_width_in * 72.0
    longest = max(len(category) for _, category in cells)
    named = cell_pt >= 0.62 * STRIP_TEXT_SIZE * longest + 2
    if named:
        for time, category in cells:
            dark = sum(palette.response_color(category)) < 330
            ax.text(time - width_days / 2, row, category, ha="center", va="center", fontsize=STRIP_TEXT_SIZE,
                    color="white" if dark else "black", clip_on=True)
    return named


def line_legend_rows(colors: TreatmentColors, lines: Sequence[str]) -> list[tuple[str, palette.RGB]]:
    """Legend rows of the lines of therapy ``lines`` (repeats ignored): one per dosed line, then one for all the lines
    without doses (they share the pale grey)."""
    lines = list(dict.fromkeys(lines))
    rows = [(line, colors.line(line)) for line in lines if line not in colors.no_dose_lines]
    idle = [line for line in lines if line in colors.no_dose_lines]
    if idle:
        rows.append((f"no drug ({', '.join(idle)})", palette.NO_DOSE_LINE_COLOR))
    return rows


def response_legend_rows(categories: Sequence[str]) -> list[tuple[str, palette.RGB]]:
    """Legend rows of the response categories present (each colour once: ``CR / iCR`` share one)."""
    rows: dict[palette.RGB, list[str]] = {}
    for category in categories:
        names = rows.setdefault(palette.response_color(category), [])
        if category not in names:
            names.append(category)
    return [(" / ".join(names), color) for color, names in rows.items()]


def ordered_categories(present: set[str]) -> list[str]:
    """``present`` categories in a fixed order: best response first (RECIST, iRECIST and myeloma interleaved by rank)."""
    order = list(palette.RESPONSE_COLORS)
    return sorted(present, key=lambda category: order.index(category) if category in order else len(order))
