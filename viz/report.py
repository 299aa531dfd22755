"""A Markdown report of one run: the run's facts, its final values, its figures and a render.

``tme report RUN_DIR`` draws the figures (:func:`viz.figures.plot_run`) and a
render of the last snapshot into ``RUN_DIR/figures/``, then writes
``RUN_DIR/report.md`` linking them. The report of a ``tme compare`` output
(per-arm tables, Kaplan-Meier curves) will be a sibling of :func:`run_report`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from abm.io import write_text
from viz.figures import RUN_FIGURES, plot_run
from viz.render import RenderOptions, render
from viz.rundir import RunData

_UNIT_SUFFIXES = {"_mm3": "mm³", "_um": "µm", "_mmHg": "mmHg", "_h": "h", "_days": "days"}
_RUN_FACTS = (("status", "status"), ("tme_abm_version", "tme-abm version"), ("backend", "backend"),
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
    """Write the Markdown report of ``run`` to ``out`` (default ``RUN_DIR/report.md``).

    Returns:
        The report's path.
    """
    out = Path(out) if out is not None else run.path / "report.md"
    figures_dir = run.path / "figures"
    written = plot_run(run, figures_dir)
    lines = [f"# Run report: {run.name}", "", f"Run directory: `{run.path}`", ""]

    lines += ["| run | |", "|---|---|"]
    lines += [f"| {label} | {_format(run.summary[key])} |" for key, label in _RUN_FACTS if key in run.summary]
    shape = "x".join(str(extent) for extent in run.config["lattice"]["shape"])
    lines += [f"| lattice | {run.ndim}-D, {shape} voxels of {run.config['lattice']['dx_um']:g} µm |", ""]

    final = run.summary.get("final", {})
    if final:
        lines += ["## Final state", "", "| quantity | value |", "|---|---:|"]
        lines += [f"| {_quantity(column)} | {_format(value)} |" for column, value in final.items()]
        lines.append("")

    if run.snapshots:
        view = "cutaway" if run.ndim == 3 else "iso"
        image = figures_dir / "render_state.png"
        render(run, image, RenderOptions(view=view, color="state"), progress=progress)
        hours = run.last_snapshot().time_h
        lines += ["## Render", "", f"![Last snapshot, day {hours / 24:g}, coloured by cell state]({_link(image, out.parent)})", ""]

    lines += ["## Figures", ""]
    for spec in RUN_FIGURES:
        if spec.name not in written:
            continue
        files = {path.suffix.lstrip("."): path for path in written[spec.name]}
        vector = ", ".join(f"[{fmt.upper()}]({_link(path, out.parent)})" for fmt, path in files.items() if fmt != "png")
        lines += [f"### {spec.name}", "", spec.caption + (f" Vector: {vector}." if vector else ""), ""]
        if "png" in files:
            lines += [f"![{spec.name}]({_link(files['png'], out.parent)})", ""]
    write_text(out, "\n".join(lines))
    return out
