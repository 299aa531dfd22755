"""The model step at scale: a 3-D tumor with vessels, T cells, suppressors and five fields on growing lattices.

configs/immune_excluded.yaml on cubes of side N (default 96, 192, 256, 384,
512), its tumor and avascular core scaled with the cube (initial radius
N x dx / 4, core 20 um wider), so the live cells grow with the lattice. Each
size runs in a fresh subprocess (so one size's peak memory cannot hide
another's): it builds the model, steps ``--warmup`` cell steps, then times
``--steps`` more with the rules timed one by one (``TumorModel(...,
time_rules=True)``, which synchronises the device after each rule), and
reports

* ms per cell step, and per rule;
* voxel-steps/s (lattice voxels x cell steps per wall second) and
  live-cell-steps/s (live tumor cells x cell steps per wall second);
* peak memory per voxel: the rise of the process's peak resident set size
  from just before the model is built (host), and on a GPU the bytes CuPy's
  memory pool holds after the run (it keeps every block it allocated, so
  this is the device peak);
* the split field step's line sweep (the ``field_line_sweep`` accelerated
  operation, one float32 field, along each axis in turn): its achieved
  memory bandwidth, counting the least traffic a Thomas sweep needs (each
  voxel read and written once in the forward pass and once in the backward
  pass: 4 x 4 bytes per voxel and axis), as a share of the device's peak
  (a GPU's from its memory clock and bus width; on the CPU, which has no
  such figure here, of a measured copy bandwidth: ``dst[...] = src`` over
  float32 arrays of at least 256 MiB, read + write).

With ``--coarsening 1,2,4`` each size runs at each substrate-grid factor
(``lattice.field_coarsening``), and ``--rounds R`` repeats the whole set R
times, the factors interleaved within each round, so that figures to be
compared come from the same run and load.

A size whose estimated memory (abm.runner.estimated_bytes) exceeds what the
device has free is skipped with the two numbers.

Usage::

    python benchmarks/scale.py [--backend numpy|cupy] [--sizes 96,192] [--coarsening 1,2] [--rounds 3]
                               [--warmup 2] [--steps 4] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.*
from abm.config import load_config  # noqa: E402
from abm.model import TumorModel  # noqa: E402
from abm.runner import estimated_bytes  # noqa: E402
from benchmarks.cells import describe_machine, seconds_per_call  # noqa: E402
from benchmarks.memory import load_compiled_loops, peak_rss_bytes  # noqa: E402
from kernels.backend import BACKEND_NAMES, Backend, get_backend  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "immune_excluded.yaml"
DEFAULT_SIZES = (96, 192, 256, 384, 512)
#: Elements of the arrays the CPU's copy bandwidth is measured on at least (256 MiB of float32 each).
COPY_ELEMENTS = 2**26
#: Least bytes a Thomas sweep moves per voxel and axis: read and write in the forward and in the backward pass.
SWEEP_ACCESSES = 4


def scaled_overrides(size: int, backend_name: str, coarsening: int = 1) -> list[str]:
    """The ``--set`` overrides of the config at side ``size``: tumor radius a quarter of the side, the avascular
    core 20 um wider; fields on a grid coarsened by ``coarsening`` (the key is left out at 1, its default, so
    that code from before the key runs them too: benchmarks/versions.py)."""
    radius_um = size * load_config(CONFIG).lattice.dx_um / 4.0
    return ([f"lattice.shape=[{size}, {size}, {size}]", f"backend={backend_name}",
             f"tumor.initial.radius_um={radius_um}", f"vessels.core_radius_um={radius_um + 20.0}"]
            + ([f"lattice.field_coarsening={coarsening}"] if coarsening != 1 else []))


def scaled_config(size: int, backend: Backend, coarsening: int = 1):
    """The config at side ``size`` (:func:`scaled_overrides`)."""
    return load_config(CONFIG, scaled_overrides(size, backend.name, coarsening))


def peak_bandwidth(backend: Backend, size: int) -> tuple[float, str]:
    """The device's peak memory bandwidth in bytes/s and where the figure comes from."""
    xp = backend.xp
    if backend.name == "cupy":
        device = xp.cuda.Device()
        clock_khz = device.attributes["MemoryClockRate"]
        bus_bits = device.attributes["GlobalMemoryBusWidth"]
        return 2.0 * clock_khz * 1e3 * bus_bits / 8.0, "peak from the memory clock and bus width (double data rate)"
    source = xp.ones(max(size**3, COPY_ELEMENTS), dtype=xp.float32)  # well beyond the caches
    target = xp.empty_like(source)

    def copy() -> None:
        target[...] = source

    seconds = seconds_per_call(copy, backend, 5)
    return 2.0 * source.nbytes / seconds, "measured copy bandwidth (dst[...] = src, read + write)"


def sweep_bandwidth(backend: Backend, size: int) -> float:
    """Achieved bytes/s of the field line sweep on one float32 field of side ``size``, averaged over the three axes."""
    xp = backend.xp
    sweep = backend.operation("field_line_sweep")
    work = xp.ones((1, size, size, size), dtype=xp.float32)
    shape = (size, 1, 1, 1)  # (n, fields, 1, 1): one plane of the table broadcasts over a plane of the lines
    forward = xp.full(shape, -0.1, dtype=xp.float32)  # a stable, diagonally dominant line: values stay bounded
    inverse = xp.full(shape, 0.9, dtype=xp.float32)
    r = xp.full((1, 1, 1), 0.1, dtype=xp.float32)
    seconds = sum(seconds_per_call(lambda axis=axis: sweep(xp, work, axis, forward, inverse, r), backend, 3)
                  for axis in (1, 2, 3)) / 3.0
    return SWEEP_ACCESSES * work.nbytes / seconds


def measure(size: int, backend_name: str, warmup: int, steps: int, coarsening: int = 1) -> dict[str, Any]:
    """One size at one substrate-grid factor, in this process: the figures of the module doc."""
    backend = get_backend(backend_name)
    config = scaled_config(size, backend, coarsening)
    voxels = config.lattice.voxels
    free = backend.free_memory_bytes()
    need = estimated_bytes(config)
    if need > free:
        return {"size": size, "coarsening": coarsening, "skipped": f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"}
    load_compiled_loops(backend)
    rss_before = peak_rss_bytes()
    built = time.perf_counter()
    model = TumorModel(config, backend, time_rules=True)
    build_s = time.perf_counter() - built
    for _ in range(warmup):
        model.step()
    model.rule_seconds.update({name: 0.0 for name in model.rule_seconds})
    live_cell_steps = 0
    step_s = 0.0
    for _ in range(steps):
        live_cell_steps += int(model.lattice.tumor.live().sum())
        started = time.perf_counter()
        model.step()
        backend.synchronize()
        step_s += time.perf_counter() - started
    host_peak = peak_rss_bytes() - rss_before
    device_peak = int(backend.xp.get_default_memory_pool().total_bytes()) if backend.name == "cupy" else host_peak
    rules_ms = {name: seconds / steps * 1e3 for name, seconds in model.rule_seconds.items()}
    immune_cells = int(model.lattice.immune.occupied().sum())
    del model
    peak, peak_source = peak_bandwidth(backend, size)
    achieved = sweep_bandwidth(backend, size)
    return {
        "size": size, "coarsening": coarsening, "voxels": voxels, "build_s": build_s, "step_ms": step_s / steps * 1e3, "rules_ms": rules_ms,
        "voxel_steps_per_s": voxels * steps / step_s, "live_cell_steps_per_s": live_cell_steps / step_s,
        "live_cells": live_cell_steps / steps, "immune_cells": immune_cells,
        "host_bytes_per_voxel": host_peak / voxels, "device_bytes_per_voxel": device_peak / voxels,
        "sweep_bytes_per_s": achieved, "peak_bytes_per_s": peak, "peak_source": peak_source,
    }


def measure_in_subprocess(size: int, backend_name: str, warmup: int, steps: int, coarsening: int = 1) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process (its peak memory is its own)."""
    command = [sys.executable, __file__, "--child", str(size), "--backend", backend_name, "--warmup", str(warmup),
               "--steps", str(steps), "--coarsening", str(coarsening)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"size": size, "coarsening": coarsening, "skipped": f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr else result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(row: dict[str, Any]) -> str:
    """The lines printed for one size."""
    side, grid = row["size"], f"fields on 1/{row['coarsening']}" if row["coarsening"] > 1 else "fields at cell resolution"
    if "skipped" in row:
        return f"{side}^3, {grid}: skipped ({row['skipped']})"
    lines = [
        f"{side}^3 ({row['voxels']:,} voxels, {grid}), {row['live_cells']:,.0f} live tumor cells, {row['immune_cells']:,} immune "
        f"cells; built in {row['build_s']:.1f} s",
        f"  model step            {row['step_ms']:10.1f} ms/step",
        f"  throughput            {row['voxel_steps_per_s']:.3e} voxel-steps/s, {row['live_cell_steps_per_s']:.3e} "
        f"live-cell-steps/s",
        f"  peak memory           {row['host_bytes_per_voxel']:.0f} B/voxel host (RSS rise)"
        + (f", {row['device_bytes_per_voxel']:.0f} B/voxel device (memory pool)" if row["device_bytes_per_voxel"]
           != row["host_bytes_per_voxel"] else ""),
        f"  field line sweep      {row['sweep_bytes_per_s'] / 1e9:.2f} GB/s = {row['sweep_bytes_per_s'] / row['peak_bytes_per_s']:.1%}"
        f" of {row['peak_bytes_per_s'] / 1e9:.1f} GB/s ({row['peak_source']})",
        "  rules (ms/step, share of the step):",
    ]
    for name, value in row["rules_ms"].items():
        lines.append(f"    {name:<24}{value:10.2f}  {value / row['step_ms']:6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="array backend (default auto)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help=f"cube sides, comma-separated (default {','.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--coarsening", default="1",
                        help="substrate-grid factors (lattice.field_coarsening), comma-separated, interleaved (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every size and factor this many times (default 1)")
    parser.add_argument("--warmup", type=int, default=2, help="cell steps before timing (default 2)")
    parser.add_argument("--steps", type=int, default=4, help="timed cell steps per size (default 4)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child is not None:
        print(json.dumps(measure(arguments.child, arguments.backend, arguments.warmup, arguments.steps,
                                 int(arguments.coarsening))))
        return
    try:
        sizes = [int(text) for text in arguments.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes {arguments.sizes!r}: expected comma-separated integers, e.g. 96,192")
    try:
        factors = [int(text) for text in arguments.coarsening.split(",")]
    except ValueError:
        parser.error(f"--coarsening {arguments.coarsening!r}: expected comma-separated factors, e.g. 1,2")
    backend = get_backend(arguments.backend)
    print(describe_machine(backend))
    print(f"config: {CONFIG.name} scaled to each cube; warm-up {arguments.warmup} cell steps, then "
          f"{arguments.steps} timed cell steps\n")
    rows = []
    for round_ in range(1, arguments.rounds + 1):
        for size in sizes:
            for factor in factors:
                row = {**measure_in_subprocess(size, backend.name, arguments.warmup, arguments.steps, factor),
                       "round": round_}
                rows.append(row)
                print(f"round {round_}: " + report(row), flush=True)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
