"""The model step of versions of the code against each other: interleaved rounds, ratios per round.

Each case is a source tree of the project (a checkout or ``git archive`` of
a commit) and a substrate-grid factor. In each round every case runs, in
its own fresh process with the tree as working directory and first on the
import path, configs/immune_excluded.yaml of that tree at side N as
benchmarks/scale.py scales it (:func:`benchmarks.scale.scaled_overrides`,
NumPy): ``--warmup`` cell steps, then ``--steps`` timed ones with the rules
timed one by one. The order of the cases rotates from round to round, so
the load of a shared machine falls on each in turn. The child uses only
``load_config`` with overrides, ``TumorModel(..., time_rules=True)`` and
``rule_seconds``, which every version since the rules became objects
(4d7e171) has; a factor other than 1 needs ``lattice.field_coarsening``.

Prints one line per run (ms per cell step, the rules over 5 % of it, live
tumor and immune cells, the load average), then for each case the ratio of
the first case's step to its step in each round (first / case: above 1,
the case is faster), with the median. Exit 1 when a run fails (the rows so
far are written), 2 on a bad ``--case``.

A third field sets the child's ``TME_THREADS`` (threads of the NumPy field
solve; code from before the variable ignores it).

Usage::

    python benchmarks/versions.py --case before=/tmp/old:1 --case after=.:1 --case after-c2=.:2 --case after-t1=.:1:1
                                  [--size 96] [--rounds 3] [--warmup 1] [--steps 2] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.*
from benchmarks.scale import scaled_overrides  # noqa: E402

#: Run in the tree under test (``python -c``): argv overrides (JSON), warm-up steps, timed steps; prints one JSON row.
CHILD = """
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from abm.config import load_config
from abm.model import TumorModel
overrides, warmup, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = TumorModel(load_config("configs/immune_excluded.yaml", overrides), time_rules=True)
for _ in range(warmup):
    model.step()
for name in model.rule_seconds:
    model.rule_seconds[name] = 0.0
start = time.perf_counter()
for _ in range(steps):
    model.step()
seconds = time.perf_counter() - start
print(json.dumps({"step_ms": 1e3 * seconds / steps,
                  "rules_ms": {name: 1e3 * value / steps for name, value in model.rule_seconds.items()},
                  "live_cells": int(model.lattice.tumor.live().sum()),
                  "immune_cells": int((model.lattice.immune.agent >= 0).sum()), "load_average": os.getloadavg()[0]}))
"""


def parse_case(text: str) -> tuple[str, Path, int, int | None]:
    """``NAME=PATH[:FACTOR[:THREADS]]`` as ``(name, tree, factor, threads)``: factor default 1; threads (the
    child's ``TME_THREADS``, which trees from before it existed ignore) default None, the environment's.

    Raises:
        ValueError: the text is not of that form, the factor or thread count is not a positive integer or the
            tree has no configs/immune_excluded.yaml.
    """
    name, separator, rest = text.partition("=")
    path, *numbers = rest.split(":")
    factor, threads = (numbers + ["1", ""])[:2] if len(numbers) <= 2 else ("", "")
    if not separator or not name or not path or not factor.isdigit() or int(factor) < 1 or \
            (threads and (not threads.isdigit() or int(threads) < 1)):
        raise ValueError(f"--case {text!r}: expected NAME=PATH[:FACTOR[:THREADS]], e.g. before=/tmp/old:1")
    tree = Path(path).resolve()
    if not (tree / "configs" / "immune_excluded.yaml").is_file():
        raise ValueError(f"--case {text!r}: {tree} is not a source tree of the project (no configs/immune_excluded.yaml)")
    return name, tree, int(factor), int(threads) if threads else None


def run_case(tree: Path, size: int, factor: int, warmup: int, steps: int, threads: int | None = None) -> dict[str, Any]:
    """One fresh process in ``tree`` (with ``TME_THREADS=threads`` unless None): its row (see :data:`CHILD`).
    Raises RuntimeError with its stderr if it fails."""
    overrides = json.dumps(scaled_overrides(size, "numpy", factor))
    environment = {**os.environ, "PYTHONPATH": str(tree), **({"TME_THREADS": str(threads)} if threads else {})}
    result = subprocess.run([sys.executable, "-c", CHILD, overrides, str(warmup), str(steps)], cwd=tree,
                            capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(row: dict[str, Any]) -> str:
    """The line printed for one run."""
    busy = ", ".join(f"{name} {ms:,.0f}" for name, ms in row["rules_ms"].items() if ms > 0.05 * row["step_ms"])
    threads = f", TME_THREADS={row['threads']}" if row["threads"] else ""
    return (f"round {row['round']} {row['case']} (c={row['coarsening']}{threads}): {row['step_ms']:,.0f} ms/step ({busy}); "
            f"{row['live_cells']:,} live tumor cells, {row['immune_cells']:,} immune cells; load {row['load_average']:.1f}")


def ratios(rows: list[dict[str, Any]], names: list[str]) -> list[str]:
    """Per case after the first: the first case's step over its step in each round, and the median."""
    step = {(row["round"], row["case"]): row["step_ms"] for row in rows}
    rounds = sorted({row["round"] for row in rows})
    lines = []
    for name in names[1:]:
        values = [step[(r, names[0])] / step[(r, name)] for r in rounds if (r, names[0]) in step and (r, name) in step]
        if values:
            lines.append(f"{names[0]} / {name}: " + ", ".join(f"{value:.2f}" for value in values)
                         + f" (median {statistics.median(values):.2f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", required=True,
                        help="NAME=PATH[:FACTOR[:THREADS]]: a source tree, its substrate-grid factor and its "
                             "TME_THREADS (repeat; the first is the reference of the ratios)")
    parser.add_argument("--size", type=int, default=96, help="cube side (default 96)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="cell steps before timing (default 1)")
    parser.add_argument("--steps", type=int, default=2, help="timed cell steps (default 2)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    arguments = parser.parse_args(argv)
    try:
        cases = [parse_case(text) for text in arguments.case]
    except ValueError as error:
        parser.error(str(error))
    names = [name for name, *_ in cases]
    if len(set(names)) != len(names):
        parser.error(f"--case: names must differ, got {', '.join(names)}")
    rows: list[dict[str, Any]] = []
    failed = None
    for round_ in range(1, arguments.rounds + 1):
        shift = (round_ - 1) % len(cases)
        for name, tree, factor, threads in cases[shift:] + cases[:shift]:
            try:
                row = run_case(tree, arguments.size, factor, arguments.warmup, arguments.steps, threads)
            except RuntimeError as error:
                failed = f"error: case {name} ({tree}, c={factor}) failed in round {round_}: {error}"
                break
            rows.append({"case": name, "tree": str(tree), "coarsening": factor, "threads": threads, "round": round_, **row})
            print(report(rows[-1]), flush=True)
        if failed:
            break
    print("\n".join(ratios(rows, names)))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if failed:
        print(failed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
