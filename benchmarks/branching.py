"""What branched arms save: runs per hour of ``tme compare configs/sequencing.yaml`` with and without branching.

``tme compare`` runs the arms of each seed from the state they share before
any arm's treatment starts (:mod:`abm.branching`); ``--no-branch`` runs every
arm from step 0. Both give the same tables (tests/test_branching.py). This
script times the two on the same arms and seeds, each into a fresh
comparison directory under a temporary folder, in one process
(``--workers``, default 1, so the figure is the work, not the parallelism),
and prints per mode the wall time, the runs per hour and the cell steps
simulated, then the ratio of runs per hour (branched over unbranched). The
two modes alternate ``--repeats`` times, each first in turn, so that load
on the machine and first-use costs (imports) affect them alike; the figures
are the medians.

The saving is the share of the steps before the branch point: with all
arms of configs/sequencing.yaml starting on day 5 of 42, about one seventh
of each arm's steps is simulated once instead of once per arm.

Usage::

    python benchmarks/branching.py [--replicates 1] [--arms A,B,...] [--workers 1] [--repeats 2]
                                   [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for abm
from abm.branching import branch_step  # noqa: E402
from abm.comparison import arm_configs, compare  # noqa: E402
from abm.config import ConfigError, load_config  # noqa: E402

SEQUENCING = Path(__file__).resolve().parents[1] / "configs" / "sequencing.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=1, help="seeds per arm (default 1)")
    parser.add_argument("--arms", help="comma-separated arms (default: every arm of the config)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="timings of each mode, alternating (default 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    arguments = parser.parse_args(argv)
    try:
        config = load_config(SEQUENCING, ["backend=numpy", *arguments.set])
        arms = arguments.arms.split(",") if arguments.arms else None
        configs = list(arm_configs(config, arms).values())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs = len(configs) * arguments.replicates
    total = config.time.total_steps
    shared = branch_step(configs)
    steps = {"branched": arguments.replicates * (shared + len(configs) * (total - shared)),
             "unbranched": runs * total}
    seconds: dict[str, list[float]] = {"unbranched": [], "branched": []}
    with tempfile.TemporaryDirectory(prefix="tme-branching-") as folder:
        for repeat in range(arguments.repeats):
            for mode in sorted(seconds, reverse=repeat % 2 == 1):  # each mode first in turn (imports, caches)
                started = time.perf_counter()
                compare(config, Path(folder) / f"{mode}_{repeat}", arguments.replicates, arms, arguments.workers,
                        progress=False, branch=mode == "branched")
                seconds[mode].append(time.perf_counter() - started)
    print(f"{SEQUENCING.name}: {len(configs)} arms x {arguments.replicates} seed(s) = {runs} runs of {total} cell steps "
          f"on {config.lattice.shape}, {arguments.workers} worker(s); branch point: step {shared} "
          f"(day {shared * config.time.dt_cell_h / 24:g})")
    rates = {}
    for mode, times in seconds.items():
        wall = statistics.median(times)
        rates[mode] = runs / wall * 3600.0
        print(f"  {mode:>10}: {wall:8.1f} s, {rates[mode]:8.1f} runs per hour, {steps[mode]:,} cell steps simulated")
    print(f"  branched / unbranched runs per hour: {rates['branched'] / rates['unbranched']:.2f} "
          f"(cell steps: {steps['unbranched'] / steps['branched']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
