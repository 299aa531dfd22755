"""The field solver against analytic solutions, with observed convergence orders.

Each check states its tolerance per dtype. Reference solutions are from
../shared/reference/parameters.md (slab, point sources, BioFVM convergence
test 1, conservation, decay). Lattices are kept small so that the module runs
in a few seconds on two CPU cores.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import k0

from kernels.diffusion import FieldParameters, backward_euler_step, implicit_step, steady_state
from tests.conftest import to_host

D = 1.0e5  # um^2/min, oxygen [PCi]
DX = 20.0  # um
TOLERANCE = {"float32": 2e-4, "float64": 1e-6}  # solver-level: rtol of the steady solve, round-off of sums


def centres(n: int, dx: float = DX) -> np.ndarray:
    return (np.arange(n) + 0.5) * dx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_slab_matches_cosh_profile(xp, dtype):
    """1-D slab, u0 at x = 0, no flux at x = L: u = u0 cosh((L - x)/l) / cosh(L/l); l = 100 um.

    Steady solver, dx = l/5: within 0.5 % of u0 (the discretisation error dominates, so
    float32 and float64 share the tolerance).
    """
    n, u0, length_um = 60, 38.0, 60 * DX
    params = FieldParameters(D, D / 100.0**2, DX, ((None, None), (u0, None)))
    guess = xp.zeros((3, n), dtype=getattr(xp, dtype))
    steady, _ = steady_state(xp, guess, params, rtol=1e-9)
    x = centres(n)
    expected = u0 * np.cosh((length_um - x) / 100.0) / np.cosh(length_um / 100.0)
    assert steady.dtype == guess.dtype
    assert np.abs(to_host(steady)[1] - expected).max() < 5e-3 * u0


@pytest.mark.parametrize("dt", [0.02, 5.0, 60.0])
def test_backward_euler_equilibrium_is_the_steady_state_at_any_dt(xp, dt):
    """Stepped to equilibrium (decay = 10/min, so decay * dt up to 600), the backward-Euler solver
    lands on the steady solver's answer to the solve tolerance, where the split scheme misses it by
    about decay * dt (next test)."""
    n, u0 = 60, 38.0
    params = FieldParameters(D, D / 100.0**2, DX, ((None, None), (u0, None)))
    steady, _ = steady_state(xp, xp.zeros((3, n)), params, rtol=1e-10)
    u = xp.zeros((3, n))
    for _ in range(max(10, round(2.0 / dt))):
        u, _ = backward_euler_step(xp, u, dt, params, rtol=1e-10)
    assert float(np.abs(to_host(u) - to_host(steady)).max()) < 1e-7 * u0


def test_transient_equilibrium_error_is_first_order_in_dt(xp):
    """The split scheme (reaction, then diffusion) does not keep the exact steady state: stepped
    to equilibrium, it misses the steady solver's answer by about decay * dt relative (here
    decay = 10/min), and halving dt halves that (observed order 0.9 to 1.1)."""
    n, u0 = 60, 38.0
    params = FieldParameters(D, D / 100.0**2, DX, ((None, None), (u0, None)))
    steady, _ = steady_state(xp, xp.zeros((3, n)), params, rtol=1e-10)
    errors = []
    for dt in (0.02, 0.01, 0.005):
        u = xp.zeros((3, n))
        for _ in range(round(2.0 / dt)):
            u = implicit_step(xp, u, dt, params)
        errors.append(float(np.abs(to_host(u) - to_host(steady)).max()) / u0)
    assert errors[0] < 10.0 * 0.02
    assert all(0.9 < order < 1.1 for order in observed_orders(errors)), errors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_point_source_3d(xp, dtype):
    """Source S in one voxel, decay with l = 100 um: u = S exp(-r/l) / (4 pi D r) within 3 % for r in [5, 10] dx
    (nearer the source voxel the lattice Green's function departs from 1/r: 11 % at 2 dx)."""
    n, strength, length = 41, 1.0e6, 100.0
    params = FieldParameters(D, D / length**2, DX, ((0.0, 0.0),) * 3)
    source = np.zeros((n, n, n))
    source[n // 2, n // 2, n // 2] = strength / DX**3
    u, _ = steady_state(xp, xp.zeros((n, n, n), dtype=getattr(xp, dtype)), params, 0.0, xp.asarray(source), rtol=1e-8)
    r = np.arange(5, 11) * DX
    expected = strength * np.exp(-r / length) / (4 * math.pi * D * r)
    observed = to_host(u)[n // 2, n // 2, n // 2 + np.arange(5, 11)]
    np.testing.assert_allclose(observed, expected, rtol=0.03)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_point_source_2d(xp, dtype):
    """Line source S per um of depth, l = 100 um: u = S K0(r/l) / (2 pi D) within 3 % for r in [2, 10] dx."""
    n, strength, length = 81, 1.0e4, 100.0
    params = FieldParameters(D, D / length**2, DX, ((0.0, 0.0),) * 2)
    source = np.zeros((n, n))
    source[n // 2, n // 2] = strength / DX**2
    u, _ = steady_state(xp, xp.zeros((n, n), dtype=getattr(xp, dtype)), params, 0.0, xp.asarray(source), rtol=1e-8)
    r = np.arange(2, 11) * DX
    expected = strength * k0(r / length) / (2 * math.pi * D)
    np.testing.assert_allclose(to_host(u)[n // 2, n // 2 + np.arange(2, 11)], expected, rtol=0.03)


def biofvm_test1_error(xp, n: int, dt_min: float, t_end_min: float = 0.1, dtype: str = "float64",
                       solver: str = "transient_lod") -> float:
    """Max error of BioFVM convergence test 1 on ``n`` voxels over L0 = 500 um at ``t_end_min``.

    u = 1 + cos(pi x / L0) exp(-D pi^2 t / L0^2), D = 1e5 um^2/min, no-flux faces,
    on a (2, n) lattice (uniform across its two rows).
    """
    length = 500.0
    dx = length / n
    x = centres(n, dx)
    params = FieldParameters(D, 0.0, dx, ((None, None), (None, None)))
    u = xp.asarray(np.tile(1.0 + np.cos(np.pi * x / length), (2, 1)), dtype=getattr(xp, dtype))
    steps = round(t_end_min / dt_min)
    for _ in range(steps):
        if solver == "transient":
            u, _ = backward_euler_step(xp, u, dt_min, params, rtol=1e-12)
        else:
            u = implicit_step(xp, u, dt_min, params)
    exact = 1.0 + np.cos(np.pi * x / length) * np.exp(-D * np.pi**2 * steps * dt_min / length**2)
    return float(np.abs(to_host(u) - exact).max())


def observed_orders(errors: list[float]) -> list[float]:
    """log2 of successive error ratios (the step halves each time)."""
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


@pytest.mark.parametrize("solver", ["transient", "transient_lod"])
def test_biofvm_convergence_first_order_in_dt(xp, solver):
    """dx = 2.5 um (spatial error ~1e-5), dt = 0.01, 0.005, 0.0025 min: observed order 0.9 to 1.1."""
    errors = [biofvm_test1_error(xp, 200, dt, solver=solver) for dt in (0.01, 0.005, 0.0025)]
    assert all(0.9 < order < 1.1 for order in observed_orders(errors)), errors


def test_biofvm_convergence_second_order_in_dx(xp):
    """dx = 20, 10, 5 um with dt = 4e-4 (dx/20)^2 min (both error terms ~dx^2): observed order 1.85 to 2.15."""
    errors = [biofvm_test1_error(xp, n, 4e-4 * (500.0 / n / 20.0) ** 2) for n in (25, 50, 100)]
    assert all(1.85 < order < 2.15 for order in observed_orders(errors)), errors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pure_diffusion_with_no_flux_conserves_mass(xp, dtype):
    """A random field, no-flux faces, no decay, long steps: the total stays to round-off.

    Tolerance (relative, total summed in float64): float64 1e-11, float32 1e-6 (a few
    ulps per voxel update over 10 steps of 3 sweeps).
    """
    rng = np.random.default_rng(3)
    u = xp.asarray(rng.random((12, 14, 16)), dtype=getattr(xp, dtype))
    params = FieldParameters(D, 0.0, DX, ((None, None),) * 3)
    total = float(to_host(u).astype(np.float64).sum())
    for _ in range(10):
        u = implicit_step(xp, u, 5.0, params)
    relative = abs(float(to_host(u).astype(np.float64).sum()) - total) / total
    assert relative < {"float32": 1e-6, "float64": 1e-11}[dtype]
    assert float(to_host(u).std()) < 1e-3  # and it has mixed


def test_backward_euler_conserves_mass_to_the_solve_tolerance(xp):
    """No-flux faces, no decay, long steps: the total moves by at most the CG tolerance (each voxel
    within about rtol 1e-10 of the field's largest value), and the field mixes."""
    rng = np.random.default_rng(3)
    u = xp.asarray(rng.random((12, 14, 16)))
    params = FieldParameters(D, 0.0, DX, ((None, None),) * 3)
    total = float(to_host(u).sum())
    for _ in range(10):
        u, _ = backward_euler_step(xp, u, 5.0, params, rtol=1e-10)
    assert abs(float(to_host(u).sum()) - total) / total < 1e-8
    assert float(to_host(u).std()) < 1e-3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pure_decay(xp, dtype):
    """Backward Euler gives exactly (1 + lambda dt)^-n (to round-off: float64 1e-12, float32 1e-4
    after 200 steps), which tends to
    exp(-lambda t) with relative error about lambda^2 t dt / 2 (first order in dt)."""
    decay, t_end = 0.1, 20.0
    params = FieldParameters(D, decay, DX, ((None, None),) * 2)
    for dt in (1.0, 0.1):
        u = xp.full((8, 8), 2.0, dtype=getattr(xp, dtype))
        steps = round(t_end / dt)
        for _ in range(steps):
            u = implicit_step(xp, u, dt, params)
        value = to_host(u)
        np.testing.assert_allclose(value, 2.0 * (1 + decay * dt) ** -steps, rtol={"float32": 1e-4, "float64": 1e-12}[dtype])
        relative = abs(value[0, 0] / (2.0 * math.exp(-decay * t_end)) - 1)
        assert relative < decay**2 * t_end * dt / 2 * 1.2
