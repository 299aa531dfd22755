"""Render time of a 128^3 snapshot: prints seconds per render for each view and colouring.

The snapshot is synthetic (a 2.2 mm spheroid of four clones with a necrotic
core, random vessels, a radial oxygen field) and written in the run
directory format, so the full path of ``tme render`` is timed: reading the
snapshot, building the voxel surface, rendering off-screen, and the PNG.

    python benchmarks/render.py [--size 128] [--repeat 3]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from abm.io import write_snapshot, write_text
from abm.rundir import snapshot_name
from kernels.tumor import CYCLING, NECROTIC, QUIESCENT
from viz.render import RenderOptions, render
from viz.rundir import open_run

CASES = (("iso", "clone"), ("cutaway", "state"), ("cutaway", "field:oxygen"), ("slice", "clone"))


def synthetic_run(folder: Path, n: int, dx_um: float = 20.0) -> Path:
    """A run directory with one snapshot of an ``n^3`` lattice (see the module doc)."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:n, :n, :n]
    radius = np.sqrt((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2) / (0.43 * n)
    tumor = radius < 1.0
    quadrant = (2 * (y >= n / 2) + (x >= n / 2)).astype(np.int32)
    clone = np.where(tumor, np.broadcast_to(quadrant, (n, n, n)), -1).astype(np.int32)
    cell_state = np.select([radius < 0.45, radius < 0.7], [NECROTIC, QUIESCENT], CYCLING).astype(np.int8)
    vessel = ~tumor & (rng.random((n, n, n)) < 0.002)
    oxygen = (38.0 * np.clip(radius, 0.0, 1.2) / 1.2).astype(np.float32)
    config = {"lattice": {"shape": [n, n, n], "dx_um": dx_um}, "time": {"dt_cell_h": 1.0},
              "fields": {"oxygen": {"units": "mmHg"}},
              "tumor": {"clones": [{"name": f"clone {index}"} for index in range(4)]},
              "drugs": {}, "immune": {}, "treatment": None, "arms": {}}
    write_text(folder / "config.yaml", yaml.safe_dump(config))
    write_snapshot(folder / "snapshots" / snapshot_name(240), {
        "time_h": np.asarray(240.0), "dx_um": np.asarray(dx_um), "clone": clone, "cell_state": cell_state,
        "vessel": vessel, "field_oxygen": oxygen})
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="lattice edge in voxels")
    parser.add_argument("--repeat", type=int, default=3, help="renders per case (the best is reported)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run = open_run(synthetic_run(Path(scratch) / "run", arguments.size))
        tumor_cells = int((run.last_snapshot().clone >= 0).sum())
        print(f"render benchmark: {arguments.size}^3 lattice, {tumor_cells:,} tumor cells, 1280x960 PNG; "
              f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
        render(run, Path(scratch) / "warm.png", RenderOptions(view="slice"))  # imports and GL context
        for view, color in CASES:
            times = []
            for _ in range(arguments.repeat):
                run = open_run(run.path)  # re-read the snapshot each time, as tme render does
                started = time.perf_counter()
                render(run, Path(scratch) / "out.png", RenderOptions(view=view, color=color))
                times.append(time.perf_counter() - started)
            print(f"  --view {view:8s} --color {color:13s} {min(times):6.2f} s")


if __name__ == "__main__":
    main()
