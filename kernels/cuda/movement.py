"""CUDA implementation of the ``immune_movement_substep`` operation: one substep in three kernels.

The ``xp`` reference, :func:`kernels.immune.movement_substep`, works on the
list of immune cells (their neighbours gathered, claims resolved by a sort):
a few dozen array calls whatever the lattice, each of which a GPU pays as a
kernel launch, plus the host syncs that sizing the lists needs. Here three
kernels do the same work over the lattice, one thread per voxel (the same
bits: the rules are the reference's):

1. ``move_choose``: whether the voxel's cell moves, its allowed neighbours,
   its uphill direction (with the random tie-break) and its move choice;
2. ``move_claim``: at each free voxel, its claimants in offset order and the
   one with the highest priority draw (the rule of :func:`kernels.lattice.listed_claim`);
3. ``move_apply``: each voxel's new immune state (cleared where its cell
   won a move, else gathered from its source).

The draws are the counter-based hash of :mod:`kernels.random` evaluated in
place (the prelude :func:`kernels.cuda.prelude.random_prelude` generates from
that module's constants: the same wrapping ``uint64`` arithmetic and the same
conversion to double), comparisons are on the same values (a float32 field
is compared as its exact float64 value) and the code is compiled without
fused multiply-adds, so the result is the bits of the reference
(tests/test_cuda_movement.py checks that, tests/test_cuda_sources.py that the source compiles).

No CuPy import here: the kernels are built from the array module the
caller passes (``xp.RawKernel``), which is CuPy whenever the backend picks this path.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from kernels.cuda.lattice import BLOCK, NEIGHBOUR, OPTIONS, dimensions, grid, offset_table
from kernels.cuda.prelude import random_prelude
from kernels.layers import EFFECTOR, NONE, ImmuneLayer

#: CUDA C++ of the three kernels, after :data:`SOURCE`'s prelude and :data:`kernels.cuda.lattice.NEIGHBOUR`. Lattice
#: (nz, ny, nx), C order (2-D: nz = 1); offsets (K, 3) as (dz, dy, dx).
KERNELS = r"""
extern "C" __global__ void move_choose(signed char* choice, const int* immune, const double* chance,
                                       const double* bias, const signed char* agent_field, const double* fields,
                                       const unsigned long long* uphill_offsets, const int* offsets, const int K,
                                       const long long nz, const long long ny, const long long nx,
                                       const unsigned long long move_offset, const unsigned long long bias_offset,
                                       const unsigned long long direction_offset)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    const int agent = immune[p];
    if (agent < 0 || !(uniform_at(move_offset, (unsigned long long)p) < chance[p])) {
        choice[p] = -1;
        return;
    }
    const long long x = p % nx;
    const long long y = (p / nx) % ny;
    const long long z = p / (nx * ny);
    long long where[26];
    unsigned int allowed = 0u;
    int count = 0;
    for (int k = 0; k < K; ++k) {
        const long long q = neighbour(z, y, x, offsets, k, nz, ny, nx, 1);
        where[k] = q;
        if (q >= 0 && immune[q] < 0) {
            allowed |= 1u << k;
            ++count;
        }
    }
    // uniform choice among the allowed neighbours (lattice.uniform_choice)
    int random_choice = -1;
    if (count > 0) {
        const int rank = (int)floor(uniform_at(direction_offset, (unsigned long long)p) * (double)count);
        int seen = 0;
        for (int k = 0; k < K; ++k) {
            if (allowed & (1u << k)) {
                if (seen == rank) {
                    random_choice = k;
                }
                ++seen;
            }
        }
    }
    // uphill on the cell's chemotactic field (immune.uphill_direction)
    int uphill = -1;
    const int f = agent_field[agent];
    if (f >= 0) {
        const double* field = fields + (long long)f * n;
        const double own = field[p];
        double best = own;
        for (int k = 0; k < K; ++k) {
            if (allowed & (1u << k)) {
                const double level = field[where[k]];
                if (level > best) {
                    best = level;
                }
            }
        }
        if (best > own) {
            int tied = 0;
            for (int k = 0; k < K; ++k) {
                if ((allowed & (1u << k)) && field[where[k]] == best) {
                    ++tied;
                }
            }
            const int rank = (int)floor(uniform_at(uphill_offsets[f], (unsigned long long)p) * (double)tied);
            int seen = 0;
            for (int k = 0; k < K; ++k) {
                if ((allowed & (1u << k)) && field[where[k]] == best) {
                    if (seen == rank) {
                        uphill = k;
                    }
                    ++seen;
                }
            }
        }
    }
    const bool climbs = uphill >= 0 && uniform_at(bias_offset, (unsigned long long)p) < bias[agent];
    choice[p] = (signed char)(climbs ? uphill : random_choice);
}

extern "C" __global__ void move_claim(signed char* source, const signed char* choice, const int* immune,
                                      const int* offsets, const int K, const long long nz, const long long ny,
                                      const long long nx, const unsigned long long priority_offset)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    int best_k = -1;
    if (immune[p] < 0) {
        const long long x = p % nx;
        const long long y = (p / nx) % ny;
        const long long z = p / (nx * ny);
        double best = -1.0;
        for (int k = 0; k < K; ++k) {
            const long long q = neighbour(z, y, x, offsets, k, nz, ny, nx, -1);
            if (q >= 0 && choice[q] == k) {
                const double priority = uniform_at(priority_offset, (unsigned long long)q);
                if (priority > best) {
                    best = priority;
                    best_k = k;
                }
            }
        }
    }
    source[p] = (signed char)best_k;
}

extern "C" __global__ void move_apply(int* immune_out, signed char* state_out, float* exhaustion_out, float* age_out,
                                      const int* immune, const signed char* state, const float* exhaustion,
                                      const float* age, const signed char* choice, const signed char* source,
                                      const int* offsets, const long long nz, const long long ny, const long long nx)
{
    const long long n = nz * ny * nx;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) {
        return;
    }
    const long long x = p % nx;
    const long long y = (p / nx) % ny;
    const long long z = p / (nx * ny);
    const int k = choice[p];
    if (k >= 0) {
        const long long t = neighbour(z, y, x, offsets, k, nz, ny, nx, 1);
        if (t >= 0 && source[t] == k) {
            immune_out[p] = NONE_AGENT;
            state_out[p] = EFFECTOR_STATE;
            exhaustion_out[p] = 0.0f;
            age_out[p] = 0.0f;
            return;
        }
    }
    long long origin = p;
    const int s = source[p];
    if (s >= 0) {
        origin = neighbour(z, y, x, offsets, s, nz, ny, nx, -1);
    }
    immune_out[p] = immune[origin];
    state_out[p] = state[origin];
    exhaustion_out[p] = exhaustion[origin];
    age_out[p] = age[origin];
}
"""

#: The whole source: the generated random prelude, the immune constants of :mod:`kernels.layers`, the neighbour
#: function, the kernels.
SOURCE = (random_prelude() + f"\n#define NONE_AGENT ({NONE})\n#define EFFECTOR_STATE {EFFECTOR}\n" + NEIGHBOUR
          + KERNELS)


@lru_cache(maxsize=None)
def _kernels(xp: ModuleType) -> tuple[Any, Any, Any]:
    module = xp.RawModule(code=SOURCE, options=OPTIONS)
    return tuple(module.get_function(name) for name in ("move_choose", "move_claim", "move_apply"))


def substep(
    xp: ModuleType, immune: ImmuneLayer, *, chance: Any, bias: Any, agent_field: Any, fields: Sequence[Any],
    uphill_offsets: Any, offsets: list[tuple[int, ...]], move_offset: int, bias_offset: int, direction_offset: int,
    priority_offset: int,
) -> ImmuneLayer:
    """One movement substep; the signature and the bits of :func:`kernels.immune.movement_substep` (see there).

    ``xp`` is CuPy; the lattice is 2-D or 3-D. The fields are stacked as
    float64 (exact) for the kernel; with none, a one-value stand-in that no
    agent reads (every ``agent_field`` is then -1).
    """
    shape = immune.agent.shape
    if len(fields):
        stack = xp.stack([xp.asarray(field, dtype=xp.float64) for field in fields])
    else:
        stack, uphill_offsets = xp.zeros(1, dtype=xp.float64), xp.zeros(1, dtype=xp.uint64)
    offset_array = offset_table(xp, tuple(offsets))
    blocks = grid(int(immune.agent.size))
    choose, claim, apply = _kernels(xp)
    contiguous = xp.ascontiguousarray
    agent, state = contiguous(immune.agent), contiguous(immune.state)
    exhaustion, age_h = contiguous(immune.exhaustion), contiguous(immune.age_h)
    dims = dimensions(shape)
    choice = xp.empty(shape, dtype=xp.int8)
    choose(blocks, (BLOCK,), (choice, agent, contiguous(chance, dtype=xp.float64), contiguous(bias, dtype=xp.float64),
                              contiguous(agent_field, dtype=xp.int8), stack,
                              contiguous(uphill_offsets, dtype=xp.uint64), offset_array, np.int32(len(offsets)), *dims,
                              np.uint64(move_offset), np.uint64(bias_offset), np.uint64(direction_offset)))
    source = xp.empty(shape, dtype=xp.int8)
    claim(blocks, (BLOCK,), (source, choice, agent, offset_array, np.int32(len(offsets)), *dims,
                             np.uint64(priority_offset)))
    out = (xp.empty(shape, dtype=xp.int32), xp.empty(shape, dtype=xp.int8), xp.empty(shape, dtype=xp.float32),
           xp.empty(shape, dtype=xp.float32))
    apply(blocks, (BLOCK,), (*out, agent.astype(xp.int32, copy=False), state.astype(xp.int8, copy=False),
                             exhaustion.astype(xp.float32, copy=False), age_h.astype(xp.float32, copy=False),
                             choice, source, offset_array, *dims))
    return ImmuneLayer(*out)
