"""CUDA implementation of the field solve's scalar products (part of the ``field_solver_kernels`` operation).

The ``xp`` reference, :func:`kernels.diffusion.row_product_calls`, sums a
row's products column by column with one pair of array calls per plane of
the row (about ``2 n1`` kernel launches per product), then pairs the column
sums level by level. Here two kernels do the same sums in the same order:

* ``column_products``: one thread per column ``(i, k)`` of the rows view
  ``(n0, n1, n2)``, summing ``a * b`` from 0.0 in order of ``j`` (neighbouring
  threads read neighbouring ``k``: coalesced);
* ``pairwise_rows``: one thread per row, the row's ``n2`` column sums in
  adjacent pairs, level by level, an odd count's last value carried
  (:func:`kernels.diffusion.pairwise_calls`'s order);

and ``pairwise_total`` sums the rows the same way on one thread
(:func:`kernels.diffusion.row_total`). Compiled without fused multiply-adds
(``--fmad=false``), each rounding is NumPy's, so the products have the
reference's bits (tests/test_cuda_products.py on a GPU; tests/test_cuda_sources.py
compiles the source).

:data:`SOLVER_KERNELS` is the reference bundle with every scalar product
taken by these kernels: the CG update, the V-cycle's output and the
operator do their array work as the reference's calls and then launch the
two kernels (inside the operator's CUDA graph for ``direction . A direction``).

No CuPy import here: the kernels are built from the array module the
caller passes (``xp.RawKernel``), which is CuPy whenever the backend picks this path.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache, partial
from types import ModuleType
from typing import Any

import numpy as np

from kernels import diffusion

#: Threads per block.
BLOCK = 128

#: nvcc/NVRTC options: no contraction of a*b+c into one rounding (bit parity with NumPy).
OPTIONS = ("--fmad=false",)

#: CUDA C++ of the three kernels.
SOURCE = r"""
// The sum of source[0..n) in adjacent pairs, level by level, an odd count's last value carried unpaired; work
// (n values, may be source itself) holds the partial sums.
__host__ __device__ double pairwise(const double* source, double* work, long long n)
{
    if (n == 1) {
        return source[0];
    }
    const double* from = source;
    while (n > 1) {
        const long long half = n / 2;
        for (long long t = 0; t < half; ++t) {
            work[t] = from[2 * t] + from[2 * t + 1];
        }
        if (n % 2) {
            work[half] = from[n - 1];
        }
        n = half + n % 2;
        from = work;
    }
    return work[0];
}

// The sum over j of a[i, j, k] * b[i, j, k] (arrays seen as (rows, depth, width)), from 0.0 in order of j.
__host__ __device__ double column_sum(const double* a, const double* b, const long long i, const long long k,
                                      const long long depth, const long long width)
{
    double total = 0.0;
    for (long long j = 0; j < depth; ++j) {
        const long long at = (i * depth + j) * width + k;
        total = total + a[at] * b[at];
    }
    return total;
}

// columns[i, k] = column_sum(i, k); one thread per (i, k).
extern "C" __global__ void column_products(const double* a, const double* b, double* columns, const long long rows,
                                           const long long depth, const long long width)
{
    const long long column = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (column < rows * width) {
        columns[column] = column_sum(a, b, column / width, column % width, depth, width);
    }
}

// out[i] = the pairwise sum of columns[i, :] (overwritten); one thread per row.
extern "C" __global__ void pairwise_rows(double* columns, double* out, const long long rows, const long long width)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows) {
        out[i] = pairwise(columns + i * width, columns + i * width, width);
    }
}

// out[0] = the pairwise sum of rows[0..n) (not written; work holds n values); one thread.
extern "C" __global__ void pairwise_total(const double* rows, double* work, double* out, const long long n)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        out[0] = pairwise(rows, work, n);
    }
}
"""


@lru_cache(maxsize=None)
def _kernels(xp: ModuleType) -> Any:
    module = xp.RawModule(code=SOURCE, options=OPTIONS)
    return tuple(module.get_function(name) for name in ("column_products", "pairwise_rows", "pairwise_total"))


def _blocks(count: int) -> tuple[int]:
    return ((count + BLOCK - 1) // BLOCK,)


def row_product_calls(xp: ModuleType, a: Any, b: Any, out: Any) -> list[Callable[[], Any]]:
    """:func:`kernels.diffusion.row_product_calls` as two kernel launches (C-contiguous float64 ``a`` and ``b``;
    others go to the reference). The column sums' work array is allocated here, so the calls allocate nothing."""
    if not (a.dtype == b.dtype == np.float64 and a.flags.c_contiguous and b.flags.c_contiguous
            and out.flags.c_contiguous):
        return diffusion.row_product_calls(xp, a, b, out)
    rows, depth, width = diffusion.as_rows(a).shape
    columns = xp.empty((rows, width))
    column_products, pairwise_rows, _ = _kernels(xp)
    sizes = (np.int64(rows), np.int64(depth), np.int64(width))
    return [partial(column_products, _blocks(rows * width), (BLOCK,), (a, b, columns, *sizes)),
            partial(pairwise_rows, _blocks(rows), (BLOCK,), (columns, out, np.int64(rows), np.int64(width)))]


def row_products(xp: ModuleType, a: Any, b: Any, out: Any, threads: int = 1) -> None:
    """:func:`kernels.diffusion.row_products` as two kernel launches."""
    for call in row_product_calls(xp, a, b, out):
        call()


def row_total(xp: ModuleType, rows: Any) -> Any:
    """:func:`kernels.diffusion.row_total` as one kernel on one thread: a 0-d float64 array on the device."""
    rows = xp.ascontiguousarray(rows, dtype=xp.float64)
    work, out = xp.empty(rows.size), xp.empty(())
    _kernels(xp)[2]((1,), (1,), (rows, work, out, np.int64(rows.size)))
    return out


def scalar_product(xp: ModuleType, a: Any, b: Any, threads: int = 1) -> Any:
    """:func:`kernels.diffusion.scalar_product` by these kernels: a 0-d float64 array on the device."""
    rows = xp.empty(diffusion.as_rows(a).shape[0])
    row_products(xp, a, b, rows)
    return row_total(xp, rows)


def operator_calls(xp: ModuleType, level: Any, dtype: Any, v: Any, out: Any, diagonal: Any,
                   scratch: Callable[[], Any], products: Any = None) -> list[Callable[[], Any]]:
    """:func:`kernels.diffusion.operator_calls` with the row products as two kernel launches."""
    calls = diffusion.operator_calls(xp, level, dtype, v, out, diagonal, scratch)
    return calls if products is None else calls + row_product_calls(xp, v, out, products)


def cg_update(xp: ModuleType, u: Any, residual: Any, direction: Any, image: Any, spare: Any, alpha: Any,
              threads: int = 1, measure: bool = False, previous: Any = None, products: Any = None) -> Any:
    """:func:`kernels.diffusion.cg_update` with the row products as kernel launches."""
    largest = diffusion.cg_update(xp, u, residual, direction, image, spare, alpha, threads, measure)
    if products is not None:
        row_products(xp, residual, residual, products[0])
        row_products(xp, residual, previous, products[1])
    return largest


def scale_up(xp: ModuleType, values: Any, norm: Any, out: Any, threads: int = 1, measure: bool = False,
             against: Any = None, products: Any = None) -> Any:
    """:func:`kernels.diffusion.scale_up` with the row products as kernel launches."""
    largest = diffusion.scale_up(xp, values, norm, out, threads, measure)
    if products is not None:
        row_products(xp, against, out, products)
    return largest


#: The reference's solver kernels with every scalar product taken by the kernels above (the CUDA implementation of
#: ``field_solver_kernels``).
SOLVER_KERNELS = dataclasses.replace(diffusion.SOLVER_KERNELS, operator=operator_calls, cg_update=cg_update,
                                     scale_up=scale_up, scalar_product=scalar_product, row_total=row_total)
