"""CUDA implementations of the ``place_daughters`` and ``enclosed`` operations: the tumor's daughter placement in
three kernels, and the test for pushers (no free neighbour) in one.

The ``xp`` reference, :func:`kernels.tumor.place_daughters`, works on the list
of dividing cells: their neighbours gathered by flat index, the uniform
choice among the free ones (:func:`kernels.lattice.listed_choice`) and the
claims resolved by a sort (:func:`kernels.lattice.listed_claim`). Here the
mothers and their draws are scattered onto the lattice and three kernels do
the same work, one thread per voxel:

1. ``daughter_choose``: at a dividing cell, its free neighbours counted in
   offset order and the one of rank ``floor(draw x count)`` chosen;
2. ``daughter_claim``: at each free voxel, its claimants in offset order and
   the one with the highest priority draw (strictly higher: the lowest offset
   keeps a tie), as :func:`kernels.lattice.listed_claim`;
3. ``daughter_won``: at each claimant, whether its target's winner is itself;

then the winners and their targets are read back at the listed mothers.

Before pushing (``tumor.max_push_distance``), :func:`kernels.tumor.enclosed`
finds the cells with no free neighbour by a shifted copy per offset; here
``no_free_neighbour`` reads the neighbours in place.

The draws are the reference's float64 arrays, the rank is the same double
product floored, priorities are compared as the same doubles and the code
is compiled without fused multiply-adds, so the result is the reference's
bits (the GPU test: tests/test_cuda_division.py; tests/test_cuda_sources.py
compiles the source with nvcc).

No CuPy import here: the kernels are built from the array module the
caller passes (``xp.RawModule``), which is CuPy whenever the backend picks this path.
"""
from __future__ import annotations

from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from kernels.cuda.lattice import BLOCK, NEIGHBOUR, OPTIONS, dimensions, grid, offset_table
from kernels.lattice import chosen, neighbour_indices, on_lattice

#: CUDA C++ of the three kernels, after :data:`kernels.cuda.lattice.NEIGHBOUR`. Lattice (nz, ny, nx), C order
#: (2-D: nz = 1); offsets (K, 3) as (dz, dy, dx); choice and source int8, -1 for none.
KERNELS = r"""
extern "C" __global__ void daughter_choose(signed char* choice, const bool* dividing, const bool* free_voxel,
                                           const double* draw, const int* offsets, const int K, const long long nz,
                                           const long long ny, const long long nx)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    int chosen = -1;
    if (dividing[p]) {
        long long z, y, x;
        coordinates(p, ny, nx, &z, &y, &x);
        int count = 0;
        for (int k = 0; k < K; ++k) {
            const long long q = neighbour(z, y, x, offsets, k, nz, ny, nx, 1);
            if (q >= 0 && free_voxel[q]) {
                ++count;
            }
        }
        if (count > 0) {
            const int rank = (int)floor(draw[p] * (double)count);
            int seen = 0;
            for (int k = 0; k < K; ++k) {
                const long long q = neighbour(z, y, x, offsets, k, nz, ny, nx, 1);
                if (q >= 0 && free_voxel[q]) {
                    if (seen == rank) {
                        chosen = k;
                    }
                    ++seen;
                }
            }
        }
    }
    choice[p] = (signed char)chosen;
}

extern "C" __global__ void no_free_neighbour(bool* enclosed, const bool* free_voxel, const int* offsets, const int K,
                                             const long long nz, const long long ny, const long long nx)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    long long z, y, x;
    coordinates(p, ny, nx, &z, &y, &x);
    bool any_free = false;
    for (int k = 0; k < K; ++k) {
        const long long q = neighbour(z, y, x, offsets, k, nz, ny, nx, 1);
        any_free = any_free || (q >= 0 && free_voxel[q]);
    }
    enclosed[p] = !any_free;
}

extern "C" __global__ void daughter_claim(signed char* source, const signed char* choice, const bool* free_voxel,
                                          const double* priority, const int* offsets, const int K,
                                          const long long nz, const long long ny, const long long nx)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    int best_k = -1;
    if (free_voxel[p]) {
        long long z, y, x;
        coordinates(p, ny, nx, &z, &y, &x);
        double best = -1.0;
        for (int k = 0; k < K; ++k) {
            const long long q = neighbour(z, y, x, offsets, k, nz, ny, nx, -1);
            if (q >= 0 && choice[q] == k && priority[q] > best) {
                best = priority[q];
                best_k = k;
            }
        }
    }
    source[p] = (signed char)best_k;
}

extern "C" __global__ void daughter_won(bool* won, const signed char* choice, const signed char* source,
                                        const int* offsets, const long long nz, const long long ny,
                                        const long long nx)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    const int k = choice[p];
    bool placed = false;
    if (k >= 0) {
        long long z, y, x;
        coordinates(p, ny, nx, &z, &y, &x);
        const long long t = neighbour(z, y, x, offsets, k, nz, ny, nx, 1);
        placed = t >= 0 && source[t] == k;
    }
    won[p] = placed;
}
"""

#: The whole source: the neighbour function, the kernels.
SOURCE = NEIGHBOUR + KERNELS


@lru_cache(maxsize=None)
def _kernels(xp: ModuleType) -> tuple[Any, Any, Any, Any]:
    module = xp.RawModule(code=SOURCE, options=OPTIONS)
    return tuple(module.get_function(name)
                 for name in ("daughter_choose", "daughter_claim", "daughter_won", "no_free_neighbour"))


def place_daughters(
    xp: ModuleType, mothers: Any, *, free: Any, offsets: list[tuple[int, ...]], draw_direction: Any, draw_priority: Any,
) -> tuple[Any, Any]:
    """Daughter placement; the signature and the bits of :func:`kernels.tumor.place_daughters` (see there).

    ``xp`` is CuPy; the lattice is 2-D or 3-D. Returns ``(source, target)``: ``int64`` ``(m,)`` each, the
    mothers whose daughter was placed (in the order of ``mothers``) and their daughters' voxels.
    """
    shape = free.shape
    offset_array = offset_table(xp, tuple(offsets))
    blocks, dims, count = grid(int(free.size)), dimensions(shape), np.int32(len(offsets))
    choose, claim, won, _ = _kernels(xp)
    free_voxel = xp.ascontiguousarray(free, dtype=xp.bool_)
    dividing = on_lattice(xp, shape, mothers)
    direction = on_lattice(xp, shape, mothers, draw_direction, xp.float64)
    priority = on_lattice(xp, shape, mothers, draw_priority, xp.float64)  # read at claimants only
    choice = xp.empty(shape, dtype=xp.int8)
    choose(blocks, (BLOCK,), (choice, dividing, free_voxel, direction, offset_array, count, *dims))
    source_direction = xp.empty(shape, dtype=xp.int8)
    claim(blocks, (BLOCK,), (source_direction, choice, free_voxel, priority, offset_array, count, *dims))
    mother_won = xp.empty(shape, dtype=xp.bool_)
    won(blocks, (BLOCK,), (mother_won, choice, source_direction, offset_array, *dims))
    source = mothers[mother_won.reshape(-1)[mothers]]
    target = chosen(xp, neighbour_indices(xp, shape, source, offsets), choice.reshape(-1)[source])
    return source, target


def enclosed(xp: ModuleType, free: Any, offsets: list[tuple[int, ...]]) -> Any:
    """Voxels with no free neighbour; the signature and the bits of :func:`kernels.tumor.enclosed` (one kernel,
    ``no_free_neighbour``, instead of a shifted copy per offset). ``xp`` is CuPy. Returns bool, lattice shape."""
    out = xp.empty(free.shape, dtype=xp.bool_)
    *_, no_free_neighbour = _kernels(xp)
    no_free_neighbour(grid(int(free.size)), (BLOCK,), (out, xp.ascontiguousarray(free, dtype=xp.bool_),
                                                       offset_table(xp, tuple(offsets)), np.int32(len(offsets)),
                                                       *dimensions(free.shape)))
    return out
