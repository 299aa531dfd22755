"""The field solve's work as compiled loops: operation ``field_solver_kernels`` on the CPU.

:data:`SOLVER_KERNELS` has the functions of :data:`kernels.diffusion.SOLVER_KERNELS`
with the work done by Numba loops over the voxels instead of one NumPy call
per operation and neighbour direction:

* the builders of the V-cycle's and the operator's call lists: ``A v`` is
  one pass over the lattice instead of eight, a Jacobi sweep one instead of
  eleven (plane by plane, each plane's defect kept in a buffer of two planes
  until the next plane's defect has read it), the defect and its block sums
  one instead of twelve (two planes at a time), the prolongation one;
* CG's vector operations (one pass each) and a transient step's right-hand
  side;
* the coefficients rewritten when the sink changes: the finest level's
  diagonal, each level's Jacobi weights and apply diagonal, the coarser
  levels' block sums;
* the stopping rule's largest magnitudes of ``u`` and ``z``, taken by the
  loops that write them (a maximum is the same number in any order), as a
  maximum of integer bits, which vectorises where a float maximum does not
  without ``fastmath``;
* CG's scalar products, in the project's own order
  (:func:`kernels.diffusion.row_product_calls`: per row, each column summed
  in order, then the columns in pairs), taken by the loops that write one of
  their vectors: ``direction . A direction`` by the operator, ``r . r`` and
  ``r . z_old`` by the CG update, ``r . z`` by the V-cycle's scale-up; rows
  are independent, so threads share them with the same bits.

Each loop does, per element, the floating-point operations of the
reference's calls in their order and dtype, so the arrays the solve reads
end with the same bits (tests/test_cpu_stencils.py). Only levels whose every
coupled axis has the same scalar coupling (the finest level, and every
coarser one whose extents are even or 1) are compiled; the others (a few
small coarse levels of odd extents) keep the reference's calls. Arrays are
seen as 3-D: a 2-D ``(ny, nx)`` array as ``(ny, 1, nx)``, so that rows (the
first axis, which threads share) are the same as the reference's and the
axes keep their order.

A call-list loop is a :class:`kernels.calls.RowCall`: a loop over a range of
rows of its output, with the views it reads and writes for that range, which
a :class:`kernels.calls.CallList` shares among its threads; the vector
operations split their entries among the threads themselves.

Numba is imported, and each loop compiled (or read from its cache), on first
use; a cache that cannot be read or written only costs a compilation.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from types import SimpleNamespace
from typing import Any

import numpy as np

from kernels import calls, diffusion
from kernels.calls import RowCall, concurrently
from kernels.diffusion import as_rows


#: Clears the sign bit of a float64's bits (as an int64).
_MAGNITUDE_MASK = np.int64(0x7FFF_FFFF_FFFF_FFFF)
#: The bits of float64 infinity: a larger :func:`_loops` ``magnitude_bits`` is a NaN's.
_INFINITY_BITS = int(np.array(np.inf).view(np.int64))


@cache
def _loops() -> SimpleNamespace:
    """The compiled loops (Numba imported and the functions jitted on first use).

    Every loop takes its arrays as 3-D views, the booleans ``a0, a1, a2``
    (whether each axis is coupled: extent above 1 and a coupling that is not
    zero) and last the rows ``start, stop`` of its output to do.
    """
    import numba
    from numba import types
    from numba.core.caching import FunctionCache
    from numba.extending import intrinsic

    class TolerantCache(FunctionCache):
        """Numba's on-disk cache of one loop, where a cache that cannot be read or written (a full disk, a file-size
        limit, a read-only or corrupt cache) costs a compilation and never fails a run."""

        def load_overload(self, sig: Any, target_context: Any) -> Any:
            try:
                return super().load_overload(sig, target_context)
            except Exception:  # any unreadable entry: compile instead
                return None

        def save_overload(self, sig: Any, data: Any) -> None:
            try:
                super().save_overload(sig, data)
            except OSError:
                pass

    def jit(function: Callable[..., Any]) -> Any:
        """``function`` compiled without the GIL, cached on disk through :class:`TolerantCache` (Numba's own
        cache, ``cache=True``, raises when it cannot write: a run under a file-size limit failed)."""
        dispatcher = numba.njit(nogil=True)(function)
        dispatcher._cache = TolerantCache(dispatcher.py_func)  # what enable_caching() sets, made tolerant
        return dispatcher

    inline = numba.njit(nogil=True, inline="always")  # a helper of the loops, compiled into them

    @intrinsic
    def float_bits(typingctx: Any, value: Any) -> Any:
        """The bits of a float64 as an int64 (a reinterpretation, no conversion)."""
        if value != types.float64:
            return None

        def codegen(context: Any, builder: Any, signature: Any, arguments: Any) -> Any:
            return builder.bitcast(arguments[0], context.get_value_type(types.int64))

        return types.int64(types.float64), codegen

    @inline
    def magnitude_bits(value):  # pragma: no cover - compiled
        """The bits of ``|value|`` (float64) as an int64: for values of one sign, integers order as the floats do,
        and a NaN's bits are above an infinity's (:func:`_magnitude`)."""
        return float_bits(value) & _MAGNITUDE_MASK

    @inline
    def stencil(v, diagonal, coupling, a0, a1, a2, i, j, k):  # pragma: no cover - compiled
        """``A v`` at voxel (i, j, k): ``coupling * (diagonal v - neighbours)``, the neighbours subtracted in the
        reference's order (axis by axis; along each, the next voxel, then the previous one)."""
        n0, n1, n2 = v.shape
        total = diagonal[i, j, k] * v[i, j, k]
        if a0:
            if i < n0 - 1:
                total = total - v[i + 1, j, k]
            if i > 0:
                total = total - v[i - 1, j, k]
        if a1:
            if j < n1 - 1:
                total = total - v[i, j + 1, k]
            if j > 0:
                total = total - v[i, j - 1, k]
        if a2:
            if k < n2 - 1:
                total = total - v[i, j, k + 1]
            if k > 0:
                total = total - v[i, j, k - 1]
        return total * coupling

    @inline
    def defect_plane(v, residual, diagonal, coupling, a0, a1, a2, i, out):  # pragma: no cover - compiled
        """``out[j, k] = residual - A v`` on plane ``i`` (``out`` 2-D, at least the plane's extents)."""
        _, n1, n2 = v.shape
        for j in range(n1):
            for k in range(n2):
                out[j, k] = residual[i, j, k] - stencil(v, diagonal, coupling, a0, a1, a2, i, j, k)

    @inline
    def pairwise(values, extent):  # pragma: no cover - compiled
        """The sum of ``values[:extent]`` (1-D float64, overwritten) in :func:`kernels.diffusion.pairwise_calls`'s
        order: adjacent pairs, level by level, an odd extent's last value carried unpaired."""
        while extent > 1:
            half = extent // 2
            for t in range(half):
                values[t] = values[2 * t] + values[2 * t + 1]
            if extent % 2:
                values[half] = values[extent - 1]
            extent = half + extent % 2
        return values[0]

    @jit
    def operator(v, diagonal, coupling, a0, a1, a2, out, products, start, stop):  # pragma: no cover - compiled
        """``out = A v`` and ``products[i]`` = the row products of ``v`` with ``out`` on rows ``[start, stop)``
        (:func:`kernels.diffusion.row_product_calls`' order: per column in order of ``j``, then pairwise)."""
        _, n1, n2 = v.shape
        columns = np.empty(n2)
        for i in range(start, stop):
            columns[:] = 0.0
            for j in range(n1):
                for k in range(n2):
                    value = stencil(v, diagonal, coupling, a0, a1, a2, i, j, k)
                    out[i, j, k] = value
                    columns[k] = columns[k] + v[i, j, k] * value
            products[i] = pairwise(columns, n2)

    @jit
    def row_products(a, b, products, start, stop):  # pragma: no cover - compiled
        """``products[i]`` = the row products of ``a`` with ``b`` on rows ``[start, stop)``."""
        _, n1, n2 = a.shape
        columns = np.empty(n2)
        for i in range(start, stop):
            columns[:] = 0.0
            for j in range(n1):
                for k in range(n2):
                    columns[k] = columns[k] + a[i, j, k] * b[i, j, k]
            products[i] = pairwise(columns, n2)

    @jit
    def total(rows):  # pragma: no cover - compiled
        """The sum of ``rows`` (1-D float64, not written) in :func:`kernels.diffusion.pairwise_calls`'s order."""
        return pairwise(rows.copy(), rows.size)

    @inline
    def correct_plane(v, defect, weights, i):  # pragma: no cover - compiled
        """``v[i] += defect * weights[i]`` (the Jacobi correction of plane ``i``; ``defect`` 2-D)."""
        _, n1, n2 = v.shape
        for j in range(n1):
            for k in range(n2):
                v[i, j, k] = v[i, j, k] + defect[j, k] * weights[i, j, k]

    @jit
    def edge_defects(v, residual, diagonal, coupling, a0, a1, a2, defect, start, stop):  # pragma: no cover
        """``defect = residual - A v`` on the first and last of rows ``[start, stop)``: the planes whose defect
        reads rows of another slab, taken before any slab's sweep (:func:`sweep`) writes."""
        defect_plane(v, residual, diagonal, coupling, a0, a1, a2, start, defect[start])
        if stop - 1 > start:
            defect_plane(v, residual, diagonal, coupling, a0, a1, a2, stop - 1, defect[stop - 1])

    @jit
    def sweep(v, residual, diagonal, coupling, a0, a1, a2, weights, defect, start, stop):  # pragma: no cover
        """One damped Jacobi sweep ``v += (residual - A v) * weights`` on rows ``[start, stop)`` in one pass, the
        defects of the first and last row read from ``defect`` (:func:`edge_defects`).

        Plane by plane: the defect of plane ``i`` goes into a ring of two
        planes, and plane ``i - 1`` is corrected only after it, so that every
        defect reads the sweep's old ``v``, as the reference's does.
        """
        _, n1, n2 = v.shape
        ring = np.empty((2, n1, n2), dtype=v.dtype)
        ring[start & 1] = defect[start]
        for i in range(start + 1, stop - 1):
            defect_plane(v, residual, diagonal, coupling, a0, a1, a2, i, ring[i & 1])
            correct_plane(v, ring[(i - 1) & 1], weights, i - 1)
        if stop - 1 > start:
            correct_plane(v, ring[(stop - 2) & 1], weights, stop - 2)
        correct_plane(v, defect[stop - 1], weights, stop - 1)

    @inline
    def sum_blocks(first, second, coarse, s1, s2):  # pragma: no cover - compiled
        """``coarse`` (2-D) = the sums over blocks of two planes, ``first`` and the next one ``second`` (2-D), of
        ``s1 x s2`` voxels each (1 or 2 along each axis), taken axis by axis, the first axis first, as the
        reference restricts one axis after another."""
        m1, m2 = coarse.shape
        for cj in range(m1):
            j = s1 * cj
            for ck in range(m2):
                k = s2 * ck
                total = first[j, k] + second[j, k]
                if s1 == 2:
                    total = total + (first[j + 1, k] + second[j + 1, k])
                if s2 == 2:
                    column = first[j, k + 1] + second[j, k + 1]
                    if s1 == 2:
                        column = column + (first[j + 1, k + 1] + second[j + 1, k + 1])
                    total = total + column
                coarse[cj, ck] = total

    @jit
    def block_sums(fine, coarse, start, stop):  # pragma: no cover - compiled
        """``coarse`` = ``fine`` summed over blocks, on coarse rows ``[start, stop)``: a block has two voxels along
        the first axis, and along each other axis two where ``fine`` is twice as long as ``coarse``, else one."""
        _, m1, m2 = coarse.shape
        s1, s2 = fine.shape[1] // m1, fine.shape[2] // m2
        for ci in range(start, stop):
            sum_blocks(fine[2 * ci], fine[2 * ci + 1], coarse[ci], s1, s2)

    @jit
    def restrict(v, residual, diagonal, coupling, a0, a1, a2, p1, p2, coarse, start, stop):  # pragma: no cover
        """``coarse`` = the defect ``residual - A v`` summed over blocks, on coarse rows ``[start, stop)``, in one
        pass: the defect of a block's two planes goes into two plane buffers of the padded extents ``(p1, p2)``
        (zero beyond the level's extents, as the reference's padded defect), then into the block sums."""
        n0 = v.shape[0]
        _, m1, m2 = coarse.shape
        first, second = np.zeros((p1, p2), dtype=v.dtype), np.zeros((p1, p2), dtype=v.dtype)
        for ci in range(start, stop):
            defect_plane(v, residual, diagonal, coupling, a0, a1, a2, 2 * ci, first)
            if 2 * ci + 1 < n0:
                defect_plane(v, residual, diagonal, coupling, a0, a1, a2, 2 * ci + 1, second)
            else:  # the padding beyond an odd first extent
                second[:] = 0
            sum_blocks(first, second, coarse[ci], p1 // m1, p2 // m2)

    @jit
    def prolongation(coarse, fine, start, stop):  # pragma: no cover - compiled
        """``fine += coarse`` spread over each block (piecewise constant), on fine rows ``[start, stop)``."""
        _, n1, n2 = fine.shape
        m2 = coarse.shape[2]
        s0, s1 = fine.shape[0] // coarse.shape[0], n1 // coarse.shape[1]
        for i in range(start, stop):
            ci = i // s0
            for j in range(n1):
                cj = j // s1
                if n2 == 2 * m2:
                    for ck in range(m2):
                        value = coarse[ci, cj, ck]
                        fine[i, j, 2 * ck] = fine[i, j, 2 * ck] + value
                        fine[i, j, 2 * ck + 1] = fine[i, j, 2 * ck + 1] + value
                else:
                    for k in range(n2):
                        fine[i, j, k] = fine[i, j, k] + coarse[ci, cj, k]

    @jit
    def update(u, residual, direction, image, alpha, previous, products, largest, start, stop):  # pragma: no cover
        """``u += direction * alpha``, ``residual -= image * alpha`` on rows ``[start, stop)``; ``products[0, i]`` =
        the row products of the new residual with itself, ``products[1, i]`` with ``previous``; ``largest[0]`` = the
        largest :func:`magnitude_bits` of the new ``u`` there."""
        _, n1, n2 = u.shape
        squares, crosses = np.empty(n2), np.empty(n2)
        top = np.int64(0)
        for i in range(start, stop):
            squares[:] = 0.0
            crosses[:] = 0.0
            for j in range(n1):
                for k in range(n2):
                    value = u[i, j, k] + direction[i, j, k] * alpha
                    u[i, j, k] = value
                    top = max(top, magnitude_bits(value))
                    left = residual[i, j, k] - image[i, j, k] * alpha
                    residual[i, j, k] = left
                    squares[k] = squares[k] + left * left
                    crosses[k] = crosses[k] + left * previous[i, j, k]
            products[0, i] = pairwise(squares, n2)
            products[1, i] = pairwise(crosses, n2)
        largest[0] = top

    @jit
    def largest_bits(values, largest, start, stop):  # pragma: no cover - compiled
        """``largest[0]`` = the largest :func:`magnitude_bits` of ``values`` on flat entries ``[start, stop)``."""
        top = np.int64(0)
        for i in range(start, stop):
            top = max(top, magnitude_bits(values[i]))
        largest[0] = top

    @jit
    def new_direction(direction, z, beta, start, stop):  # pragma: no cover - compiled
        """``direction = direction * beta + z`` on flat entries ``[start, stop)``."""
        for i in range(start, stop):
            direction[i] = direction[i] * beta + z[i]

    @jit
    def divide(values, out, norm, start, stop):  # pragma: no cover - compiled
        """``out = values / norm`` (rounded to ``out``'s dtype) on flat entries ``[start, stop)``."""
        for i in range(start, stop):
            out[i] = values[i] / norm

    @jit
    def widen(values, out, norm, against, products, largest, start, stop):  # pragma: no cover - compiled
        """``out = values * norm`` (``values`` widened to float64 first) on rows ``[start, stop)``; ``products[i]`` =
        the row products of ``against`` with the new ``out``; ``largest[0]`` = the largest :func:`magnitude_bits` of
        ``out`` there."""
        _, n1, n2 = out.shape
        columns = np.empty(n2)
        top = np.int64(0)
        for i in range(start, stop):
            columns[:] = 0.0
            for j in range(n1):
                for k in range(n2):
                    value = np.float64(values[i, j, k]) * norm
                    out[i, j, k] = value
                    top = max(top, magnitude_bits(value))
                    columns[k] = columns[k] + against[i, j, k] * value
            products[i] = pairwise(columns, n2)
        largest[0] = top

    @jit
    def diagonal(reaction, fixed, c0, c1, c2, out, start, stop):  # pragma: no cover - compiled
        """``out = reaction + fixed`` plus each axis's coupling once per neighbour, on rows ``[start, stop)``
        (the reference's order: axis by axis; along each, for the next voxel, then the previous one)."""
        n0, n1, n2 = out.shape
        for i in range(start, stop):
            for j in range(n1):
                for k in range(n2):
                    total = reaction[i, j, k] + fixed[i, j, k]
                    if i < n0 - 1:
                        total = total + c0
                    if i > 0:
                        total = total + c0
                    if j < n1 - 1:
                        total = total + c1
                    if j > 0:
                        total = total + c1
                    if k < n2 - 1:
                        total = total + c2
                    if k > 0:
                        total = total + c2
                    out[i, j, k] = total

    @jit
    def coefficients(diagonal, weight, coupling, weights, apply_diagonal, start, stop):  # pragma: no cover
        """``weights = weight / diagonal`` and ``apply_diagonal = diagonal / coupling`` (each rounded to its array's
        dtype) on rows ``[start, stop)``."""
        _, n1, n2 = diagonal.shape
        for i in range(start, stop):
            for j in range(n1):
                for k in range(n2):
                    value = diagonal[i, j, k]
                    weights[i, j, k] = weight / value
                    apply_diagonal[i, j, k] = value / coupling

    @jit
    def apply_coefficients(diagonal, coupling, apply_diagonal, start, stop):  # pragma: no cover - compiled
        """``apply_diagonal = diagonal / coupling`` (rounded to its dtype) on rows ``[start, stop)``."""
        _, n1, n2 = diagonal.shape
        for i in range(start, stop):
            for j in range(n1):
                for k in range(n2):
                    apply_diagonal[i, j, k] = diagonal[i, j, k] / coupling

    @jit
    def accumulate(total, values, weight, start, stop):  # pragma: no cover - compiled
        """``total += weight * values`` on flat entries ``[start, stop)``, the product in ``weight``'s dtype (the
        value converted to it first), then widened to float64."""
        for i in range(start, stop):
            total[i] = total[i] + np.float64(weight * values[i])

    @jit
    def step_source(u, source, out, dt, start, stop):  # pragma: no cover - compiled
        """``out = u / dt + source`` (``u`` widened to float64 first) on flat entries ``[start, stop)``."""
        for i in range(start, stop):
            out[i] = np.float64(u[i]) / dt + source[i]

    return SimpleNamespace(operator=operator, row_products=row_products,
                           total=total, edge_defects=edge_defects, sweep=sweep, block_sums=block_sums,
                           restrict=restrict, prolongation=prolongation, update=update,
                           largest_bits=largest_bits, new_direction=new_direction, divide=divide,
                           widen=widen, diagonal=diagonal, coefficients=coefficients,
                           apply_coefficients=apply_coefficients, step_source=step_source,
                           accumulate=accumulate)


def _axis_flags(level: Any) -> tuple[bool, bool, bool]:
    """Whether each axis of the 3-D view of ``level``'s arrays is coupled (:func:`kernels.diffusion._coupled_axes`)."""
    coupled = set(diffusion._coupled_axes(level))
    axes = (0, 1, 2) if len(level.shape) == 3 else (0, None, 1)
    return tuple(axis is not None and axis in coupled for axis in axes)


def _around(array: Any, start: int, stop: int) -> Any:
    """Rows ``[start - 1, stop + 1)`` of ``array`` (clipped): what a stencil on rows ``[start, stop)`` reads."""
    return array[max(start - 1, 0):stop + 1]


def operator_calls(xp: Any, level: Any, dtype: Any, v: Any, out: Any, diagonal: Any,
                   scratch: Callable[[], Any], products: Any = None) -> list[Callable[[], Any]]:
    """:func:`kernels.diffusion.operator_calls` (``out = A v``, and with ``products`` its row products with ``v``)
    as one compiled loop where ``level``'s coupling is uniform (which takes the products into a scratch array where
    ``products`` is None), else the reference's calls."""
    coupling = diffusion._uniform_coupling(level)
    if coupling is None:
        return diffusion.operator_calls(xp, level, dtype, v, out, diagonal, scratch, products)
    v3, out3, diagonal3 = as_rows(v), as_rows(out), as_rows(diagonal)
    products = np.empty(out3.shape[0]) if products is None else products  # not wanted: a scratch array
    run = partial(_loops().operator, v3, diagonal3, np.dtype(dtype).type(coupling), *_axis_flags(level), out3, products)
    return [RowCall(out3.shape[0], out3.size, run, lambda start, stop: (
        (_around(v3, start, stop), diagonal3[start:stop]), (out3[start:stop], products[start:stop])))]


def smoothing_calls(xp: Any, level: Any, dtype: Any, v: Any, residual: Any, defect: Any, weights: Any, diagonal: Any,
                    scratch: Callable[[], Any]) -> list[Callable[[], Any]]:
    """:func:`kernels.diffusion.smoothing_calls` (one damped Jacobi sweep) as two compiled loops where ``level``'s
    coupling is uniform: the defects of each slab's first and last row into ``defect``, then the sweep in one pass
    (:func:`_loops` ``sweep``); else the reference's calls."""
    coupling = diffusion._uniform_coupling(level)
    if coupling is None:
        return diffusion.smoothing_calls(xp, level, dtype, v, residual, defect, weights, diagonal, scratch)
    loops, flags = _loops(), _axis_flags(level)
    v3, residual3, defect3, weights3, diagonal3 = (as_rows(array) for array in (v, residual, defect, weights, diagonal))
    coupling = np.dtype(dtype).type(coupling)
    edges = RowCall(v3.shape[0], v3.size, partial(loops.edge_defects, v3, residual3, diagonal3, coupling, *flags, defect3),
                    lambda start, stop: ((_around(v3, start, stop), residual3[start:stop], diagonal3[start:stop]),
                                         (defect3[start:stop],)))
    sweep = RowCall(v3.shape[0], v3.size,
                    partial(loops.sweep, v3, residual3, diagonal3, coupling, *flags, weights3, defect3),
                    lambda start, stop: ((v3[start:stop], residual3[start:stop], diagonal3[start:stop],
                                          weights3[start:stop], defect3[start:stop]), (v3[start:stop],)))
    return [edges, sweep]


def restriction_calls(xp: Any, level: Any, dtype: Any, v: Any, residual: Any, defect_padded: Any, coarse: Any,
                      diagonal: Any, scratch: Callable[[], Any], array: Callable[..., Any]) -> list[Callable[[], Any]]:
    """:func:`kernels.diffusion.restriction_calls` (the block sums of the defect ``residual - A v`` into
    ``coarse``) as one compiled loop where ``level``'s coupling is uniform (``defect_padded`` is then not
    written); else the reference's calls."""
    coupling = diffusion._uniform_coupling(level)
    if coupling is None:
        return diffusion.restriction_calls(xp, level, dtype, v, residual, defect_padded, coarse, diagonal, scratch, array)
    v3, residual3, diagonal3, coarse3 = as_rows(v), as_rows(residual), as_rows(diagonal), as_rows(coarse)
    _, p1, p2 = as_rows(defect_padded).shape
    run = partial(_loops().restrict, v3, residual3, diagonal3, np.dtype(dtype).type(coupling), *_axis_flags(level), p1,
                  p2, coarse3)

    def touches(start: int, stop: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        first, last = 2 * start, 2 * stop  # the fine rows of coarse rows [start, stop): two each
        return ((_around(v3, first, last), residual3[first:last], diagonal3[first:last]), (coarse3[start:stop],))

    return [RowCall(coarse3.shape[0], v3.size, run, touches)]  # cut as the fine work, not the coarse output


def prolongation_calls(xp: Any, coarse: Any, fine: Any, spread: Any) -> list[Callable[[], Any]]:
    """:func:`kernels.diffusion._prolong_calls` (``fine`` += ``coarse`` over each block) as one compiled loop
    (``spread`` is not written)."""
    coarse3, fine3 = as_rows(coarse), as_rows(fine)
    step = fine3.shape[0] // coarse3.shape[0]
    run = partial(_loops().prolongation, coarse3, fine3)
    return [RowCall(fine3.shape[0], fine3.size, run, lambda start, stop: (
        (coarse3[start // step:(stop - 1) // step + 1], fine3[start:stop]), (fine3[start:stop],)))]


def _slabs(rows: int, elements: int, threads: int) -> list[tuple[int, int]]:
    """Rows ``[0, rows)`` as ``(start, stop)`` slabs: ``threads`` of them where each has at least
    :data:`kernels.calls.MIN_SLAB_ELEMENTS` of the ``elements``, else one."""
    parts = threads if threads > 1 and rows >= threads and elements >= threads * calls.MIN_SLAB_ELEMENTS else 1
    bounds = [rows * k // parts for k in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _by_rows(loop: Callable[..., None], arguments: tuple[Any, ...], rows: int, elements: int, threads: int) -> None:
    """``loop(*arguments, start, stop)`` over rows ``[0, rows)``, in :func:`_slabs` at once (each row written by one
    slab only)."""
    concurrently([partial(loop, *arguments, start, stop) for start, stop in _slabs(rows, elements, threads)])


def _flat(loop: Callable[..., None], arrays: tuple[Any, ...], scalar: Any, threads: int) -> None:
    """``loop(*arrays, float(scalar), start, stop)`` on the arrays' flat views (contiguous, of one size), over every
    entry, in slabs as :func:`_by_rows` makes them (a slab's entries are its own in every array)."""
    flat = [array.reshape(-1) for array in arrays]
    _by_rows(loop, (*flat, np.float64(scalar)), flat[0].size, flat[0].size, threads)


def _measured(loop: Callable[..., None], arguments: tuple[Any, ...], rows: int, size: int, threads: int) -> np.float64:
    """``loop(*arguments, largest, start, stop)`` over rows ``[0, rows)`` (of ``size`` entries in all) in
    :func:`_slabs` at once, each slab writing the largest magnitude bits it found into its own ``largest``; their
    :func:`_magnitude`."""
    slabs = _slabs(rows, size, threads)
    largest = np.zeros(len(slabs), dtype=np.int64)
    concurrently([partial(loop, *arguments, largest[k:k + 1], start, stop) for k, (start, stop) in enumerate(slabs)])
    return _magnitude(largest)


def _magnitude(largest: np.ndarray) -> np.float64:
    """The float64 whose magnitude bits are the largest of ``largest`` (int64): NaN above an infinity's bits (a
    NaN's payload is not kept)."""
    top = int(largest.max())
    return np.float64(np.nan) if top > _INFINITY_BITS else np.array(top, dtype=np.int64).view(np.float64)[()]


def cg_update(xp: Any, u: Any, residual: Any, direction: Any, image: Any, spare: Any, alpha: Any,
              threads: int = 1, measure: bool = False, previous: Any = None, products: Any = None) -> Any:
    """:func:`kernels.diffusion.cg_update` as one compiled loop over rows (``spare`` and ``image`` are not
    written), which also takes the new ``u``'s magnitude (the same number: a maximum has no rounding) and the row
    products (into a scratch array where ``products`` is None)."""
    u3 = as_rows(u)
    if products is None:
        previous, products = residual, np.empty((2, u3.shape[0]))
    arrays = (u3, as_rows(residual), as_rows(direction), as_rows(image), np.float64(alpha), as_rows(previous),
              products)
    largest = _measured(_loops().update, arrays, u3.shape[0], u.size, threads)
    return largest if measure else None


def cg_direction(xp: Any, direction: Any, beta: Any, z: Any, threads: int = 1) -> None:
    """:func:`kernels.diffusion.cg_direction` as one compiled loop."""
    _flat(_loops().new_direction, (direction, z), beta, threads)


def scale_down(xp: Any, values: Any, norm: Any, out: Any, threads: int = 1) -> None:
    """:func:`kernels.diffusion.scale_down` as one compiled loop."""
    _flat(_loops().divide, (values, out), norm, threads)


def scale_up(xp: Any, values: Any, norm: Any, out: Any, threads: int = 1, measure: bool = False,
             against: Any = None, products: Any = None) -> Any:
    """:func:`kernels.diffusion.scale_up` as one compiled loop over rows, which also takes ``out``'s magnitude and
    the row products (into a scratch array where ``products`` is None)."""
    out3 = as_rows(out)
    if products is None:
        against, products = out, np.empty(out3.shape[0])
    arrays = (as_rows(values), out3, np.float64(norm), as_rows(against), products)
    largest = _measured(_loops().widen, arrays, out3.shape[0], out.size, threads)
    return largest if measure else None


def magnitude(xp: Any, values: Any, threads: int = 1) -> np.float64:
    """:func:`kernels.diffusion.magnitude` as one compiled loop over integer bits (which, unlike a float maximum
    without ``fastmath``, vectorises), shared among ``threads`` threads."""
    return _measured(_loops().largest_bits, (values.reshape(-1),), values.size, values.size, threads)


def level_diagonal(xp: Any, shape: tuple[int, ...], couplings: tuple[Any, ...], reaction: Any, fixed: Any, out: Any,
                   threads: int = 1) -> Any:
    """:func:`kernels.diffusion.level_diagonal` with the diagonal as one compiled loop where every coupling is a
    number; else the reference."""
    if not all(isinstance(coupling, float) for coupling in couplings):
        return diffusion.level_diagonal(xp, shape, couplings, reaction, fixed, out, threads)
    per_axis = (couplings[0], couplings[1], couplings[2]) if len(shape) == 3 else (couplings[0], 0.0, couplings[1])
    out3 = as_rows(out)
    _by_rows(_loops().diagonal, (as_rows(xp.broadcast_to(reaction, shape)), as_rows(fixed), *per_axis, out3),
             out3.shape[0], out3.size, threads)
    return diffusion._Level(tuple(shape), out, tuple(couplings), reaction, fixed)


def coefficients(xp: Any, level: Any, weights: Any, apply_diagonal: Any, threads: int = 1) -> None:
    """:func:`kernels.diffusion.coefficients` as one compiled loop where ``level``'s coupling is uniform; else the
    reference."""
    coupling = diffusion._uniform_coupling(level)
    if coupling is None:
        diffusion.coefficients(xp, level, weights, apply_diagonal, threads)
        return
    diagonal3 = as_rows(level.diagonal)
    if weights is None:
        arguments = (diagonal3, float(coupling), as_rows(apply_diagonal))
        loop = _loops().apply_coefficients
    else:
        arguments = (diagonal3, diffusion.JACOBI_WEIGHT, float(coupling), as_rows(weights), as_rows(apply_diagonal))
        loop = _loops().coefficients
    _by_rows(loop, arguments, diagonal3.shape[0], diagonal3.size, threads)


def scalar_product(xp: Any, a: Any, b: Any, threads: int = 1) -> np.float64:
    """:func:`kernels.diffusion.scalar_product` as one compiled loop over rows, shared among ``threads`` threads
    (rows are independent: the same bits on any number), then :func:`row_total`."""
    a3 = as_rows(a)
    rows = np.empty(a3.shape[0])
    _by_rows(_loops().row_products, (a3, as_rows(b), rows), a3.shape[0], a.size, threads)
    return row_total(xp, rows)


def row_total(xp: Any, rows: Any) -> np.float64:
    """:func:`kernels.diffusion.row_total` as one compiled loop."""
    return np.float64(_loops().total(rows))


def coarsen(xp: Any, level: Any) -> Any:
    """:func:`kernels.diffusion._coarsen` with the block sums of the reaction and fixed-face terms as compiled loops
    where every extent is even; else the reference."""
    if any(extent % 2 for extent in level.shape):
        return diffusion._coarsen(xp, level)
    return diffusion._coarsen(xp, level, block_sum=partial(_block_sum, xp, level.shape))


def _block_sum(xp: Any, shape: tuple[int, ...], values: Any) -> Any:
    """``values`` (broadcast to ``shape``, every extent even) summed over blocks of two along each axis: a new
    float64 array (the bits of :func:`kernels.diffusion._pair_sum` over every axis)."""
    total = xp.empty(tuple(extent // 2 for extent in shape))
    total3 = as_rows(total)
    _loops().block_sums(as_rows(xp.broadcast_to(values, shape)), total3, 0, total3.shape[0])
    return total


def step_source(xp: Any, u: Any, dt_min: float, source_per_min: Any, threads: int = 1) -> Any:
    """:func:`kernels.diffusion.step_source` as one compiled loop where the source is an array of ``u``'s shape;
    else the reference."""
    if not (isinstance(source_per_min, np.ndarray) and source_per_min.shape == u.shape and u.flags.c_contiguous
            and source_per_min.flags.c_contiguous):
        return diffusion.step_source(xp, u, dt_min, source_per_min, threads)
    out = np.empty(u.shape)
    _flat(_loops().step_source, (u, np.asarray(source_per_min, dtype=np.float64), out), dt_min, threads)
    return out


def weighted_sum(xp: Any, shape: tuple[int, ...], terms: Any, threads: int = 1) -> np.ndarray:
    """:func:`kernels.diffusion.weighted_sum` with each term as one compiled loop (no product array) where its
    values are a C-contiguous array of ``shape`` and NumPy's product dtype for the pair is a float; else that
    term as the reference adds it."""
    total = np.zeros(shape)
    flat = total.reshape(-1)
    for weight, values in terms:
        kind = np.result_type(weight, values)
        if not (isinstance(values, np.ndarray) and values.shape == tuple(shape) and values.flags.c_contiguous
                and kind.kind == "f"):
            total += weight * values
            continue
        _by_rows(_loops().accumulate, (flat, values.reshape(-1), kind.type(weight)), flat.size, flat.size, threads)
    return total


#: The field solve's array calls and vector operations, compiled (the CPU implementation of ``field_solver_kernels``).
SOLVER_KERNELS = diffusion.SolverKernels(operator=operator_calls, smoothing=smoothing_calls, restriction=restriction_calls,
                                   prolongation=prolongation_calls, cg_update=cg_update, cg_direction=cg_direction,
                                   scale_down=scale_down, scale_up=scale_up, level_diagonal=level_diagonal,
                                   coefficients=coefficients, magnitude=magnitude, scalar_product=scalar_product,
                                   row_total=row_total, coarsen=coarsen, step_source=step_source, weighted_sum=weighted_sum)
