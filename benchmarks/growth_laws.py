"""Growth laws of a spheroid with and without pushing: diameter against time, the switch, the proliferating rim.

Two runs of one spheroid in medium (no vessels, oxygen held at 38 mmHg at
the domain's faces, no decay outside cells, uptake 10 /min by live cells
[PCi]; full division rate from 10 mmHg, an assumption that keeps the rim's
cells near their full rate) from a seed of radius 30 um: one with
``tumor.max_push_distance = 0`` (contact inhibition: only cells next to a
free voxel divide, an Eden-like growth) and one with pushing. For each run
it prints, per day, the equivalent diameter ``D`` (um, all cells) and the
thickness of the proliferating rim (um): the shell (annulus in 2-D) of the
volume of the cycling cells above the quiescence threshold that have a
usable push line (a free voxel within ``max_push_distance + 1``), that is
``R`` less the equivalent radius of the other cells. Then it fits ``D`` by
an exponential up to a switch day and a line after it (the split, with at
least three daily points a side, of least squared relative error) and prints

* ``early_rate_per_day``: the rate of the exponential (about ``b / 2`` in
  2-D and ``b / 3`` in 3-D while every cell divides, ``b`` the division rate);
* ``late_velocity_um_per_day``: the slope of the line, and ``late_r2``, how
  well it fits the days after the switch (linear growth: near 1);
* ``switch_day``, ``switch_diameter_um``: where the exponential gives way;
* ``linear_r2_whole_run``: how well one line fits the whole run;
* ``rim_um``: the mean rim thickness after the switch; ``final_diameter_um``.

Only the days before ``D`` passes 3/4 of the lattice's side are fitted (``fitted_until_day``): nearer the
faces, held at the boundary's oxygen, the tumor grows faster than in a large dish.

Usage::

    python benchmarks/growth_laws.py [--ndim 2] [--size 120] [--days 20] [--push 8] [--seed 1] [--coarsening 1]
                                     [--json FILE]

The default (2-D) run takes about half a minute on two CPU cores.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abm.config import parse_config  # noqa: E402
from abm.model import TumorModel  # noqa: E402
from kernels import tumor  # noqa: E402
from kernels.backend import get_backend  # noqa: E402
from kernels.layers import CYCLING  # noqa: E402

DX_UM = 20.0
#: Fewest daily records on either side of the switch.
MIN_POINTS = 3
#: Records are fitted while the equivalent diameter is at most this share of the lattice's side: nearer the
#: faces, where oxygen is held at its boundary level, the tumor grows faster than a spheroid in a large dish.
NEAR_FACES = 0.75


def spheroid_config(size: int, days: float, max_push_distance: int, seed: int, ndim: int = 2, coarsening: int = 1):
    """The config of one run: a lattice of ``size`` 20 um voxels along each of ``ndim`` axes, for ``days`` days, the
    oxygen on a grid ``coarsening`` times coarser (``lattice.field_coarsening``)."""
    return parse_config({
        "seed": seed,
        "lattice": {"shape": [size] * ndim, "dx_um": DX_UM, "field_coarsening": coarsening},
        "time": {"duration_days": days, "record_every_h": 24, "snapshot_every_h": None},
        "vessels": {"pattern": "none"},
        "fields": {"oxygen": {"preset": "oxygen", "decay_per_min": 0.0}},
        "tumor": {"initial": {"radius_um": 30.0}, "max_push_distance": max_push_distance,
                  "hypoxia": {"proliferation_saturation_mmHg": 10.0}},
    }, "growth-laws")


def grow(size: int, days: float, max_push_distance: int, seed: int, ndim: int,
         coarsening: int = 1) -> dict[str, list[float]]:
    """Step one run on NumPy; per day the time (days), the equivalent diameter (um) and the rim thickness (um)."""
    config = spheroid_config(size, days, max_push_distance, seed, ndim, coarsening)
    model = TumorModel(config, get_backend("numpy"))
    series: dict[str, list[float]] = {"day": [], "diameter_um": [], "rim_um": []}
    quiescence_mmHg = config.tumor.hypoxia.quiescence_below_mmHg
    steps_per_day = round(24.0 / config.time.dt_cell_h)
    for step in range(1, config.time.total_steps + 1):
        model.step()
        if step % steps_per_day:
            continue
        lattice = model.lattice
        cells = lattice.tumor
        cycling = cells.occupied() & (cells.state == CYCLING) & (lattice.fields["oxygen"] > quiescence_mmHg)
        free = ~cells.occupied() & ~lattice.vessels.present
        lengths = tumor.push_lengths(np, cycling, free=free, occupied=cells.occupied(), offsets=model.run.offsets,
                                     max_cells=max_push_distance)
        proliferating = np.any([length > 0 for length in lengths], axis=0)
        tumor_voxels, rim_voxels = float(cells.occupied().sum()), float(proliferating.sum())
        radius = equivalent_radius(tumor_voxels, ndim)
        series["day"].append(step / steps_per_day)
        series["diameter_um"].append(2.0 * radius)
        series["rim_um"].append(radius - equivalent_radius(max(tumor_voxels - rim_voxels, 0.0), ndim))
    return series


def equivalent_radius(voxels: float, ndim: int) -> float:
    """Radius (um) of the disc (2-D) or ball (3-D) of ``voxels`` voxels of edge ``DX_UM``."""
    if ndim == 2:
        return math.sqrt(voxels * DX_UM**2 / math.pi)
    return (3.0 * voxels * DX_UM**3 / (4.0 * math.pi)) ** (1.0 / 3.0)


def figures(series: dict[str, list[float]], side_um: float) -> dict[str, float]:
    """The growth-law figures of one run on a lattice of side ``side_um`` (see the module docstring), fitted to
    the records before the diameter passes :data:`NEAR_FACES` of the side."""
    final_diameter = series["diameter_um"][-1]
    near = np.asarray(series["diameter_um"]) > NEAR_FACES * side_um
    fitted = int(np.argmax(near)) if near.any() else len(near)
    day, diameter = np.asarray(series["day"][:fitted]), np.asarray(series["diameter_um"][:fitted])
    errors = []
    for split in range(MIN_POINTS - 1, len(day) - MIN_POINTS + 1):
        early, late = slice(0, split + 1), slice(split, len(day))
        rate, log_start = np.polyfit(day[early], np.log(diameter[early]), 1)
        velocity, start = np.polyfit(day[late], diameter[late], 1)
        relative = np.concatenate([np.exp(log_start + rate * day[early]) / diameter[early] - 1.0,
                                   (start + velocity * day[late]) / diameter[late] - 1.0])
        errors.append(((relative**2).sum(), split, rate, velocity))
    _, split, rate, velocity = min(errors)
    late = slice(split, len(day))
    line = np.polyval(np.polyfit(day[late], diameter[late], 1), day[late])
    r2 = 1.0 - float(((diameter[late] - line)**2).sum() / ((diameter[late] - diameter[late].mean())**2).sum())
    whole_velocity, whole_start = np.polyfit(day, diameter, 1)
    whole = np.polyval((whole_velocity, whole_start), day)
    return {"early_rate_per_day": float(rate), "late_velocity_um_per_day": float(velocity), "late_r2": r2,
            "switch_day": float(day[split]), "switch_diameter_um": float(diameter[split]),
            "linear_r2_whole_run": 1.0 - float(((diameter - whole)**2).sum() / ((diameter - diameter.mean())**2).sum()),
            "rim_um": float(np.mean(series["rim_um"][split:fitted])), "fitted_until_day": float(day[-1]),
            "final_diameter_um": float(final_diameter)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=120, help="lattice side, voxels of 20 um")
    parser.add_argument("--days", type=float, default=20.0)
    parser.add_argument("--push", type=int, default=8, help="tumor.max_push_distance of the pushing run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--coarsening", type=int, choices=(1, 2, 4), default=1,
                        help="lattice.field_coarsening: the oxygen on a grid this many times coarser")
    parser.add_argument("--json", type=Path, help="also write the series and figures here")
    args = parser.parse_args(argv)
    result = {}
    for push in (0, args.push):
        series = grow(args.size, args.days, push, args.seed, args.ndim, args.coarsening)
        result[str(push)] = {"series": series, "figures": figures(series, args.size * DX_UM)}
        print(f"max_push_distance = {push} ({args.size}^{args.ndim} voxels of {DX_UM:g} um, seed {args.seed}, "
              f"field coarsening {args.coarsening})", flush=True)
        for day, diameter, rim in zip(series["day"], series["diameter_um"], series["rim_um"]):
            print(f"  day {day:5.1f}  D {diameter:7.1f} um  rim {rim:6.1f} um")
        for name, value in result[str(push)]["figures"].items():
            print(f"  {name}: {value:.3g}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
