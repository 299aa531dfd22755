"""CUDA implementation of the ``field_line_sweep`` operation: the LOD solver's tridiagonal sweeps, one thread per line.

The ``xp`` reference, :func:`kernels.diffusion.solve_lines`, walks the Thomas
recurrence plane by plane: five kernel launches per plane, so a 96^3 step
launches about 1500 kernels and a GPU waits on launches, not on memory. Here
one thread solves one whole grid line, with the same tables (``forward``,
``inverse``, ``r``) and the same operations in the same order, compiled
without fused multiply-adds (``--fmad=false``) so that every rounding is the
one NumPy makes: the fused sweep gives the bits of the reference
(tests/test_cuda_lines.py checks that, tests/test_cuda_sources.py that the source compiles).
Stacks it does not cover (not C-contiguous, or another dtype) go to the reference.

No CuPy import here: the kernels are built from the array module the
caller passes (``xp.RawKernel``), which is CuPy whenever the backend picks this path.
"""
from __future__ import annotations

from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from kernels.diffusion import solve_lines as reference

#: Threads per block of the line kernel.
BLOCK = 128

#: nvcc/NVRTC options: no contraction of a*b+c into one rounding (bit parity with NumPy).
OPTIONS = ("--fmad=false",)

#: CUDA C++ of the line solver; REAL is float or double.
SOURCE = r"""
extern "C" __global__ void thomas_lines(REAL* work, const REAL* forward, const REAL* inverse, const REAL* r,
                                        const long long fields, const long long outer, const long long n,
                                        const long long inner)
{
    // work is C-contiguous, seen as (fields, outer, n, inner); a line is (f, o, k), its stride along n is inner.
    const long long line = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (line >= fields * outer * inner) {
        return;
    }
    const long long k = line % inner;
    const long long o = (line / inner) % outer;
    const long long f = line / (inner * outer);
    REAL* x = work + (f * outer + o) * n * inner + k;
    REAL previous = x[0];
    for (long long i = 1; i < n; ++i) {
        previous = x[i * inner] + previous * forward[i * fields + f];
        x[i * inner] = previous;
    }
    REAL next = x[(n - 1) * inner] * inverse[(n - 1) * fields + f];
    x[(n - 1) * inner] = next;
    const REAL coupling = r[f];
    for (long long i = n - 2; i >= 0; --i) {
        next = (x[i * inner] + next * coupling) * inverse[i * fields + f];
        x[i * inner] = next;
    }
}
"""

_REAL = {"float32": "float", "float64": "double"}


def source_for(dtype_name: str) -> str:
    """The kernel source for ``float32`` or ``float64`` lines."""
    return f"#define REAL {_REAL[dtype_name]}\n" + SOURCE


def usable(work: Any) -> bool:
    """Whether the fused sweep covers ``work``: a C-contiguous float32 or float64 stack."""
    return work.dtype.name in _REAL and work.flags.c_contiguous


@lru_cache(maxsize=None)
def _kernel(xp: ModuleType, dtype_name: str) -> Any:
    return xp.RawKernel(source_for(dtype_name), "thomas_lines", options=OPTIONS)


def solve_lines(xp: ModuleType, work: Any, axis: int, forward: Any, inverse: Any, r: Any) -> None:
    """Solve every grid line of ``work`` along array ``axis`` in place, one thread per line.

    The signature and the result of :func:`kernels.diffusion.solve_lines` (see there);
    ``xp`` is CuPy. A ``work`` that :func:`usable` refuses is solved by that reference.
    """
    if not usable(work):
        reference(xp, work, axis, forward, inverse, r)
        return
    fields, n = work.shape[0], work.shape[axis]
    outer = int(np.prod(work.shape[1:axis], dtype=np.int64))
    inner = int(np.prod(work.shape[axis + 1:], dtype=np.int64))
    lines = fields * outer * inner
    kernel = _kernel(xp, work.dtype.name)
    tables = [xp.ascontiguousarray(table).reshape(-1) for table in (forward, inverse, r)]
    kernel(((lines + BLOCK - 1) // BLOCK,), (BLOCK,),
           (work, *tables, np.int64(fields), np.int64(outer), np.int64(n), np.int64(inner)))
