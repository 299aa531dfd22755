"""The viz subcommands of ``tme`` (render, export, plot, report, explore), called from :mod:`abm.cli`.

Each takes the parsed arguments, prints one line per file written, and
returns the exit status; user errors raise :class:`viz.rundir.VizError`.
``plot`` and ``report`` take a run directory or a ``tme compare`` directory
(:func:`viz.comparedir.open_target`); ``render`` and ``export`` a run directory.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from viz.rundir import VizError, open_run


def _render(arguments: argparse.Namespace) -> int:
    from viz.render import RenderOptions, parse_clim, render

    run = open_run(arguments.run_dir)
    clim = None if arguments.clim is None else parse_clim(arguments.clim)
    options = RenderOptions(view=arguments.view, color=arguments.color, size=tuple(arguments.size), clim=clim,
                            cmap=arguments.cmap, max_immune=arguments.max_immune)
    snapshots = render(run, Path(arguments.out), options, time_h=arguments.time, all_snapshots=arguments.all,
                       fps=arguments.fps, progress=not arguments.quiet)
    times = ", ".join(f"{snapshot.time_h:g}" for snapshot in snapshots)
    print(f"wrote {arguments.out} ({len(snapshots)} snapshot(s), t = {times} h)")
    return 0


def _export(arguments: argparse.Namespace) -> int:
    from viz.export import export

    files = export(open_run(arguments.run_dir), arguments.out, arguments.format, progress=not arguments.quiet)
    print(f"wrote {len(files) - 1} .vti file(s) and {files[-1]} (open it in ParaView)")
    return 0


def _plot(arguments: argparse.Namespace) -> int:
    from viz.comparedir import CompareData, open_target
    from viz.sweep import SweepData, plot_sweep

    from viz.figures import FigureStyle, parse_font_scale

    formats = tuple(part.strip() for part in arguments.formats.split(",") if part.strip())
    names = tuple(part.strip() for part in arguments.only.split(",") if part.strip()) if arguments.only else None
    style = FigureStyle(arguments.style, parse_font_scale(arguments.font_scale), arguments.title)
    target = open_target(arguments.run_dir)
    if isinstance(target, CompareData):
        from viz.comparison import plot_comparison

        written = plot_comparison(target, arguments.out, formats, names, progress=not arguments.quiet, style=style)
    elif isinstance(target, SweepData):
        written = plot_sweep(target, arguments.out, formats, names, progress=not arguments.quiet, style=style)
    else:
        from viz.figures import plot_run

        written = plot_run(target, arguments.out, formats, names, progress=not arguments.quiet, style=style)
    for paths in written.values():
        print("wrote " + ", ".join(str(path) for path in paths))
    return 0


def _report(arguments: argparse.Namespace) -> int:
    from viz.comparedir import CompareData, open_target
    from viz.report import compare_report, run_report
    from viz.sweep import SweepData

    target = open_target(arguments.run_dir)
    if isinstance(target, SweepData):
        raise VizError(f"{arguments.run_dir}: a sweep directory; report one of its points, e.g. "
                       f"{target.path / target.result['points'][0]['directory']} (`tme plot` draws the sweep's figure)")
    if isinstance(target, CompareData):
        path = compare_report(target, arguments.out, progress=not arguments.quiet)
    else:
        path = run_report(target, arguments.out, progress=not arguments.quiet)
    print(f"wrote {path}")
    return 0


def _explore(arguments: argparse.Namespace) -> int:
    from viz.explorer import Source, serve

    target = Path(arguments.target)
    if target.is_dir():
        if arguments.set:
            raise VizError(f"--set {arguments.set[0]}: --set changes a config; {target} is a run directory")
        open_run(target)  # the checks every viz command makes
        source = Source(run_dir=str(target.resolve()))
    elif target.is_file():
        from abm.live import check

        check(target, list(arguments.set or []))  # every check tme run makes, before the page starts
        source = Source(config=str(target.resolve()), overrides=tuple(arguments.set or ()))
    else:
        raise VizError(f"{target}: no such run directory or config file; give a directory made by tme run or a YAML config")
    serve(source, port=arguments.port)
    return 0


_COMMANDS = {"render": _render, "export": _export, "plot": _plot, "report": _report, "explore": _explore}


def run(arguments: argparse.Namespace) -> int:
    """Run the viz subcommand named by ``arguments.viz``; returns the exit status."""
    return _COMMANDS[arguments.viz](arguments)
