"""Throughput of the model without immune cells and with immune cells at 1 % and 10 % of the tumor's cells.

For a 2-D (512x512) and a 3-D (64^3) lattice, on the backend that
``--backend`` picks, this builds a tumor ball (radius a quarter of the
shortest side, dx 20 um, vessels at 2 % of the voxels) presenting antigen 0,
with the chemokine and danger-signal fields. The baseline has no immune
section (the immune rules do nothing); the other cases have one T-cell clone
specific to antigen 0, Tregs and MDSCs, with immune cells placed directly in
tumor voxels, as effector T cells (90 %) and suppressors (10 %), at the given
share of the tumor's cells; recruitment keeps adding a few. Each model steps
``--warmup`` cell steps, then ``--steps`` more are timed (records every 6 h
included), and it prints

* voxel-steps and live-tumor-cell-steps per wall second of the whole model
  step, and their ratio to the case without immune cells;
* immune cells at the start and end of the timed steps;
* the time of each rule per step and its share.

The cases of a lattice step in turn, one step each, so that load on the
machine during the run affects them alike. GPU timings synchronise the
device after every timed piece. On a GPU, ``TME_FAST_PATHS=0`` times the
``xp`` references instead of the CUDA fast paths (:mod:`kernels.accelerated`).
The default run takes about four minutes on two CPU cores.

Usage::

    python benchmarks/immune.py [--backend auto|numpy|cupy] [--warmup 6] [--steps 24]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.cells
from abm.config import parse_config  # noqa: E402
from abm.model import TumorModel  # noqa: E402
from benchmarks.cells import describe_machine  # noqa: E402
from kernels.backend import BACKEND_NAMES, Backend, get_backend  # noqa: E402
from kernels.layers import EFFECTOR  # noqa: E402
from kernels.random import uniform  # noqa: E402

CASES: tuple[tuple[int, ...], ...] = ((512, 512), (64, 64, 64))
SHARES = (None, 0.01, 0.1)  # None: no immune system


def build_model(shape: tuple[int, ...], backend: Backend, share: float | None) -> TumorModel:
    """A tumor with immune cells on ``share`` of its voxels (None: no immune system) that times its rules
    (``model.rule_seconds``)."""
    raw = {
        "seed": 1,
        "backend": backend.name,
        "lattice": {"shape": list(shape)},
        "time": {"duration_days": 1},
        "fields": {"oxygen": {"preset": "oxygen"}, "chemokine": {"preset": "chemokine"},
                   "danger_signal": {"preset": "danger_signal"}},
        "vessels": {"density": 0.02},
        "tumor": {"initial": {"radius_um": min(shape) * 20.0 / 4.0}, "clones": [{"name": "parental", "antigens": [0]}]},
    }
    if share is not None:
        raw["immune"] = {"t_cells": {"clones": [{"name": "anti0", "antigen": 0}]}, "tregs": {}, "mdscs": {}}
    model = TumorModel(parse_config(raw, "benchmark"), backend, time_rules=True)
    if share is None:
        return model
    xp, state = model.xp, model.lattice
    draw = uniform(xp, 99, 0, 1, state.voxel_index)
    tumor = state.tumor.clone >= 0
    place = tumor & (draw < share)
    suppressor = draw < 0.1 * share
    tregs, mdscs = (model.immune.suppressors[kind].index for kind in ("treg", "mdsc"))
    agent = xp.where(suppressor, xp.where(draw < 0.05 * share, tregs, mdscs), 0)
    state.immune = state.immune.replace(agent=xp.where(place, agent, state.immune.agent).astype(xp.int32),
                                        state=xp.where(place, EFFECTOR, state.immune.state).astype(xp.int8))
    return model


def benchmark_lattice(shape: tuple[int, ...], backend: Backend, warmup: int, steps: int) -> list[dict[str, Any]]:
    """Time the three shares on ``shape``, stepping the models in turn."""
    cases = []
    for share in SHARES:
        model = build_model(shape, backend, share)
        cases.append({"share": share, "seconds": model.rule_seconds, "model": model,
                      "step_s": 0.0, "live_cell_steps": 0})
    for _ in range(warmup):
        for case in cases:
            case["model"].step()
    for case in cases:
        case["seconds"].update({name: 0.0 for name in case["seconds"]})
        case["immune_start"] = int((case["model"].lattice.immune.agent >= 0).sum())
    for _ in range(steps):
        for case in cases:
            model = case["model"]
            case["live_cell_steps"] += int(model.lattice.tumor.live().sum())
            started = time.perf_counter()
            model.step()
            model.backend.synchronize()
            case["step_s"] += time.perf_counter() - started
    for case in cases:
        case["immune_end"] = int((case["model"].lattice.immune.agent >= 0).sum())
        case["voxels"] = case["model"].config.lattice.voxels
    return cases


def report(shape: tuple[int, ...], cases: list[dict[str, Any]], steps: int) -> str:
    """The lines printed for one lattice."""
    lines = []
    baseline = cases[0]["voxels"] * steps / cases[0]["step_s"]
    for case in cases:
        voxel_rate = case["voxels"] * steps / case["step_s"]
        step_s = case["step_s"] / steps
        label = "no immune system" if case["share"] is None else f"immune cells at {case['share']:.0%} of the tumor"
        lines += [
            f"{'x'.join(map(str, shape))} lattice, {label}: {case['immune_start']:,} -> {case['immune_end']:,} immune cells",
            f"  model step            {step_s * 1e3:9.2f} ms/step",
            f"  cell-updates          {voxel_rate:.3e} voxel-steps/s, {case['live_cell_steps'] / case['step_s']:.3e} "
            f"live-cell-steps/s; {voxel_rate / baseline:.2f} of no immune cells",
            "  rules (ms/step, share of the step):",
        ]
        for name, value in case["seconds"].items():
            lines.append(f"    {name:<24}{value / steps * 1e3:9.2f}  {value / case['step_s']:6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run every lattice and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="array backend (default auto)")
    parser.add_argument("--warmup", type=int, default=6, help="cell steps before timing (default 6)")
    parser.add_argument("--steps", type=int, default=24, help="timed cell steps per case (default 24)")
    arguments = parser.parse_args(argv)
    if arguments.steps < 1 or arguments.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    backend = get_backend(arguments.backend)
    print(describe_machine(backend))
    print(f"warm-up {arguments.warmup} cell steps, then {arguments.steps} timed cell steps per case\n")
    for shape in CASES:
        print(report(shape, benchmark_lattice(shape, backend, arguments.warmup, arguments.steps), arguments.steps), flush=True)


if __name__ == "__main__":
    main()
