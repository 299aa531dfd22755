"""The ``tme`` command line: run, compare, validate, info; render, export, plot, report, explore (viz extra).

User errors (config, backend, output directory) print one ``error:`` message
on stderr and exit with status 2, without a traceback and without leaving a
run directory behind. A run that fails on the way (a numerical failure, a
full disk) exits with status 1; an interrupted one (Ctrl-C, or SIGTERM, which
is handled the same way) with 130; both keep their records, and an
interrupted ``tme run`` a checkpoint that ``tme run --resume DIR`` continues.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from pathlib import Path

from abm import __version__
from abm.config import Config, ConfigError, load_config, select_arm
from abm.executors import EXECUTORS
from abm.interrupts import terminate_as_interrupt
from abm.io import RunDirectoryError, RunFailed
from kernels.backend import BACKEND_NAMES, FAST_PATHS_VARIABLE, THREADS_VARIABLE, BackendError, get_backend, probe_cupy

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def _config_from_arguments(arguments: argparse.Namespace) -> Config:
    overrides = list(arguments.set or [])
    if getattr(arguments, "backend", None):
        overrides.append(f"backend={arguments.backend}")
    if getattr(arguments, "seed", None) is not None:
        overrides.append(f"seed={arguments.seed}")
    config = load_config(arguments.config, overrides)
    arm = getattr(arguments, "arm", None)
    if arm is not None:
        config = select_arm(config, arm, "--arm")
    return config


def _command_run(arguments: argparse.Namespace) -> int:
    from abm.runner import resume, run

    if arguments.resume is not None:
        given = [option for option, value in (("CONFIG", arguments.config), ("--out", arguments.out),
                                              ("--set", arguments.set), ("--seed", arguments.seed),
                                              ("--arm", arguments.arm)) if value is not None]
        if given:
            raise ConfigError(f"--resume: continues the run as its config.yaml says; drop {', '.join(given)} "
                              f"(only --backend, --quiet may go with it)")
        out = Path(arguments.resume)
        summary = resume(out, progress=not arguments.quiet, backend=arguments.backend)
    else:
        if arguments.config is None or arguments.out is None:
            raise ConfigError("tme run: give CONFIG and --out DIR, or --resume DIR")
        out = Path(arguments.out)
        summary = run(_config_from_arguments(arguments), out, progress=not arguments.quiet)
    final = summary["final"]
    print(
        f"run complete: {out} ({summary['simulated_days']:g} days, {summary['backend']}, "
        f"{summary['wall_seconds']:.1f} s); tumor cells {final['tumor_cells_total']}, "
        f"equivalent diameter {final['equivalent_diameter_um']:.0f} um")
    return 0


def _command_compare(arguments: argparse.Namespace) -> int:
    from abm.comparison import compare
    from abm.rundir import COMPARE_RESULT, read_json
    from abm.sweep import describe, parse_sweeps

    config = _config_from_arguments(arguments)
    arms = None
    if arguments.arms is not None:
        arms = [name.strip() for name in arguments.arms.split(",")]
        if not all(arms):
            raise ConfigError(f"--arms {arguments.arms!r}: an empty arm name; give comma-separated arm names: "
                              f"{', '.join(config.arms) or 'none (the config has no arms)'}")
    sweeps = parse_sweeps(arguments.sweep or [], config)
    result = compare(config, Path(arguments.out), arguments.replicates, arms, arguments.workers,
                     progress=not arguments.quiet, executor=arguments.executor, scheduler=arguments.scheduler,
                     sweeps=sweeps, branch=not arguments.no_branch)
    if sweeps:
        failed = []
        for point in result["points"]:
            print(f"point {point['point']} ({describe(point['values'])}), {point['directory']}:")
            _print_arms(read_json(Path(arguments.out) / point["directory"] / COMPARE_RESULT), "  ")
            failed += [f"{point['directory']}/{path}" for path in point["failed_runs"]]
        print(f"sweep written: {arguments.out} (sweep.parquet: the endpoints per point and arm)")
    else:
        _print_arms(result)
        failed = result["failed_runs"]
        print(f"comparison written: {arguments.out}")
    if failed:
        print(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def _print_arms(result: dict, indent: str = "") -> None:
    """A line per arm of a ``compare.json``: runs, progressions, median time to progression, response, tests."""
    for arm, stats in result["arms"].items():
        median = stats["median_time_to_progression_days"]
        low, high = stats["median_ci95_days"]
        interval = f" (95% CI {low if low is not None else '-'} to {high if high is not None else 'not reached'})"
        log_rank = next((value for key, value in stats.items() if key.startswith("log_rank_vs_")), None)
        versus = "" if not log_rank else (f"; log-rank p = {log_rank['p']:.3g}" if log_rank["p"] is not None
                                          else "; log-rank: no progression in either arm")
        ratio = next((value for key, value in stats.items() if key.startswith("hazard_ratio_vs_")), None)
        if ratio is not None and ratio["hr"] is not None:
            low, high = (f"{value:.3g}" if value is not None else "-" for value in ratio["ci95"])
            versus += f", hazard ratio {ratio['hr']:.3g} (95% CI {low} to {high}) vs {result['reference_arm']}"
        print(f"{indent}{arm}: {stats['runs']} runs, {stats['progressions']} progressed, median time to progression "
              f"{'not reached' if median is None else f'{median:g} days'}{interval if median is not None else ''}, "
              f"objective response {stats['objective_response_rate']:.0%}{versus}")


#: Estimated run memory (bytes) up to which ``tme validate`` builds the initial state (cells, vessels, the first
#: field solve) to check it as ``tme run`` does; above it validate checks the config, backend and memory only, since
#: the build would take as much memory as the run and minutes of CPU (configs/large_3d.yaml: about 19 GiB).
VALIDATE_BUILD_LIMIT_BYTES = 2**30


def _command_validate(arguments: argparse.Namespace) -> int:
    from abm.runner import check_memory, describe_memory, estimated_bytes, prepare

    config = _config_from_arguments(arguments)
    backend = get_backend(config.backend)
    build = estimated_bytes(config) <= VALIDATE_BUILD_LIMIT_BYTES
    if build:
        prepare(config)  # every check tme run makes before it writes: backend, memory, initial cells and fields
    else:
        check_memory(config, backend)
    if config.cohort is not None:  # the checks tme compare makes on its patients before it writes
        from abm import cohort

        cohort.patient_configs(config, cohort.patients(config))
    dims = "x".join(str(extent) for extent in config.lattice.shape)
    print(
        f"{arguments.config}: valid ({config.lattice.ndim}-D lattice {dims} at {config.lattice.dx_um:g} um, "
        f"{config.time.duration_days:g} days in {config.time.total_steps} steps, "
        f"{len(config.tumor.clones)} clone(s), fields: {', '.join(config.fields)}"
        f"{', drugs: ' + ', '.join(config.drugs) if config.drugs else ''}"
        f"{', immune agents: ' + str(_immune_agent_count(config)) if config.immune.enabled else ''}"
        f"{', treatment: ' + str(len(config.treatment.lines)) + ' line(s)' if config.treatment else ''}"
        f"{', arms: ' + ', '.join(config.arms) if config.arms else ''}"
        f"{', cohort: ' + str(config.cohort.patients) + ' valid patient(s)' if config.cohort else ''})")
    print("initial state: built, its fields solved" if build else
          f"initial state: not built (its run needs more than the {VALIDATE_BUILD_LIMIT_BYTES / 2**30:g} GiB up to which "
          f"validate builds one); tme run builds it, and refuses a failed first field solve, before it writes")
    print(describe_memory(config, backend))
    return 0


def _immune_agent_count(config: Config) -> int:
    """T-cell clones plus suppressor types of the config."""
    immune = config.immune
    return len(immune.t_cells.clones) + len(immune.suppressors)


def _command_info(arguments: argparse.Namespace) -> int:
    import mesa
    import numpy

    print(f"tme-abm {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"numpy {numpy.__version__}; mesa {mesa.__version__}")
    cupy, description = probe_cupy()
    print(f"gpu: {'yes: ' + description if cupy is not None else 'no: ' + description}")
    backend = get_backend("auto")
    print(f"backend auto -> {backend.name} ({backend.reason})")
    if backend.name == "numpy":
        print(f"numpy field-solve threads: {backend.threads} ({THREADS_VARIABLE} to change)")
        if backend.fast_paths:
            print(f"numpy field solve: compiled loops (numba {importlib.metadata.version('numba')}; "
                  f"{FAST_PATHS_VARIABLE}=0 for NumPy calls)")
        else:
            print(f"numpy field solve: NumPy calls ({FAST_PATHS_VARIABLE} turns the compiled loops off)")
    if arguments.config is not None:
        from abm.runner import describe_memory

        config = _config_from_arguments(arguments)
        print(f"{arguments.config}: {describe_memory(config, get_backend(config.backend))}")
    return 0


def _viz_command(arguments: argparse.Namespace) -> int:
    """Run a viz subcommand; viz (and through it matplotlib, pyvista) is imported only here."""
    from viz import commands
    from viz.rundir import VizError

    try:
        return commands.run(arguments)
    except VizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1280x960") from None
    return width, height


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number from 1 to 65535, e.g. 8765")
    return port


def _add_viz_commands(commands) -> None:
    """The render, export, plot, report and explore subcommands (they need the ``viz`` extra; explore, ``explore``)."""
    render_parser = commands.add_parser("render", help="3-D render or animation of a run's snapshots (pyvista)")
    render_parser.add_argument("run_dir", help="run directory made by tme run")
    when = render_parser.add_mutually_exclusive_group()
    when.add_argument("--time", type=float, metavar="T_H", help="render the snapshot nearest T_H hours (default: the last)")
    when.add_argument("--all", action="store_true", help="animate every snapshot (.gif or .mp4)")
    render_parser.add_argument("--view", default="iso", choices=("iso", "cutaway", "slice"),
                               help="iso: whole tumor; cutaway: front octant removed; slice: plane through the centre")
    render_parser.add_argument("--color", default="clone", metavar="clone|state|field:NAME",
                               help="colour tumor cells by subclone, by cell state, or by a field (e.g. field:oxygen)")
    render_parser.add_argument("--clim", metavar="LOW,HIGH",
                               help="a field's colour range in its units (default: the snapshot's range; for an animation "
                                    "the range over every frame); --clim=-1,1 for a negative LOW")
    render_parser.add_argument("--cmap", metavar="NAME", help="a field's colormap, a matplotlib name (default viridis)")
    render_parser.add_argument("--out", required=True, help="output .png, or .gif / .mp4 for an animation")
    render_parser.add_argument("--size", type=_size, default=(1280, 960), metavar="WxH", help="image size in pixels")
    render_parser.add_argument("--fps", type=float, default=4.0, help="frames per second of an animation")
    render_parser.add_argument("--max-immune", type=int, default=2000, metavar="N",
                               help="draw at most N immune cells: above it a seeded random 1 in k of them, noted in the "
                                    "legend (default 2000; 0 draws every one)")
    render_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    render_parser.set_defaults(handler=_viz_command, viz="render")

    export_parser = commands.add_parser("export", help="write a run's snapshots as VTK files for ParaView")
    export_parser.add_argument("run_dir", help="run directory made by tme run")
    export_parser.add_argument("--format", default="vtk", choices=("vtk",), help="vtk: a .vti per snapshot and a .pvd series")
    export_parser.add_argument("--out", help="output folder (default RUN_DIR/vtk)")
    export_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    export_parser.set_defaults(handler=_viz_command, viz="export")

    plot_parser = commands.add_parser("plot", help="paper figures of a run or a comparison (PNG, PDF, SVG)")
    plot_parser.add_argument("run_dir", help="run directory made by tme run, or comparison (or sweep) directory made by tme compare")
    plot_parser.add_argument("--out", help="output folder (default RUN_DIR/figures)")
    plot_parser.add_argument("--formats", default="png,pdf,svg", help="comma-separated, from png, pdf, svg")
    plot_parser.add_argument("--only", help="comma-separated figure names (default: every figure the run has data for)")
    plot_parser.add_argument("--title", help="a subject added to every figure's title, e.g. 'necrotic core, day 4'")
    plot_parser.add_argument("--style", default="paper", metavar="paper|talk",
                             help="paper: a two-column journal figure (default); talk: larger text and lines for slides")
    plot_parser.add_argument("--font-scale", default="1", metavar="F", help="a factor on every font size, 0.5 to 3")
    plot_parser.add_argument("--quiet", action="store_true", help="no line per figure on stderr")
    plot_parser.set_defaults(handler=_viz_command, viz="plot")

    report_parser = commands.add_parser("report", help="a Markdown report of a run or a comparison, with its figures and tables")
    report_parser.add_argument("run_dir", help="run directory made by tme run, or comparison directory made by tme compare")
    report_parser.add_argument("--out", help="report file (default RUN_DIR/report.md)")
    report_parser.add_argument("--quiet", action="store_true", help="no line per figure, no progress bar")
    report_parser.set_defaults(handler=_viz_command, viz="report")

    explore_parser = commands.add_parser("explore", help="a browser page to scrub through a run's snapshots, or to step "
                                                         "a config's model live (Solara; the explore extra)")
    explore_parser.add_argument("target", metavar="RUN_DIR|CONFIG",
                                help="run directory made by tme run, or a YAML config to step live")
    explore_parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                                help="with a config: override a config value by dotted key (repeatable)")
    explore_parser.add_argument("--port", type=_port, default=8765, help="port on 127.0.0.1 to serve the page at (default 8765)")
    explore_parser.set_defaults(handler=_viz_command, viz="explore")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tme", description="tme-abm: agent-based tumor microenvironment simulator")
    parser.add_argument("--version", action="version", version=f"tme-abm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def config_arguments(sub: argparse.ArgumentParser, arm: bool = True, config_required: bool = True) -> None:
        sub.add_argument("config", help="YAML config file", **({} if config_required else {"nargs": "?"}))
        sub.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="override a config value by dotted key, e.g. time.duration_days=2 (repeatable)")
        sub.add_argument("--backend", choices=BACKEND_NAMES, help="array backend (overrides the config)")
        sub.add_argument("--seed", type=int, help="random seed (overrides the config)")
        if arm:
            sub.add_argument("--arm", help="use the treatment arm of this name from the config's arms")

    run_parser = commands.add_parser("run", help="run a config and write a run directory, or resume one")
    config_arguments(run_parser, config_required=False)
    run_parser.add_argument("--out", help="run directory to create (must not hold files)")
    run_parser.add_argument("--resume", metavar="DIR", help="continue the stopped run DIR from its checkpoint, in place "
                                                            "(instead of CONFIG and --out)")
    run_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    run_parser.set_defaults(handler=_command_run)

    compare_parser = commands.add_parser("compare", help="run every treatment arm x replicate and compare the arms")
    config_arguments(compare_parser, arm=False)
    compare_parser.add_argument("--out", required=True, help="comparison directory (a partial one is completed)")
    compare_parser.add_argument("--replicates", type=int, default=8,
                                help="runs per arm (and per patient of a cohort), seeds from the config's seed (default 8)")
    compare_parser.add_argument("--arms", help="comma-separated arms to run (default: all)")
    compare_parser.add_argument("--workers", type=int, help="worker processes of the pool or the local Dask cluster (default: "
                                                             "CPUs up to 4; on a GPU as many runs as its free memory holds)")
    compare_parser.add_argument("--executor", default="process", choices=EXECUTORS,
                                help="process: a local process pool (default); dask: a Dask cluster, local or --scheduler's "
                                     "(docs/executors.md)")
    compare_parser.add_argument("--scheduler", metavar="ADDRESS",
                                help="with --executor dask: a running Dask scheduler, e.g. tcp://HOST:8786, whose workers run "
                                     "the runs (they must see --out at the same path); default: a local cluster of --workers")
    compare_parser.add_argument("--sweep", action="append", metavar="KEY=V1,V2,...",
                                help="run the comparison at each value of a dotted config key (repeatable: the grid of "
                                     "every combination), e.g. tumor.clones.0.cycle_time_h=16,20,24")
    compare_parser.add_argument("--no-branch", action="store_true",
                                help="run every arm from step 0, not from the state the arms of a seed share before "
                                     "any treatment starts (the same results; docs/checkpoints.md)")
    compare_parser.add_argument("--quiet", action="store_true", help="no progress bar (failed runs are still named)")
    compare_parser.set_defaults(handler=_command_compare)

    validate_parser = commands.add_parser("validate", help="check a config without running it")
    config_arguments(validate_parser)
    validate_parser.set_defaults(handler=_command_validate)

    info_parser = commands.add_parser("info", help="versions, backend choice and GPU status; with a config, its memory")
    info_parser.add_argument("config", nargs="?", help="YAML config file: print the estimated memory of its run")
    info_parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    info_parser.add_argument("--backend", choices=BACKEND_NAMES, help="array backend (overrides the config)")
    info_parser.set_defaults(handler=_command_info)
    _add_viz_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tme`` console script; returns the exit status."""
    arguments = build_parser().parse_args(argv)
    try:
        with terminate_as_interrupt():
            return arguments.handler(arguments)
    except (ConfigError, BackendError, RunDirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        resume = "" if arguments.command != "run" else \
            f"; continue the run with `tme run --resume {arguments.resume or arguments.out}`"
        print(f"interrupted: the output directory holds the records up to the interruption{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
