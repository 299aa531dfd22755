"""Time configs/large_3d.yaml (or another preset) at full size: the first cell steps, extrapolated to the whole run.

Builds the model of configs/large_3d.yaml (384^3, seven fields, T cells and
suppressors; ``--set`` overrides as ``tme run`` takes them), or of
``--config`` (a GPU size of a 3-D preset, say, treated by ``--arm``), then steps it
with its rules timed until ``--steps`` cell steps are done or ``--budget-s``
wall seconds have passed, and prints

* the wall time of building the model (initial lattice and field solves);
* the mean wall time of a cell step over the timed steps (the first step,
  which compiles kernels on a GPU, is timed apart) and each rule's share;
* the run's length extrapolated from that mean: ``total_steps x mean``, in
  minutes, against the target of 5 minutes for 2400 steps (100 days) for
  large_3d;
* the live tumor cells and immune cells at the start and the end;
* on CuPy, the device memory the pool holds.

The extrapolation assumes later steps cost what early ones do, and probably
falls short: the timed steps come before treatment starts (day 30), when the
tumor has fewer cells and the immune rules fewer cells to move. It is what
one command of the device tool (10 minutes) can measure; a full run is the
real figure.

Usage::

    python benchmarks/large_3d.py [--config configs/large_3d.yaml] [--arm NAME] [--backend auto|numpy|cupy]
        [--steps 240] [--budget-s 90] [--set KEY=VALUE ...] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from abm.config import load_config, select_arm
from abm.model import TumorModel
from kernels.backend import BACKEND_NAMES, get_backend

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "large_3d.yaml"
TARGET_MINUTES = 5.0


def counts(model: TumorModel) -> tuple[int, int]:
    """Live tumor cells and immune cells on the lattice."""
    lattice = model.lattice
    return int(lattice.tumor.live().sum()), int((lattice.immune.agent >= 0).sum())


def measure(backend_name: str, steps: int, budget_s: float, overrides: list[str], config_path: Path = CONFIG,
            arm: str | None = None) -> dict[str, Any]:
    """Build ``config_path`` (with ``overrides``, treated by ``arm`` if given) on ``backend_name`` and time up to
    ``steps`` cell steps within ``budget_s`` wall seconds (the first step timed apart).

    Returns:
        A row: shape, voxels, build_s, first_step_s, steps timed after the first, mean step_s, per-rule seconds per
        step (rules_s), extrapolated_min for the config's whole run, cells and immune cells at start and end, and on
        CuPy pool_bytes.
    """
    backend = get_backend(backend_name)
    config = load_config(config_path, [f"backend={backend.name}", *overrides])
    if arm is not None:
        config = select_arm(config, arm)
    started = time.perf_counter()
    model = TumorModel(config, backend, time_rules=True)
    backend.synchronize()
    build_s = time.perf_counter() - started
    print(f"built in {build_s:.1f} s (printed now: a step limit that cuts the run short keeps this)", flush=True)
    cells_start, immune_start = counts(model)
    started = time.perf_counter()
    model.step()
    backend.synchronize()
    first_step_s = time.perf_counter() - started
    model.rule_seconds.update({name: 0.0 for name in model.rule_seconds})
    timed, step_s, begun = 0, 0.0, time.perf_counter()
    while timed < steps - 1 and time.perf_counter() - begun < budget_s and model.steps < config.time.total_steps:
        started = time.perf_counter()
        model.step()
        backend.synchronize()
        step_s += time.perf_counter() - started
        timed += 1
    cells_end, immune_end = counts(model)
    mean_s = step_s / timed if timed else first_step_s
    row = {
        "config": config_path.name,
        "arm": arm,
        "backend": backend.name,
        "shape": "x".join(map(str, config.lattice.shape)),
        "voxels": config.lattice.voxels,
        "build_s": build_s,
        "first_step_s": first_step_s,
        "steps_timed": timed,
        "step_s": mean_s,
        "rules_s": {name: value / timed for name, value in model.rule_seconds.items()} if timed else {},
        "total_steps": config.time.total_steps,
        "extrapolated_min": config.time.total_steps * mean_s / 60.0,
        "cells_start": cells_start,
        "cells_end": cells_end,
        "immune_start": immune_start,
        "immune_end": immune_end,
        "day_end": model.steps * config.time.dt_cell_h / 24.0,
    }
    if backend.name == "cupy":
        row["pool_bytes"] = int(backend.xp.get_default_memory_pool().total_bytes())
    return row


def report(row: dict[str, Any]) -> str:
    """The lines printed for one measurement."""
    target = f"target {TARGET_MINUTES:g} min; " if row["config"] == CONFIG.name else ""
    rows = [
        ("build (initial lattice and fields)", f"{row['build_s']:.1f} s"),
        ("first step", f"{row['first_step_s']:.2f} s"),
        (f"mean step over {row['steps_timed']} more", f"{row['step_s'] * 1e3:.1f} ms"),
        (f"{row['total_steps']} steps extrapolated", f"{row['extrapolated_min']:.1f} min ({target}early steps only, "
                                                  "see the module docstring)"),
        (f"live tumor cells, day 0 -> {row['day_end']:.2f}", f"{row['cells_start']:,} -> {row['cells_end']:,}"),
        ("immune cells", f"{row['immune_start']:,} -> {row['immune_end']:,}"),
    ]
    if "pool_bytes" in row:
        rows.append(("device memory pool", f"{row['pool_bytes'] / 2**30:.2f} GiB"))
    arm = f", arm {row['arm']}" if row["arm"] else ""
    lines = [f"configs/{row['config']}{arm} on {row['backend']}: {row['shape']} ({row['voxels']:,} voxels)"]
    lines += [f"  {label:<38}{value}" for label, value in rows]
    total = sum(row["rules_s"].values()) or 1.0
    lines += [f"    {name:<36}{seconds * 1e3:9.1f} ms/step ({seconds / total:.0%})"
              for name, seconds in sorted(row["rules_s"].items(), key=lambda item: -item[1])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the preset (default configs/large_3d.yaml)")
    parser.add_argument("--arm", help="treat the run by this arm of the config")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    parser.add_argument("--steps", type=int, default=240, help="cell steps to time at most (default 240: 10 days)")
    parser.add_argument("--budget-s", type=float, default=90.0, help="stop timing after this many wall seconds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--json", type=Path, help="also write the row to this JSON file")
    arguments = parser.parse_args(argv)
    if arguments.steps < 1 or arguments.budget_s <= 0:
        parser.error(f"--steps {arguments.steps} and --budget-s {arguments.budget_s:g}: give at least 1 step and "
                     "a positive budget")
    row = measure(arguments.backend, arguments.steps, arguments.budget_s, arguments.set, arguments.config, arguments.arm)
    print(report(row))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
