"""Peak memory per voxel of the tumor model, the source of abm.runner.BYTES_PER_VOXEL.

Builds the model of configs/default.yaml on a cubic lattice (default 64^3),
runs a few cell steps, and reports the peak memory of construction and steps
per lattice voxel, with one field (oxygen) and with one more float64 field;
the difference is the cost of a field. Each measurement runs in a fresh
subprocess, so one cannot inherit another's peak:

* ``numpy``: the peak of NumPy's allocations (tracemalloc) and, in a separate
  process, the rise of the peak resident set size (ru_maxrss) over its value
  just before the model is built: what the operating system sees;
* ``cupy``: the bytes held by CuPy's default memory pool after the run (the
  pool keeps every block it has allocated, so this is the device peak).

It ends by comparing the figures with the constants abm.runner uses to refuse a
lattice too large for memory.

Usage::

    python benchmarks/memory.py [--backend numpy|cupy] [--size 64] [--steps 3]
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tracemalloc
from typing import Any
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's abm, not an installed one
from abm.config import load_config  # noqa: E402
from abm.model import TumorModel  # noqa: E402
from abm.runner import BYTES_PER_VOXEL, BYTES_PER_VOXEL_PER_FIELD  # noqa: E402
from kernels.backend import get_backend  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
# Secreted by the tumor, so that its solver (kept for the run) is built: a field without sources is never solved.
EXTRA_FIELD = ("fields.tracer={units: au, D_um2_per_min: 1000.0, decay_per_min: 0.01, solver: transient, dtype: float64, "
               "secretion_per_min: {tumor: 0.01}}")
METHODS = {"numpy": ("tracemalloc", "ru_maxrss"), "cupy": ("memory_pool",)}


def load_compiled_loops(backend: Any) -> None:
    """Load the process-wide runtime of ``backend``'s compiled CPU loops (Numba and LLVM, about 130 MB whatever the
    lattice, docs/performance.md) with one cell step of a 24^3 lattice, so that a peak measured after this is the
    model's own. Nothing on CuPy or with fast paths off."""
    if backend.name == "numpy" and backend.fast_paths:
        TumorModel(load_config(DEFAULT_CONFIG, ["lattice.shape=[24, 24, 24]"]), backend).step()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, bytes (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure(method: str, size: int, steps: int, extra_field: bool) -> int:
    """Peak bytes of building the model on a ``size``^3 lattice and running ``steps`` cell steps.

    Args:
        method: ``tracemalloc`` or ``ru_maxrss`` (NumPy), or ``memory_pool`` (CuPy).
        size: lattice side, voxels.
        steps: cell steps after construction.
        extra_field: add a float64 transient field beside oxygen.
    """
    overrides = [f"lattice.shape=[{size}, {size}, {size}]", *([EXTRA_FIELD] if extra_field else [])]
    backend = get_backend("cupy" if method == "memory_pool" else "numpy")
    config = load_config(DEFAULT_CONFIG, overrides)
    load_compiled_loops(backend)
    if method == "tracemalloc":
        tracemalloc.start()
    before = peak_rss_bytes()
    model = TumorModel(config, backend)
    for _ in range(steps):
        model.step()
    if method == "tracemalloc":
        return tracemalloc.get_traced_memory()[1]
    if method == "ru_maxrss":
        return peak_rss_bytes() - before
    backend.xp.cuda.Device().synchronize()
    return int(backend.xp.get_default_memory_pool().total_bytes())


def measure_in_subprocess(method: str, size: int, steps: int, extra_field: bool) -> int:
    """:func:`measure` in a fresh Python process."""
    command = [sys.executable, __file__, "--child", method, "--size", str(size), "--steps", str(steps)]
    if extra_field:
        command.append("--extra-field")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]


def main(argv: list[str] | None = None) -> None:
    """Measure with each method of the backend, print bytes per voxel and compare with abm.runner."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=tuple(METHODS), default="numpy", help="where to measure (default numpy)")
    parser.add_argument("--size", type=int, default=64, help="lattice side, voxels (default 64)")
    parser.add_argument("--steps", type=int, default=3, help="cell steps after construction (default 3)")
    parser.add_argument("--child", choices=[m for methods in METHODS.values() for m in methods], help=argparse.SUPPRESS)
    parser.add_argument("--extra-field", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        peak = measure(arguments.child, arguments.size, arguments.steps, arguments.extra_field)
        print(json.dumps({"peak_bytes": peak}))
        return

    voxels = arguments.size**3
    print(f"configs/default.yaml on a {arguments.size}^3 lattice ({voxels:,} voxels), "
          f"construction + {arguments.steps} cell steps, backend {arguments.backend}")
    per_voxel = {}
    for method in METHODS[arguments.backend]:
        one = measure_in_subprocess(method, arguments.size, arguments.steps, extra_field=False)
        two = measure_in_subprocess(method, arguments.size, arguments.steps, extra_field=True)
        per_field = (two - one) / voxels
        per_voxel[method] = (one / voxels - per_field, per_field)
        print(f"  {method:<12} one field {one / voxels:7.1f} B/voxel, two fields {two / voxels:7.1f} B/voxel: "
              f"{one / voxels - per_field:7.1f} B/voxel + {per_field:5.1f} B/voxel per field")
    base = math.ceil(max(value[0] for value in per_voxel.values()))
    field = math.ceil(max(value[1] for value in per_voxel.values()))
    print(f"measured (largest of the methods, rounded up): {base} B/voxel + {field} B/voxel per field")
    print(f"abm.runner uses:                                  {BYTES_PER_VOXEL} B/voxel + {BYTES_PER_VOXEL_PER_FIELD} B/voxel per field")


if __name__ == "__main__":
    main()
