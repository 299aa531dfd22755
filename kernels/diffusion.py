"""Implicit reaction-diffusion solver for the substrate fields.

Each field ``u`` (shape ``(ny, nx)`` or ``(nz, ny, nx)``, voxel edge ``dx_um``)
obeys, in finite-volume form with cell-centred values,

    du/dt = D * laplacian(u) - (decay + sink(x)) * u + source(x)

with ``D`` in um^2/min, ``decay`` and ``sink`` in 1/min, ``source`` in field
units per min. ``sink`` and ``source`` carry the cells and vessels: uptake by
cells adds to ``sink``; a vessel that exchanges with blood at level ``b`` with
rate ``S`` adds ``S`` to ``sink`` and ``S * b`` to ``source``.

Each domain face is either no-flux or held at a fixed value. A fixed face sits
half a voxel beyond the outer voxel centres, so its flux is
``D * (value - u_edge) / (dx / 2)``.

Two solvers, both written once against ``xp``:

* :func:`implicit_step` advances by ``dt``: a point-implicit reaction step, then
  locally one-dimensional (LOD) backward-Euler diffusion, one batched
  tridiagonal (Thomas) solve per grid line, axis after axis, as BioFVM does.
  It is unconditionally stable and first order in ``dt``.
* :func:`steady_state` solves the equilibrium ``du/dt = 0`` by Jacobi
  preconditioned conjugate gradients (the operator is symmetric positive
  definite), warm-started from the current field. Used for fast substrates
  such as oxygen, whose equilibration time (minutes) is far below the cell step.

Working memory: :func:`implicit_step` needs one extra copy of the field per
axis sweep; :func:`steady_state` works in float64 with five field-sized arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any


class FieldSolverError(RuntimeError):
    """The steady-state solve did not converge."""


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


@lru_cache(maxsize=256)
def _thomas_coefficients(n: int, r: float, low_fixed: bool, high_fixed: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Forward-sweep factors of the constant tridiagonal system of one grid line.

    The system is ``-r u[i-1] + b_i u[i] - r u[i+1] = d_i`` with
    ``b_i = 1 + r * (neighbours inside the line) + 2 r * (fixed faces touched)``.

    Returns:
        ``(inverse_denominators, upper_factors)``: ``1 / b'_i`` and ``r / b'_i``
        per position, as Python floats.
    """
    inverse: list[float] = []
    upper: list[float] = []
    previous_upper = 0.0
    for i in range(n):
        neighbours = (i > 0) + (i < n - 1)
        fixed = (i == 0 and low_fixed) + (i == n - 1 and high_fixed)
        diagonal = 1.0 + r * neighbours + 2.0 * r * fixed
        denominator = diagonal - r * previous_upper
        inverse.append(1.0 / denominator)
        previous_upper = r / denominator
        upper.append(previous_upper)
    return tuple(inverse), tuple(upper)


def _diffuse_axis(xp: ModuleType, u: Any, axis: int, r: float, low: float | None, high: float | None) -> Any:
    """One backward-Euler diffusion solve along ``axis`` for every grid line at once.

    The loop runs over positions along the axis (the Thomas recurrence is
    sequential there); each iteration updates a whole plane of lines.
    """
    n = u.shape[axis]
    work = xp.ascontiguousarray(xp.moveaxis(u, axis, 0))
    if low is not None:
        work[0] += 2.0 * r * low
    if high is not None:
        work[n - 1] += 2.0 * r * high
    inverse, upper = _thomas_coefficients(n, float(r), low is not None, high is not None)
    work[0] *= inverse[0]
    for i in range(1, n):
        work[i] += r * work[i - 1]
        work[i] *= inverse[i]
    for i in range(n - 2, -1, -1):
        work[i] += upper[i] * work[i + 1]
    return xp.moveaxis(work, 0, axis)


def implicit_step(xp: ModuleType, u: Any, dt_min: float, params: FieldParameters, sink_per_min: Any = 0.0, source_per_min: Any = 0.0) -> Any:
    """Advance a field by ``dt_min`` minutes (reactions, then LOD diffusion).

    Args:
        xp: array module.
        u: field, float32 or float64, shape ``(ny, nx)`` or ``(nz, ny, nx)``.
        dt_min: time step in minutes (> 0); any size is stable.
        params: the field's parameters.
        sink_per_min: per-voxel first-order loss rate (scalar or array of ``u.shape``), 1/min.
        source_per_min: per-voxel production (scalar or array), field units / min.

    Returns:
        The new field, same shape and dtype as ``u``.
    """
    dtype = u.dtype
    u = (u + dt_min * source_per_min) / (1.0 + dt_min * (params.decay_per_min + sink_per_min))
    u = u.astype(dtype, copy=False)
    r = dt_min * params.diffusion_um2_per_min / params.dx_um**2
    if r > 0.0:
        for axis, (low, high) in enumerate(params.faces):
            u = _diffuse_axis(xp, u, axis, r, low, high)
    return xp.ascontiguousarray(u)


def _neighbour_sum(xp: ModuleType, v: Any) -> Any:
    """Sum of each voxel's face neighbours that lie inside the domain."""
    total = xp.zeros_like(v)
    for axis in range(v.ndim):
        low = [slice(None)] * v.ndim
        high = [slice(None)] * v.ndim
        low[axis] = slice(0, -1)
        high[axis] = slice(1, None)
        total[tuple(low)] += v[tuple(high)]
        total[tuple(high)] += v[tuple(low)]
    return total


def _face_slice(ndim: int, axis: int, high: bool) -> tuple[slice | int, ...]:
    index: list[slice | int] = [slice(None)] * ndim
    index[axis] = -1 if high else 0
    return tuple(index)


def _fixed_face_count(xp: ModuleType, shape: tuple[int, ...], params: FieldParameters) -> Any:
    """Number of fixed-value faces each voxel touches (0 inside the domain)."""
    count = xp.zeros(shape, dtype=xp.float64)
    for axis, ends in enumerate(params.faces):
        for high, value in zip((False, True), ends):
            if value is not None:
                count[_face_slice(len(shape), axis, high)] += 1.0
    return count


def _fixed_face_source(xp: ModuleType, shape: tuple[int, ...], params: FieldParameters) -> Any:
    """Right-hand side contributed by fixed-value faces: ``2 D value / dx^2`` on the edge voxels."""
    coefficient = 2.0 * params.diffusion_um2_per_min / params.dx_um**2
    rhs = xp.zeros(shape, dtype=xp.float64)
    for axis, ends in enumerate(params.faces):
        for high, value in zip((False, True), ends):
            if value is not None:
                rhs[_face_slice(len(shape), axis, high)] += coefficient * value
    return rhs


def steady_state(
    xp: ModuleType,
    u_guess: Any,
    params: FieldParameters,
    sink_per_min: Any = 0.0,
    source_per_min: Any = 0.0,
    rtol: float = 1e-6,
    max_iterations: int = 5000,
) -> tuple[Any, int]:
    """Solve ``D laplacian(u) - (decay + sink) u + source = 0`` by preconditioned CG.

    Args:
        xp: array module.
        u_guess: starting field (its shape and dtype are those of the result).
        params: the field's parameters; ``decay + sink`` must be positive somewhere
            or a face fixed, else the problem has no unique solution.
        sink_per_min: per-voxel first-order loss (scalar or array), 1/min.
        source_per_min: per-voxel production (scalar or array), field units / min.
        rtol: stop when ``|residual| <= rtol * |right-hand side|`` (2-norms).
        max_iterations: CG iterations before :class:`FieldSolverError`.

    Returns:
        ``(u, iterations)``: the field (dtype of ``u_guess``) and the CG iterations used.
    """
    shape = u_guess.shape
    coupling = params.diffusion_um2_per_min / params.dx_um**2
    neighbours = xp.zeros(shape, dtype=xp.float64)
    for axis, extent in enumerate(shape):
        if extent > 1:
            neighbours += 2.0
            neighbours[_face_slice(len(shape), axis, False)] -= 1.0
            neighbours[_face_slice(len(shape), axis, True)] -= 1.0
    fixed_count = _fixed_face_count(xp, shape, params)
    diagonal = (params.decay_per_min + xp.asarray(sink_per_min, dtype=xp.float64)
                + coupling * (neighbours + 2.0 * fixed_count))
    diagonal = xp.broadcast_to(diagonal, shape)
    inverse_diagonal = 1.0 / diagonal
    rhs = _fixed_face_source(xp, shape, params) + xp.asarray(source_per_min, dtype=xp.float64)

    def apply(v: Any) -> Any:
        return diagonal * v - coupling * _neighbour_sum(xp, v)

    rhs_norm = float(xp.sqrt(xp.vdot(rhs, rhs)))
    if rhs_norm == 0.0:
        return xp.zeros_like(u_guess), 0
    u = u_guess.astype(xp.float64)
    residual = rhs - apply(u)
    z = inverse_diagonal * residual
    direction = z.copy()
    rz = xp.vdot(residual, z)
    tolerance = rtol * rhs_norm
    for iteration in range(1, max_iterations + 1):
        a_direction = apply(direction)
        alpha = rz / xp.vdot(direction, a_direction)
        u += alpha * direction
        residual -= alpha * a_direction
        if iteration % 4 == 0 and float(xp.sqrt(xp.vdot(residual, residual))) <= tolerance:
            return u.astype(u_guess.dtype), iteration
        z = inverse_diagonal * residual
        rz_next = xp.vdot(residual, z)
        direction = z + (rz_next / rz) * direction
        rz = rz_next
    raise FieldSolverError(
        f"steady-state field solve did not reach rtol={rtol} in {max_iterations} iterations"
    )
