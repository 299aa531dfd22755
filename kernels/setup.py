"""The initial lattice: vessels with their perfusion, the initial tumor cells, and the clones among them.

Pure functions of arrays and uniform draws (from :mod:`kernels.random`), run
once when a model is built. Arrays are of the lattice shape (``[y, x]`` or
``[z, y, x]``) unless stated; coordinates and distances are in um.
"""
from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np


def random_vessels(
    xp: ModuleType, density: Any, perfusion_min: float, perfusion_max: float, draw_place: Any, draw_perfusion: Any,
) -> tuple[Any, Any]:
    """Vessel voxels drawn independently, each with a perfusion drawn uniformly.

    Args:
        density: probability that a voxel is a vessel: a scalar, or a
            ``float64`` array (a sparse core is a lower density there).
        perfusion_min, perfusion_max: range of each vessel's perfusion, in [0, 1].
        draw_place, draw_perfusion: uniform [0, 1) draws.

    Returns:
        ``(vessel, perfusion)``: bool, and ``float32`` in [0, 1] (0 off vessels).
    """
    vessel = draw_place < density
    level = perfusion_min + (perfusion_max - perfusion_min) * draw_perfusion
    return vessel, xp.where(vessel, level, 0.0).astype(xp.float32)


def vessels_from_array(xp: ModuleType, values: np.ndarray) -> tuple[Any, Any]:
    """Vessels from a user array: bool (vessel, fully perfused) or numbers in [0, 1] (perfusion, 0 = none).

    Returns:
        ``(vessel, perfusion)`` on the device: bool and ``float32``.
    """
    perfusion = xp.asarray(values.astype(np.float32))
    return perfusion > 0, perfusion


def exact_counts(total: int, fractions: list[float]) -> list[int]:
    """Cells per clone: ``round(fraction x total)``, the first clone taking the rounding remainder.

    Args:
        total: number of initial cells.
        fractions: one share per clone, adding up to 1.

    Returns:
        Non-negative integers adding up to ``total``.
    """
    rest = [int(round(fraction * total)) for fraction in fractions[1:]]
    while sum(rest) > total:  # rounding up many rare clones can overshoot a tiny tumor
        rest[int(np.argmax(rest))] -= 1
    return [total - sum(rest)] + rest


def scattered_cells(xp: ModuleType, free: Any, cells: int, draw: Any) -> Any:
    """``cells`` voxels chosen uniformly among the free ones (bool mask).

    Raises:
        ValueError: fewer free voxels than ``cells``.
    """
    available = int(free.sum())
    if cells > available:
        raise ValueError(f"{cells} cells do not fit in the {available} free voxels")
    key = xp.where(free, draw, 2.0).reshape(-1)
    chosen = xp.zeros(key.shape, dtype=bool)
    chosen[xp.argsort(key)[:cells]] = True
    return chosen.reshape(free.shape)


def sector_key(xp: ModuleType, coordinates_um: list[Any], center_um: list[float], shape: tuple[int, ...]) -> Any:
    """Azimuth around ``center_um`` in the plane of the last two axes (y, x), radians in (-pi, pi], of lattice ``shape``."""
    dy = coordinates_um[-2] - center_um[-2]
    dx = coordinates_um[-1] - center_um[-1]
    return xp.broadcast_to(xp.arctan2(dy, dx), shape)


def nest_key(xp: ModuleType, points_um: Any, nest_cells: float, draw_centre: Any, draw_order: Any) -> Any:
    """Ordering key of cells that groups them into nests (patches) around random centres.

    ``max(1, round(cells / nest_cells))`` cells become nest centres (those
    with the smallest ``draw_centre``); every cell joins its nearest centre.
    The key sorts nests in a random order (``draw_order`` of the centre) and,
    within a nest, cells by distance from its centre, so handing out clones
    along the key gives each clone whole nests (a split nest splits into a
    core and a shell).

    Args:
        points_um: ``float64`` array of shape ``(cells, ndim)``: the cells' coordinates.
        nest_cells: cells in one nest (its volume in voxels).
        draw_centre, draw_order: uniform [0, 1) draws, shape ``(cells,)``.

    Returns:
        ``float64`` key of shape ``(cells,)``.
    """
    count = points_um.shape[0]
    nests = max(1, min(count, int(round(count / nest_cells))))
    centres = xp.argsort(draw_centre)[:nests]
    nearest = xp.zeros(count, dtype=xp.int64)
    best = xp.full(count, xp.inf)
    for k in range(nests):  # a loop over nests (tens to thousands), each over all cells
        distance = xp.sqrt(((points_um - points_um[centres[k]]) ** 2).sum(axis=1))
        closer = distance < best
        best = xp.where(closer, distance, best)
        nearest = xp.where(closer, k, nearest)
    order = xp.argsort(xp.argsort(draw_order[centres]))  # each nest's place in a random order
    return order[nearest] + best / (float(best.max()) + 1.0)


def ball_volume_voxels(radius_um: float, dx_um: float, ndim: int) -> float:
    """Voxels in a ball (3-D) or disc (2-D) of ``radius_um``."""
    r = radius_um / dx_um
    return 4.0 / 3.0 * math.pi * r**3 if ndim == 3 else math.pi * r**2


def assign_clones(xp: ModuleType, seeded: Any, key: Any, counts: list[int]) -> Any:
    """Clone index of every seeded voxel: the first ``counts[0]`` along ``key`` get clone 0, and so on.

    Args:
        seeded: bool, lattice shape: voxels that hold an initial cell.
        key: ``float64``, one value per seeded voxel (in flat voxel order).
        counts: cells per clone, adding up to the number of seeded voxels.

    Returns:
        ``int32``, lattice shape: clone index, -1 where no cell.
    """
    flat = xp.flatnonzero(seeded.reshape(-1))
    order = xp.argsort(key, kind="stable")
    labels = xp.asarray(np.repeat(np.arange(len(counts), dtype=np.int32), counts))
    clone = xp.full(seeded.size, -1, dtype=xp.int32)
    clone[flat[order]] = labels
    return clone.reshape(seeded.shape)
