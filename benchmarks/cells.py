"""Throughput of the tumor model: cell-updates and field voxel-updates per second.

For a 2-D and a 3-D lattice at two sizes each, on the backend that
``--backend`` picks, this steps the model for ``--warmup`` cell steps (growth
at the rim, necrosis where oxygen runs out), then times ``--steps`` more and
prints

* cell-updates per second of the whole model step: lattice voxels x cell
  steps per wall second, and live tumor cells x cell steps per wall second;
* the time of each rule of ``model.rules`` per step, and its share;
* field voxel-updates per second of the implicit (LOD) field step
  (``kernels.diffusion.implicit_step`` on the model's oxygen field), and of
  the steady-state oxygen solve the model uses (voxels x conjugate-gradient
  iterations per second of the ``fields`` rule).

The tumor starts as a ball (disc) of radius a quarter of the shortest lattice
side, in tissue with the default vessels and oxygen. GPU timings synchronise
the device after every timed piece. On a GPU, ``TME_FAST_PATHS=0`` times the
``xp`` references instead of the CUDA fast paths (:mod:`kernels.accelerated`).
The default run takes about two minutes on two CPU cores.

Usage::

    python benchmarks/cells.py [--backend auto|numpy|cupy] [--warmup 24] [--steps 24]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from abm.config import parse_config
from abm.model import TumorModel
from kernels import diffusion
from kernels.backend import BACKEND_NAMES, Backend, get_backend
from kernels.calls import usable_cpus

CASES: tuple[tuple[int, ...], ...] = ((256, 256), (512, 512), (48, 48, 48), (96, 96, 96))
FIELD_DT_MIN = 60.0


def build_model(shape: tuple[int, ...], backend: Backend) -> TumorModel:
    """A tumor model on ``shape`` that times its rules (``model.rule_seconds``, keyed by rule name)."""
    config = parse_config({
        "seed": 1,
        "backend": backend.name,
        "lattice": {"shape": list(shape)},
        "time": {"duration_days": 1},
        "tumor": {"initial": {"radius_um": min(shape) * 20.0 / 4.0}},
    }, "benchmark")
    return TumorModel(config, backend, time_rules=True)


def seconds_per_call(call: Callable[[], Any], backend: Backend, repeats: int) -> float:
    """Mean wall seconds of ``call()`` over ``repeats`` calls, after one untimed call."""
    call()
    backend.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    backend.synchronize()
    return (time.perf_counter() - started) / repeats


def benchmark_case(shape: tuple[int, ...], backend: Backend, warmup: int, steps: int) -> dict[str, Any]:
    """Grow for ``warmup`` steps, then time ``steps`` model steps and the field solvers on ``shape``.

    Returns:
        A row: voxels, live cells, updates per second, per-rule seconds per step.
    """
    model = build_model(shape, backend)
    seconds = model.rule_seconds
    for _ in range(warmup):
        model.step()
    live_start = int(model.lattice.tumor.live().sum())
    seconds.update({name: 0.0 for name in seconds})
    step_seconds = 0.0
    live_cell_steps = 0
    cg_iterations = 0
    for _ in range(steps):
        live_cell_steps += int(model.lattice.tumor.live().sum())
        started = time.perf_counter()
        model.step()
        backend.synchronize()
        step_seconds += time.perf_counter() - started
        cg_iterations += model.context.solver_iterations["oxygen"]

    voxels = model.config.lattice.voxels
    xp = backend.xp
    oxygen = model.lattice.fields["oxygen"]
    zeros = xp.zeros(model.lattice.shape, dtype=xp.float64)
    lod_seconds = seconds_per_call(
        lambda: diffusion.implicit_step(xp, oxygen, FIELD_DT_MIN, model.run.field_parameters["oxygen"], zeros, zeros,
                                        line_sweep=backend.operation("field_line_sweep")),
        backend, max(steps // 2, 1))
    return {
        "shape": "x".join(map(str, shape)),
        "voxels": voxels,
        "live_start": live_start,
        "live_end": int(model.lattice.tumor.live().sum()),
        "step_s": step_seconds / steps,
        "voxel_updates_per_s": voxels * steps / step_seconds,
        "live_cell_updates_per_s": live_cell_steps / step_seconds,
        "rules_s": {name: value / steps for name, value in seconds.items()},
        "lod_voxel_updates_per_s": voxels / lod_seconds,
        "cg_iterations_per_solve": cg_iterations / steps,
        "cg_voxel_updates_per_s": voxels * cg_iterations / seconds["fields"],
    }


def describe_machine(backend: Backend) -> str:
    """CPU count, Python, NumPy, backend and device, one per line."""
    usable = usable_cpus()
    return "\n".join([
        f"machine: {platform.machine()} {platform.processor() or platform.system()}, "
        f"{os.cpu_count()} CPUs ({usable} usable by this process)",
        f"python {platform.python_version()}, numpy {np.__version__}",
        f"backend: {backend.name} ({backend.reason}); fast paths {'on' if backend.fast_paths else 'off'}"
        + (f"; {backend.threads} field-solve threads (TME_THREADS)" if backend.name == "numpy" else ""),
        f"device: {backend.device}",
    ])


def report(row: dict[str, Any]) -> str:
    """The lines printed for one case."""
    lines = [
        f"{row['shape']} lattice ({row['voxels']:,} voxels), live tumor cells {row['live_start']:,} -> {row['live_end']:,}",
        f"  model step            {row['step_s'] * 1e3:9.2f} ms/step",
        f"  cell-updates          {row['voxel_updates_per_s']:.3e} voxel-steps/s, "
        f"{row['live_cell_updates_per_s']:.3e} live-cell-steps/s",
        f"  field (implicit LOD)  {row['lod_voxel_updates_per_s']:.3e} voxel-updates/s",
        f"  field (steady CG)     {row['cg_voxel_updates_per_s']:.3e} voxel-updates/s "
        f"({row['cg_iterations_per_solve']:.0f} iterations per solve)",
        "  rules (ms/step, share of the step):",
    ]
    for name, value in row["rules_s"].items():
        lines.append(f"    {name:<24}{value * 1e3:9.2f}  {value / row['step_s']:6.1%}")
    other = row["step_s"] - sum(row["rules_s"].values())
    lines.append(f"    {'(records, bookkeeping)':<24}{other * 1e3:9.2f}  {other / row['step_s']:6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run every case and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="array backend (default auto)")
    parser.add_argument("--warmup", type=int, default=24, help="cell steps of growth before timing (default 24)")
    parser.add_argument("--steps", type=int, default=24, help="timed cell steps per case (default 24)")
    arguments = parser.parse_args(argv)
    if arguments.steps < 1 or arguments.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    backend = get_backend(arguments.backend)
    print(describe_machine(backend))
    print(f"warm-up {arguments.warmup} cell steps, then {arguments.steps} timed cell steps per lattice\n")
    for shape in CASES:
        print(report(benchmark_case(shape, backend, arguments.warmup, arguments.steps)), flush=True)


if __name__ == "__main__":
    main()
