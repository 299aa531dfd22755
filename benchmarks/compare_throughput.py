"""Runs per hour of ``tme compare`` on configs/sequencing.yaml, for each of several worker counts (default 1 and 2).

For each worker count in turn, a comparison of ``--replicates`` seeds of
every arm (or of ``--arms``) runs into a fresh directory under a temporary
folder (removed at the end) with the executor ``--executor``, timed from the
call of ``abm.compare`` to its return (runs, then the written tables and
compare.json). It reports

* runs per hour: runs / wall seconds x 3600;
* the speed-up of each worker count against the first one, measured in the
  same invocation on the same machine;
* the machine's load average (1 minute) before and after each timing, since
  other processes on a shared machine take CPUs from the workers.

The runs are those of ``tme compare`` exactly; ``--set`` shortens or changes
them (e.g. ``--set time.duration_days=6``).

Usage::

    python benchmarks/compare_throughput.py [--workers 1,2] [--executor process|dask] [--replicates 1] [--arms a,b]
        [--backend numpy|cupy] [--set KEY=VALUE ...] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.*
from abm.comparison import arm_configs, compare  # noqa: E402
from abm.config import ConfigError, load_config  # noqa: E402
from abm.executors import EXECUTORS  # noqa: E402
from benchmarks.cells import describe_machine  # noqa: E402
from kernels.backend import BACKEND_NAMES, get_backend  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sequencing.yaml"


def throughput(config, workers: int, replicates: int, arms: list[str] | None, executor: str,
               scratch: Path) -> dict[str, Any]:
    """One timed comparison into ``scratch / workers_<n>``: its runs, failed runs, wall seconds, runs per hour and the
    load average (1 minute) before and after."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = compare(config, scratch / f"workers_{workers}", replicates, arms, workers=workers, progress=False,
                     executor=executor)
    wall_s = time.perf_counter() - started
    runs = sum(stats["runs"] for stats in result["arms"].values()) + len(result["failed_runs"])
    return {"workers": workers, "executor": executor, "runs": runs, "failed_runs": len(result["failed_runs"]),
            "wall_s": wall_s, "runs_per_hour": runs / wall_s * 3600.0, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, timed in this order (default 1,2)")
    parser.add_argument("--executor", choices=EXECUTORS, default="process", help="executor of tme compare (default process)")
    parser.add_argument("--replicates", type=int, default=1, help="seeds per arm (default 1)")
    parser.add_argument("--arms", help="comma-separated arms (default: all seven)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="numpy", help="array backend (default numpy)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    arguments = parser.parse_args(argv)
    try:
        counts = [int(part) for part in arguments.workers.split(",")]
    except ValueError:
        parser.error(f"--workers {arguments.workers!r}: expected comma-separated integers, e.g. 1,2")
    if min(counts) < 1:
        parser.error(f"--workers {arguments.workers!r}: each count at least 1")
    arms = arguments.arms.split(",") if arguments.arms else None
    try:
        config = load_config(CONFIG, [*arguments.set, f"backend={arguments.backend}"])
        arm_configs(config, arms)
    except ConfigError as exc:
        parser.error(str(exc))
    print(describe_machine(get_backend(arguments.backend)))
    print(f"{CONFIG.name}: {len(arms or config.arms)} arm(s) x {arguments.replicates} replicate(s), "
          f"{config.time.duration_days:g} days, lattice {'x'.join(map(str, config.lattice.shape))}, "
          f"executor {arguments.executor}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tme-throughput-") as scratch:
        for workers in counts:
            row = throughput(config, workers, arguments.replicates, arms, arguments.executor, Path(scratch))
            row["speedup"] = row["runs_per_hour"] / rows[0]["runs_per_hour"] if rows else 1.0
            rows.append(row)
            print(f"{workers} worker(s): {row['runs']} runs ({row['failed_runs']} failed) in {row['wall_s']:.1f} s: "
                  f"{row['runs_per_hour']:.0f} runs/hour, x{row['speedup']:.2f} against {counts[0]} worker(s) "
                  f"(load average {row['load_before']:.1f} -> {row['load_after']:.1f})",
                  flush=True)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
