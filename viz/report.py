"""A Markdown report of one run: the run's facts, its final values, its figures and a render.

``tme report RUN_DIR`` draws the figures (:func:`viz.figures.plot_run`; those
``tme plot`` drew with the same options since the run's last write are kept)
and a render of the last snapshot (kept likewise where an earlier report
rendered it since the run's last write) into ``RUN_DIR/figures/``, then writes
``RUN_DIR/report.md`` linking them. A run that did not complete (interrupted,
failed, or killed before it wrote its summary: its records are read from its
journals) is reported up to its last record, with its status and error at
the top; a run whose tumor cells reached the lattice's boundary has a
warning there with the day and faces of the first contact. ``tme report COMPARE_DIR``
(:func:`compare_report`) draws the comparison's figures
(:data:`viz.comparison.COMPARE_FIGURES`) into ``COMPARE_DIR/figures/`` and
writes ``COMPARE_DIR/report.md``: a table of ``compare.json`` per arm (runs,
progressions, median time to progression with its 95 % interval, objective
response rate, best responses, log-rank p against the first arm), then the
figures.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from abm.io import write_text
from abm.rundir import RECORDS, __version__
from viz import figurecache
from viz.comparedir import CompareData
from viz.figures import RUN_FIGURES, plot_run
from viz.render import RenderOptions, render
from viz.rundir import RunData

#: The report's render of the last snapshot, coloured by cell state: its file stem in ``figures/``, and its name in
#: the folder's record (:mod:`viz.figurecache`).
REPORT_RENDER = "render_state"
_UNIT_SUFFIXES = {"_mm3": "mm³", "_um": "µm", "_mmHg": "mmHg", "_h": "h", "_days": "days"}
_RUN_FACTS = (("tme_abm_version", "tme-abm version"), ("backend", "backend"),
              ("device", "device"), ("seed", "seed"), ("simulated_days", "simulated days"),
              ("cell_steps", "cell steps"), ("wall_seconds", "wall time (s)"))


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _quantity(column: str) -> str:
    """A column name made readable: ``tumor_volume_mm3`` -> ``tumor volume (mm³)``, ``kills_per_h`` -> ``kills (per h)``."""
    for suffix, units in _UNIT_SUFFIXES.items():
        if column.endswith("_per" + suffix):
            return f"{column[: -len(suffix) - 4].replace('_', ' ')} (per {units})"
        if column.endswith(suffix):
            return f"{column[: -len(suffix)].replace('_', ' ')} ({units})"
    return column.replace("_", " ")


def _link(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target, base)).as_posix()


def run_report(run: RunData, out: Path | None = None, progress: bool = True) -> Path:
    """Write the Markdown report of ``run`` to ``out`` (default ``RUN_DIR/report.md``), drawing the figures that are not
    up to date (:mod:`viz.figurecache`: ``tme plot`` drew them with the same options after the run's last write) and
    the render where it is not (:func:`_report_render`); ``progress``: a line per figure on stderr, and the render's
    line or progress bar.

    Returns:
        The report's path.
    """
    out = Path(out) if out is not None else run.path / "report.md"
    figures_dir = run.path / "figures"
    status, outcome = run.status, run.treatment  # every file the report needs is read before anything is drawn
    last_day = float(run.timeseries["time_days"].iloc[-1])
    if run.snapshots:
        run.last_snapshot().arrays  # noqa: B018 - read, so that a damaged one is reported before the figures
    written = plot_run(run, figures_dir, reuse=True, progress=progress)
    lines = [f"# Run report: {run.name}", "", f"Run directory: `{run.path}`", ""]
    lines += _status_lines(run, status, last_day)
    lines += _boundary_lines(run)

    lines += ["| run | |", "|---|---|", f"| status | {status} |"]
    lines += [f"| {label} | {_format(run.summary[key])} |" for key, label in _RUN_FACTS if key in run.summary]
    shape = "x".join(str(extent) for extent in run.shape)
    lines += [f"| lattice | {run.ndim}-D, {shape} voxels of {run.dx_um:g} µm |", ""]

    final = run.summary.get("final", {})
    if final:
        lines += ["## Final state", "", "| quantity | value |", "|---|---:|"]
        lines += [f"| {_quantity(column)} | {_format(value)} |" for column, value in final.items()]
        lines.append("")

    lines += _treatment_section(outcome)

    if run.snapshots:
        image = _report_render(run, figures_dir, progress)
        hours = run.last_snapshot().time_h
        lines += ["## Render", "", f"![Last snapshot, day {hours / 24:g}, coloured by cell state]({_link(image, out.parent)})", ""]

    lines += _figure_sections(RUN_FIGURES, written, out)
    write_text(out, "\n".join(lines))
    return out


def _report_render(run: RunData, folder: Path, progress: bool) -> Path:
    """The render of ``run``'s last snapshot coloured by cell state (cutaway in 3-D) in ``folder``: kept where the
    folder's record says it was rendered with the same options by this version after the run's last write (as the
    figures are, :mod:`viz.figurecache`), else rendered again and recorded; ``progress``: a line when it is kept, the
    render's progress bar when it is not.

    Returns:
        The image's path.
    """
    options = RenderOptions(view="cutaway" if run.ndim == 3 else "iso", color="state")
    recorded = {"tme_abm_version": __version__, "view": options.view, "color": options.color, "size": list(options.size)}
    record = figurecache.read(folder)
    kept = figurecache.up_to_date(record, folder, REPORT_RENDER, recorded, ("png",), figurecache.data_stamp(run.path))
    if kept:
        if progress:
            print(f"render: {REPORT_RENDER} (up to date, kept)", file=sys.stderr, flush=True)
        return kept[0]
    figurecache.forget(record, folder, REPORT_RENDER, ("png",))
    image = folder / f"{REPORT_RENDER}.png"
    render(run, image, options, progress=progress)
    figurecache.remember(record, folder, REPORT_RENDER, recorded, [image])
    return image


def _status_lines(run: RunData, status: str, last_day: float) -> list[str]:
    """A quoted paragraph on a run that did not complete: its status, its error, and the day its records end."""
    records = f"Its records end at day {last_day:g} of {run.duration_days:g}"
    if status == "complete":
        return []
    if status == "unfinished":
        text = (f"**Status: unfinished.** The run wrote no summary.json: it was killed (or is still going). "
                f"{records}, read from its journals ({run.path.name}/{RECORDS}/).")
    elif status == "failed":
        text = f"**Status: failed:** {_cell(run.summary.get('error') or 'no error recorded')}. {records}."
    elif status == "interrupted":
        text = f"**Status: interrupted.** The run was stopped before its end. {records}."
    else:
        text = f"**Status: {_cell(status)}.** {records}."
    return ["> " + text, ""]


def _boundary_lines(run: RunData) -> list[str]:
    """A quoted warning where tumor cells reached the lattice's boundary (``summary.json``), with the day and faces."""
    contact = run.boundary_contact
    if contact is None:
        return []
    day, faces = contact
    return [f"> **Warning: tumor cells reached the lattice boundary** ({_cell(', '.join(faces))}) at day {day:g}; from "
            f"then on the domain's wall shapes the growth: rerun with a larger lattice or a shorter duration.", ""]


def _treatment_section(outcome: dict[str, Any]) -> list[str]:
    """``## Treatment``: the endpoints, the lines given and the exposure to each drug (treated runs only)."""
    if not outcome.get("treated"):
        return []
    change = outcome.get("best_change_from_baseline")
    time = outcome.get("time_to_progression_days")
    progression = "n/a" if time is None else f"{time:g}" + (" (censored: no progression)" if outcome.get("progression_censored") else "")
    lines = ["## Treatment", "", "| endpoint | value |", "|---|---|",
             f"| criteria | {outcome.get('criteria', 'n/a')} |",
             f"| best overall response | {outcome.get('best_overall_response') or 'n/a'} |",
             f"| best change from start of treatment | {'n/a' if change is None else f'{change:+.1%}'} |",
             f"| time to progression from the start (days) | {progression} |", ""]
    if outcome.get("lines"):
        lines += ["| line | start (day) | end (day) | days | ended by |", "|---|---:|---:|---:|---|"]
        lines += [f"| {_cell(line['line'])} | {line['start_day']:g} | {line['end_day']:g} | {line['days']:g} | "
                  f"{_cell(line['ended_by'])} |" for line in outcome["lines"]]
        lines.append("")
    if outcome.get("exposure"):
        lines += ["| drug | doses | plasma exposure (units × h) |", "|---|---:|---:|"]
        lines += [f"| {_cell(drug)} | {values['doses']} | {values['plasma_auc_unit_h']:.4g} |"
                  for drug, values in outcome["exposure"].items()]
        lines.append("")
    return lines


def _figure_sections(specs, written: dict[str, list[Path]], out: Path) -> list[str]:
    """``## Figures``: each figure written, with its caption, links to its vector files and the PNG inline."""
    lines = ["## Figures", ""]
    for spec in specs:
        if spec.name not in written:
            continue
        files = {path.suffix.lstrip("."): path for path in written[spec.name]}
        vector = ", ".join(f"[{fmt.upper()}]({_link(path, out.parent)})" for fmt, path in files.items() if fmt != "png")
        lines += [f"### {spec.name}", "", spec.caption + (f" Vector: {vector}." if vector else ""), ""]
        if "png" in files:
            lines += [f"![{spec.name}]({_link(files['png'], out.parent)})", ""]
    return lines


def _cell(text: Any) -> str:
    """Text for a Markdown table cell (pipes escaped)."""
    return str(text).replace("|", "\\|")


def _days(value: Any) -> str:
    return "NR" if value is None else f"{value:g}"


def _p_value(stats: dict[str, Any], first: str, arm: str) -> str:
    test = stats.get(f"log_rank_vs_{first}")
    if test is None:
        return "reference" if arm == first else "n/a"
    p = test.get("p")
    if p is None or p != p:
        return "n/a (no progression)"
    return f"{p:.3g} (χ² {test.get('chi2', float('nan')):.3g})"


def compare_table(data: CompareData) -> list[str]:
    """The Markdown table of ``compare.json``: one row per arm."""
    first = data.reference_arm
    rows = ["| arm | criteria | runs | progressions | median TTP, days (95% CI) | ORR | best responses | "
            f"log-rank p vs {_cell(first)} |", "|---|---|---:|---:|---|---:|---|---|"]
    for arm in data.arms:
        stats = data.arm_stats(arm)
        low, high = (list(stats.get("median_ci95_days") or []) + [None, None])[:2]
        median = stats.get("median_time_to_progression_days")
        interval = "" if low is None and high is None else f" ({_days(low)} to {_days(high)})"
        counts = stats.get("best_response_counts") or {}
        responses = ", ".join(f"{category} {count}" for category, count in counts.items() if count) or "none"
        rate = stats.get("objective_response_rate")
        rows.append(f"| {_cell(arm)} | {stats.get('criteria', 'n/a')} | {stats.get('runs', 'n/a')} | "
                    f"{stats.get('progressions', 'n/a')} | {('not reached' if median is None else f'{median:g}') + interval} | "
                    f"{'n/a' if rate is None else f'{rate:.0%}'} | {responses} | {_p_value(stats, first, arm)} |")
    return rows


def compare_report(data: CompareData, out: Path | None = None, progress: bool = True) -> Path:
    """Write the Markdown report of the comparison ``data`` to ``out`` (default ``COMPARE_DIR/report.md``), drawing the
    figures that are not up to date (``progress``: a line per figure on stderr).

    Returns:
        The report's path.
    """
    from viz.comparison import COMPARE_FIGURES, plot_comparison

    out = Path(out) if out is not None else data.path / "report.md"
    written = plot_comparison(data, data.path / "figures", reuse=True, progress=progress)
    replicates, first_seed = data.result.get("replicates"), data.result.get("first_seed")
    lines = [f"# Comparison report: {data.name}", "", f"Comparison directory: `{data.path}`", ""]
    lines += ["| comparison | |", "|---|---|", f"| arms | {_cell(', '.join(data.arms))} |"]
    if replicates is not None:
        seeds = f" (seeds {first_seed} to {first_seed + replicates - 1})" if first_seed is not None else ""
        lines.append(f"| replicates per arm | {replicates}{seeds} |")
    lines.append(f"| runs | {len(data.runs)} |")
    if data.failed_runs:
        lines.append(f"| failed runs (left out of the statistics) | {len(data.failed_runs)}: "
                     f"{_cell(', '.join(data.failed_runs))} |")
    if data.config:
        lines.append(f"| simulated days per run | {data.duration_days:g} |")
    lines += ["", "## Arms", ""]
    lines += compare_table(data)
    lines += ["", "TTP: time to progression from the start of treatment (Kaplan-Meier; runs without progression are "
              "censored at the end of the run); NR: not reached; ORR: objective response rate (best overall response "
              "a response of the criteria); log-rank test against the first arm, one degree of freedom.", ""]
    lines += _figure_sections(COMPARE_FIGURES, written, out)
    write_text(out, "\n".join(lines))
    return out
