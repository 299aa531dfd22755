"""The lattice: every per-voxel array of one simulation, in layers, on one device.

Arrays are indexed ``[y, x]`` (2-D) or ``[z, y, x]`` (3-D); voxel edge ``dx_um``.

=================  ============================================  =================================================
layer              type                                          holds
=================  ============================================  =================================================
``tumor``          :class:`kernels.layers.TumorLayer`            clone, state, age, immunogenic death
``immune``         :class:`kernels.layers.ImmuneLayer`           agent, state, exhaustion, age
``vessels``        :class:`kernels.layers.VesselLayer`           vessel mask, perfusion
``fields``         ``dict[str, array]``                          substrate concentrations (float32 or float64),
                                                                 in the field's units, in the config's field order
``voxel_index``    ``uint64`` array                              flat index, the counter of the random-number streams
=================  ============================================  =================================================

The layers are replaced whole by the rules (kernels return new layers);
each is one attribute, so a rule's reads and writes are named by layer and
array (``tumor.clone``, ``fields.oxygen``; :mod:`abm.rules`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from kernels.layers import ImmuneLayer, TumorLayer, VesselLayer
from kernels.random import voxel_index


@dataclass
class Lattice:
    """The layers of one simulation (see the module table)."""

    xp: ModuleType
    shape: tuple[int, ...]
    dx_um: float
    tumor: TumorLayer
    immune: ImmuneLayer
    vessels: VesselLayer
    voxel_index: Any
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, xp: ModuleType, shape: tuple[int, ...], dx_um: float) -> "Lattice":
        """A lattice with no cells, no vessels and no fields."""
        shape = tuple(shape)
        return cls(xp=xp, shape=shape, dx_um=dx_um, tumor=TumorLayer.empty(xp, shape), immune=ImmuneLayer.empty(xp, shape),
                   vessels=VesselLayer.empty(xp, shape), voxel_index=voxel_index(xp, shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def voxel_volume_um3(self) -> float:
        """Volume of one voxel (3-D), or of a one-voxel-thick slab voxel (2-D), um^3."""
        return self.dx_um**3

    def coordinates_um(self) -> list[Any]:
        """Voxel-centre coordinates per axis, um, broadcastable to the lattice shape."""
        xp = self.xp
        axes = []
        for axis, extent in enumerate(self.shape):
            view = [1] * self.ndim
            view[axis] = extent
            axes.append(((xp.arange(extent, dtype=xp.float64) + 0.5) * self.dx_um).reshape(view))
        return axes
