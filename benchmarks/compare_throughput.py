"""Runs per hour of ``tme compare`` on configs/sequencing.yaml, for each worker count (default 1 and 2), with and
without branched arms.

Each cell of the grid (worker count x mode: ``branched``, the arms of a seed
run from the state they share before any arm's treatment starts,
:mod:`abm.branching`; ``unbranched``, ``--no-branch``, every arm from step 0)
is a comparison of ``--replicates`` seeds of every arm (or of ``--arms``)
into a fresh directory under a temporary folder (removed at the end) with
the executor ``--executor``, timed from the call of ``abm.compare`` to its
return (runs, then the written tables and compare.json). The grid is timed
``--repeats`` times, the modes in turn first (imports, caches and the
machine's load then weigh on both alike); a cell's figure is its median.
It reports per cell

* runs per hour: runs / wall seconds x 3600, and the cell steps simulated
  (branched: the shared steps once per seed);
* the machine's load average (1 minute) before and after each timing, since
  other processes on a shared machine take CPUs from the workers;

and the ratios of runs per hour measured in the same invocation: each worker
count against the first, per mode, and branched against unbranched, per
worker count. Both modes give the same tables (tests/test_branching.py).

The runs are those of ``tme compare`` exactly; ``--set`` shortens or changes
them (e.g. ``--set time.duration_days=6``).

Usage::

    python benchmarks/compare_throughput.py [--workers 1,2] [--modes branched,unbranched] [--repeats 1]
        [--executor process|dask] [--replicates 1] [--arms a,b] [--backend numpy|cupy] [--set KEY=VALUE ...]
        [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.*
from abm.branching import branch_step  # noqa: E402
from abm.comparison import arm_configs, compare  # noqa: E402
from abm.config import ConfigError, load_config  # noqa: E402
from abm.executors import EXECUTORS  # noqa: E402
from benchmarks.cells import describe_machine  # noqa: E402
from kernels.backend import BACKEND_NAMES, get_backend  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sequencing.yaml"
MODES = ("branched", "unbranched")


def timed(config, out: Path, workers: int, mode: str, replicates: int, arms: list[str] | None,
          executor: str) -> dict[str, Any]:
    """One timed comparison into ``out``: its runs, failed runs, wall seconds and the load average (1 minute) before
    and after."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = compare(config, out, replicates, arms, workers=workers, progress=False, executor=executor,
                     branch=mode == "branched")
    wall_s = time.perf_counter() - started
    runs = sum(stats["runs"] for stats in result["arms"].values()) + len(result["failed_runs"])
    return {"runs": runs, "failed_runs": len(result["failed_runs"]), "wall_s": wall_s, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def parse_list(parser: argparse.ArgumentParser, option: str, text: str, allowed: tuple[str, ...] | None) -> list:
    """The comma-separated ``text`` of ``option``: positive integers, or names of ``allowed``; else a usage error."""
    parts = text.split(",")
    if allowed is None:
        try:
            values = [int(part) for part in parts]
        except ValueError:
            values = [0]
        if min(values) < 1:
            parser.error(f"{option} {text!r}: expected comma-separated integers of at least 1, e.g. 1,2")
        return values
    if not set(parts) <= set(allowed) or len(set(parts)) < len(parts):
        parser.error(f"{option} {text!r}: expected some of {','.join(allowed)}, each once")
    return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, timed in this order (default 1,2)")
    parser.add_argument("--modes", default=",".join(MODES), help="branched, unbranched or both (default both)")
    parser.add_argument("--repeats", type=int, default=1, help="timings of each cell; the median counts (default 1)")
    parser.add_argument("--executor", choices=EXECUTORS, default="process", help="executor of tme compare (default process)")
    parser.add_argument("--replicates", type=int, default=1, help="seeds per arm (default 1)")
    parser.add_argument("--arms", help="comma-separated arms (default: all seven)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="numpy", help="array backend (default numpy)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    arguments = parser.parse_args(argv)
    counts = parse_list(parser, "--workers", arguments.workers, None)
    modes = parse_list(parser, "--modes", arguments.modes, MODES)
    if arguments.repeats < 1:
        parser.error(f"--repeats {arguments.repeats}: at least 1")
    arms = arguments.arms.split(",") if arguments.arms else None
    try:
        config = load_config(CONFIG, [*arguments.set, f"backend={arguments.backend}"])
        configs = list(arm_configs(config, arms).values())
    except ConfigError as exc:
        parser.error(str(exc))
    total, shared = config.time.total_steps, branch_step(configs)
    steps = {"branched": arguments.replicates * (shared + len(configs) * (total - shared)),
             "unbranched": arguments.replicates * len(configs) * total}
    print(describe_machine(get_backend(arguments.backend)))
    print(f"{CONFIG.name}: {len(configs)} arm(s) x {arguments.replicates} replicate(s), {total} cell steps "
          f"({config.time.duration_days:g} days) on {'x'.join(map(str, config.lattice.shape))}, executor "
          f"{arguments.executor}; branch point: step {shared} (day {shared * config.time.dt_cell_h / 24:g})")
    timings: dict[tuple[int, str], list[dict[str, Any]]] = {(workers, mode): [] for workers in counts for mode in modes}
    with tempfile.TemporaryDirectory(prefix="tme-throughput-") as scratch:
        for repeat in range(arguments.repeats):
            order = modes if repeat % 2 == 0 else modes[::-1]
            for workers in counts:
                for mode in order:
                    out = Path(scratch) / f"{mode}_workers_{workers}_{repeat}"
                    timings[workers, mode].append(timed(config, out, workers, mode, arguments.replicates, arms,
                                                        arguments.executor))
    rows = []
    for (workers, mode), cell in timings.items():
        wall_s = statistics.median(timing["wall_s"] for timing in cell)
        row = {"workers": workers, "mode": mode, "executor": arguments.executor, "runs": cell[0]["runs"],
               "failed_runs": max(timing["failed_runs"] for timing in cell), "cell_steps": steps[mode],
               "wall_s": wall_s, "runs_per_hour": cell[0]["runs"] / wall_s * 3600.0,
               "load_before": [timing["load_before"] for timing in cell],
               "load_after": [timing["load_after"] for timing in cell]}
        rows.append(row)
        loads = ", ".join(f"{before:.1f} -> {after:.1f}" for before, after in zip(row["load_before"], row["load_after"]))
        print(f"{workers} worker(s), {mode:>10}: {row['runs']} runs ({row['failed_runs']} failed) in {wall_s:.1f} s: "
              f"{row['runs_per_hour']:.0f} runs/hour, {steps[mode]:,} cell steps (load average {loads})", flush=True)
    rate = {(row["workers"], row["mode"]): row["runs_per_hour"] for row in rows}
    for row in rows:
        row["speedup_vs_first_workers"] = row["runs_per_hour"] / rate[counts[0], row["mode"]]
        if len(modes) == 2:
            row["branched_vs_unbranched"] = rate[row["workers"], "branched"] / rate[row["workers"], "unbranched"]
    for mode in modes:
        for workers in counts[1:]:
            print(f"{mode}: {workers} against {counts[0]} worker(s): x{rate[workers, mode] / rate[counts[0], mode]:.2f}")
    if len(modes) == 2:
        for workers in counts:
            print(f"{workers} worker(s): branched against unbranched: "
                  f"x{rate[workers, 'branched'] / rate[workers, 'unbranched']:.2f} "
                  f"(cell steps: x{steps['unbranched'] / steps['branched']:.2f} fewer)")
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
