"""The initial lattice of a run: vessels and their perfusion, the initial tumor cells and their clones, the fields.

Every draw is at step 0 from the set-up streams of :mod:`abm.streams`, so the
seed alone fixes the initial state.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from abm.config import Config, ConfigError
from abm.state import Lattice
from abm.streams import (STREAM_SETUP_CELLS, STREAM_SETUP_CLONES, STREAM_SETUP_NEST_CENTRES, STREAM_SETUP_NEST_ORDER,
                         STREAM_SETUP_PERFUSION, STREAM_SETUP_VESSELS)
from kernels import setup
from kernels.layers import CYCLING
from kernels.random import uniform


def initial_lattice(config: Config, xp: ModuleType, random_key: int) -> Lattice:
    """Vessels and their perfusion, the initial cells with their clones (cycling, age 0), and the initial fields.

    Args:
        config: the validated config.
        xp: the array module of the lattice.
        random_key: the run's 64-bit key of the random streams.

    Raises:
        ConfigError: the initial cells do not fit on the lattice (too many scattered cells for the free voxels,
            or vessels fill every voxel of the seed cluster).
    """
    shape = tuple(config.lattice.shape)
    lattice = Lattice.empty(xp, shape, config.lattice.dx_um)

    def draw(stream: int, index: Any) -> Any:
        return uniform(xp, random_key, 0, stream, index)

    coordinates = lattice.coordinates_um()
    center = config.tumor.initial.center_um or [extent * config.lattice.dx_um / 2.0 for extent in shape]
    distance_sq = sum((axis - c) ** 2 for axis, c in zip(coordinates, center))

    vessels = config.vessels
    if vessels.pattern in ("uniform", "sparse_core"):
        density: Any = vessels.density
        if vessels.pattern == "sparse_core":
            density = xp.where(distance_sq < vessels.core_radius_um**2, vessels.density * vessels.core_density_factor,
                               vessels.density)
        present, perfusion = setup.random_vessels(
            xp, density, vessels.perfusion_min, vessels.perfusion_max, draw(STREAM_SETUP_VESSELS, lattice.voxel_index),
            draw(STREAM_SETUP_PERFUSION, lattice.voxel_index))
        lattice.vessels = lattice.vessels.replace(present=present, perfusion=perfusion)
    elif vessels.pattern == "file":
        present, perfusion = setup.vessels_from_array(xp, np.load(vessels.file, allow_pickle=False))
        lattice.vessels = lattice.vessels.replace(present=present, perfusion=perfusion)

    initial = config.tumor.initial
    free = ~lattice.vessels.present
    if initial.geometry == "ball":
        seeded = (distance_sq <= initial.radius_um**2) & free
    else:
        try:
            seeded = setup.scattered_cells(xp, free, initial.cells, draw(STREAM_SETUP_CELLS, lattice.voxel_index))
        except ValueError as exc:
            raise ConfigError(f"tumor.initial.cells: {exc}") from None
    index = lattice.voxel_index[seeded]
    if int(index.size) == 0:  # the geometry holds voxel centres (checked at load), but vessels fill them all
        raise ConfigError("tumor.initial: no initial tumor cell: every voxel of the seed cluster is a vessel; "
                          "use a larger radius_um or fewer vessels")
    if initial.arrangement == "mixed":
        key = draw(STREAM_SETUP_CLONES, index)
    elif initial.arrangement == "sectors":
        key = setup.sector_key(xp, coordinates, center, shape)[seeded]
    else:
        points = xp.stack([xp.broadcast_to(axis, shape)[seeded] for axis in coordinates], axis=1)
        key = setup.nest_key(xp, points, setup.ball_volume_voxels(initial.nest_radius_um, lattice.dx_um, lattice.ndim),
                             draw(STREAM_SETUP_NEST_CENTRES, index), draw(STREAM_SETUP_NEST_ORDER, index))
    counts = setup.exact_counts(int(index.size), [clone.fraction for clone in config.tumor.clones])
    lattice.tumor = lattice.tumor.replace(clone=setup.assign_clones(xp, seeded, key, counts),
                                          state=xp.full(shape, CYCLING, dtype=xp.int8))

    for name, field in config.fields.items():
        lattice.fields[name] = xp.full(shape, field.initial, dtype=getattr(xp, field.dtype))
    return lattice
