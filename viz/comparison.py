"""Figures of a ``tme compare`` output: arm timelines, Kaplan-Meier curves, waterfall and swimmer plots.

Each figure is a :class:`CompareFigure` in :data:`COMPARE_FIGURES`, the
comparison's counterpart of :data:`viz.figures.RUN_FIGURES`; ``tme plot
COMPARE_DIR`` draws them with :func:`plot_comparison`, in the style, sizes
and formats of the run figures. An arm has one colour in every figure
(:meth:`viz.comparedir.CompareData.arm_color`); drugs, lines of therapy and
response categories have theirs (:mod:`viz.treatment`, :mod:`viz.palette`).

Every figure is drawn on a ``matplotlib.figure.Figure``, not pyplot.
Artists the tests look for carry a gid: the waterfall's bars
(:data:`WATERFALL_GID`), the swimmer's rows (:data:`SWIMMER_GID`) and the
numbers at risk (``at-risk <arm> <time>``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from abm import rundir as files
from viz import legend, palette, treatment
from viz.comparedir import CompareData
from viz.figures import WIDTH_IN, FigureStyle, _new_figure, draw_figures
from viz.output import FIGURE_FORMATS

WATERFALL_GID = "waterfall-bars"
SWIMMER_GID = "swimmer-rows"
AT_RISK_GID = "at-risk"
OFF_TREATMENT = "0.45"  # the swimmer's line after the last line of therapy
_PURPOSE = "tme plot"
#: Entries per column of a figure's legend below its axes (:func:`sectioned_legend`), and the height it takes (its
#: rows and a title row at 7.5 pt), inches.
LEGEND_ROWS = 4
LEGEND_HEIGHT_IN = 0.16 * (LEGEND_ROWS + 1)
_PLOT_WIDTH_IN = WIDTH_IN - 1.3  # about the width of a time axis with row names on its left


@dataclass(frozen=True)
class CompareFigure:
    """One figure of a comparison (fields as :class:`viz.figures.RunFigure`, taking a :class:`CompareData`)."""

    name: str
    caption: str
    make: Callable[[CompareData], Any]
    applies: Callable[[CompareData], bool]


def _criteria(data: CompareData, arm: str) -> str:
    return str(data.arm_stats(arm).get("criteria") or "recist")


def _categories(criteria: str) -> tuple[str, ...]:
    return files.RESPONSE_CATEGORIES.get(criteria, ())


def _arm_title(data: CompareData, arm: str) -> str:
    runs = data.arm_stats(arm).get("runs", len(data.arm_runs(arm)))
    return f"{arm} ({runs} runs)"


def _category_handles(categories) -> list:
    return legend.handles(treatment.response_legend_rows(treatment.ordered_categories(set(categories))))


# ---------------------------------------------------------------- timeline


def timeline_figure(data: CompareData):
    """Per arm a panel on one time axis: median live tumor cells with the interquartile band over replicates, and a
    track of the most common response category at each assessment (measured from the start of treatment, as the
    endpoints, the swimmer and the waterfall are; per line only for run directories written before that was
    recorded, and then the legend says so), each replicate's line of therapy (a tick at each change) and each
    replicate's doses per drug (one lane per replicate, so a full-height bar is a dose every replicate got)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    arms = data.arms
    drugs = data.dosed_drugs
    has_runs = bool(data.run_data)
    rows = (["response", "line"] + drugs) if has_runs else []
    lanes = max([len(data.arm_run_data(arm)) for arm in arms] + [1])
    track_in = (0.17 + 0.006 * min(max(lanes - 4, 0), 16)) * len(rows) + 0.04  # a little taller for many replicates
    burden_in = 0.95
    figure = _new_figure(len(arms) * (burden_in + track_in + 0.4) + 1.0)
    figure.get_layout_engine().set(h_pad=0.02, hspace=0.0)
    ratios = []
    for _ in arms:
        ratios += [burden_in, track_in] if rows else [burden_in]
    axes = np.atleast_1d(figure.subplots(len(ratios), 1, sharex=True, height_ratios=ratios)).tolist()
    span = data.duration_days
    burden = data.burden
    high = float(burden["cells_q75"].max()) if len(burden) else 1.0
    categories_shown: set[str] = set()
    lines_shown: list[str] = []
    start_shown = per_line_responses = False
    for number, arm in enumerate(arms):
        burden_ax = axes[number * (2 if rows else 1)]
        color = palette.to_float(data.arm_color(arm))
        mine = burden[burden["arm"] == arm].sort_values("time_days")
        days = mine["time_days"].to_numpy(dtype=float)
        burden_ax.fill_between(days, mine["cells_q25"].to_numpy(dtype=float), mine["cells_q75"].to_numpy(dtype=float),
                               color=color, alpha=0.25, linewidth=0)
        burden_ax.plot(days, mine["cells_median"].to_numpy(dtype=float), color=color, linewidth=1.4)
        burden_ax.set_ylim(0.0, max(1.0, high) * 1.05)
        burden_ax.set_ylabel("live cells")
        burden_ax.set_title(_arm_title(data, arm), loc="left", color=color, fontweight="bold", fontsize=9, pad=3)
        start = data.arm_treatment(arm).get("start_day")
        if start is not None:
            burden_ax.axvline(float(start), color="0.35", linestyle=":", linewidth=0.9)
            start_shown = True
        if not rows:
            continue
        track_ax = axes[number * 2 + 1]
        treatment.setup_track(track_ax, rows)
        runs = data.arm_run_data(arm)
        responses = [treatment.treatment_responses(run.events) for run in runs]
        per_line_responses |= any(len(assessed) and not from_start for assessed, from_start in responses)
        criteria = _criteria(data, arm)
        modes = treatment.response_mode([assessed for assessed, _ in responses], _categories(criteria))
        every = float((data.arm_treatment(arm).get("assessment") or {}).get("every_days") or 0.0)
        if not every and len(modes) > 1:
            every = float(np.min(np.diff([time for time, *_ in modes])))
        cells = [(time, category) for time, category, *_ in modes]
        treatment.draw_response_strip(track_ax, 0, cells, every or span / 20, _PLOT_WIDTH_IN, span)
        categories_shown |= {category for _, category in cells}
        spans = [treatment.line_spans(run.treatment) for run in runs]
        treatment.draw_line_lanes(track_ax, 1, spans, data.colors)
        lines_shown += [line for run_spans in spans for line, *_ in run_spans]
        given = [treatment.doses(run.events) for run in runs]
        for row, drug in enumerate(drugs, start=2):
            treatment.draw_dose_lanes(track_ax, row, given, drug, data.colors.drug(drug), span)
        if start is not None:
            track_ax.axvline(float(start), color="0.35", linestyle=":", linewidth=0.9)
    for ax in axes:
        ax.set_xlim(0.0, span)
        ax.tick_params(axis="x", labelbottom=False)
    axes[-1].tick_params(axis="x", labelbottom=True)
    axes[-1].set_xlabel("time (days)")
    for ax in axes[::2] if rows else axes:
        ax.sharey(axes[0])

    median = Line2D([], [], color="0.2", linewidth=1.4, label="median")
    band = Patch(facecolor="0.2", alpha=0.25, linewidth=0, label="interquartile range")
    started = Line2D([], [], color="0.35", linestyle=":", linewidth=0.9, label="start of treatment")
    groups = [("live tumor cells", [median, band] + ([started] if start_shown else []))]
    if categories_shown:
        title = "response per line (most common)" if per_line_responses else "response (most common)"
        groups.append((title, _category_handles(categories_shown)))
    if lines_shown:
        groups.append(("line of therapy", legend.handles(treatment.line_legend_rows(data.colors, lines_shown))))
    if drugs:
        groups.append(("dose", legend.handles([(drug, data.colors.drug(drug)) for drug in drugs])))
    sectioned_legend(figure, groups)
    figure.suptitle("Treatment arms over time")
    return figure


def sectioned_legend(figure, groups: list[tuple[str, list]], rows: int = LEGEND_ROWS, **options):
    """One figure legend of titled groups below the axes, side by side, each group in columns of at most ``rows``
    entries under its title. Titles are bold rows of the legend (so groups never overlap, as separate legends sharing
    a place would). Below the axes, the panels keep the figure's whole width whatever the labels' length; a legend
    wider than the figure is wrapped by :func:`viz.figures.fit_legends`."""
    from matplotlib.patches import Patch

    def blank(label: str = "") -> Patch:
        return Patch(visible=False, label=label)

    entries: list = []
    titles: list[int] = []
    columns = 0
    for title, handles in groups:
        chunks = [list(handles[index:index + rows]) for index in range(0, len(handles), rows)] or [[]]
        for number, chunk in enumerate(chunks):
            if number == 0:
                titles.append(len(entries))
            entries += [blank(title if number == 0 else "")] + chunk + [blank() for _ in range(rows - len(chunk))]
            columns += 1
    settings = {"frameon": False, "handlelength": 1.2, "handleheight": 0.9, "fontsize": 7.5, "columnspacing": 1.2,
                "loc": "outside lower center"}
    settings.update(options)
    made = figure.legend(handles=entries, labels=[entry.get_label() for entry in entries], ncols=columns, **settings)
    texts = made.get_texts()
    for index in titles:
        texts[index].set_fontweight("bold")
    return made


# ---------------------------------------------------------------- Kaplan-Meier


def _median_text(stats: dict[str, Any]) -> str:
    """``3 d (2–5)``: the median time to progression and its 95 % interval (NR: not reached)."""
    median = stats.get("median_time_to_progression_days")
    if median is None:
        return "NR"
    low, high = (list(stats.get("median_ci95_days") or []) + [None, None])[:2]
    if low is None:
        return f"{median:g} d"
    return f"{median:g} d ({low:g}–{'NR' if high is None else f'{high:g}'})"


def _p_text(stats: dict[str, Any], reference: str) -> str | None:
    """``p = 0.028`` of the log-rank test against ``reference``; None for the reference arm itself."""
    test = stats.get(f"log_rank_vs_{reference}")
    if test is None:
        return None
    p = test.get("p")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p n/a"
    return f"p = {p:.2g}" if p >= 0.001 else "p < 0.001"


def kaplan_meier_figure(data: CompareData):
    """Time to progression per arm: Kaplan-Meier step curves with their pointwise 95 % bands and censoring ticks, the
    numbers at risk below the axis, and each arm's median (95 % interval) and log-rank p against the reference arm in
    the legend, below the figure."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    arms = data.arms
    km = data.km
    risk_in = 0.16 * len(arms) + 0.3
    censoring = bool((km["censored"] > 0).any())
    legend_in = 0.16 * (-(-(len(arms) + censoring) // 2) + 2)  # its rows in two columns, its title, the censoring's 2nd line
    figure = _new_figure(2.6 + risk_in + 0.5 + legend_in)
    curve_ax, risk_ax = figure.subplots(2, 1, height_ratios=(2.6, risk_in))
    last = float(km["time"].max()) if len(km) else 1.0
    handles = []
    for arm in arms:
        color = palette.to_float(data.arm_color(arm))
        table = km[km["arm"] == arm].sort_values("time", kind="stable")
        times = table["time"].to_numpy(dtype=float)
        survival = table["survival"].to_numpy(dtype=float)
        curve_ax.step(times, survival, where="post", color=color, linewidth=1.5, solid_joinstyle="miter")
        if "survival_lower" in table:  # the pointwise 95 % band (comparisons written since lifelines)
            curve_ax.fill_between(times, table["survival_lower"].to_numpy(dtype=float),
                                  table["survival_upper"].to_numpy(dtype=float), step="post", color=color, alpha=0.15,
                                  linewidth=0.0)
        censored = table[table["censored"] > 0]
        if not censored.empty:  # an empty line drawn unclipped would count as an artist at the figure's corner
            curve_ax.plot(censored["time"], censored["survival"], linestyle="none", marker="|", markersize=8,
                          markeredgewidth=1.3, color=color, clip_on=False)
        stats = data.arm_stats(arm)
        p = _p_text(stats, data.reference_arm)
        label = f"{arm}: {_median_text(stats)}" + (f"; {p}" if p else "")
        handles.append(Line2D([], [], color=color, linewidth=1.5, label=label))
    if censoring:
        handles.append(Line2D([], [], color="0.3", linestyle="none", marker="|", markersize=7, markeredgewidth=1.2,
                              label="censored: no progression\nby the end of the run"))
    curve_ax.axhline(0.5, color="0.6", linestyle=(0, (2, 2)), linewidth=0.7)
    curve_ax.set_ylim(-0.02, 1.04)
    curve_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    curve_ax.set_ylabel("runs without progression")
    xlim = (0.0, last * 1.03 if last > 0 else 1.0)
    curve_ax.set_xlim(*xlim)
    curve_ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10], integer=last >= 4))
    curve_ax.set_xlabel("days from the start of treatment")
    # Below the table of numbers at risk, in two columns: the curves and the table keep the figure's whole width.
    figure.legend(handles=handles, title=f"median time to progression (95% CI); log-rank vs {data.reference_arm}",
                  loc="outside lower center", ncols=min(2, len(handles)), frameon=False, alignment="left", fontsize=7.5,
                  title_fontsize=7.5, handlelength=1.6, columnspacing=2.0)
    curve_ax.set_title(f"Time to progression ({', '.join(dict.fromkeys(_criteria(data, arm) for arm in arms))})",
                       loc="left", fontsize=9)
    ticks = [float(tick) for tick in curve_ax.get_xticks() if xlim[0] - 1e-9 <= tick <= xlim[1] + 1e-9]

    risk_ax.set_xlim(*xlim)
    risk_ax.set_ylim(len(arms) - 0.5, -0.5)
    risk_ax.set_yticks(range(len(arms)), arms, fontsize=7.5)
    for label, arm in zip(risk_ax.get_yticklabels(), arms):
        label.set_color(palette.to_float(data.arm_color(arm)))
    risk_ax.set_xticks([])
    risk_ax.tick_params(axis="y", length=0, pad=12)
    for side in ("left", "bottom"):
        risk_ax.spines[side].set_visible(False)
    for row, arm in enumerate(arms):
        counts = treatment.at_risk(km[km["arm"] == arm], ticks)
        for tick, count in zip(ticks, counts):
            text = risk_ax.text(tick, row, str(count), ha="center", va="center_baseline", fontsize=7.5,
                                color=palette.to_float(data.arm_color(arm)))
            text.set_gid(f"{AT_RISK_GID} {arm} {tick:g}")
    risk_ax.set_title("number at risk", loc="left", fontsize=7.5, pad=2)
    figure.suptitle("Kaplan-Meier")
    return figure


# ---------------------------------------------------------------- waterfall


def _thresholds(data: CompareData) -> list[tuple[float, str]]:
    """Response thresholds on the best change from baseline, from the arms' criteria and assessment settings:
    ``(level, label)``, the criteria named when the arms use more than one."""
    found: dict[tuple[float, str], list[str]] = {}
    used = list(dict.fromkeys(_criteria(data, arm) for arm in data.arms))
    for arm in data.arms:
        assessment = data.arm_treatment(arm).get("assessment") or {}
        criteria = _criteria(data, arm)
        if criteria == "myeloma":
            levels = [(-0.9, "VGPR"), (-0.5, "PR"), (0.25, "PD")]
        else:
            levels = [(-float(assessment.get("partial_response_fall", 0.3)), "PR"),
                      (float(assessment.get("progression_rise", 0.2)), "PD")]
        for level, category in levels:
            names = found.setdefault((round(level, 9), category), [])
            if criteria not in names:
                names.append(criteria)
    out = []
    for (level, category), names in sorted(found.items()):
        label = f"{category} {level:+.0%}".replace("%", " %").replace("-", "−")
        out.append((level, f"{'/'.join(names)} {label}" if len(used) > 1 else label))
    return out


def _spread(positions: list[float], gap: float) -> list[float]:
    """``positions`` (increasing) moved apart to at least ``gap``, as little as possible (labels of close lines)."""
    out = list(positions)
    for index in range(1, len(out)):
        out[index] = max(out[index], out[index - 1] + gap)
    overshoot = out[-1] - positions[-1] if out else 0.0
    return [value - overshoot / 2 for value in out] if overshoot > 0 else out


def waterfall_figure(data: CompareData):
    """Best change of the burden from the start of treatment (up to the first progression) per run, sorted, bars
    in the arm's colour; below, each run's best overall response; the response thresholds as dashed lines."""
    from matplotlib.ticker import PercentFormatter

    runs = data.runs.copy()
    runs["change"] = runs["best_change_from_baseline"].astype(float)
    shown = runs[np.isfinite(runs["change"])].sort_values(["change", "arm", "seed"], ascending=[False, True, True],
                                                           kind="stable").reset_index(drop=True)
    left_out = len(runs) - len(shown)
    figure = _new_figure(3.4 + LEGEND_HEIGHT_IN)
    bars_ax, strip_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3.0, 0.28))
    positions = np.arange(len(shown))
    colors = [palette.to_float(data.arm_color(arm)) for arm in shown["arm"]]
    bars = bars_ax.bar(positions, shown["change"].to_numpy(), width=0.8, color=colors, linewidth=0)
    for index, patch in enumerate(bars.patches):
        patch.set_gid(f"{WATERFALL_GID} {shown['arm'].iloc[index]} {int(shown['seed'].iloc[index])}")
    bars_ax.axhline(0.0, color="black", linewidth=0.8)
    low = min(-0.4, float(shown["change"].min()) * 1.08 if len(shown) else -0.4)
    high = max(0.3, float(shown["change"].max()) * 1.12 if len(shown) else 0.3)
    bars_ax.set_ylim(low, high)
    shown_levels = [(level, label) for level, label in _thresholds(data) if low <= level <= high]
    fractions = _spread([(level - low) / (high - low) for level, _ in shown_levels], 0.05)
    for (level, label), fraction in zip(shown_levels, fractions):
        bars_ax.axhline(level, color="0.35", linestyle=(0, (4, 3)), linewidth=0.8)
        bars_ax.text(1.005, fraction, label, transform=bars_ax.transAxes, ha="left", va="center", fontsize=7, color="0.25")
    bars_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    bars_ax.set_ylabel("best change from\nstart of treatment")
    bars_ax.set_xlim(-0.6, max(len(shown), 1) - 0.4)
    bars_ax.tick_params(axis="x", length=0, labelbottom=False)
    bars_ax.spines["bottom"].set_visible(False)

    strip_ax.set_ylim(-0.5, 0.5)
    strip_ax.set_yticks([0], ["best\nresponse"], fontsize=7)
    strip_ax.tick_params(axis="y", length=0)
    for side in ("left", "bottom"):
        strip_ax.spines[side].set_visible(False)
    categories = [str(category) if category is not None else "" for category in shown["best_overall_response"]]
    for position, category in zip(positions, categories):
        strip_ax.add_patch(_rectangle(position - 0.45, -0.4, 0.9, 0.8, palette.response_color(category or None)))
    bar_pt = _PLOT_WIDTH_IN * 72.0 / max(len(shown), 1)
    if categories and bar_pt >= 0.62 * treatment.STRIP_TEXT_SIZE * max(len(category) for category in categories) + 1.5:
        for position, category in zip(positions, categories):
            dark = sum(palette.response_color(category or None)) < 330
            strip_ax.text(position, 0.0, category, ha="center", va="center", fontsize=treatment.STRIP_TEXT_SIZE,
                          color="white" if dark else "black")
    strip_ax.set_xticks([])
    strip_ax.set_xlabel("runs, sorted by best change" + (f" ({left_out} without an assessment left out)" if left_out else ""))
    groups = [("arm", legend.handles([(arm, data.arm_color(arm)) for arm in data.arms]))]
    present = {category for category in categories if category}
    if present:
        groups.append(("best response", _category_handles(present)))
    sectioned_legend(figure, groups)
    figure.suptitle("Waterfall of best response")
    return figure


def _rectangle(x: float, y: float, width: float, height: float, color: palette.RGB):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, facecolor=palette.to_float(color), linewidth=0)


# ---------------------------------------------------------------- swimmer


def swimmer_rows(data: CompareData) -> list[tuple[str, int | None]]:
    """The swimmer's rows from the top: per arm a header ``(arm, None)``, then ``(arm, seed)`` for each run,
    longest time to progression first (censored before progressed at equal times)."""
    rows: list[tuple[str, int | None]] = []
    for arm in data.arms:
        mine = data.arm_runs(arm).copy()
        mine["order_censored"] = mine["censored"].astype(bool)
        mine = mine.sort_values(["time_to_progression_days", "order_censored", "seed"], ascending=[False, False, True],
                                kind="stable")
        rows.append((arm, None))
        rows += [(arm, int(seed)) for seed in mine["seed"]]
    return rows


def swimmer_figure(data: CompareData):
    """One bar per run from the start of treatment to the end of the run, in segments per line of therapy; markers at
    the first assessment of each response category that counts as a response, measured from the start of treatment
    as the endpoints are (per line only for run directories written before that was recorded; the legend says
    which), at the first progression, and an arrow where a run ends without progression; runs grouped by arm,
    longest time to progression first."""
    from matplotlib.lines import Line2D

    rows = swimmer_rows(data)
    runs = data.runs.set_index(["arm", "seed"])
    height = min(9.0, 1.35 + 0.15 * len(rows)) + LEGEND_HEIGHT_IN
    figure = _new_figure(height)
    ax = figure.subplots()
    last = 0.0
    labels = []
    lines_shown: list[str] = []
    responses_shown: set[str] = set()
    per_line_responses = False  # a run directory without the responses from the start of treatment
    progressed_any = off_any = False
    ongoing: list[tuple[float, int]] = []
    off = Line2D([], [], color=OFF_TREATMENT, linewidth=1.0, label="off treatment")
    for row, (arm, seed) in enumerate(rows):
        color = palette.to_float(data.arm_color(arm))
        if seed is None:
            ax.text(0.0, row + 0.15, _arm_title(data, arm), color=color, fontweight="bold", fontsize=8, ha="left",
                    va="center", in_layout=False)  # a long arm name would squeeze the bars to nothing
            labels.append("")
            continue
        labels.append(f"seed {seed}")
        run = data.run_data.get((arm, seed))
        summary = run.treatment if run is not None else {}
        spans = treatment.line_spans(summary)
        start = float(data.arm_treatment(arm).get("start_day", spans[0][1] if spans else 0.0))
        if not spans:  # no run directory: one bar of unknown lines up to progression or censoring
            end = float(runs.loc[(arm, seed), "time_to_progression_days"])
            spans = [("", start, start + end)]
        follow_up = data.duration_days - start
        if follow_up > spans[-1][2] - start + 1e-9:  # treatment stopped before the end of the run
            ax.plot([spans[-1][2] - start, follow_up], [row, row], color=OFF_TREATMENT, linewidth=1.0, zorder=1,
                    solid_capstyle="butt")
            off_any = True
        for line, begin, end in spans:
            fill = palette.to_float(data.colors.line(line)) if line else "0.8"
            ax.broken_barh([(begin - start, max(end - begin, 0.0))], (row - 0.32, 0.64), facecolors=fill,
                           edgecolor="white", linewidth=0.6, gid=f"{SWIMMER_GID} {arm} {seed}")
            if line:
                lines_shown.append(line)
        ends = max(spans[-1][2] - start, follow_up)
        last = max(last, ends)
        if run is not None:
            criteria = _criteria(data, arm)
            assessed, from_start = treatment.treatment_responses(run.events)
            per_line_responses |= not from_start
            for time, category in treatment.first_responses(assessed, files.RESPONDERS.get(criteria, ())):
                ax.plot(time - start, row, linestyle="none", marker="^", markersize=5.5, clip_on=False,
                        markerfacecolor=palette.to_float(palette.response_color(category)),
                        markeredgecolor="black", markeredgewidth=0.5, zorder=3)
                responses_shown.add(category)
        record = runs.loc[(arm, seed)]
        if bool(record["censored"]):
            ongoing.append((ends, row))
        else:
            ax.plot(float(record["time_to_progression_days"]), row, linestyle="none", marker=treatment.PROGRESSION_MARKER,
                    markersize=6.5, clip_on=False, markerfacecolor=palette.to_float(palette.response_color("PD")),
                    markeredgecolor="black", markeredgewidth=0.5, zorder=4)
            progressed_any = True
    for ends, row in ongoing:  # just past the bar's end
        ax.plot(ends + 0.012 * max(last, 1e-9), row, linestyle="none", marker=treatment.ONGOING_MARKER, markersize=4.5,
                color="0.2", clip_on=False, zorder=3)
    ax.set_ylim(len(rows) - 0.5, -0.7)
    ax.set_yticks(range(len(rows)), labels, fontsize=7 if len(rows) <= 40 else 5.5)
    ax.tick_params(axis="y", length=0)
    for tick, (arm, seed) in zip(ax.get_yticklabels(), rows):
        tick.set_color(palette.to_float(data.arm_color(arm)))
    ax.spines["left"].set_visible(False)
    ax.set_xlim(0.0, last * 1.04 if last > 0 else 1.0)
    ax.set_xlabel("days from the start of treatment")

    groups = []
    if lines_shown:
        rows_shown = treatment.line_legend_rows(data.colors, lines_shown)
        groups.append(("line of therapy", legend.handles(rows_shown) + ([off] if off_any else [])))
    markers = [Line2D([], [], linestyle="none", marker="^", markersize=5.5, markeredgecolor="black", markeredgewidth=0.5,
                      markerfacecolor=palette.to_float(color), label=f"first {label}")
               for label, color in treatment.response_legend_rows(treatment.ordered_categories(responses_shown))]
    if progressed_any:
        markers.append(Line2D([], [], linestyle="none", marker=treatment.PROGRESSION_MARKER, markersize=6.5,
                              markeredgecolor="black", markeredgewidth=0.5,
                              markerfacecolor=palette.to_float(palette.response_color("PD")), label="first progression"))
    if ongoing:
        markers.append(Line2D([], [], linestyle="none", marker=treatment.ONGOING_MARKER, markersize=4.5, color="0.2",
                              label="no progression by the end"))
    if markers:
        responses = "responses per line" if per_line_responses else "responses from the start of treatment"
        groups.append((f"event ({responses})", markers))
    sectioned_legend(figure, groups)
    figure.suptitle("Swimmer plot of lines of therapy")
    return figure


# ---------------------------------------------------------------- registry


def _has_runs(data: CompareData) -> bool:
    return bool(data.run_data)


COMPARE_FIGURES: tuple[CompareFigure, ...] = (
    CompareFigure("timeline", "Per arm on one time axis: median live tumor cells over replicates with the interquartile "
                  "band, the most common response at each assessment, each replicate's line of therapy and doses per drug.",
                  timeline_figure, lambda data: len(data.burden) > 0),
    CompareFigure("kaplan_meier", "Kaplan-Meier curves of time to progression per arm with censoring ticks and numbers at "
                  "risk; the legend gives each arm's median with its 95 % interval and the log-rank p against the first arm.",
                  kaplan_meier_figure, lambda data: len(data.km) > 0),
    CompareFigure("waterfall", "Best change of the burden from the start of treatment (up to the first progression), one bar per run, sorted, "
                  "coloured by arm, with each run's best overall response below and the response thresholds.",
                  waterfall_figure, lambda data: len(data.runs) > 0),
    CompareFigure("swimmer", "One bar per run from the start of treatment, in segments per line of therapy, with the "
                  "first response of each kind, the first progression, and an arrow where a run ends without progression.",
                  swimmer_figure, _has_runs),
)


def plot_comparison(data: CompareData, out: Path | None = None, formats: tuple[str, ...] = FIGURE_FORMATS,
                    names: tuple[str, ...] | None = None, reuse: bool = False, progress: bool = False,
                    style: FigureStyle = FigureStyle()) -> dict[str, list[Path]]:
    """Draw every applicable figure of ``data`` (or those in ``names``) into ``out`` (default ``COMPARE_DIR/figures``);
    ``reuse``, ``progress`` and ``style`` as :func:`viz.figures.draw_figures` takes them.

    Returns:
        Figure name -> files written (or kept).
    """
    return draw_figures(COMPARE_FIGURES, data, Path(out) if out is not None else data.path / "figures", formats, names,
                        "a comparison's", reuse, progress, style)
