"""Field solver and field config: multigrid steady state, batched sweeps, presets, bad input."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from abm.config import FIELD_PRESETS, ConfigError, load_config, parse_config
from abm.model import TumorModel
from kernels import accelerated, backend, diffusion
from kernels.backend import get_backend
from kernels.cuda import graphs as cuda_graphs
from kernels.diffusion import FieldParameters, implicit_step, implicit_step_many, steady_state
from tests.conftest import to_host


def residual_norm(u, params, sink, source):
    """|D lap u - (decay + sink) u + source| / |rhs| on the host, float64, with the fixed-face terms."""
    fine, rhs = diffusion._fine_level(np, u.shape, params, sink)
    rhs = rhs + source
    return np.linalg.norm(rhs - fine.apply(np, u.astype(np.float64))) / np.linalg.norm(rhs)


@pytest.mark.parametrize("shape", [(64, 64, 64), (33, 17, 9), (5, 7, 9), (48, 48), (1, 40), (201, 3)])
def test_multigrid_steady_state_converges_in_few_iterations(xp, shape):
    """Uptake by a random 30 % of voxels (10/min) in oxygen-like tissue, odd and flat lattices:
    the residual meets rtol and the V-cycle-preconditioned CG needs at most 15 iterations (Jacobi-preconditioned CG needed 70-100 on 64^3)."""
    rng = np.random.default_rng(5)
    sink = 10.0 * (rng.random(shape) < 0.3)
    faces = tuple((38.0, None) if axis % 2 else (None, 38.0) for axis in range(len(shape)))
    params = FieldParameters(1.0e5, 0.1, 20.0, faces)
    u, iterations = steady_state(xp, xp.zeros(shape, dtype=xp.float64), params, xp.asarray(sink), 0.0, rtol=1e-8)
    assert iterations <= 15
    assert residual_norm(to_host(u), params, sink, 0.0) <= 1e-8


def test_steady_state_warm_start_and_zero_rhs(xp):
    params = FieldParameters(1.0e5, 0.1, 20.0, ((1.0, 1.0), (1.0, 1.0)))
    u, _ = steady_state(xp, xp.zeros((20, 20), dtype=xp.float32), params)
    again, iterations = steady_state(xp, u, params)
    assert iterations == 0 and again.dtype == xp.float32
    zero, iterations = steady_state(xp, u, FieldParameters(1.0e5, 0.1, 20.0, ((None, None), (None, None))))
    assert iterations == 0 and float(abs(zero).max()) == 0.0


# --------------------------------------------------------------------------- stopping rule: stiff regions

#: A vessel's exchange rate (1/min) so stiff that the vessel voxels hold the blood level (the issue's case).
STIFF_EXCHANGE_PER_MIN = 1.0e6


def stiff_vessels(xp, mask, params, blood_level, start, rtol=1e-6, check_every=diffusion.CHECK_EVERY):
    """Steady solve with vessel voxels ``mask`` exchanging at STIFF_EXCHANGE_PER_MIN with blood at ``blood_level``,
    from a uniform field ``start`` (float64): ``(field on the host, iterations)``."""
    rate = STIFF_EXCHANGE_PER_MIN * mask
    u, iterations = steady_state(xp, xp.full(mask.shape, start, dtype=xp.float64), params, xp.asarray(rate),
                                 xp.asarray(rate * blood_level), rtol=rtol, check_every=check_every)
    return to_host(u), iterations


def vessel_slabs(nx=96, thickness=24, length_um=400.0):
    """Two vessel slabs, ``thickness`` voxel planes at each end of the x axis of a (8, 8, nx) lattice (half its volume),
    and tissue with uptake D / length^2 between: ``(mask, params)`` (D 1e5 um^2/min, dx 20 um, no-flux faces)."""
    x = np.arange(nx)
    mask = np.broadcast_to((x < thickness) | (x >= nx - thickness), (8, 8, nx)).astype(np.float64)
    return mask, FieldParameters(1.0e5, 1.0e5 / length_um**2, 20.0, ((None, None),) * 3)


def vessel_shell(n=40, radius_voxels=15, length_um=400.0):
    """Vessel voxels everywhere beyond ``radius_voxels`` of the centre of an n^3 lattice (78 % of it), tissue with
    uptake D / length^2 inside: ``(mask, params, r)``, r the distance of each voxel centre from the centre, um."""
    r = np.sqrt(((np.indices((n,) * 3) - (n - 1) / 2.0) ** 2).sum(axis=0)) * 20.0
    mask = (r > radius_voxels * 20.0).astype(np.float64)
    return mask, FieldParameters(1.0e5, 1.0e5 / length_um**2, 20.0, ((None, None),) * 3), r


@pytest.mark.parametrize("start", [1.0, 0.0])
def test_stiff_vessel_slabs_do_not_stop_the_solve_early(xp, start):
    """Vessels exchanging at q = 1e6/min with blood at b = 1 fill half the lattice (two slabs); between them tissue
    takes up at k = D / L^2 (L = 400 um). The vessel voxels hold b, so the tissue between obeys
    D c'' = k c with c = b at the last vessel voxels' centres, x = x_mid +- h:

        c(x) = b cosh((x - x_mid) / L) / cosh(h / L)

    (0.54 b in the middle). The former stopping rule (residual 2-norm against the right-hand side's, which the
    vessels' q b dominate) returned the start b after 0 iterations (0.46 b too high in the middle), and from zero
    stopped after 3 iterations 0.0035 b off, beyond the tolerance below.

    Tolerance, from the problem's own numbers: the discrete problem's exact solution is the same cosh with
    (x - x_mid) / L replaced by i theta, cosh theta = 1 + k dx^2 / (2 D) (5.8e-5 b from the formula here); the
    vessel voxels sit below b by at most (D/dx^2 + k) b / q (2.5e-4 b: their exchange against the diffusive leak);
    the solve's own error is rtol = 1e-6 of the field. Their sum is 3.1e-4 b."""
    mask, params = vessel_slabs()
    blood = 1.0
    u, iterations = stiff_vessels(xp, mask, params, blood, start)
    nx, thickness = mask.shape[-1], 24
    x = np.arange(nx)
    middle, length = (nx - 1) / 2.0, math.sqrt(params.diffusion_um2_per_min / params.decay_per_min)
    half_gap = (middle - (thickness - 1)) * params.dx_um
    analytic = blood * np.cosh((x - middle) * params.dx_um / length) / math.cosh(half_gap / length)
    coupling = params.diffusion_um2_per_min / params.dx_um**2
    theta = math.acosh(1.0 + params.decay_per_min / (2.0 * coupling))
    discrete = blood * np.cosh((x - middle) * theta) / math.cosh((middle - (thickness - 1)) * theta)
    gap = slice(thickness, nx - thickness)
    tolerance = (np.abs(discrete - analytic)[gap].max() + (coupling + params.decay_per_min) / STIFF_EXCHANGE_PER_MIN
                 * blood + 1e-6 * blood)
    assert tolerance < 4e-4 * blood
    error = np.abs(u[..., gap] - analytic[gap]).max()
    assert error <= tolerance, (error, tolerance, iterations)
    assert iterations > 0


@pytest.mark.parametrize("start", [1.0, 0.0])
def test_stiff_vessel_shell_does_not_stop_the_solve_early(xp, start):
    """The issue's case: vessels exchanging at q = 1e6/min with blood at b = 1 fill the lattice (40^3) beyond a
    radius R = 15 voxels (78 % of the volume); inside, tissue takes up at k = D / L^2 (L = 400 um). The vessel
    voxels hold b, so inside c solves D lap c = k c with c = b on the shell:

        c(r) = b (R / r) sinh(r / L) / sinh(R / L),   c(0) = b (R / L) / sinh(R / L)

    The former stopping rule returned the start b after 0 iterations from it: the centre 10 % too high (1 instead
    of 0.91 b), and from zero it stopped outside the bounds below too.

    Tolerance: the shell is a staircase of voxels, and the vessel voxel centres nearest the tissue lie between R
    and R + dx from the centre, so (comparison principle: a larger Dirichlet ball gives a lower field inside) the
    field inside r < R - dx lies between the formula for radii R + dx and R (1.1 % of b apart at the centre),
    within a margin of 1e-3 b for the second-order discretisation error, the vessels' leak ((D/dx^2 + k) b / q
    = 2.5e-4 b) and the solve's rtol."""
    mask, params, r = vessel_shell()
    blood, radius = 1.0, 15 * params.dx_um
    u, iterations = stiff_vessels(xp, mask, params, blood, start)
    length = math.sqrt(params.diffusion_um2_per_min / params.decay_per_min)
    inside = r < radius - params.dx_um

    def analytic(shell_um):
        x = np.maximum(r[inside], 1e-9) / length
        return blood * (shell_um / length) * np.sinh(x) / (x * math.sinh(shell_um / length))

    margin = 1e-3 * blood
    values = u[inside]
    assert (values <= analytic(radius) + margin).all() and (values >= analytic(radius + params.dx_um) - margin).all()
    assert iterations > 0


@pytest.mark.parametrize("case", ["slabs", "shell", "random uptake"])
def test_stopping_rule_bounds_the_error_in_every_voxel_whatever_check_every(xp, case):
    """The stopping rule ``max |M r| <= rtol max |u|`` promises every voxel within about rtol of the field's
    largest value: against a solve at rtol 1e-12, the error is at most 3 rtol max |u| (the V-cycle's estimate
    M r of the error was within a factor 2 of the true error in these cases), from b and from zero, stiff vessels
    or not. Checking every k iterations stops at the first multiple of k at or after the iteration where checking
    every iteration stops, with the same iterates (same bits where that is the same iteration)."""
    rng = np.random.default_rng(41)
    if case == "slabs":
        mask, params = vessel_slabs()
    elif case == "shell":
        mask, params, _ = vessel_shell(n=32, radius_voxels=12)
    else:
        mask = None
        shape = (33, 17, 20)
        sink = 10.0 * (rng.random(shape) < 0.3)
        params = FieldParameters(1.0e5, 0.1, 20.0, ((38.0, None), (None, 38.0), (None, None)))
    for start in (1.0, 0.0):
        if mask is not None:
            exact, _ = stiff_vessels(xp, mask, params, 1.0, start, rtol=1e-12)
        else:
            exact = to_host(steady_state(xp, xp.full(shape, start), params, xp.asarray(sink), rtol=1e-12)[0])
        first = None
        for check_every in (1, 2, 3, 5):
            if mask is not None:
                u, iterations = stiff_vessels(xp, mask, params, 1.0, start, check_every=check_every)
            else:
                u, iterations = steady_state(xp, xp.full(shape, start), params, xp.asarray(sink),
                                             check_every=check_every)
                u = to_host(u)
            assert np.abs(u - exact).max() <= 3e-6 * np.abs(exact).max(), (check_every, iterations)
            if first is None:
                first = (u, iterations)
                continue
            assert iterations == -(-first[1] // check_every) * check_every
            if iterations == first[1]:
                np.testing.assert_array_equal(u, first[0])


def reference_cycle(levels, inverse, r, depth=0):
    """The V-cycle written plainly (recursive, float64, fresh arrays), as the multigrid's docstring states it."""
    if depth == len(levels) - 1:
        return (inverse @ r.reshape(-1)).reshape(r.shape)
    level = levels[depth]
    weighted_inverse = diffusion.JACOBI_WEIGHT / level.diagonal
    v = weighted_inverse * r
    for _ in range(diffusion.SMOOTHING_SWEEPS - 1):
        v = v + weighted_inverse * (r - level.apply(np, v))
    coarse = reference_cycle(levels, inverse, diffusion._pair_sum(np, r - level.apply(np, v), range(r.ndim)), depth + 1)
    for axis in range(r.ndim):
        coarse = np.repeat(coarse, 2, axis=axis)
    v = v + coarse[tuple(slice(0, extent) for extent in r.shape)]
    for _ in range(diffusion.SMOOTHING_SWEEPS):
        v = v + weighted_inverse * (r - level.apply(np, v))
    return v


@pytest.mark.parametrize("shape", [(40, 24, 16), (33, 17, 9), (7, 30), (1, 300), (301,), (3, 5, 7)])
def test_v_cycle_matches_the_plain_recursive_cycle(xp, shape):
    """The V-cycle as a fixed list of calls on padded work arrays (odd extents included) gives the plain cycle's result."""
    rng = np.random.default_rng(3)
    sink = 10.0 * (rng.random(shape) < 0.3)
    faces = tuple((38.0, None) if axis % 2 else (None, 1.0) for axis in range(len(shape)))
    params = FieldParameters(1.0e4, 0.1, 20.0, faces)
    levels = [diffusion._fine_level(np, shape, params, sink)[0]]
    while np.prod(levels[-1].shape) > diffusion.COARSEST_CELLS and max(levels[-1].shape) > 1:
        levels.append(diffusion._coarsen(np, levels[-1]))
    cells = int(np.prod(levels[-1].shape))
    identity = np.eye(cells).reshape((cells, *levels[-1].shape))
    inverse = np.linalg.inv(levels[-1].apply(np, identity).reshape(cells, cells))
    r = rng.standard_normal(shape)
    expected = reference_cycle(levels, inverse, r / np.linalg.norm(r)) * np.linalg.norm(r)
    multigrid = diffusion._Multigrid(xp, diffusion._fine_level(xp, shape, params, xp.asarray(sink))[0])
    out = xp.empty(shape, dtype=xp.float64)
    for _ in range(2):  # a second cycle on the same work arrays gives the same result
        multigrid.precondition(xp.asarray(r), float(np.linalg.norm(r)), out)
        np.testing.assert_allclose(to_host(out), expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_captured_v_cycle_and_solve_give_the_uncaptured_bits(xp):
    """On CuPy the V-cycle and the fine operator run as CUDA graphs: the same kernels in the same order as the
    calls one by one, so a cycle, a steady solve and a shared solver's steps give the same bits (and iterations)
    with graphs and without; the graphs were captured, not skipped. On NumPy both paths are the same calls."""
    rng = np.random.default_rng(12)
    cases = []
    for shape in [(40, 24, 16), (33, 17, 9), (64, 64)]:
        sink = xp.asarray(10.0 * (rng.random(shape) < 0.3))
        faces = tuple((38.0, None) if axis % 2 else (None, 1.0) for axis in range(len(shape)))
        params = FieldParameters(1.0e4, 0.1, 20.0, faces)
        r = xp.asarray(rng.standard_normal(shape))
        u = xp.asarray(rng.random(shape), dtype=xp.float32)
        source = xp.asarray(rng.random(shape) * (rng.random(shape) < 0.05))
        cases.append((shape, sink, params, r, u, source))
    results = {}
    for graphs in (False, True):
        replay = accelerated.implementation("replayable", "cuda" if graphs else None)  # uncaptured, or CUDA graphs on CuPy
        outputs = []
        for shape, sink, params, r, u, source in cases:
            multigrid = diffusion._Multigrid(xp, diffusion._fine_level(xp, shape, params, sink)[0], replay)
            for _ in range(3):  # capture, then replays
                out = xp.empty(shape, dtype=xp.float64)
                multigrid.precondition(r, float(xp.linalg.norm(r)), out)
                outputs.append(to_host(out))
            outputs.append(to_host(steady_state(xp, xp.zeros(shape, dtype=xp.float64), params, sink, source,
                                                replayable=replay)[0]))
            solver = diffusion.FieldSolver(xp, shape, params, sink, dt_min=10.0, replayable=replay)
            stepped = u
            for _ in range(3):
                stepped, iterations = solver.step(stepped, source)
                outputs += [to_host(stepped), iterations]
            if xp is not np:
                for replayed in (multigrid.down, multigrid.up, solver._apply):
                    assert isinstance(replayed, cuda_graphs._Replay) == graphs
                    assert not graphs or replayed.graph is not None, replayed.failure
        results[graphs] = outputs
    for uncaptured, captured in zip(results[False], results[True]):
        np.testing.assert_array_equal(captured, uncaptured)


def test_replayable_is_the_function_on_numpy():
    def function():
        return None
    assert get_backend("numpy").operation("replayable")(np, function) is function
    assert cuda_graphs.replayable(np, function) is function


@pytest.mark.gpu
def test_capture_that_allocates_runs_uncaptured():
    """A function that allocates device memory cannot be a graph (the graph would keep a pool block it does not
    own): the capture fails, the function runs uncaptured (twice), then stays so with a warning."""
    cupy = pytest.importorskip("cupy")
    if backend.probe_cupy()[0] is None:
        pytest.skip("no GPU backend")
    target = cupy.zeros(8, dtype=cupy.float32)
    calls = []

    def allocating():
        calls.append(1)
        target[...] = cupy.arange(8, dtype=cupy.float32) + len(calls)

    replay = cuda_graphs.replayable(cupy, allocating)
    replay()
    assert replay.graph is None and replay.failure is not None
    np.testing.assert_array_equal(to_host(target), np.arange(8) + len(calls))
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        replay()
    replay()
    assert replay.graph is None and replay.failed == cuda_graphs._Replay.ATTEMPTS
    np.testing.assert_array_equal(to_host(target), np.arange(8) + len(calls))
    assert float(cupy.arange(4, dtype=cupy.float32).sum()) == 6.0  # the device still works


def test_solver_shared_by_substeps_gives_the_separate_steps(xp):
    """Steps of one FieldSolver (V-cycle built once) equal backward_euler_step calls, each of which builds its own."""
    rng = np.random.default_rng(4)
    shape = (20, 18, 16)
    params = FieldParameters(1.0e4, 6.25e-4, 20.0, ((None, None), (0.0, None), (None, None)))
    sink = xp.asarray(0.1 * (rng.random(shape) < 0.3) + (rng.random(shape) < 0.02))
    source = xp.asarray(rng.random(shape) * (rng.random(shape) < 0.02))
    solver = diffusion.FieldSolver(xp, shape, params, sink, dt_min=10.0)
    shared = separate = xp.asarray(rng.random(shape), dtype=xp.float32)
    for _ in range(3):
        shared, shared_iterations = solver.step(shared, source)
        separate, separate_iterations = diffusion.backward_euler_step(xp, separate, 10.0, params, sink, source)
        assert shared_iterations == separate_iterations > 0 and shared.dtype == xp.float32
        np.testing.assert_allclose(to_host(shared), to_host(separate), rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        solver.step(xp.zeros((4, 4), dtype=xp.float32))
    with pytest.raises(ValueError, match="no time step"):
        diffusion.FieldSolver(xp, shape, params, sink).step(shared)


def test_batched_step_equals_single_steps(xp):
    """A stack of fields with different D, decay and faces gives each field's own step, bit for bit."""
    rng = np.random.default_rng(7)
    shape = (9, 10, 11)
    params = [FieldParameters(1.0e5, 0.1, 20.0, ((38.0, 38.0),) * 3),
              FieldParameters(600.0, 0.003, 20.0, ((None, 1.0), (None, None), (2.0, None))),
              FieldParameters(0.0, 0.016, 20.0, ((None, None),) * 3)]
    stack = xp.asarray(rng.random((3, *shape)), dtype=xp.float32)
    sink = xp.asarray(rng.random(shape))
    source = xp.asarray(rng.random((3, *shape)))
    together = to_host(implicit_step_many(xp, stack, 7.0, params, sink, source))
    for k, p in enumerate(params):
        alone = to_host(implicit_step(xp, stack[k], 7.0, p, sink, source[k]))
        np.testing.assert_array_equal(together[k], alone)


def test_sweeps_do_not_depend_on_thread_count():
    rng = np.random.default_rng(8)
    u = rng.random((2, 17, 18, 19)).astype(np.float32)
    params = [FieldParameters(1.0e5, 0.1, 20.0, ((1.0, None), (None, 2.0), (3.0, 4.0)))] * 2
    results = []
    for threads in (1, 3):
        results.append(implicit_step_many(np, u, 0.5, params, 0.2, 0.3, threads=threads))
    np.testing.assert_array_equal(results[0], results[1])


def test_bad_step_size_is_an_error():
    with pytest.raises(ValueError, match="dt_min"):
        implicit_step(np, np.zeros((4, 4)), 0.0, FieldParameters(1.0, 0.0, 1.0, ((None, None),) * 2))


# --------------------------------------------------------------------------- config


def config_with(fields, shape=(24, 24)):
    return {"lattice": {"shape": list(shape)}, "time": {"duration_days": 1}, "fields": fields}


@pytest.mark.parametrize("key, value, message", [
    ("D_um2_per_min", -1.0, "fields.drug.D_um2_per_min: Input should be greater than or equal to 0"),
    ("decay_per_min", -0.1, "fields.drug.decay_per_min: Input should be greater than or equal to 0"),
    ("dt_min", 0.0, "fields.drug.dt_min: Input should be greater than 0"),
    ("boundary", {"faces": {"z_min": 1.0}}, "fields.drug.boundary.faces.z_min: a 2-D lattice has no z faces"),
    ("preset", "aspirin", "unknown preset 'aspirin'; allowed: oxygen"),
])
def test_bad_field_input_names_the_key(key, value, message):
    fields = {"oxygen": {"preset": "oxygen"}, "drug": {"preset": "chemo_drug", key: value}}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(config_with(fields))


def test_field_name_written_twice_is_rejected(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("lattice: {shape: [24, 24]}\ntime: {duration_days: 1}\nfields:\n"
                    "  oxygen: {preset: oxygen}\n  oxygen: {preset: oxygen, initial: 5.0}\n")
    with pytest.raises(ConfigError, match="line 5.*key 'oxygen' appears twice"):
        load_config(path)


def test_preset_keys_can_be_overridden():
    config = parse_config(config_with({"oxygen": {"preset": "oxygen", "decay_per_min": 0.2}}))
    assert config.fields["oxygen"].decay_per_min == 0.2
    assert config.fields["oxygen"].D_um2_per_min == 1.0e5


def test_every_preset_runs_in_the_model():
    """All substrates at once on a small 2-D lattice: finite, non-negative, secretion shows up in the tumor."""
    fields = {name: {"preset": name} for name in FIELD_PRESETS}
    fields["danger_signal"]["dt_min"] = 7.0
    config = parse_config(config_with(fields))
    model = TumorModel(config, get_backend("numpy"))
    model.step()
    solvers = dict(model.rule("fields").solvers)
    model.step()
    # Steady and transient fields keep their solver across cell steps (its sink updated in place).
    assert solvers and all(model.rule("fields").solvers[name] is solver for name, solver in solvers.items())
    for name, values in model.lattice.fields.items():
        assert np.isfinite(values).all() and (values >= 0).all(), name
    live = model.lattice.tumor.live()
    assert model.lattice.fields["chemokine"][live].mean() > model.lattice.fields["chemokine"][~live].mean()


@pytest.mark.parametrize("scale", [1e-40, 1e38])
def test_steady_state_converges_whatever_the_magnitude(xp, scale):
    """A field below float32's smallest normal (a drug decayed for days: its V-cycle underflowed and CG stalled)
    or near its largest (it overflowed) converges as at scale 1: the float32 V-cycle runs on the normalised residual."""
    rng = np.random.default_rng(11)
    shape = (24, 24, 24)
    sink = xp.asarray(0.1 * (rng.random(shape) < 0.3))
    params = FieldParameters(1.0e4, 0.01, 20.0, ((None, None),) * 3)
    source = rng.random(shape)
    reference, expected_iterations = steady_state(xp, xp.zeros(shape, dtype=xp.float64), params, sink, xp.asarray(source))
    u, iterations = steady_state(xp, xp.zeros(shape, dtype=xp.float64), params, sink, xp.asarray(source * scale))
    assert iterations == expected_iterations
    np.testing.assert_allclose(to_host(u) / scale, to_host(reference), rtol=1e-9)


@pytest.mark.parametrize("shape, dt_min", [((40, 24, 16), None), ((33, 17, 9), 10.0), ((64, 64), None),
                                           ((7, 30), 2.0), ((5, 7, 9), None)])
def test_updated_sink_gives_a_new_solvers_bits(xp, shape, dt_min):
    """A FieldSolver whose sink is replaced in place (update_sink: its arrays, call lists and, on CuPy, CUDA graphs
    kept) gives exactly the solution and CG iterations of a solver built new with that sink, over several sinks,
    including a first sink of 0 (no V-cycle built yet) and odd extents (non-uniform coarse couplings)."""
    rng = np.random.default_rng(21)
    faces = tuple((38.0, None) if axis % 2 else (None, 1.0) for axis in range(len(shape)))
    params = FieldParameters(1.0e4, 0.1, 20.0, faces)
    sinks = [0.0] + [xp.asarray(rate * (rng.random(shape) < 0.3)) for rate in (10.0, 1.0, 30.0)]
    source = xp.asarray(rng.random(shape) * (rng.random(shape) < 0.05))
    replay = accelerated.implementation("replayable", "cuda" if xp is not np else None)  # CUDA graphs on CuPy
    kept = diffusion.FieldSolver(xp, shape, params, sinks[0], dt_min=dt_min, replayable=replay)
    kept_u = fresh_u = xp.asarray(rng.random(shape), dtype=xp.float32)
    for index, sink in enumerate(sinks):
        if index:
            kept.update_sink(sink)
        fresh = diffusion.FieldSolver(xp, shape, params, sink, dt_min=dt_min, replayable=replay)
        for _ in range(2):
            if dt_min is None:
                kept_u, kept_iterations = kept.solve(kept_u, source)
                fresh_u, fresh_iterations = fresh.solve(fresh_u, source)
            else:
                kept_u, kept_iterations = kept.step(kept_u, source)
                fresh_u, fresh_iterations = fresh.step(fresh_u, source)
            assert kept_iterations == fresh_iterations
            np.testing.assert_array_equal(to_host(kept_u), to_host(fresh_u))
        assert kept._multigrid is not None
        for mine, theirs in zip(kept._multigrid.coefficients, fresh._multigrid.coefficients):
            for kept_array, fresh_array in zip(mine, theirs):
                np.testing.assert_array_equal(to_host(kept_array), to_host(fresh_array))
        np.testing.assert_array_equal(to_host(kept._multigrid.inverse), to_host(fresh._multigrid.inverse))
        if xp is not np:
            for replayed in (kept._multigrid.down, kept._multigrid.up, kept._apply):
                if isinstance(replayed, cuda_graphs._Replay):
                    assert replayed.graph is not None, replayed.failure



@pytest.mark.parametrize("shape", [(24, 20, 16), (33, 17, 9), (40, 30)])
def test_solvers_sharing_a_workspace_give_their_own_bits(xp, shape):
    """Solvers of different fields (steady and backward-Euler, other D, decay, faces and sinks) that share one
    Workspace, solved in turn with their sinks updated between rounds, give exactly the solutions and iterations of
    solvers with workspaces of their own, and the shared workspace holds one solver's arrays, not three."""
    rng = np.random.default_rng(5)
    faces = tuple((38.0, None) if axis % 2 else (None, 1.0) for axis in range(len(shape)))
    fields = [(FieldParameters(1.0e5, 0.1, 20.0, faces), None),
              (FieldParameters(1000.0, 0.016, 20.0, ((None, None),) * len(shape)), 60.0),
              (FieldParameters(1.0e4, 1.0, 20.0, ((None, None),) * len(shape)), 20.0)]

    def sink() -> Any:
        return xp.asarray(10.0 * (rng.random(shape) < 0.3))

    sinks = [[sink() for _ in fields] for _ in range(3)]
    sources = [xp.asarray(rng.random(shape) * (rng.random(shape) < 0.1)) for _ in fields]
    shared_workspace = diffusion.Workspace(xp)
    shared = [diffusion.FieldSolver(xp, shape, params, sinks[0][k], dt_min, workspace=shared_workspace)
              for k, (params, dt_min) in enumerate(fields)]
    alone = [diffusion.FieldSolver(xp, shape, params, sinks[0][k], dt_min) for k, (params, dt_min) in enumerate(fields)]
    u_shared = [xp.full(shape, 1.0, dtype=xp.float32) for _ in fields]
    u_alone = list(u_shared)
    for round_ in range(3):
        for k, (_, dt_min) in enumerate(fields):
            if round_:
                shared[k].update_sink(sinks[round_][k])
                alone[k].update_sink(sinks[round_][k])
        for k, (_, dt_min) in enumerate(fields):  # after every update: each solve must take the workspace back
            u_shared[k], shared_iterations = (shared[k].solve if dt_min is None else shared[k].step)(u_shared[k], sources[k])
            u_alone[k], alone_iterations = (alone[k].solve if dt_min is None else alone[k].step)(u_alone[k], sources[k])
            assert shared_iterations == alone_iterations > 0
            np.testing.assert_array_equal(to_host(u_shared[k]), to_host(u_alone[k]))
    assert shared_workspace.nbytes == alone[0].workspace.nbytes


# --------------------------------------------------------------------------- extreme input


@pytest.mark.parametrize("r", [1.0e15, 1.0e20, 1.5e299])
@pytest.mark.parametrize("low_fixed, high_fixed", [(False, False), (True, False), (True, True)])
def test_thomas_pivots_stay_positive_whatever_r(r, low_fixed, high_fixed):
    """The pivots are sums of positive terms: for r up to 1e299 every inverse is finite and positive (the last
    pivot of a no-flux line came out 0, a ZeroDivisionError, from about r = 1e16 on), and a no-flux line's last
    pivot is its length n, as in exact arithmetic (mixing the line completely)."""
    n = 48
    forward, inverse = diffusion._thomas_coefficients(n, r, low_fixed, high_fixed)
    assert all(math.isfinite(value) and value > 0 for value in inverse)
    assert all(math.isfinite(value) for value in forward)
    if not (low_fixed or high_fixed):
        assert inverse[-1] == pytest.approx(1.0 / n, rel=1e-12)


def test_split_step_with_huge_diffusion_mixes_or_fails_cleanly(xp):
    """D = 1e300: a float64 split step mixes each no-flux line completely, so the field becomes its mean
    (conserved); float32 cannot hold dt D / dx^2 = 1.5e298: a FieldSolverError, not a ZeroDivisionError."""
    rng = np.random.default_rng(31)
    params = FieldParameters(1.0e300, 0.0, 20.0, ((None, None),) * 3)
    u = rng.random((6, 7, 8))
    mixed = to_host(implicit_step(xp, xp.asarray(u), 6.0, params))
    np.testing.assert_allclose(mixed, np.full(u.shape, u.mean()), rtol=1e-12)
    with pytest.raises(diffusion.FieldSolverError, match=r"split \(LOD\) step: dt D / dx\^2 = 1\.5e\+298 is beyond.*float32"):
        implicit_step(xp, xp.asarray(u, dtype=xp.float32), 6.0, params)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the NaN guess's arithmetic, on purpose
@pytest.mark.parametrize("guess", [1.0e300, np.inf, np.nan])
def test_steady_solve_drops_a_warm_start_worse_than_none(xp, guess):
    """A guess whose residual exceeds the right-hand side's (huge, infinite or NaN values) is replaced by zero: the
    same bits and iterations as a solve from zero (from 1e300 CG's recurrence reported convergence while the field
    was off by far more than the tolerance)."""
    rng = np.random.default_rng(32)
    shape = (20, 18)
    params = FieldParameters(1.0e5, 0.1, 20.0, ((38.0, None), (None, 38.0)))
    sink = xp.asarray(10.0 * (rng.random(shape) < 0.3))
    zero, zero_iterations = steady_state(xp, xp.zeros(shape, dtype=xp.float64), params, sink)
    u, iterations = steady_state(xp, xp.full(shape, guess, dtype=xp.float64), params, sink)
    assert iterations == zero_iterations
    np.testing.assert_array_equal(to_host(u), to_host(zero))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflows are the subject
def test_non_finite_right_hand_side_and_breakdown_fail_at_once(xp):
    """An infinite source, or a step from a field with NaN, is a FieldSolverError before any iteration; a sink of
    1e300/min, beyond the float32 preconditioner, one at the first check of the stopping rule that finds the
    preconditioned residual non-finite (not 500 iterations of NaN)."""
    shape = (16, 16)
    params = FieldParameters(1.0e5, 0.1, 20.0, ((38.0, 38.0),) * 2)
    source = xp.zeros(shape)
    source[3, 3] = xp.inf
    with pytest.raises(diffusion.FieldSolverError, match=r"^steady-state solve: the right-hand side is not finite"):
        steady_state(xp, xp.zeros(shape), params, 0.0, source)
    u = xp.ones(shape, dtype=xp.float32)
    u[2, 2] = xp.nan
    with pytest.raises(diffusion.FieldSolverError, match=r"^backward-Euler step of 60 min: the right-hand side is "
                                                         r"not finite .*or the field itself"):
        diffusion.backward_euler_step(xp, u, 60.0, params)
    sink = xp.zeros(shape)
    sink[5:9, 5:9] = 1.0e300
    with pytest.raises(diffusion.FieldSolverError, match=r"^steady-state solve: CG broke down at iteration \d+ .*"
                                                         r"largest reaction rate .* is 1e\+300/min"):
        steady_state(xp, xp.full(shape, 38.0), params, sink)
