"""The lattice state: every per-voxel array of the model, on one device.

A voxel holds at most one tumor cell and at most one immune cell; an immune
cell may share the voxel of a tumor cell (infiltration).

Arrays are indexed ``[y, x]`` (2-D) or ``[z, y, x]`` (3-D); voxel edge ``dx_um``.

=================  ===========  ==========================================================
array              dtype        meaning
=================  ===========  ==========================================================
``clone``          int32        tumor subclone index of the voxel's cell, -1 for none
``cell_state``     int8         :data:`kernels.tumor.CYCLING` ... ``NECROTIC``
``state_age_h``    float32      hours since the cell entered its state
``immunogenic``    bool         the cell is dying an immunogenic death (killed by a drug with immunogenic_fraction)
``vessel``         bool         voxel is a blood vessel (holds no tumor cell)
``perfusion``      float32      blood flow of a vessel, 0 to 1 (0 off vessels and at collapsed ones)
``immune``         int32        immune agent (T-cell clone or suppressor type) of the voxel's immune cell, -1 for none
``immune_state``   int8         :data:`kernels.immune.EFFECTOR` or ``EXHAUSTED``
``exhaustion``     float32      a T cell's exhaustion (exhausted from 1 on)
``immune_age_h``   float32      hours since the immune cell appeared
``voxel_index``    uint64       flat index, the counter of the random-number streams
``fields[name]``   float32/64   substrate concentrations, in the field's units
=================  ===========  ==========================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from kernels import tumor
from kernels.random import voxel_index


@dataclass
class LatticeState:
    """All per-voxel arrays of one simulation (see the module table)."""

    xp: ModuleType
    shape: tuple[int, ...]
    dx_um: float
    clone: Any
    cell_state: Any
    state_age_h: Any
    immunogenic: Any
    vessel: Any
    perfusion: Any
    immune: Any
    immune_state: Any
    exhaustion: Any
    immune_age_h: Any
    voxel_index: Any
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, xp: ModuleType, shape: tuple[int, ...], dx_um: float) -> "LatticeState":
        """A lattice with no cells, no vessels and no fields."""
        return cls(
            xp=xp,
            shape=tuple(shape),
            dx_um=dx_um,
            clone=xp.full(shape, -1, dtype=xp.int32),
            cell_state=xp.zeros(shape, dtype=xp.int8),
            state_age_h=xp.zeros(shape, dtype=xp.float32),
            immunogenic=xp.zeros(shape, dtype=bool),
            vessel=xp.zeros(shape, dtype=bool),
            perfusion=xp.zeros(shape, dtype=xp.float32),
            immune=xp.full(shape, -1, dtype=xp.int32),
            immune_state=xp.zeros(shape, dtype=xp.int8),
            exhaustion=xp.zeros(shape, dtype=xp.float32),
            immune_age_h=xp.zeros(shape, dtype=xp.float32),
            voxel_index=voxel_index(xp, tuple(shape)),
        )

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def voxel_volume_um3(self) -> float:
        """Volume of one voxel (3-D), or of a one-voxel-thick slab voxel (2-D), um^3."""
        return self.dx_um**3

    def live_tumor(self) -> Any:
        """Bool mask of voxels with a cycling or quiescent tumor cell."""
        return (self.clone >= 0) & ((self.cell_state == tumor.CYCLING) | (self.cell_state == tumor.QUIESCENT))

    def coordinates_um(self) -> list[Any]:
        """Voxel-centre coordinates per axis, um, broadcastable to the lattice shape."""
        xp = self.xp
        axes = []
        for axis, extent in enumerate(self.shape):
            view = [1] * self.ndim
            view[axis] = extent
            axes.append(((xp.arange(extent, dtype=xp.float64) + 0.5) * self.dx_um).reshape(view))
        return axes
