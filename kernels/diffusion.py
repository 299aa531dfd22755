"""Implicit reaction-diffusion solver for the substrate fields.

Each field ``u`` (shape ``(ny, nx)`` or ``(nz, ny, nx)``, voxel edge ``dx_um``)
obeys, in finite-volume form with cell-centred values,

    du/dt = D * laplacian(u) - (decay + sink(x)) * u + source(x)

with ``D`` in um^2/min, ``decay`` and ``sink`` in 1/min, ``source`` in field
units per min. ``sink`` and ``source`` carry the cells and vessels: uptake by
cells adds to ``sink``, secretion to ``source``; a vessel that exchanges with
blood at level ``b`` with rate ``S`` adds ``S`` to ``sink`` and ``S * b`` to
``source``.

Each domain face is either no-flux or held at a fixed value. A fixed face sits
half a voxel beyond the outer voxel centres, so its flux is
``D * (value - u_edge) / (dx / 2)``.

Three solvers, all written once against ``xp``:

* :func:`steady_state` solves the equilibrium ``du/dt = 0`` by conjugate
  gradients (the operator is symmetric positive definite) preconditioned by
  one cell-centred geometric multigrid V-cycle, warm-started from the current
  field, until the V-cycle's estimate of the error is below ``rtol`` times
  the field's largest value in every voxel (tested every few iterations:
  :meth:`FieldSolver.solve`). Used for fast substrates such as oxygen, whose equilibration time
  (minutes) is far below the cell step.
* :func:`backward_euler_step` advances by ``dt`` with one exact backward-Euler
  step: the same solver on ``(1/dt + decay + sink) u_new - D lap u_new =
  source + u/dt``. Stable at any ``dt``, first order in ``dt``, second in
  ``dx``, and its equilibrium is the steady state exactly, so a field can step
  at the cell step however stiff its uptake, secretion or vessel exchange.
  Both are one solve of a :class:`FieldSolver`, which holds one operator
  with its V-cycle (its work arrays in a :class:`Workspace`, which solvers
  on one lattice may share): steps that share the sink and ``dt``
  (the substeps of a cell step) should share one solver, and a new sink
  (the next cell step) is taken in place by :meth:`FieldSolver.update_sink`,
  with the same bits as a new solver.
* :func:`implicit_step` (one field) and :func:`implicit_step_many` (a stack of
  fields, each with its own parameters) advance by ``dt``: a point-implicit
  reaction step, then locally one-dimensional (LOD) backward-Euler diffusion,
  one batched tridiagonal (Thomas) solve per grid line, axis after axis, as
  BioFVM does (:func:`solve_lines`; on a GPU one fused kernel per axis, :mod:`kernels.cuda.lines`).
  Unconditionally stable and the cheapest per step; first order
  in ``dt``, second in ``dx``; but splitting reaction from diffusion moves its
  equilibrium off the steady state by about ``(decay + sink) dt`` relative, so
  it suits short steps (``dt`` well below ``1 / (decay + sink)``).

The fixed lists of array calls of a :class:`FieldSolver` (its V-cycle and
its operator) go through its ``replayable`` operation: :func:`uncaptured`
(the calls as they are), or on a GPU CUDA graphs captured on first use and
replayed (:func:`kernels.cuda.graphs.replayable`); the arithmetic is the same.

How a solve does its array work is a third: :class:`SolverKernels`, the
builders of its call lists and its vector operations, as NumPy or CuPy calls
(:data:`SOLVER_KERNELS`, the reference), as compiled CPU loops with the
same bits (:data:`kernels.cpu.stencils.SOLVER_KERNELS`) or with the scalar
products as CUDA kernels (:data:`kernels.cuda.products.SOLVER_KERNELS`).
CG's scalar products sum in an order of the project's own, fixed by the
lattice's shape (:func:`scalar_product`), so that they are the same bits on
every device, SIMD level and thread count, and so that the loops writing a
vector can take its products on the way.

All three are operations of :mod:`kernels.accelerated`: the kernels
here take them as keyword arguments (``line_sweep``, ``replayable``,
``solver_kernels``) whose defaults are the ``xp`` references, and the model
passes the ones its backend picks (:meth:`kernels.backend.Backend.operation`).

Working memory (per voxel and field, ``b`` bytes per value of the field's
dtype): :func:`implicit_step_many` holds the result, one transposed work copy
and plane-sized temporaries: ``2 b``. A :class:`FieldSolver` keeps its
float64 reaction (8 bytes per voxel); its work arrays, seven float64 and
about seven float32 field-sized ones (about 83 bytes per voxel in 3-D with
the coarse levels), are in a :class:`Workspace` that the solvers of a
model's fields share.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from types import ModuleType
from typing import Any

import numpy as np

from kernels.calls import CallList, concurrently


class FieldSolverError(RuntimeError):
    """A field's solve failed: CG did not converge or broke down, its right-hand side is not finite, or its
    parameters are beyond what the solver represents (a split step's ``dt D / dx^2`` in the field's dtype).

    The kernels' messages name the solve (steady-state solve, backward-Euler step, split step); the model's
    rules (:class:`abm.rules.SolveFields`) raise it again with the field and its solver named.

    Attributes:
        field: the field's name, or None where the caller did not give it.
        solver: the field's solver (``steady``, ``transient``, ``transient_lod``), or None likewise.
    """

    def __init__(self, message: str, field: str | None = None, solver: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.solver = solver


@dataclass(frozen=True)
class FieldParameters:
    """Physical parameters of one field on one lattice.

    Attributes:
        diffusion_um2_per_min: diffusion coefficient D (>= 0).
        decay_per_min: uniform first-order decay (>= 0).
        dx_um: voxel edge (> 0).
        faces: per array axis, ``(low, high)`` face conditions: a float is a
            fixed value in field units, ``None`` is no-flux.
    """

    diffusion_um2_per_min: float
    decay_per_min: float
    dx_um: float
    faces: tuple[tuple[float | None, float | None], ...]


# --------------------------------------------------------------------------- coarse substrate grid

def _block_offsets(ndim: int, factor: int) -> list[tuple[slice, ...]]:
    """Per voxel of a ``factor``^ndim block, in C order, the strided view of the lattice holding that voxel of every block."""
    return [tuple(slice(offset, None, factor) for offset in offsets)
            for offsets in np.ndindex(*(factor,) * ndim)]


def block_mean(xp: ModuleType, values: Any, factor: int) -> Any:
    """Mean of ``values`` over each ``factor``^ndim block of voxels: a rate per volume on the coarse grid.

    Args:
        xp: array module.
        values: per-voxel values (rates in 1/min or field units / min, cell
            masks as bool, perfusion), any real or bool dtype, shape
            ``(ny, nx)`` or ``(nz, ny, nx)``, each extent divisible by ``factor``.
        factor: voxels per coarse voxel edge (1 returns ``values`` itself).

    Returns:
        float64, each extent divided by ``factor``: the block's voxels summed
        in a fixed order (C order within the block; the same bits on every
        backend), divided by ``factor**ndim`` (of a bool mask: the fraction
        of the block it covers). The coarse total times the coarse volume is
        the fine total times the fine volume.
    """
    if factor == 1:
        return values
    views = _block_offsets(values.ndim, factor)
    if values.dtype == bool:  # count in uint8 (at most 4^3 = 64 per block: exact, and far cheaper than float64 adds of bools)
        counts = values.view(xp.uint8)[views[0]].copy()
        for view in views[1:]:
            counts += values.view(xp.uint8)[view]
        return counts.astype(xp.float64) / factor ** values.ndim
    total = values[views[0]].astype(xp.float64)
    for view in views[1:]:
        total += values[view]
    total /= factor ** values.ndim
    return total


def block_sample(xp: ModuleType, field: Any, factor: int) -> Any:
    """The coarse field of a field spread by :func:`block_spread`: its first voxel of each block (exact), contiguous."""
    return field if factor == 1 else xp.ascontiguousarray(field[_block_offsets(field.ndim, factor)[0]])


def block_spread(xp: ModuleType, coarse: Any, factor: int) -> Any:
    """A coarse field on the cell lattice, piecewise constant: every voxel of a block holds its coarse voxel's value.

    Args:
        xp: array module.
        coarse: shape ``(my, mx)`` or ``(mz, my, mx)``, any dtype.
        factor: voxels per coarse voxel edge (1 returns ``coarse`` itself).

    Returns:
        Shape ``factor`` times each extent, dtype of ``coarse``.
    """
    if factor == 1:
        return coarse
    split = tuple(size for extent in coarse.shape for size in (extent, 1))
    blocks = tuple(size for extent in coarse.shape for size in (extent, factor))
    return xp.ascontiguousarray(xp.broadcast_to(coarse.reshape(split), blocks)).reshape(
        tuple(extent * factor for extent in coarse.shape))


# --------------------------------------------------------------------------- implicit (LOD) step

@lru_cache(maxsize=512)
def _thomas_coefficients(n: int, r: float, low_fixed: bool, high_fixed: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Factors of the constant tridiagonal system of one grid line.

    The system is ``-r u[i-1] + b_i u[i] - r u[i+1] = d_i`` with
    ``b_i = 1 + r * (neighbours inside the line) + 2 r * (fixed faces touched)``.
    Elimination keeps the right-hand side unscaled,
    ``y_i = d_i + forward_i * y_{i-1}``, then back-substitutes
    ``u_i = (y_i + r u_{i+1}) * inverse_i``.

    The pivots are summed from positive terms only: ``r - r * forward_i``
    is computed as ``r * e_{i-1} / b'_{i-1}`` with the excess
    ``e_i = b'_i - r = 1 + 2 r * (fixed faces) + r * e_{i-1} / b'_{i-1}``
    of an inner pivot carried along. Subtracting ``r * forward_i`` from
    ``r * neighbours`` instead loses the excess once ``r`` passes about
    ``1e15`` (the last pivot of a no-flux line, about ``n``, then came out
    0: a ZeroDivisionError at ``D = 1e300``). Every pivot is at least 1; for
    ``r`` up to 1e4 the float32 tables have the same bits either way.

    Returns:
        ``(forward, inverse)``: ``r / b'_{i-1}`` (0 at ``i = 0``) and ``1 / b'_i``
        per position, with ``b'_i = b_i - r * forward_i``; Python floats.
    """
    forward: list[float] = []
    inverse: list[float] = []
    previous_inverse = 0.0
    excess = 0.0  # b'_{i-1} - r of an inner pivot (at least 1)
    for i in range(n):
        neighbours = (i > 0) + (i < n - 1)
        fixed = (i == 0 and low_fixed) + (i == n - 1 and high_fixed)
        factor = r * previous_inverse
        carried = r * (excess * previous_inverse)  # r - r * factor, without the cancellation
        denominator = 1.0 + r * (neighbours - (i > 0)) + 2.0 * r * fixed + carried
        forward.append(factor)
        previous_inverse = 1.0 / denominator
        inverse.append(previous_inverse)
        excess = 1.0 + 2.0 * r * fixed + carried
    return tuple(forward), tuple(inverse)


@lru_cache(maxsize=256)
def _line_tables(xp: ModuleType, dtype: str, n: int, ndim: int, lines: tuple[tuple[float, bool, bool], ...]) -> tuple[Any, Any, Any]:
    """Device tables of the Thomas factors of a stack of fields along one axis.

    Args:
        n: points per grid line.
        ndim: spatial dimensions (the tables broadcast over a plane of
            shape ``(fields, *other axes)``).
        lines: per field, ``(r, low_fixed, high_fixed)``.

    Returns:
        ``(forward, inverse, r)``: arrays of shape ``(n, fields, 1, ...)`` (two)
        and ``(fields, 1, ...)``, of ``dtype``, built once per set of inputs.

    Raises:
        FieldSolverError: a table is not finite in ``dtype``, or an inverse
            pivot is 0 there (``r`` beyond the dtype's range).
    """
    columns = [_thomas_coefficients(n, r, low, high) for r, low, high in lines]
    plane = (len(lines),) + (1,) * (ndim - 1)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # checked just below
        forward = np.array([c[0] for c in columns], dtype=dtype).T.reshape((n,) + plane)
        inverse = np.array([c[1] for c in columns], dtype=dtype).T.reshape((n,) + plane)
        r = np.array([line[0] for line in lines], dtype=dtype).reshape(plane)
    for number, (line_r, _, _) in enumerate(lines):
        if not (np.isfinite(r[number]).all() and np.isfinite(forward[:, number]).all()
                and np.isfinite(inverse[:, number]).all() and (inverse[:, number] > 0).all()):
            which = f" (field {number} of the stack)" if len(lines) > 1 else ""
            raise FieldSolverError(
                f"split (LOD) step{which}: dt D / dx^2 = {line_r:.3g} is beyond what the field's {dtype} values can hold; "
                f"lower D_um2_per_min or dt_min, or use solver transient")
    return xp.asarray(forward), xp.asarray(inverse), xp.asarray(r)


def _column(xp: ModuleType, values: Sequence[float], ndim: int, dtype: Any) -> Any:
    """Per-field numbers as an array of shape ``(fields, 1, ..., 1)`` that broadcasts over a stack."""
    return xp.asarray(np.array(values, dtype=np.float64).reshape((len(values),) + (1,) * ndim), dtype=dtype)


def _sweep(xp: ModuleType, work: Any, axis: int, r: Sequence[float], faces: Sequence[tuple[float | None, float | None]],
           line_sweep: Callable[..., None]) -> None:
    """Backward-Euler diffusion along array ``axis`` of a stack of fields, in place.

    Args:
        work: shape ``(fields, *spatial)``; solved in its own dtype.
        axis: array axis (1 ... ndim) along which every grid line is solved.
        r: per field, ``dt * D / dx^2``.
        faces: per field, ``(low, high)`` of this axis: fixed value or None.
        line_sweep: the ``field_line_sweep`` operation (:func:`solve_lines` or its CUDA implementation).

    The fixed faces enter the right-hand side of the end planes; then
    ``line_sweep`` solves every line with the Thomas tables of the axis.
    """
    n = work.shape[axis]
    ndim = work.ndim - 1
    lines = tuple((float(ri), low is not None, high is not None) for ri, (low, high) in zip(r, faces))
    forward, inverse, r_column = _line_tables(xp, work.dtype.name, n, ndim, lines)
    for end, values in ((0, [low for low, _ in faces]), (n - 1, [high for _, high in faces])):
        if any(value is not None for value in values):
            plane = work[(slice(None),) * axis + (end,)]
            plane += _column(xp, [2.0 * ri * (v or 0.0) for ri, v in zip(r, values)], ndim - 1, work.dtype)
    line_sweep(xp, work, axis, forward, inverse, r_column)


def solve_lines(xp: ModuleType, work: Any, axis: int, forward: Any, inverse: Any, r: Any) -> None:
    """Solve every grid line of ``work`` along array ``axis`` in place: the ``xp`` reference of the
    ``field_line_sweep`` operation (:mod:`kernels.accelerated`; on a GPU :func:`kernels.cuda.lines.solve_lines`).

    The Thomas recurrence of :func:`_thomas_coefficients`, plane by plane
    (it is sequential along the axis): each position updates one plane of
    all lines of all fields with in-place ufuncs.

    Args:
        xp: array module.
        work: stack of fields, shape ``(fields, *spatial)``, float32 or float64; the right-hand sides
            on entry (fixed faces included), the solutions on return.
        axis: array axis (1 ... ndim) of the lines.
        forward, inverse: Thomas tables of shape ``(n, fields, 1, ...)``, dtype of ``work``
            (``n`` = ``work.shape[axis]``).
        r: per field ``dt D / dx^2``, shape ``(fields, 1, ...)``, dtype of ``work``.
    """
    n = work.shape[axis]
    planes = [work[(slice(None),) * axis + (i,)] for i in range(n)]
    scratch = xp.empty_like(planes[0])
    for i in range(1, n):
        xp.multiply(planes[i - 1], forward[i], out=scratch)
        planes[i] += scratch
    planes[n - 1] *= inverse[n - 1]
    for i in range(n - 2, -1, -1):
        xp.multiply(planes[i + 1], r, out=scratch)
        planes[i] += scratch
        planes[i] *= inverse[i]


def _split(xp: ModuleType, call: Any, arrays: Sequence[Any], axis: int, threads: int) -> None:
    """Run ``call(*chunks)`` on slabs of ``arrays`` cut along array ``axis``, on ``threads`` threads.

    The slabs hold disjoint grid lines, so the result does not depend on the
    number of threads (:func:`kernels.calls.concurrently`, the field solve's
    threads). NumPy releases the GIL inside its ufunc loops; on any other array
    module (a GPU queue) the call runs once on whole arrays.
    """
    extent = arrays[0].shape[axis]
    pieces = min(threads, extent) if xp is np else 1
    if pieces <= 1:
        call(*arrays)
        return
    bounds = [extent * k // pieces for k in range(pieces + 1)]
    lead = (slice(None),) * axis
    concurrently([partial(call, *(a[lead + (slice(lo, hi),)] for a in arrays))
                  for lo, hi in zip(bounds[:-1], bounds[1:])])


def _copy(out: Any, values: Any) -> None:
    """``out[...] = values`` (a strided copy when the layouts differ)."""
    out[...] = values


def implicit_step_many(
    xp: ModuleType,
    fields: Any,
    dt_min: float,
    params: Sequence[FieldParameters],
    sink_per_min: Any = 0.0,
    source_per_min: Any = 0.0,
    *,
    line_sweep: Callable[..., None] = solve_lines,
    threads: int = 1,
) -> Any:
    """Advance a stack of fields by ``dt_min`` minutes (reactions, then LOD diffusion).

    All fields of the stack are swept together, one ufunc call per plane, so
    several substrates cost little more Python overhead than one. Sweeps run
    over planes of grid lines: the first spatial axis (contiguous planes),
    the middle one, and the last one after the last two axes are swapped in a
    work copy (which the reaction step writes). On NumPy the lines are shared
    among ``threads`` threads (the same bits for any count).

    Args:
        xp: array module.
        fields: float32 or float64, shape ``(n_fields, ny, nx)`` or ``(n_fields, nz, ny, nx)``.
        dt_min: time step in minutes (> 0); any size is stable.
        params: one :class:`FieldParameters` per field (same ``dx_um``
            and lattice for all; ``D``, decay and faces may differ).
        sink_per_min: first-order loss rate, 1/min: a scalar, or an array that
            broadcasts to ``fields.shape`` (``(*spatial)`` for all fields or
            ``(n_fields, *spatial)``).
        source_per_min: production, field units / min, same shapes as ``sink_per_min``.
        line_sweep: the ``field_line_sweep`` operation: :func:`solve_lines` (the default), or the one
            a backend picks (:meth:`kernels.backend.Backend.operation`); the same bits either way.
        threads: threads that share the lines on NumPy (:attr:`kernels.backend.Backend.threads`); the same bits
            for any count.

    Returns:
        A new array of the shape and dtype of ``fields``.
    """
    if dt_min <= 0:
        raise ValueError(f"dt_min must be positive, got {dt_min}")
    if len(params) != fields.shape[0]:
        raise ValueError(f"{len(params)} parameter sets for {fields.shape[0]} fields")
    ndim = fields.ndim - 1
    dtype = fields.dtype
    decay = [p.decay_per_min for p in params]
    r = [dt_min * p.diffusion_um2_per_min / p.dx_um**2 for p in params]
    swapped = xp.empty(fields.shape[:-2] + fields.shape[:-3:-1], dtype=dtype)
    natural = swapped.swapaxes(-1, -2)
    if np.ndim(source_per_min) == 0 and float(source_per_min) == 0.0:
        _split(xp, _copy, (natural, fields), 1, threads)
    else:
        natural[...] = fields + xp.asarray(source_per_min * dt_min, dtype=dtype)
    if np.ndim(sink_per_min) == 0:
        natural *= _column(xp, [1.0 / (1.0 + dt_min * (k + float(sink_per_min))) for k in decay], ndim, dtype)
    else:
        loss = xp.asarray(sink_per_min, dtype=dtype) + _column(xp, decay, ndim, dtype)
        loss *= dtype.type(dt_min)
        loss += dtype.type(1.0)
        xp.divide(natural, loss, out=natural)
    if not any(r):
        return xp.ascontiguousarray(natural)
    last = [p.faces[ndim - 1] for p in params]
    _split(xp, lambda w: _sweep(xp, w, ndim - 1, r, last, line_sweep), (swapped,), 1 if ndim == 3 else ndim, threads)
    result = xp.empty_like(fields)
    _split(xp, _copy, (result, natural), 1, threads)
    for axis in range(1, ndim):
        faces = [p.faces[axis - 1] for p in params]
        _split(xp, lambda w, a=axis, f=faces: _sweep(xp, w, a, r, f, line_sweep), (result,), 2 if axis == 1 else 1, threads)
    return result


def implicit_step(xp: ModuleType, u: Any, dt_min: float, params: FieldParameters, sink_per_min: Any = 0.0,
                  source_per_min: Any = 0.0, *, line_sweep: Callable[..., None] = solve_lines, threads: int = 1) -> Any:
    """Advance one field by ``dt_min`` minutes (reactions, then LOD diffusion).

    Args:
        xp: array module.
        u: field, float32 or float64, shape ``(ny, nx)`` or ``(nz, ny, nx)``.
        dt_min: time step in minutes (> 0); any size is stable.
        params: the field's parameters.
        sink_per_min: per-voxel first-order loss rate (scalar or array of ``u.shape``), 1/min.
        source_per_min: per-voxel production (scalar or array), field units / min.
        line_sweep, threads: as in :func:`implicit_step_many`.

    Returns:
        The new field, same shape and dtype as ``u``.
    """
    return implicit_step_many(xp, u[None], dt_min, (params,), sink_per_min, source_per_min, line_sweep=line_sweep,
                              threads=threads)[0]


# --------------------------------------------------------------------------- steady state

#: Weight of the damped Jacobi smoother of the V-cycle (< 1 keeps the preconditioner positive definite).
JACOBI_WEIGHT = 0.9
#: Jacobi sweeps before and after each coarse correction (equal, so the V-cycle is symmetric).
SMOOTHING_SWEEPS = 2
#: The coarsest level, solved exactly with a dense inverse, has at most this many cells.
COARSEST_CELLS = 128
#: Default CG iterations between tests of the stopping rule (:meth:`FieldSolver.solve`'s ``check_every``).
CHECK_EVERY = 2
#: The smallest normal float64: the least norm a residual is divided by before the V-cycle.
_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)


def as_rows(values: Any) -> Any:
    """``values`` seen as 3-D rows ``(n0, n1, n2)`` (a view): a 3-D array as it is, a 2-D ``(ny, nx)`` one as ``(ny,
    1, nx)``, a 1-D one as one row ``(1, 1, n)``. Rows (the first axis) are what threads share and what a
    :func:`row_products` sums."""
    if values.ndim == 3:
        return values
    return values[:, None, :] if values.ndim == 2 else values.reshape(1, 1, -1)


def pairwise_calls(xp: ModuleType, values: Any, out: Any) -> list[Callable[[], Any]]:
    """Calls that set ``out[i]`` = the sum of ``values[i, :]`` (float64 ``(rows, n)``, not written; ``out``
    ``(rows,)``) in adjacent pairs, level by level: ``(v0 + v1), (v2 + v3), ...``, an odd count's last value carried
    to the next level unpaired, until one value is left.

    The order is fixed by ``n`` alone, so every implementation that follows
    it (a compiled loop that pairs in place, a kernel) gives the same bits.
    Each level's sums go into a new array allocated here (no overlap of
    input and output), so the calls allocate nothing.
    """
    rows, extent = values.shape
    source = values
    calls: list[Callable[[], Any]] = []
    while extent > 1:
        half, odd = extent // 2, extent % 2
        target = xp.empty((rows, half + odd))
        calls.append(partial(xp.add, source[:, 0:2 * half:2], source[:, 1:2 * half:2], out=target[:, :half]))
        if odd:
            calls.append(partial(xp.copyto, target[:, half:], source[:, 2 * half:extent]))
        extent, source = half + odd, target
    calls.append(partial(xp.copyto, out, source[:, 0]))
    return calls


def row_product_calls(xp: ModuleType, a: Any, b: Any, out: Any) -> list[Callable[[], Any]]:
    """Calls that set ``out[i]`` = the sum of ``a * b`` over row ``i`` of the arrays' :func:`as_rows` view, in a
    fixed order (the work arrays, a few of one plane's size, are allocated here, so the calls allocate nothing and
    can be captured as a CUDA graph).

    Within row ``i`` of ``(n0, n1, n2)``: for each ``k``, the column
    ``((0.0 + a[i, 0, k] * b[i, 0, k]) + a[i, 1, k] * b[i, 1, k]) + ...``
    summed in order of ``j`` (each product rounded, then added: no fused
    multiply-add); then the ``n2`` column sums by :func:`pairwise_calls`. A compiled loop or a
    kernel keeps a row's column sums in registers or cache while it writes
    ``a`` or ``b``, and rows are independent, so any number of threads gives
    the same ``out``.

    Args:
        a, b: float64 arrays of one shape (2-D or 3-D; 1-D is one row).
        out: float64 array ``(n0,)``.
    """
    a3, b3 = as_rows(a), as_rows(b)
    rows, depth, width = a3.shape
    columns, product = xp.empty((rows, width)), xp.empty((rows, width))
    calls = [partial(xp.copyto, columns, 0.0)]
    for j in range(depth):
        calls += [partial(xp.multiply, a3[:, j, :], b3[:, j, :], out=product),
                  partial(xp.add, columns, product, out=columns)]
    return calls + pairwise_calls(xp, columns, out)


def row_products(xp: ModuleType, a: Any, b: Any, out: Any, threads: int = 1) -> None:
    """``out[i]`` = the sum of ``a * b`` over row ``i`` (:func:`row_product_calls`, called at once); ``threads`` is
    for compiled versions (unused here)."""
    for call in row_product_calls(xp, a, b, out):
        call()


def row_total(xp: ModuleType, rows: Any) -> Any:
    """The sum of ``rows`` (float64 ``(n0,)``, e.g. from :func:`row_products`) by :func:`pairwise_calls`: a 0-d
    float64 array on the device."""
    total = xp.empty(1)
    for call in pairwise_calls(xp, rows[None, :], total):
        call()
    return total[0]


def scalar_product(xp: ModuleType, a: Any, b: Any, threads: int = 1) -> Any:
    """The field solve's scalar product ``sum(a * b)`` (float64 arrays of one shape): :func:`row_products`, then
    :func:`row_total`; a 0-d float64 array on the device.

    Its order is the project's own, fixed by the shape alone: the same bits
    on NumPy and CuPy, on any CPU's SIMD level and any number of threads,
    and the same as the loops that take the products while they write one
    of the vectors (the CG update, the operator, the V-cycle's output). NumPy's
    ``einsum``, used before, sums in an order chosen by the CPU's SIMD
    dispatch and cannot be taken inside another loop.
    """
    rows = xp.empty(as_rows(a).shape[0])
    row_products(xp, a, b, rows, threads)
    return row_total(xp, rows)


def _nothing() -> None:
    """An empty list of calls."""


def uncaptured(xp: ModuleType, function: Callable[[], Any]) -> Callable[[], Any]:
    """``function`` itself: the ``xp`` reference of the ``replayable`` operation (:mod:`kernels.accelerated`).

    Its CUDA implementation, :func:`kernels.cuda.graphs.replayable`, returns a
    callable that captures ``function``'s device work as a CUDA graph on the
    first call and replays it on later ones (the same kernels in the same
    order, so the same bits). ``function`` takes no arguments; its calls must
    read and write the same arrays each time and allocate nothing.
    """
    return function


def _face_slice(ndim: int, axis: int, high: bool) -> tuple[Any, ...]:
    """Index of the low or high boundary layer along spatial ``axis`` (leading batch axes allowed)."""
    index: list[Any] = [slice(None)] * ndim
    index[axis] = -1 if high else 0
    return (Ellipsis, *index)


def _pair_slices(ndim: int, axis: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Indices of the low and high voxel of every face between neighbours along ``axis``."""
    low: list[Any] = [slice(None)] * ndim
    high: list[Any] = [slice(None)] * ndim
    low[axis] = slice(0, -1)
    high[axis] = slice(1, None)
    return (Ellipsis, *low), (Ellipsis, *high)


def _add_in_place(xp: ModuleType, target: Any, value: Any) -> None:
    """``target += value`` for a view ``target`` (``view += value`` would also copy the view onto itself)."""
    xp.add(target, value, out=target)


@dataclass(frozen=True)
class _Level:
    """One multigrid level of ``A v = diagonal * v - sum over faces of coupling * neighbour``.

    Attributes:
        shape: the level's grid.
        diagonal: float64 array of ``shape``.
        couplings: per axis, the coupling across each face between neighbours:
            a Python float (uniform) or a float64 array with one entry fewer along that axis.
        reaction: non-diffusive part of the diagonal (decay, sinks), float64 array.
        fixed: diagonal part from fixed-value faces, float64 array.
    """

    shape: tuple[int, ...]
    diagonal: Any
    couplings: tuple[Any, ...]
    reaction: Any
    fixed: Any

    def apply(self, xp: ModuleType, v: Any, out: Any | None = None, scratch: Any | None = None) -> Any:
        """``A v`` for ``v`` of shape ``(..., *shape)``, into ``out`` (and ``scratch``, same shape) if given."""
        out = xp.multiply(self.diagonal, v, out=out)
        scratch = xp.empty_like(out) if scratch is None else scratch
        for axis, coupling in enumerate(self.couplings):
            low, high = _pair_slices(len(self.shape), axis)
            for target, neighbour in ((low, high), (high, low)):
                part, total = scratch[target], out[target]
                xp.multiply(v[neighbour], coupling, out=part)
                xp.subtract(total, part, out=total)
        return out


def _coupled_axes(level: _Level) -> list[int]:
    """The axes of ``level`` with faces between neighbours (extent above 1 and a coupling that is not 0)."""
    return [axis for axis, coupling in enumerate(level.couplings)
            if level.shape[axis] > 1 and not (isinstance(coupling, float) and coupling == 0.0)]


def _uniform_coupling(level: _Level) -> float | None:
    """The one uniform coupling shared by every coupled axis of ``level``, or None."""
    axes = _coupled_axes(level)
    uniform = {level.couplings[axis] for axis in axes if isinstance(level.couplings[axis], float)}
    if axes and len(uniform) == 1 and all(isinstance(level.couplings[axis], float) for axis in axes):
        return next(iter(uniform))
    return None


def _apply_diagonal(xp: ModuleType, level: _Level, dtype: Any) -> Any:
    """The diagonal :func:`_apply_calls` multiplies by: ``diagonal / c`` (uniform coupling ``c``) or ``diagonal``.

    A new array in ``dtype``; it is the only array of the calls that depends
    on the sink (:meth:`FieldSolver.update_sink` copies a recomputed one into it).
    """
    coupling = _uniform_coupling(level)
    return (level.diagonal / coupling).astype(dtype, copy=False) if coupling is not None else level.diagonal.astype(dtype)


def _apply_calls(xp: ModuleType, level: _Level, dtype: Any, v: Any, out: Any, diagonal: Any,
                 scratch: Callable[[], Any]) -> list[Callable[[], Any]]:
    """Calls that set ``out = A v`` (``A`` of ``level``, in ``dtype``) for these two fixed arrays.

    ``diagonal`` is ``_apply_diagonal(xp, level, dtype)``, held by the caller
    (which may overwrite it in place when the sink changes). Axes without
    faces (extent 1, or no diffusion) are skipped. Where every other axis has
    the same uniform coupling ``c`` (the finest level, and every coarser one
    whose extents are even or 1), ``A v = c ((diagonal / c) v - sum of
    neighbours)``: one subtraction per neighbour direction and no scratch
    array; otherwise a product and a subtraction per direction.
    """
    ndim = len(level.shape)
    axes = _coupled_axes(level)
    coupling = _uniform_coupling(level)
    if coupling is not None:
        calls = [partial(xp.multiply, diagonal, v, out=out)]
        for axis in axes:
            low, high = _pair_slices(ndim, axis)
            for target, neighbour in ((low, high), (high, low)):
                total = out[target]
                calls.append(partial(xp.subtract, total, v[neighbour], out=total))
        calls.append(partial(xp.multiply, out, coupling, out=out))
        return calls
    calls = [partial(xp.multiply, diagonal, v, out=out)]
    part_of = scratch() if axes else None
    for axis in axes:
        coupling = level.couplings[axis]
        coupling = coupling if isinstance(coupling, float) else coupling.astype(dtype)
        low, high = _pair_slices(ndim, axis)
        for target, neighbour in ((low, high), (high, low)):
            part, total = part_of[target], out[target]
            calls += [partial(xp.multiply, v[neighbour], coupling, out=part), partial(xp.subtract, total, part, out=total)]
    return calls


def _pair_sum(xp: ModuleType, v: Any, axes: Sequence[int]) -> Any:
    """Sum ``v`` over blocks of two voxels along each of ``axes`` (an odd extent gets a last block of one)."""
    for axis in axes:
        if v.shape[axis] % 2:
            v = xp.pad(v, [(0, int(k == axis)) for k in range(v.ndim)])
        lead = (slice(None),) * axis
        v = v[lead + (slice(0, None, 2),)] + v[lead + (slice(1, None, 2),)]
    return v


def _restrict_calls(xp: ModuleType, fine: Any, coarse: Any, array: Callable[..., Any]) -> list[Callable[[], Any]]:
    """Calls that sum ``fine`` over blocks of ``2^ndim`` voxels into ``coarse``, one axis after another.

    ``fine`` is a level's padded work array: every extent even (twice
    ``coarse``'s), zero beyond the level's own extents, so that the last
    block along an odd extent sums its one voxel. ``array(name, shape, dtype)``
    gives the partial sums' work arrays (:meth:`Workspace.array`).
    """
    calls: list[Callable[[], Any]] = []
    source = fine
    for axis in range(fine.ndim):
        lead = (slice(None),) * axis
        shape = source.shape[:axis] + (source.shape[axis] // 2,) + source.shape[axis + 1:]
        target = coarse if axis == fine.ndim - 1 else array(f"restrict{axis}", shape, fine.dtype)
        calls.append(partial(xp.add, source[lead + (slice(0, None, 2),)], source[lead + (slice(1, None, 2),)], out=target))
        source = target
    return calls


def _prolong_calls(xp: ModuleType, coarse: Any, fine: Any, spread: Any) -> list[Callable[[], Any]]:
    """Calls that add ``coarse`` to each voxel of its block in ``fine`` (piecewise-constant interpolation).

    ``fine`` is the finer level's padded work array (extents twice
    ``coarse``'s). ``coarse`` is first repeated along the last axis into the
    work array ``spread`` (shape ``coarse.shape + (2,)``, dtype of ``fine``),
    then added to ``fine`` viewed with each other axis split in (block, 2),
    where it broadcasts: two calls whatever the dimension, whose innermost
    loops run along whole rows.
    """
    lead = tuple(part for extent in coarse.shape[:-1] for part in (extent, 2))
    split_fine = fine.reshape(lead + (2 * coarse.shape[-1],))
    split_spread = spread.reshape(tuple(1 if k % 2 else extent for k, extent in enumerate(lead)) + (2 * coarse.shape[-1],))
    return [partial(xp.copyto, spread, coarse[..., None]), partial(xp.add, split_fine, split_spread, out=split_fine)]


def _with_diagonal(xp: ModuleType, shape: tuple[int, ...], couplings: tuple[Any, ...], reaction: Any,
                   fixed: Any, out: Any = None) -> _Level:
    """The level of these couplings, reaction and fixed-face terms: ``diagonal = reaction + fixed + couplings``
    (into ``out`` if given, a float64 array of ``shape``)."""
    diagonal = xp.add(reaction, fixed, out=out)
    for axis, coupling in enumerate(couplings):
        for part in _pair_slices(len(shape), axis):
            _add_in_place(xp, diagonal[part], coupling)
    return _Level(tuple(shape), diagonal, tuple(couplings), reaction, fixed)


def _coarsen(xp: ModuleType, level: _Level, block_sum: Callable[[Any], Any] | None = None) -> _Level:
    """The next coarser level: blocks of 2^ndim voxels.

    Reactions add up over a block (the Galerkin product with piecewise-constant
    interpolation); diffusive couplings add up over the fine faces between two
    blocks and are halved, which is the rediscretised operator on the doubled
    voxel edge (the plain Galerkin product would be twice too stiff per level).
    A uniform coupling stays a number while every other extent is even or 1
    (each block face then gathers the same count of fine faces).

    ``block_sum(values)`` sums a level-shaped array over the blocks (None:
    :func:`_pair_sum` over every axis; a compiled version must give its bits).
    """
    ndim = len(level.shape)
    every = tuple(range(ndim))
    summed = (lambda values: _pair_sum(xp, values, every)) if block_sum is None else block_sum
    couplings: list[Any] = []
    for axis, coupling in enumerate(level.couplings):
        others = [extent for k, extent in enumerate(level.shape) if k != axis]
        if isinstance(coupling, float) and all(extent == 1 or extent % 2 == 0 for extent in others):
            couplings.append(0.5 * coupling * 2 ** sum(extent % 2 == 0 for extent in others))
            continue
        face_shape = tuple(extent - (k == axis) for k, extent in enumerate(level.shape))
        between = xp.broadcast_to(xp.asarray(coupling, dtype=xp.float64), face_shape)
        index: list[Any] = [slice(None)] * ndim
        index[axis] = slice(1, None, 2)
        couplings.append(0.5 * _pair_sum(xp, between[tuple(index)], [k for k in every if k != axis]))
    reaction = summed(level.reaction)
    fixed = 0.5 * summed(level.fixed)
    return _with_diagonal(xp, reaction.shape, tuple(couplings), reaction, fixed)


def _jacobi_weights(level: _Level, dtype: Any) -> Any:
    """The damped Jacobi weights of ``level``, ``JACOBI_WEIGHT / diagonal``, in ``dtype`` (a new array)."""
    return (JACOBI_WEIGHT / level.diagonal).astype(dtype)


def _coarsest_inverse(xp: ModuleType, coarsest: _Level) -> Any:
    """The dense inverse of the coarsest level's operator, float32 (a new array)."""
    cells = int(np.prod(coarsest.shape))
    identity = xp.eye(cells, dtype=xp.float64).reshape((cells, *coarsest.shape))
    return xp.linalg.inv(coarsest.apply(xp, identity).reshape(cells, cells)).astype(xp.float32)


def smoothing_calls(xp: ModuleType, level: _Level, dtype: Any, v: Any, residual: Any, defect: Any, weights: Any,
                    diagonal: Any, scratch: Callable[[], Any]) -> list[Callable[[], Any]]:
    """Calls of one damped Jacobi sweep of ``level``: ``v += (residual - A v) * weights``, with ``defect`` (same
    shape) as work array; ``diagonal`` and ``scratch`` as for :func:`_apply_calls`."""
    return _apply_calls(xp, level, dtype, v, defect, diagonal, scratch) + [
        partial(xp.subtract, residual, defect, out=defect), partial(xp.multiply, defect, weights, out=defect),
        partial(xp.add, v, defect, out=v)]


def restriction_calls(xp: ModuleType, level: _Level, dtype: Any, v: Any, residual: Any, defect_padded: Any,
                      coarse: Any, diagonal: Any, scratch: Callable[[], Any],
                      array: Callable[..., Any]) -> list[Callable[[], Any]]:
    """Calls that write the defect ``residual - A v`` of ``level`` into ``defect_padded`` (its level-sized
    corner; the rest stays zero) and its sums over blocks into ``coarse`` (:func:`_restrict_calls`, whose work
    arrays ``array`` gives)."""
    defect = defect_padded[tuple(slice(0, extent) for extent in level.shape)]
    return _apply_calls(xp, level, dtype, v, defect, diagonal, scratch) + [
        partial(xp.subtract, residual, defect, out=defect)] + _restrict_calls(xp, defect_padded, coarse, array)


def coarsen(xp: ModuleType, level: _Level) -> _Level:
    """The next coarser level of ``level``: :func:`_coarsen` with its NumPy block sums."""
    return _coarsen(xp, level)


def step_source(xp: ModuleType, u: Any, dt_min: float, source_per_min: Any, threads: int = 1) -> Any:
    """The right-hand side of a backward-Euler step, ``u / dt + source`` (a new float64 array of ``u``'s shape;
    ``source_per_min`` a scalar or an array). ``threads`` is for compiled versions (unused here)."""
    source = u.astype(xp.float64)
    source /= dt_min
    source += xp.asarray(source_per_min, dtype=xp.float64)
    return source


def weighted_sum(xp: ModuleType, shape: tuple[int, ...], terms: Sequence[tuple[Any, Any]], threads: int = 1) -> Any:
    """``sum(weight * values)`` over ``terms``, from zeros, in their order: a field's sink or source per voxel.

    Args:
        shape: the result's shape.
        terms: pairs of a weight (a number) and an array of ``shape`` (any real or bool dtype, e.g. a cell mask),
            each product in the dtype NumPy gives the pair (a Python float takes a float array's dtype).
        threads: for compiled versions (unused here).

    Returns:
        A new float64 array of ``shape``.
    """
    total = xp.zeros(shape, dtype=xp.float64)
    for weight, values in terms:
        total += weight * values
    return total


def magnitude(xp: ModuleType, values: Any, threads: int = 1) -> Any:
    """The largest ``|value|`` of ``values`` (float64), a 0-d array on the device: NaN where ``values`` has a NaN,
    ``inf`` where it has an infinity and no NaN. ``threads`` is for CPU versions (unused here)."""
    return xp.abs(values).max()


def level_diagonal(xp: ModuleType, shape: tuple[int, ...], couplings: tuple[Any, ...], reaction: Any, fixed: Any,
                   out: Any, threads: int = 1) -> _Level:
    """The level of these couplings, reaction and fixed-face terms, its diagonal written into ``out`` (float64 of
    ``shape``): :func:`_with_diagonal`. ``threads`` is for compiled versions (unused here)."""
    return _with_diagonal(xp, shape, couplings, reaction, fixed, out=out)


def coefficients(xp: ModuleType, level: _Level, weights: Any, apply_diagonal: Any, threads: int = 1) -> None:
    """Write ``level``'s damped Jacobi weights (:func:`_jacobi_weights`) into ``weights`` (None: not wanted) and the
    diagonal its operator's calls multiply by (:func:`_apply_diagonal`) into ``apply_diagonal``, each in its array's
    dtype. ``threads`` is for compiled versions (unused here)."""
    if weights is not None:
        weights[...] = _jacobi_weights(level, weights.dtype)
    apply_diagonal[...] = _apply_diagonal(xp, level, apply_diagonal.dtype)


def cg_update(xp: ModuleType, u: Any, residual: Any, direction: Any, image: Any, spare: Any, alpha: Any,
              threads: int = 1, measure: bool = False, previous: Any = None, products: Any = None) -> Any:
    """CG's update of the iterate and residual: ``u += alpha * direction``, ``residual -= alpha * image``.

    All arrays float64 of one shape; ``alpha`` a float or 0-d float64 array;
    ``spare`` and ``image`` are work arrays whose values afterwards are not
    used (here ``spare`` ends as ``alpha * direction``, ``image`` as
    ``alpha * image``). ``threads`` is for compiled versions (unused here).

    With ``products`` (float64 ``(2, n0)``, rows as :func:`as_rows`), also
    the :func:`row_products` of the new residual with itself into
    ``products[0]`` and with ``previous`` (float64, the shape of ``u``) into
    ``products[1]``: a compiled version takes them while it writes the
    residual.

    Returns:
        With ``measure``, the new ``u``'s :func:`magnitude` (a compiled
        version takes it while it writes ``u``); else None.
    """
    xp.add(u, xp.multiply(direction, alpha, out=spare), out=u)
    xp.subtract(residual, xp.multiply(image, alpha, out=image), out=residual)
    if products is not None:
        row_products(xp, residual, residual, products[0])
        row_products(xp, residual, previous, products[1])
    return magnitude(xp, u) if measure else None


def cg_direction(xp: ModuleType, direction: Any, beta: Any, z: Any, threads: int = 1) -> None:
    """CG's new search direction: ``direction = direction * beta + z`` (float64 arrays, ``beta`` a float or 0-d
    array)."""
    xp.add(xp.multiply(direction, beta, out=direction), z, out=direction)


def scale_down(xp: ModuleType, values: Any, norm: Any, out: Any, threads: int = 1) -> None:
    """``out = values / norm`` rounded to ``out``'s dtype (float64 ``values``, float32 ``out``): the V-cycle's input."""
    xp.divide(values, norm, out=out)


def scale_up(xp: ModuleType, values: Any, norm: Any, out: Any, threads: int = 1, measure: bool = False,
             against: Any = None, products: Any = None) -> Any:
    """``out = values * norm`` in ``out``'s dtype (float32 ``values``, float64 ``out``): the V-cycle's output; with
    ``measure``, returns ``out``'s :func:`magnitude` (else None); with ``products`` (float64 ``(n0,)``), also the
    :func:`row_products` of ``out`` with ``against`` (float64, ``out``'s shape) into it."""
    xp.copyto(out, values)
    xp.multiply(out, norm, out=out)
    if products is not None:
        row_products(xp, against, out, products)
    return magnitude(xp, out) if measure else None


def operator_calls(xp: ModuleType, level: _Level, dtype: Any, v: Any, out: Any, diagonal: Any,
                   scratch: Callable[[], Any], products: Any = None) -> list[Callable[[], Any]]:
    """:func:`_apply_calls` (``out = A v``), and with ``products`` (float64 ``(n0,)``) then the
    :func:`row_product_calls` of ``v`` with ``out`` into it (CG's ``direction . A direction``)."""
    calls = _apply_calls(xp, level, dtype, v, out, diagonal, scratch)
    return calls if products is None else calls + row_product_calls(xp, v, out, products)


@dataclass(frozen=True)
class SolverKernels:
    """The builders of a field solve's fixed call lists (operation ``field_solver_kernels``, :mod:`kernels.accelerated`).

    The first four return a list of calls (each called without arguments)
    on the arrays they are given, for the fixed call lists of the V-cycle and
    the operator; the others do their work at once (with ``threads`` threads
    where they can): the coefficients written when the sink changes, and
    CG's vector operations. :data:`SOLVER_KERNELS` holds this
    module's functions, the reference: NumPy or CuPy calls, one per
    operation and neighbour direction. :data:`kernels.cpu.stencils.SOLVER_KERNELS`
    holds compiled loops with the same bits.

    Attributes:
        operator: ``out = A v`` and, if asked, its row products with ``v`` (:func:`operator_calls`).
        smoothing: one damped Jacobi sweep (:func:`smoothing_calls`).
        restriction: the defect summed over blocks into the coarser level (:func:`restriction_calls`).
        prolongation: the coarse correction added to each voxel of its block (:func:`_prolong_calls`).
        cg_update: :func:`cg_update`.
        cg_direction: :func:`cg_direction`.
        scale_down: :func:`scale_down`.
        scale_up: :func:`scale_up`.
        level_diagonal: :func:`level_diagonal` (the finest level's operator).
        coefficients: :func:`coefficients`.
        magnitude: :func:`magnitude` (the stopping rule's numbers, where ``cg_update`` and ``scale_up`` do not
            give them).
        scalar_product: :func:`scalar_product` (the products ``cg_update``, ``scale_up`` and ``operator`` do
            not take).
        row_total: :func:`row_total` (a scalar product from its row products).
        coarsen: :func:`coarsen` (the next coarser level of the V-cycle).
        step_source: :func:`step_source`.
        weighted_sum: :func:`weighted_sum` (a field's sink and source, built by the fields rule).
    """

    operator: Callable[..., list[Callable[[], Any]]]
    smoothing: Callable[..., list[Callable[[], Any]]]
    restriction: Callable[..., list[Callable[[], Any]]]
    prolongation: Callable[..., list[Callable[[], Any]]]
    cg_update: Callable[..., None]
    cg_direction: Callable[..., None]
    scale_down: Callable[..., None]
    scale_up: Callable[..., None]
    level_diagonal: Callable[..., _Level]
    coefficients: Callable[..., None]
    magnitude: Callable[..., Any]
    scalar_product: Callable[..., Any]
    row_total: Callable[..., Any]
    coarsen: Callable[..., _Level]
    step_source: Callable[..., Any]
    weighted_sum: Callable[..., Any]


#: The reference: one array call per operation and neighbour direction.
SOLVER_KERNELS = SolverKernels(operator=operator_calls, smoothing=smoothing_calls, restriction=restriction_calls,
                         prolongation=_prolong_calls, cg_update=cg_update, cg_direction=cg_direction,
                         scale_down=scale_down, scale_up=scale_up, level_diagonal=level_diagonal,
                         coefficients=coefficients, magnitude=magnitude, scalar_product=scalar_product,
                         row_total=row_total, coarsen=coarsen,
                         step_source=step_source, weighted_sum=weighted_sum)


class Workspace:
    """The work arrays of field solves on one lattice, shared by every :class:`FieldSolver` given it.

    A solve needs about fifteen field-sized arrays (CG vectors, the V-cycle's
    levels and coefficients), but only while it runs; the fields of a model
    are solved one after another, so they can all work in one set of
    arrays: memory for one solver instead of one per field
    (docs/performance.md, "Memory"). A solver keeps its call lists (and on
    a GPU its CUDA graphs), which read and write these arrays; the arrays'
    coefficients (the Jacobi weights and apply diagonals of each level, the
    coarsest inverse) belong to the solver whose operator was written last,
    :attr:`owner`, and a solver that finds another owner writes its own
    again before it solves (the same bits: they are computed from its sink).

    Attributes:
        owner: the solver whose coefficients the arrays hold (None: none yet).
    """

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp
        self.owner: Any = None
        self._arrays: dict[tuple[str, tuple[int, ...], str], Any] = {}

    def array(self, name: str, shape: Sequence[int], dtype: Any) -> Any:
        """The work array ``name`` of this shape and dtype: zeros when first asked for, then the same array."""
        key = (name, tuple(int(extent) for extent in shape), np.dtype(dtype).str)
        if key not in self._arrays:
            self._arrays[key] = self.xp.zeros(key[1], dtype=dtype)
        return self._arrays[key]

    def scoped(self, prefix: str) -> Callable[..., Any]:
        """:meth:`array` with ``prefix`` before each name."""
        return lambda name, shape, dtype: self.array(prefix + name, shape, dtype)

    @property
    def nbytes(self) -> int:
        """Bytes held by the work arrays."""
        return sum(array.nbytes for array in self._arrays.values())


class _Multigrid:
    """A symmetric V-cycle (damped Jacobi smoothing, exact coarsest solve) for one operator, on a workspace's arrays.

    Levels are built in float64 and kept in float32: the cycle is a
    preconditioner, so its rounding only costs CG (flexible form) an iteration
    at most, and float32 halves its memory traffic. Only the float32
    coefficients the cycle reads are kept (in the workspace), not the levels.

    Everything a cycle touches is an array of the workspace
    (:class:`Workspace`, names starting ``mg``), and the cycle itself is a
    fixed list of array calls on precomputed views: no allocation, no
    indexing, few Python calls per cycle (on a GPU each call is a kernel
    launch, which costs more than the arithmetic on these lattices). A
    level's solution and defect arrays are allocated with each odd extent one
    longer (the padding stays zero in the defect), so that restriction and
    prolongation are plain strided sums over blocks of two.

    Because the calls read and write the same arrays every cycle, on a GPU
    the calls before the coarsest solve and those after it are each captured
    as one CUDA graph on the first cycle and replayed on later ones
    (the ``replayable`` operation, :func:`kernels.cuda.graphs.replayable`): three launches per cycle instead of
    about 200, the same kernels in the same order (the same bits). The
    coarsest solve (a cuBLAS product, which CuPy does not capture) runs
    between the two graphs. On NumPy the same two lists are each a
    :class:`kernels.calls.CallList` shared among ``threads`` threads (the same
    bits), their calls built by ``solver_kernels`` (:class:`SolverKernels`:
    compiled loops where the backend gives them).

    Attributes:
        residual: float32 array of the finest shape, the cycle's input.
        solution: float32 array of the finest shape, the cycle's output.
        coefficients: per level above the coarsest, its (Jacobi weights, apply diagonal), float32.
        inverse: the coarsest level's dense inverse, float32 ``(cells, cells)``.
        down, exact, up: the cycle in three parts, each called without arguments.
    """

    def __init__(self, xp: ModuleType, fine: _Level, replayable: Callable[..., Callable[[], Any]] = uncaptured,
                 workspace: Workspace | None = None, threads: int = 1, solver_kernels: SolverKernels = SOLVER_KERNELS) -> None:
        self.xp = xp
        self.threads = threads
        self.solver_kernels = solver_kernels
        workspace = Workspace(xp) if workspace is None else workspace
        f32 = xp.float32
        levels = _levels(xp, fine, solver_kernels.coarsen)
        self.shape = fine.shape
        coarsest = levels[-1]
        cells = int(np.prod(coarsest.shape))
        self.inverse = workspace.array("mg.inverse", (cells, cells), f32)
        self.coefficients: list[tuple[Any, Any]] = [
            (workspace.array(f"mg{depth}.weights", level.shape, f32),
             workspace.array(f"mg{depth}.apply_diagonal", level.shape, f32)) for depth, level in enumerate(levels[:-1])]
        self._write(levels)
        coarse_residual = workspace.array(f"mg{len(levels) - 1}.residual", coarsest.shape, f32)
        coarse_solution = workspace.array("mg.solution", coarsest.shape, f32)
        exact = [partial(xp.dot, self.inverse, coarse_residual.reshape(-1), out=coarse_solution.reshape(-1))]

        # Per level above the coarsest: (its padded solution, its solution, its smoothing sweep).
        down: list[Callable[[], Any]] = []
        above: list[tuple[Any, Any, list[Callable[[], Any]]]] = []
        residual = workspace.array("mg0.residual", fine.shape, f32)
        self.residual = residual
        for depth, (level, (weighted_inverse, apply_diagonal)) in enumerate(zip(levels[:-1], self.coefficients)):
            array = workspace.scoped(f"mg{depth}.")
            inside = tuple(slice(0, extent) for extent in level.shape)
            padded = tuple(extent + extent % 2 for extent in level.shape)
            v_padded, defect_padded = array("v", padded, f32), array("defect", padded, f32)
            v, defect = v_padded[inside], defect_padded[inside]
            scratch = partial(array, "scratch", level.shape, f32)
            smooth = solver_kernels.smoothing(xp, level, f32, v, residual, defect, weighted_inverse, apply_diagonal, scratch)
            coarser = workspace.array(f"mg{depth + 1}.residual", levels[depth + 1].shape, f32)
            down += [partial(xp.multiply, weighted_inverse, residual, out=v)] + smooth * (SMOOTHING_SWEEPS - 1)
            down += solver_kernels.restriction(xp, level, f32, v, residual, defect_padded, coarser, apply_diagonal, scratch,
                                            array)
            above.append((v_padded, v, smooth))
            residual = coarser
        up: list[Callable[[], Any]] = []
        correction = coarse_solution
        for depth, (v_padded, v, smooth) in reversed(list(enumerate(above))):
            spread = workspace.array(f"mg{depth}.spread", correction.shape + (2,), f32)
            up += solver_kernels.prolongation(xp, correction, v_padded, spread) + smooth * SMOOTHING_SWEEPS
            correction = v
        self.solution = correction
        # On a GPU the calls before and after the coarsest solve are each one CUDA graph; the solve
        # (cuBLAS, which CuPy does not capture) runs between them.
        self.down = replayable(xp, CallList(xp, down, threads)) if down else _nothing
        self.exact = CallList(xp, exact)
        self.up = replayable(xp, CallList(xp, up, threads)) if up else _nothing

    def _write(self, levels: list[_Level]) -> None:
        """Write the coefficients of ``levels`` (Jacobi weights, apply diagonals, coarsest inverse) into the arrays
        the calls read."""
        for level, (weighted_inverse, apply_diagonal) in zip(levels[:-1], self.coefficients):
            self.solver_kernels.coefficients(self.xp, level, weighted_inverse, apply_diagonal, self.threads)
        self.inverse[...] = _coarsest_inverse(self.xp, levels[-1])

    def update(self, fine: _Level) -> None:
        """Take the operator ``fine``, which differs from the one the cycle was built for only in its reaction (the
        sink), or write it again after another solver used the workspace.

        The levels are rebuilt as :meth:`__init__` builds them and their
        Jacobi weights, apply diagonals and coarsest inverse are copied into
        the arrays the calls (and their CUDA graphs) read: the same bits as a
        new ``_Multigrid(xp, fine)``, without rebuilding the calls or
        capturing the graphs again.
        """
        if fine.shape != self.shape:
            raise ValueError(f"operator of shape {fine.shape} for a V-cycle of shape {self.shape}")
        self._write(_levels(self.xp, fine, self.solver_kernels.coarsen))

    def precondition(self, r: Any, norm: Any, out: Any, measure: bool = False, products: Any = None) -> Any:
        """``out`` = one V-cycle applied to the float64 ``r``, whose 2-norm is ``norm``; returns ``out``'s
        :func:`magnitude` with ``measure``, else None; with ``products`` (float64 ``(n0,)``), writes the
        :func:`row_products` of ``r`` with ``out`` into it (CG's ``r . z``).

        The V-cycle is linear; it runs on ``r / norm`` so that float32 neither
        underflows nor overflows whatever the field's magnitude (a drug
        decayed to 1e-37 stalled CG otherwise). ``norm`` is a positive float
        or a 0-d float64 array on the device (CG passes its residual's norm
        without bringing it to the host).
        """
        self.solver_kernels.scale_down(self.xp, r, norm, self.residual, self.threads)
        self.down()
        self.exact()
        self.up()
        return self.solver_kernels.scale_up(self.xp, self.solution, norm, out, self.threads, measure, against=r,
                                            products=products)


def _levels(xp: ModuleType, fine: _Level, coarsen: Callable[..., _Level] = _coarsen) -> list[_Level]:
    """``fine`` and its coarser levels, down to at most :data:`COARSEST_CELLS` cells (or extents of 1), each made by
    ``coarsen`` (a :attr:`SolverKernels.coarsen`)."""
    levels = [fine]
    while np.prod(levels[-1].shape) > COARSEST_CELLS and max(levels[-1].shape) > 1:
        levels.append(coarsen(xp, levels[-1]))
    return levels


def _face_terms(xp: ModuleType, shape: tuple[int, ...], params: FieldParameters, fixed: Any, rhs: Any) -> None:
    """Write the fixed faces' diagonal terms into ``fixed`` and right-hand side into ``rhs`` (float64 arrays of
    ``shape``, or None to skip one): ``2 D / dx^2`` and ``2 D / dx^2 * value`` in the boundary layer of each fixed
    face, 0 elsewhere."""
    ndim = len(shape)
    coupling = params.diffusion_um2_per_min / params.dx_um**2
    for target in (fixed, rhs):
        if target is not None:
            target.fill(0.0)
    for axis, ends in enumerate(params.faces):
        for high, value in zip((False, True), ends):
            if value is not None:
                if fixed is not None:
                    _add_in_place(xp, fixed[_face_slice(ndim, axis, high)], 2.0 * coupling)
                if rhs is not None:
                    _add_in_place(xp, rhs[_face_slice(ndim, axis, high)], 2.0 * coupling * value)


def _fine_level(xp: ModuleType, shape: tuple[int, ...], params: FieldParameters, sink_per_min: Any) -> tuple[_Level, Any]:
    """The discrete steady-state operator on the lattice, and the right-hand side of its fixed faces (new arrays)."""
    fixed = xp.zeros(shape, dtype=xp.float64)
    rhs = xp.zeros(shape, dtype=xp.float64)
    _face_terms(xp, tuple(shape), params, fixed, rhs)
    reaction = _fine_reaction(xp, tuple(shape), params.decay_per_min, sink_per_min)
    coupling = params.diffusion_um2_per_min / params.dx_um**2
    return _with_diagonal(xp, tuple(shape), (coupling,) * len(shape), reaction, fixed), rhs


def _fine_reaction(xp: ModuleType, shape: tuple[int, ...], decay_per_min: float, sink_per_min: Any) -> Any:
    """The fine level's reaction ``decay + sink`` (float64, broadcast to ``shape``)."""
    return xp.broadcast_to(decay_per_min + xp.asarray(sink_per_min, dtype=xp.float64), shape)


class FieldSolver:
    """The implicit operator of one field on one lattice, built once and reused for several solves.

    The operator is ``(decay + sink) u - D lap u`` with the field's faces,
    plus ``u / dt`` when ``dt_min`` is given (a backward-Euler step). Building
    it and its multigrid V-cycle (levels, coarsest inverse, call lists)
    costs about as much as a few CG iterations, so the substeps of a cell
    step, which share the sink and the step, share one solver: create it
    once per field and call :meth:`step` or :meth:`solve` per substep, and
    :meth:`update_sink` when the sink changes (each cell step), which keeps
    every call list and CUDA graph and gives the same bits as a new
    solver. The V-cycle is built on the first solve whose warm start is not exact.

    Memory: the solver itself keeps its reaction ``decay + sink`` (float64,
    8 bytes per voxel; none for a scalar sink). Every other array is in its
    :class:`Workspace`, which solvers of the same lattice shape can share
    (a model's fields do: :class:`abm.rules.SolveFields`): CG's six float64
    vectors and the fine operator's float64 diagonal (56 bytes per voxel),
    the V-cycle's float32 arrays (about 24 on the finest level, 1/7 more on
    the coarser ones in 3-D); docs/performance.md has the table.

    Args:
        xp: array module.
        shape: the lattice shape of the field.
        params: the field's parameters.
        sink_per_min: per-voxel first-order loss (scalar or array of ``shape``), 1/min.
        dt_min: step of :meth:`step`, minutes (> 0); None for a steady operator.
        replayable: the ``replayable`` operation for the V-cycle's and the operator's fixed call lists:
            :func:`uncaptured` (the default), or the one a backend picks
            (:meth:`kernels.backend.Backend.operation`: CUDA graphs on a GPU); the same bits either way.
        workspace: the work arrays, shared with other solvers of this shape (None: a new one of its own).
        threads: threads that share the V-cycle's and the operator's call lists on NumPy
            (:class:`kernels.calls.CallList`, :attr:`kernels.backend.Backend.threads`); the same bits for any count.
        solver_kernels: how the solve does its array work (:class:`SolverKernels`): :data:`SOLVER_KERNELS`
            (the default), or the one a backend picks (compiled loops on NumPy); the same bits either way.
    """

    def __init__(self, xp: ModuleType, shape: Sequence[int], params: FieldParameters, sink_per_min: Any = 0.0,
                 dt_min: float | None = None, *,
                 replayable: Callable[..., Callable[[], Any]] = uncaptured, workspace: Workspace | None = None,
                 threads: int = 1, solver_kernels: SolverKernels = SOLVER_KERNELS) -> None:
        if dt_min is not None:
            if dt_min <= 0:
                raise ValueError(f"dt_min must be positive, got {dt_min}")
            params = FieldParameters(params.diffusion_um2_per_min, params.decay_per_min + 1.0 / dt_min,
                                     params.dx_um, params.faces)
        self.xp = xp
        self.replayable = replayable
        self.threads = threads
        self.solver_kernels = solver_kernels
        self.shape = tuple(int(extent) for extent in shape)
        self.dt_min = dt_min
        self.params = params
        self.workspace = Workspace(xp) if workspace is None else workspace
        self.reaction = _fine_reaction(xp, self.shape, params.decay_per_min, sink_per_min)
        self._coupling = params.diffusion_um2_per_min / params.dx_um**2
        self._apply: Callable[[], None] = _nothing
        self._multigrid: _Multigrid | None = None

    def _array(self, name: str, dtype: Any = None) -> Any:
        """The workspace's field-sized array ``name`` (float64 unless ``dtype`` is given)."""
        return self.workspace.array(name, self.shape, self.xp.float64 if dtype is None else dtype)

    def _fine(self) -> _Level:
        """The fine level of the current sink, its diagonal and fixed-face terms in the workspace's ``cg.z`` and
        ``cg.spare`` (CG's preconditioned residuals, free between solves and before a solve's first V-cycle)."""
        xp = self.xp
        fixed, diagonal = self._array("cg.spare"), self._array("cg.z")
        _face_terms(xp, self.shape, self.params, fixed, None)
        return self.solver_kernels.level_diagonal(xp, self.shape, (self._coupling,) * len(self.shape), self.reaction,
                                                  fixed, diagonal, self.threads)

    def _load(self) -> None:
        """Write this solver's coefficients (the CG operator's diagonal, the V-cycle's), if built, into the
        workspace, and take it."""
        if self._apply is not _nothing or self._multigrid is not None:
            fine = self._fine()
            if self._apply is not _nothing:
                self.solver_kernels.coefficients(self.xp, fine, None, self._array("cg.apply_diagonal"), self.threads)
            if self._multigrid is not None:
                self._multigrid.update(fine)
        self.workspace.owner = self

    def update_sink(self, sink_per_min: Any) -> None:
        """Replace the sink (the only part of the operator that changes with the cells), in place.

        Recomputes the reaction and, if they were built, the diagonal of the
        CG operator and the V-cycle's Jacobi weights, apply diagonals and
        coarsest inverse (:meth:`_Multigrid.update`), writing them into the
        workspace arrays that the calls and their CUDA graphs read. Solves
        then give the same bits and iterations as a new ``FieldSolver`` with
        this sink, without rebuilding the calls or capturing the graphs again.

        Args:
            sink_per_min: per-voxel first-order loss (scalar or array of the solver's shape), 1/min.
        """
        self.reaction = _fine_reaction(self.xp, self.shape, self.params.decay_per_min, sink_per_min)
        self._load()

    def solve(self, u_guess: Any, source_per_min: Any = 0.0, rtol: float = 1e-6,
              max_iterations: int = 500, check_every: int = CHECK_EVERY) -> tuple[Any, int]:
        """Solve ``operator u = source + fixed-face terms`` by V-cycle-preconditioned CG, warm-started from ``u_guess``.

        Stopping rule: CG stops at the first check where the preconditioned
        residual ``z = M r`` (one V-cycle applied to the residual ``r``, in
        field units: the V-cycle's estimate of the error ``u_exact - u`` in
        each voxel) is at most ``rtol * max |u|`` in every voxel::

            max |z| <= rtol * max |u|      (max over all voxels)

        so every voxel is within about ``rtol`` times the field's largest
        magnitude, wherever it lies. A relative residual against the whole
        right-hand side (``|r| <= rtol |rhs|``, 2-norms, the former rule) does
        not say that: a stiff region (a vessel exchanging at ``q = 1e6/min``
        with blood at ``b``) puts ``q b`` per voxel into the right-hand side
        and ``q`` times its error into the residual, so once that region
        matches ``b`` the rest of the field weighs nothing in either norm:
        started at ``b``, CG returned the start after 0 iterations, 10 % too
        high at the centre of tissue inside a vessel shell
        (tests/test_diffusion.py, the vessel-shell and vessel-slab cases).
        ``z`` is the preconditioned residual CG needs for its next iteration,
        so the rule costs one V-cycle per solve (the last ``z``, unused) and
        two maxima of magnitudes per check (:func:`magnitude`; a maximum adds
        no rounding of its own on any device, in any order, so compiled
        versions take them while they write ``u`` and ``z``).

        The rule is tested every ``check_every`` iterations (and at the
        warm start and at ``max_iterations``): only a check brings numbers to
        the host, so on a GPU the iterations between checks are queued
        without waiting for the device. The result is the iterate at the
        first check that passes (up to ``check_every - 1`` iterations past the
        first one that would have passed: more converged, not less).

        Args:
            u_guess: starting field of the solver's shape (its dtype is the result's).
            source_per_min: per-voxel production (scalar or array), field units / min.
            rtol: largest preconditioned residual, relative to the field's largest magnitude (see above).
            max_iterations: CG iterations before :class:`FieldSolverError`.
            check_every: iterations between tests of the stopping rule (>= 1).

        A warm start whose residual is larger than the right-hand side's
        (a guess worse than none: huge or non-finite values) is dropped for
        zero: CG from it would lose the accuracy its residual recurrence
        reports (``initial = 3e38`` left the oxygen field off by 1e24).

        Returns:
            ``(u, iterations)``: a new field (dtype of ``u_guess``) and the CG iterations used.

        Raises:
            FieldSolverError: the right-hand side is not finite (a source, a
                fixed face or, for a step, the field itself, beyond float64's
                range once squared), CG broke down (a non-finite residual at a
                check: rates beyond the float32 preconditioner's range), or no
                convergence.
        """
        xp = self.xp
        if tuple(u_guess.shape) != self.shape:
            raise ValueError(f"field of shape {tuple(u_guess.shape)} for a solver of shape {self.shape}")
        if check_every < 1:
            raise ValueError(f"check_every must be at least 1, got {check_every}")
        if self.workspace.owner is not self:
            self._load()
        u, residual, direction, image = (self._array(name) for name in ("cg.u", "cg.residual", "cg.direction",
                                                                         "cg.image"))
        source = xp.asarray(source_per_min, dtype=xp.float64)
        vectors = self.solver_kernels
        _face_terms(xp, self.shape, self.params, None, image)  # the fixed faces' right-hand side
        xp.add(image, source, out=residual)
        rhs_norm = math.sqrt(float(vectors.scalar_product(xp, residual, residual, self.threads)))
        if not math.isfinite(rhs_norm):
            raise FieldSolverError(
                f"{self._kind()}: the right-hand side is not finite (2-norm {rhs_norm}): a source"
                f"{', a fixed face value or the field itself' if self.dt_min is not None else ' or a fixed face value'}"
                f" is NaN, infinite or too large")
        if rhs_norm == 0.0:
            return xp.zeros_like(u_guess), 0
        # Row products of CG's scalar products, taken by the loops that write one of their vectors
        # (row_products): direction . A direction; r . r and r . z before the V-cycle; r . z after it.
        rows = self.workspace.array("cg.rows", (4, as_rows(u).shape[0]), xp.float64)
        if self._apply is _nothing:
            apply_diagonal = self._array("cg.apply_diagonal")
            fine = self._fine()
            vectors.coefficients(xp, fine, None, apply_diagonal, self.threads)
            self._apply = self.replayable(xp, CallList(xp, vectors.operator(
                xp, fine, xp.float64, direction, image, apply_diagonal, partial(self._array, "cg.scratch"), rows[0]),
                self.threads))
        xp.copyto(u, u_guess)
        xp.copyto(direction, u)
        self._apply()  # image = A u
        xp.subtract(residual, image, out=residual)
        residual_norm = math.sqrt(float(vectors.scalar_product(xp, residual, residual, self.threads)))
        if residual_norm == 0.0:
            return u_guess.copy(), 0
        if not residual_norm <= rhs_norm:  # also NaN: start from zero, whose residual is the right-hand side
            u.fill(0.0)
            _face_terms(xp, self.shape, self.params, None, image)
            xp.add(image, source, out=residual)
            residual_norm = rhs_norm
        if self._multigrid is None:
            self._multigrid = _Multigrid(xp, self._fine(), self.replayable, self.workspace, self.threads, vectors)
        multigrid = self._multigrid
        z, spare = self._array("cg.z"), self._array("cg.spare")
        if self._converged(multigrid.precondition(residual, residual_norm, z, measure=True, products=rows[3]),
                           vectors.magnitude(xp, u, self.threads), rtol, 0):
            return u_guess.copy(), 0
        xp.copyto(direction, z)
        rz = vectors.row_total(xp, rows[3])
        for iteration in range(1, max_iterations + 1):
            self._apply()  # image = A direction, and its row products with direction
            alpha = rz / vectors.row_total(xp, rows[0])
            check = iteration % check_every == 0 or iteration == max_iterations
            u_largest = vectors.cg_update(xp, u, residual, direction, image, spare, alpha, self.threads, check,
                                          previous=z, products=rows[1:3])
            # The residual's norm stays on the device; at least the smallest normal float64, so that a residual of
            # exactly 0 gives z = 0 (converged), not 0 / 0.
            norm = xp.maximum(xp.sqrt(vectors.row_total(xp, rows[1])), _SMALLEST_NORMAL)
            z_largest = multigrid.precondition(residual, norm, spare, check, products=rows[3])
            if check and self._converged(z_largest, u_largest, rtol, iteration):
                return u.astype(u_guess.dtype), iteration
            rz_next, rz_before = vectors.row_total(xp, rows[3]), vectors.row_total(xp, rows[2])
            # Polak-Ribiere form of beta (flexible CG): robust to the float32 preconditioner.
            beta = (rz_next - rz_before) / rz
            vectors.cg_direction(xp, direction, beta, spare, self.threads)
            z, spare = spare, z
            rz = rz_next
        raise FieldSolverError(
            f"{self._kind()} did not reach rtol={rtol} in {max_iterations} iterations; {self._scales()}"
        )

    def _converged(self, z_largest: Any, u_largest: Any, rtol: float, iteration: int) -> bool:
        """The stopping rule of :meth:`solve`: ``max |z| <= rtol * max |u|`` (one transfer to the host).

        Args:
            z_largest: the preconditioned residual's :func:`magnitude` (0-d array or number).
            u_largest: the current iterate's :func:`magnitude` (0-d array or number).
            rtol: the relative tolerance.
            iteration: the CG iteration checked (0: the start), for a breakdown's message.

        Raises:
            FieldSolverError: ``z`` or ``u`` is not finite (CG broke down).
        """
        z_value, u_value = self.xp.stack((self.xp.asarray(z_largest), self.xp.asarray(u_largest))).tolist()
        if not (math.isfinite(z_value) and math.isfinite(u_value)):
            raise FieldSolverError(f"{self._kind()}: CG broke down at iteration {iteration} (the preconditioned "
                                   f"residual or the field is not finite at this check); {self._scales()}")
        return z_value <= rtol * u_value

    def _kind(self) -> str:
        """The solve, for messages: ``steady-state solve`` or ``backward-Euler step of <dt> min``."""
        return "steady-state solve" if self.dt_min is None else f"backward-Euler step of {self.dt_min:g} min"

    def _scales(self) -> str:
        """The operator's largest rates, for a failure's message (one device reduction)."""
        reaction = float(self.reaction.max())
        coupling = self._coupling
        return (f"its largest reaction rate (decay + uptake + secretion + vessel exchange"
                f"{' + 1/dt' if self.dt_min is not None else ''}) is {reaction:.3g}/min and its diffusion coupling "
                f"D / dx^2 {coupling:.3g}/min (rates beyond about 1e30/min can overflow its float32 preconditioner)")

    def step(self, u: Any, source_per_min: Any = 0.0, rtol: float = 1e-6,
             check_every: int = CHECK_EVERY) -> tuple[Any, int]:
        """Advance ``u`` by the solver's ``dt_min`` with one backward-Euler step (see :func:`backward_euler_step`).

        ``rtol`` and ``check_every`` are :meth:`solve`'s: the stopping rule of the step's solve, warm-started
        from ``u``.

        Returns:
            ``(u_new, iterations)``: a new field (dtype of ``u``) and the CG iterations used.
        """
        if self.dt_min is None:
            raise ValueError("this solver has no time step: create it with dt_min to take steps")
        source = self.solver_kernels.step_source(self.xp, u, self.dt_min, source_per_min, self.threads)
        return self.solve(u, source, rtol=rtol, check_every=check_every)


def steady_state(
    xp: ModuleType,
    u_guess: Any,
    params: FieldParameters,
    sink_per_min: Any = 0.0,
    source_per_min: Any = 0.0,
    rtol: float = 1e-6,
    max_iterations: int = 500,
    *,
    check_every: int = CHECK_EVERY,
    replayable: Callable[..., Callable[[], Any]] = uncaptured,
) -> tuple[Any, int]:
    """Solve ``D laplacian(u) - (decay + sink) u + source = 0`` by multigrid-preconditioned CG.

    The preconditioner is one V-cycle of cell-centred geometric multigrid:
    blocks of 2^ndim voxels (odd extents end in a block of one), damped
    Jacobi smoothing, piecewise-constant transfers, a dense exact solve on
    the coarsest level (at most :data:`COARSEST_CELLS` cells). It is symmetric
    and positive definite, so CG stays valid; iterations barely grow with
    the lattice size. One solve of a :class:`FieldSolver` built for it.

    Args:
        xp: array module.
        u_guess: starting field (its shape and dtype are those of the result).
        params: the field's parameters; ``decay + sink`` must be positive somewhere
            or a face fixed, else the problem has no unique solution.
        sink_per_min: per-voxel first-order loss (scalar or array), 1/min.
        source_per_min: per-voxel production (scalar or array), field units / min.
        rtol: stop when the preconditioned residual is at most ``rtol`` times the field's largest
            magnitude in every voxel (:meth:`FieldSolver.solve`).
        max_iterations: CG iterations before :class:`FieldSolverError`.
        check_every: iterations between tests of the stopping rule (:meth:`FieldSolver.solve`).
        replayable: the ``replayable`` operation (see :class:`FieldSolver`).

    Returns:
        ``(u, iterations)``: the field (dtype of ``u_guess``) and the CG iterations used.
    """
    return FieldSolver(xp, u_guess.shape, params, sink_per_min, replayable=replayable).solve(
        u_guess, source_per_min, rtol, max_iterations, check_every)


def backward_euler_step(
    xp: ModuleType,
    u: Any,
    dt_min: float,
    params: FieldParameters,
    sink_per_min: Any = 0.0,
    source_per_min: Any = 0.0,
    rtol: float = 1e-6,
    *,
    check_every: int = CHECK_EVERY,
    replayable: Callable[..., Callable[[], Any]] = uncaptured,
) -> tuple[Any, int]:
    """Advance one field by ``dt_min`` minutes with one backward-Euler step, solved by :func:`steady_state`.

    ``u_new`` solves ``D lap u_new - (decay + sink + 1/dt) u_new + source + u/dt = 0``:
    the steady problem with ``1/dt`` added to the decay and ``u/dt`` to the
    source, warm-started from ``u``. Unlike the split step, nothing is split,
    so its fixed point is the steady state at any ``dt``. Several steps with
    the same sink and ``dt_min`` should share one :class:`FieldSolver` (its
    :meth:`FieldSolver.step`) rather than call this, which builds one each time.

    Args:
        xp: array module.
        u: field, float32 or float64, shape ``(ny, nx)`` or ``(nz, ny, nx)``.
        dt_min: time step in minutes (> 0).
        params: the field's parameters.
        sink_per_min: per-voxel first-order loss (scalar or array of ``u.shape``), 1/min.
        source_per_min: per-voxel production (scalar or array), field units / min.
        rtol: tolerance of the step's solve: its preconditioned residual at most ``rtol`` times the new
            field's largest magnitude in every voxel (:meth:`FieldSolver.solve`).
        check_every: iterations between tests of the stopping rule (:meth:`FieldSolver.solve`).
        replayable: the ``replayable`` operation (see :class:`FieldSolver`).

    Returns:
        ``(u_new, iterations)``: the field (dtype of ``u``) and the CG iterations used.
    """
    return FieldSolver(xp, u.shape, params, sink_per_min, dt_min, replayable=replayable).step(
        u, source_per_min, rtol, check_every)
