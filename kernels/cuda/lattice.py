"""What the whole-lattice CUDA kernels share: a neighbour's flat index (CUDA C++) and the offset table.

A kernel of this kind runs one thread per voxel of a lattice ``(nz, ny, nx)``
in C order (2-D: ``nz = 1``) and reaches the Moore neighbours through
:data:`NEIGHBOUR` and the table :func:`offset_table` uploads.
"""
from __future__ import annotations

from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

#: Threads per block.
BLOCK = 256

#: nvcc/NVRTC options: no contraction of a*b+c into one rounding (bit parity with NumPy).
OPTIONS = ("--fmad=false",)

#: CUDA C++: ``neighbour(z, y, x, offsets, k, nz, ny, nx, sign)``, the flat index of voxel (z, y, x) +
#: ``sign`` x offset ``k`` (offsets: int32 (K, 3) as (dz, dy, dx)), or -1 outside the lattice; and
#: ``coordinates(p, ny, nx, &z, &y, &x)``, the coordinates of flat index ``p``.
NEIGHBOUR = r"""
__device__ __forceinline__ long long neighbour(const long long z, const long long y, const long long x,
                                               const int* offsets, const int k, const long long nz,
                                               const long long ny, const long long nx, const int sign)
{
    const long long zz = z + sign * offsets[3 * k];
    const long long yy = y + sign * offsets[3 * k + 1];
    const long long xx = x + sign * offsets[3 * k + 2];
    if (zz < 0 || zz >= nz || yy < 0 || yy >= ny || xx < 0 || xx >= nx) {
        return -1;
    }
    return (zz * ny + yy) * nx + xx;
}

// The coordinates (z, y, x) of flat voxel index p.
__device__ __forceinline__ void coordinates(const long long p, const long long ny, const long long nx, long long* z,
                                            long long* y, long long* x)
{
    *x = p % nx;
    *y = (p / nx) % ny;
    *z = p / (nx * ny);
}
"""


@lru_cache(maxsize=None)
def offset_table(xp: ModuleType, offsets: tuple[tuple[int, ...], ...]) -> Any:
    """The Moore offsets as a flat int32 device array of (dz, dy, dx) triples (dz 0 in 2-D), uploaded once."""
    table = [(0, *offset) if len(offset) == 2 else offset for offset in offsets]
    return xp.asarray(np.array(table, dtype=np.int32).reshape(-1))


def dimensions(shape: tuple[int, ...]) -> tuple[np.int64, np.int64, np.int64]:
    """``(nz, ny, nx)`` of a 2-D or 3-D lattice shape as the kernels' int64 arguments (nz 1 in 2-D)."""
    return tuple(np.int64(extent) for extent in ((1, *shape) if len(shape) == 2 else shape))


def grid(size: int) -> tuple[int]:
    """Blocks of :data:`BLOCK` threads covering ``size`` voxels, one thread each."""
    return ((size + BLOCK - 1) // BLOCK,)
