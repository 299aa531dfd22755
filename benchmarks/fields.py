"""Throughput, memory and error of the implicit field solver at BioFVM's settings.

For each lattice (default 64^3, 128^3, 200^3) and substrate count (1 and 4),
in a fresh subprocess per case, this advances a stack of float32 fields with
:func:`kernels.diffusion.implicit_step_many` at BioFVM's benchmark settings
(dx 20 um, D 1e5 um^2/min, decay 0.1/min, dt 0.01 min, every face fixed at 1,
initial value 0) and prints

* voxel-updates per second: voxels x substrates x steps / wall seconds;
* the peak resident memory of the subprocess (ru_maxrss) and its rise over
  the value before the fields were allocated;
* the error at the same simulated time against a float64 reference run with
  a time step five times smaller (the difference is about 4/5 of the
  first-order time error; the spatial error is common to both).

BioFVM's figures on a 2-core machine (issue 3) are printed beside them.
Then, for each transient substrate preset of ``abm.config.FIELD_PRESETS``, on
a 64^3 lattice with a tumor ball (radius 200 um) taking up or secreting as
the preset says, for both transient solvers (``transient_lod`` at the step
recommended for it in docs/fields.md, ``transient`` at one step per 60-min
cell step and at 10 min):

* simulated minutes per wall second over 60 simulated minutes from 0;
* the max error at 60 min, relative to the field's maximum, against the
  split solver at a step 8 times smaller than recommended, in float64;
* the equilibrium error: started from the exact steady state (the steady
  solver at rtol 1e-10), how far 60 simulated minutes of steps move the field.

Usage::

    python benchmarks/fields.py [--sizes 64,128,200] [--substrates 1,4] [--steps 10] [--backend numpy|cupy]

``--backend cupy`` times the throughput table on the GPU (the line sweeps the
backend picks: the fused solver of :mod:`kernels.cuda.lines`, or the ``xp``
reference with ``TME_FAST_PATHS=0``; memory is then the GPU memory pool's
peak, not the process's); the presets always run on NumPy.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abm.config import FIELD_PRESETS  # noqa: E402
from benchmarks.cells import synchronize  # noqa: E402
from kernels.backend import get_backend  # noqa: E402
from kernels.diffusion import THREADS, FieldParameters, backward_euler_step, implicit_step_many, steady_state  # noqa: E402

BIOFVM = {(128, 1): (1.7e7, 1.7), (128, 4): (4.4e7, 2.2), (200, 1): (1.8e7, 6.4), (256, 1): (1.8e7, 13.4)}
DT_MIN, DX_UM = 0.01, 20.0
#: Step recommended for the split (LOD) solver per preset, min (docs/fields.md): about 2-4 % error in the tumor.
RECOMMENDED_DT_MIN = {"chemokine": 0.1, "ccl2": 0.1, "tgf_beta": 1.0, "il10": 1.0, "anti_pd1": 10.0,
                      "chemo_drug": 1.0, "danger_signal": 1.0}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(size: int, substrates: int, steps: int, backend_name: str = "numpy") -> dict[str, float]:
    """Time ``steps`` steps of ``substrates`` fields on ``size``^3, in this process; error vs dt/5 in float64."""
    backend = get_backend(backend_name)
    xp = backend.xp
    sweep = backend.operation("field_line_sweep")
    pool = xp.get_default_memory_pool() if backend.name == "cupy" else None
    before = peak_rss_mb() if pool is None else 0.0
    params = [FieldParameters(1.0e5, 0.1, DX_UM, ((1.0, 1.0),) * 3)] * substrates
    u = xp.zeros((substrates, size, size, size), dtype=np.float32)
    u = implicit_step_many(xp, u, DT_MIN, params, line_sweep=sweep)
    synchronize(backend)
    started = time.perf_counter()
    for _ in range(steps):
        u = implicit_step_many(xp, u, DT_MIN, params, line_sweep=sweep)
    synchronize(backend)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb() if pool is None else pool.total_bytes() / 2**20
    reference = xp.zeros((1, size, size, size))
    for _ in range(5 * (steps + 1)):
        reference = implicit_step_many(xp, reference, DT_MIN / 5, params[:1], line_sweep=sweep)
    error = float(xp.abs(u[0] - reference[0]).max())
    return {"updates_per_s": size**3 * substrates * steps / seconds, "peak_mb": peak, "rise_mb": peak - before,
            "error": error, "step_s": seconds / steps}


def tumor_terms(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sink and source (1/min, units/min) of preset ``name`` for a tumor ball of radius 200 um at the centre."""
    preset = FIELD_PRESETS[name]
    centre = (np.arange(size) + 0.5) * DX_UM - size * DX_UM / 2
    ball = (centre[:, None, None] ** 2 + centre[None, :, None] ** 2 + centre[None, None, :] ** 2) <= 200.0**2
    sink = sum(preset.get("uptake_per_min", {}).values()) * ball
    rate = sum(preset.get("secretion_per_min", {}).values())
    sink = sink + rate * ball
    return sink, rate * preset.get("secretion_saturation", 1.0) * ball


def _stepper(solver: str, params: FieldParameters, sink: np.ndarray, source: np.ndarray):
    """``step(u, dt)`` of one field (shape ``(1, n, n, n)``) with ``solver``."""
    if solver == "transient":
        return lambda u, dt: backward_euler_step(np, u[0], dt, params, sink, source)[0][None]
    return lambda u, dt: implicit_step_many(np, u, dt, [params], sink, source)


def run_preset(name: str, solver: str, dt: float, size: int = 64, minutes: float = 60.0) -> dict[str, float]:
    """Simulated minutes per wall second, error at ``minutes`` vs a fine split run, and equilibrium error."""
    preset = FIELD_PRESETS[name]
    params = FieldParameters(preset["D_um2_per_min"], preset["decay_per_min"], DX_UM, ((1.0, 1.0),) * 3)
    sink, source = tumor_terms(name, size)
    step = _stepper(solver, params, sink, source)
    steps = max(1, round(minutes / dt))
    u = np.zeros((1, size, size, size), dtype=np.float32)
    started = time.perf_counter()
    for _ in range(steps):
        u = step(u, dt)
    seconds = time.perf_counter() - started
    fine_dt = RECOMMENDED_DT_MIN[name] / 8
    reference = np.zeros((1, size, size, size))
    for _ in range(round(minutes / fine_dt)):
        reference = implicit_step_many(np, reference, fine_dt, [params], sink, source)
    steady = steady_state(np, np.zeros((size, size, size)), params, sink, source, rtol=1e-10)[0][None]
    scale = float(np.abs(steady).max())
    held = steady.astype(np.float32)
    for _ in range(steps):
        held = step(held, dt)
    return {"dt_min": dt, "sim_min_per_s": steps * dt / seconds,
            "relative_error": float(np.abs(u - reference).max()) / scale,
            "equilibrium_error": float(np.abs(held - steady).max()) / scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,200")
    parser.add_argument("--substrates", default="1,4")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--presets", default=",".join(RECOMMENDED_DT_MIN), help="presets to time ('' for none)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="backend of the throughput table")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        kind, *rest = args.case.split(":")
        row = run_case(int(rest[0]), int(rest[1]), args.steps, args.backend) if kind == "lod" else run_preset(rest[0], rest[1], float(rest[2]))
        print(json.dumps(row))
        return
    device = get_backend(args.backend).device
    print(f"throughput on {args.backend} ({device}); numpy {np.__version__}, {THREADS} sweep threads; dt {DT_MIN} min, dx {DX_UM} um, D 1e5 um^2/min, "
          f"decay 0.1/min, fixed faces, float32 fields, {args.steps} timed steps")
    print(f"{'case':>10} {'updates/s':>10} {'step ms':>8} {'peak MB':>8} {'rise MB':>8} {'max error':>10}   BioFVM")
    for size in map(int, args.sizes.split(",")):
        for substrates in map(int, args.substrates.split(",")):
            output = subprocess.run([sys.executable, __file__, "--case", f"lod:{size}:{substrates}", "--steps", str(args.steps),
                                     "--backend", args.backend],
                                    check=True, capture_output=True, text=True).stdout
            row = json.loads(output)
            biofvm = BIOFVM.get((size, substrates))
            versus = (f"{biofvm[0]:.1e}/s in {biofvm[1]} GB: x{row['updates_per_s'] / biofvm[0]:.1f} throughput, "
                      f"x{biofvm[1] * 1024 / row['peak_mb']:.0f} less memory" if biofvm else "")
            print(f"{size:>4}^3 x{substrates:<2} {row['updates_per_s']:10.2e} {row['step_s'] * 1e3:8.1f} "
                  f"{row['peak_mb']:8.0f} {row['rise_mb']:8.0f} {row['error']:10.2e}   {versus}", flush=True)
    presets = [name for name in args.presets.split(",") if name]
    if presets:
        print("\nsubstrate presets on 64^3 with a tumor ball (r 200 um), 60 simulated min from 0, float32;"
              "\nerrors relative to the field's maximum:")
        print(f"{'preset':>14} {'solver':>14} {'dt min':>7} {'sim min/s':>10} {'error 60 min':>13} {'equilibrium':>12}")
    for name in presets:
        for solver, dt in (("transient_lod", RECOMMENDED_DT_MIN[name]), ("transient", 10.0), ("transient", 60.0)):
            output = subprocess.run([sys.executable, __file__, "--case", f"preset:{name}:{solver}:{dt}"],
                                    check=True, capture_output=True, text=True).stdout
            row = json.loads(output)
            print(f"{name:>14} {solver:>14} {row['dt_min']:7g} {row['sim_min_per_s']:10.1f} "
                  f"{row['relative_error']:13.2%} {row['equilibrium_error']:12.2e}", flush=True)


if __name__ == "__main__":
    main()
