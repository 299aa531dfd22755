"""Running one simulation from a config into a run directory.

Everything that can fail because of the user's input (config, backend,
memory, output directory) is checked before the directory is created, so a
rejected run leaves nothing on disk.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from abm import __version__
from abm.config import Config, ConfigError, to_yaml
from abm.io import RunFailed, check_output_directory, create_output_directory, snapshot_name, write_json, write_parquet, write_snapshot, write_text
from abm.model import TumorModel
from kernels.backend import Backend, get_backend
from kernels.diffusion import FieldSolverError

# Peak bytes per voxel of building the model and running cell steps, measured
# with benchmarks/memory.py on a 64^3 lattice of configs/default.yaml
# (2026-11-23): state arrays (tumor, vessels, immune cells), random draws, the
# division kernel's neighbour masks, and per field its array and its
# FieldSolver (kept for the whole run: about eleven float64 and six float32
# arrays). NumPy, split into a base and a per-field share: 112 + 111 per
# field (tracemalloc), 141 + 102 (peak RSS). CuPy measured 12 above NumPy's
# RSS on an H100 before; the constants add that margin and round up.
BYTES_PER_VOXEL = 155
BYTES_PER_VOXEL_PER_FIELD = 115


def estimated_bytes(config: Config) -> int:
    """Rough peak memory of a run of ``config`` on its device, bytes."""
    per_voxel = BYTES_PER_VOXEL + BYTES_PER_VOXEL_PER_FIELD * len(config.fields)
    return config.lattice.voxels * per_voxel


def check_memory(config: Config, backend: Backend) -> None:
    """Refuse a lattice whose estimated peak memory exceeds what the device has free."""
    need = estimated_bytes(config)
    have = backend.free_memory_bytes()
    if need > have:
        raise ConfigError(
            f"lattice.shape: {config.lattice.shape} ({config.lattice.voxels:,} voxels) needs about "
            f"{need / 2**30:.1f} GiB on {backend.device}, but only {have / 2**30:.1f} GiB is free; use a smaller lattice")


def run(config: Config, out: Path, progress: bool = True) -> dict[str, Any]:
    """Run ``config`` to its end and write the run directory ``out``.

    Returns:
        The summary written to ``out/summary.json``.
    """
    check_output_directory(out)
    backend = get_backend(config.backend)
    check_memory(config, backend)
    model = TumorModel(config, backend)
    total_steps = config.time.total_steps
    snapshot_steps = (config.time.steps(config.time.snapshot_every_h, "snapshot_every_h")
                      if config.time.snapshot_every_h is not None else None)

    create_output_directory(out)
    meta = {"tme_abm_version": __version__, "backend": backend.name, "backend_reason": backend.reason, "device": backend.device}
    write_text(out / "config.yaml", to_yaml(config, {"run": meta}))
    if snapshot_steps is not None:
        write_snapshot(out / "snapshots" / snapshot_name(0), model.snapshot())

    started = time.perf_counter()
    status = "complete"
    failure = None
    try:
        with tqdm(total=total_steps, unit="step", desc="simulating", disable=not progress, leave=True) as bar:
            for _ in range(total_steps):
                model.step()
                if snapshot_steps is not None and model.cell_step % snapshot_steps == 0:
                    write_snapshot(out / "snapshots" / snapshot_name(model.cell_step), model.snapshot())
                bar.update(1)
                if model.cell_step % model.record_steps == 0:
                    bar.set_postfix(day=f"{model.time_h / 24:.1f}", cells=model.latest["tumor_cells_total"])
    except KeyboardInterrupt:
        status = "interrupted"
    except FieldSolverError as exc:
        status = "failed"
        failure = f"day {model.time_h / 24.0:g}: {exc}"
    wall_s = time.perf_counter() - started

    write_parquet(out / "timeseries.parquet", model.timeseries())
    write_parquet(out / "clones.parquet", model.clone_series())
    write_parquet(out / "lineage.parquet", model.lineage())
    if model.immune.enabled:
        write_parquet(out / "immune.parquet", model.immune_series())
    if config.treatment is not None:
        write_parquet(out / "events.parquet", model.events())
    summary = {
        "status": status,
        **meta,
        "seed": config.seed,
        "cell_steps": model.cell_step,
        "simulated_days": model.time_h / 24.0,
        "wall_seconds": wall_s,
        "voxel_steps_per_second": config.lattice.voxels * model.cell_step / wall_s if wall_s > 0 else math.nan,
        "final": {key: (None if isinstance(value, float) and math.isnan(value) else value) for key, value in model.latest.items()},
        "treatment": model.therapy.summary(model.time_h),
    }
    if failure is not None:
        summary["error"] = failure
    write_json(out / "summary.json", summary)
    if status == "interrupted":
        raise KeyboardInterrupt
    if failure is not None:
        raise RunFailed(f"{out}: the run failed at {failure}; its records up to then are in the run directory")
    return summary
