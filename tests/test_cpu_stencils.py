"""kernels.cpu.stencils: the field solve's compiled loops give the bits of the NumPy reference, call by call,
solve by solve and run by run, on any thread count."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from abm.config import load_config
from abm.model import TumorModel
from kernels import calls, diffusion
from kernels.backend import get_backend
from kernels.calls import CallList, RowCall, plan
from kernels.cpu import stencils

pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),  # special values overflow
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]  # and inf - inf

#: Lattices: 3-D and 2-D, even and odd extents, an extent of 1.
SHAPES = [(16, 12, 10), (23, 19, 17), (9, 1, 12), (1, 8, 9), (30, 22), (17, 5), (1, 7)]


@pytest.fixture
def small_slabs(monkeypatch):
    """Slabs of any size, so that small test arrays are cut among the threads."""
    monkeypatch.setattr(calls, "MIN_SLAB_ELEMENTS", 1)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _random(rng: np.random.Generator, shape, dtype, special: bool = False) -> np.ndarray:
    """Values over many magnitudes and both signs; with ``special``, also -0.0, subnormals and values whose
    products overflow."""
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, size=shape)
    if special:
        flat = values.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
        tiny, huge = np.finfo(dtype).tiny, np.finfo(dtype).max
        flat[picks] = np.resize([-0.0, 0.0, tiny / 4, -tiny / 3, huge / 2, -huge / 3], picks.size)
    return values.astype(dtype)


def _level(rng: np.random.Generator, shape, coupling: float = 2.5, fixed_faces: bool = False) -> diffusion._Level:
    """A level with a random reaction, uniform coupling and (optionally) fixed-face terms on two faces."""
    fixed = np.zeros(shape)
    if fixed_faces:
        fixed[0] += 2 * coupling
        fixed[..., -1] += 2 * coupling
    return diffusion._with_diagonal(np, shape, (coupling,) * len(shape), rng.random(shape) * 3.0, fixed)


def _padded(shape) -> tuple[int, ...]:
    return tuple(extent + extent % 2 for extent in shape)


def _run(builders: list, threads: int) -> None:
    CallList(np, builders, threads)()


# --------------------------------------------------------------------------- call by call

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("coupling", [2.5, 0.0])
def test_the_operator_and_jacobi_sweeps_give_the_references_bits(small_slabs, shape, dtype, threads, coupling):
    rng = np.random.default_rng(abs(hash((shape, threads))) % 2**32)
    level = _level(rng, shape, coupling, fixed_faces=True)
    diagonal = diffusion._apply_diagonal(np, level, dtype)
    v, residual, weights = (_random(rng, shape, dtype, special=True) for _ in range(3))
    results = []
    for builders in (diffusion.SOLVER_KERNELS, stencils.SOLVER_KERNELS):
        out, defect, v_after = np.empty(shape, dtype), np.empty(shape, dtype), v.copy()
        scratch = partial(np.empty, shape, dtype)
        _run(builders.operator(np, level, dtype, v, out, diagonal, scratch), threads)
        # Two sweeps in one list: the second's edge defects must wait for the first sweep's writes.
        _run(builders.smoothing(np, level, dtype, v_after, residual, defect, weights, diagonal, scratch) * 2, threads)
        results.append([out, v_after])
        if dtype == np.float64:  # CG's operator, with the row products of v . A v
            out, products = np.empty(shape), np.full(shape[0], np.nan)
            _run(builders.operator(np, level, dtype, v, out, diagonal, scratch, products), threads)
            results[-1] += [out, products]
    reference, compiled = results
    assert len(reference) == len(compiled)
    for expected, got in zip(reference, compiled):
        assert _same_bits(got, expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_restriction_and_prolongation_give_the_references_bits(small_slabs, shape, threads):
    rng = np.random.default_rng(abs(hash((shape, threads, "transfer"))) % 2**32)
    f32 = np.float32
    level = _level(rng, shape)
    diagonal = diffusion._apply_diagonal(np, level, f32)
    padded = _padded(shape)
    coarse_shape = tuple(extent // 2 for extent in padded)
    inside = tuple(slice(0, extent) for extent in shape)
    v_padded = _random(rng, padded, f32, special=True)
    residual = _random(rng, shape, f32, special=True)
    correction = _random(rng, coarse_shape, f32, special=True)
    results = []
    for builders in (diffusion.SOLVER_KERNELS, stencils.SOLVER_KERNELS):
        workspace = diffusion.Workspace(np)
        defect_padded, coarse = np.zeros(padded, f32), np.empty(coarse_shape, f32)
        fine = v_padded.copy()
        _run(builders.restriction(np, level, f32, v_padded[inside], residual, defect_padded, coarse, diagonal,
                                  partial(np.empty, shape, f32), workspace.scoped("test.")), threads)
        _run(builders.prolongation(np, correction, fine, np.empty(coarse_shape + (2,), f32)), threads)
        results.append((coarse, fine))
    (reference_coarse, reference_fine), (coarse, fine) = results
    assert _same_bits(coarse, reference_coarse)
    assert _same_bits(fine, reference_fine)


def test_a_level_without_one_uniform_coupling_keeps_the_references_calls():
    """A coarse level of odd extents has coupling arrays: the compiled builders give the reference's calls."""
    rng = np.random.default_rng(3)
    level = diffusion._coarsen(np, _level(rng, (9, 7, 5)))
    assert diffusion._uniform_coupling(level) is None
    shape, f32 = level.shape, np.float32
    arrays = [np.zeros(shape, f32) for _ in range(4)]
    built = stencils.SOLVER_KERNELS.operator(np, level, f32, *arrays[:2], arrays[2], partial(np.empty, shape, f32))
    assert built and not any(isinstance(call, RowCall) for call in built)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1,), (7,), (4099,), (31, 133), (17, 16, 15), (5, 1, 9)])
def test_cg_vector_operations_give_the_references_bits(small_slabs, threads, shape):
    """CG's updates, scalings and the scalar products they take (row by row: the same bits on any number of
    threads), with special values."""
    rng = np.random.default_rng(sum(shape) * 10 + threads)
    u, residual, direction, image, z, previous = (_random(rng, shape, np.float64, special=True) for _ in range(6))
    solution = _random(rng, shape, np.float32, special=True)
    rows = diffusion.as_rows(u).shape[0]
    scalars = (0.37, -2.5e-3, np.float64(1.7e300), 5e-320)
    results = []
    for builders in (diffusion.SOLVER_KERNELS, stencils.SOLVER_KERNELS):
        kept = []
        for scalar in scalars:
            arrays = [array.copy() for array in (u, residual, direction, image)]
            assert builders.cg_update(np, *arrays, np.empty(shape), scalar, threads) is None
            measured = [array.copy() for array in (u, residual, direction, image)]
            products = np.full((2, rows), np.nan)
            largest = builders.cg_update(np, *measured, np.empty(shape), scalar, threads, measure=True,
                                         previous=previous, products=products)
            kept += arrays[:2] + measured[:2] + [np.asarray(largest, dtype=np.float64), products]
            new_direction = direction.copy()
            builders.cg_direction(np, new_direction, scalar, z, threads)
            down, up = np.empty(shape, np.float32), np.empty(shape)
            builders.scale_down(np, residual, abs(scalar), down, threads)
            assert builders.scale_up(np, solution, abs(scalar), up, threads) is None
            up_measured, products = np.empty(shape), np.full(rows, np.nan)
            largest = builders.scale_up(np, solution, abs(scalar), up_measured, threads, measure=True,
                                        against=residual, products=products)
            kept += [new_direction, down, up, up_measured, np.asarray(largest, dtype=np.float64), products]
            kept += [np.asarray(builders.scalar_product(np, residual, direction * scalar, threads)),
                     np.asarray(builders.row_total(np, products))]
        results.append(kept)
    for reference, compiled in zip(*results):
        assert _same_bits(compiled, reference)


@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (5,), (8,), (13,), (64,), (97,), (4, 11, 6), (9, 1, 33)])
def test_the_scalar_products_order_is_pairwise_over_columns_summed_in_order(shape):
    """The order written out by hand: per row, each column summed along j from 0.0, then the columns in adjacent
    pairs level by level (an odd count's last carried); then the rows the same way. Values chosen so that another
    order rounds differently."""
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 9, size=shape)
    b = rng.standard_normal(shape)

    def pairs(values: list[float]) -> float:
        while len(values) > 1:
            values = [values[t] + values[t + 1] for t in range(0, len(values) - 1, 2)] + values[len(values) - len(values) % 2:]
        return values[0]

    a3, b3 = diffusion.as_rows(a), diffusion.as_rows(b)
    row_sums = []
    for i in range(a3.shape[0]):
        columns = []
        for k in range(a3.shape[2]):
            column = 0.0
            for j in range(a3.shape[1]):
                column = column + float(a3[i, j, k]) * float(b3[i, j, k])
            columns.append(column)
        row_sums.append(pairs(columns))
    expected = np.float64(pairs(row_sums))
    for kernels in (diffusion.SOLVER_KERNELS, stencils.SOLVER_KERNELS):
        for threads in (1, 2):
            assert _same_bits(np.asarray(kernels.scalar_product(np, a, b, threads), dtype=np.float64),
                              np.asarray(expected))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scalar_sink", [False, True])
def test_the_coefficients_written_when_the_sink_changes_give_the_references_bits(small_slabs, shape, threads,
                                                                                  scalar_sink):
    """The finest level's diagonal, each level's Jacobi weights and apply diagonal, and the coarser levels' reactions
    and diagonals (through every level of the V-cycle)."""
    rng = np.random.default_rng(abs(hash((shape, threads, scalar_sink))) % 2**32)
    reaction = np.broadcast_to(0.7, shape) if scalar_sink else rng.random(shape) * 10.0 ** rng.integers(-3, 3, size=shape)
    fixed = np.zeros(shape)
    fixed[0] += 5.0
    couplings = (2.5,) * len(shape)
    results = []
    for builders in (diffusion.SOLVER_KERNELS, stencils.SOLVER_KERNELS):
        fine = builders.level_diagonal(np, shape, couplings, reaction, fixed, np.empty(shape), threads)
        levels = diffusion._levels(np, fine, builders.coarsen)
        kept = []
        for level in levels:
            weights, apply32, apply64 = np.empty(level.shape, np.float32), np.empty(level.shape, np.float32), np.empty(level.shape)
            builders.coefficients(np, level, weights, apply32, threads)
            builders.coefficients(np, level, None, apply64, threads)
            kept += [np.asarray(level.diagonal), np.asarray(level.reaction, dtype=np.float64), np.asarray(level.fixed),
                     weights, apply32, apply64, np.array([c if isinstance(c, float) else np.nan for c in level.couplings])]
        results.append(kept)
    reference, compiled = results
    assert len(reference) == len(compiled)
    for expected, got in zip(reference, compiled):
        assert _same_bits(got.astype(expected.dtype), expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_steps_source_and_the_stopping_rules_numbers_give_the_references(small_slabs, threads):
    rng = np.random.default_rng(threads)
    shape = (11, 6, 5)
    u = _random(rng, shape, np.float32, special=True)
    source = _random(rng, shape, np.float64, special=True)
    for given in (source, 0.25, source.astype(np.float32)):
        expected = diffusion.SOLVER_KERNELS.step_source(np, u, 37.5, given, threads)
        assert _same_bits(stencils.SOLVER_KERNELS.step_source(np, u, 37.5, given, threads), expected)
    z, w = _random(rng, shape, np.float64, special=True), _random(rng, shape, np.float64)
    for values in (z, -np.abs(w), np.zeros(shape), np.full(shape, -0.0), np.full(shape, 5e-324)):
        assert _same_bits(np.asarray(stencils.magnitude(np, values, threads)),
                          np.asarray(diffusion.magnitude(np, values, threads)))
    for special in (-np.inf, np.inf, np.nan):
        values = w.copy()
        values[3, 2, 1] = special
        values[7, 0, 4] = np.inf if np.isnan(special) else w[7, 0, 4]  # a NaN wins over an infinity elsewhere
        found, expected = stencils.magnitude(np, values, threads), diffusion.magnitude(np, values, threads)
        assert np.isnan(found) if np.isnan(special) else found == expected == np.inf
    z[3, 2, 1] = np.nan
    compiled, reference = stencils.scalar_product(np, w, z, threads), diffusion.scalar_product(np, w, z)
    assert np.isnan(compiled) and np.isnan(reference)
    positive = np.abs(w)
    for special in (np.inf, -np.inf):
        values = positive.copy()
        values[3, 2, 1] = special
        assert stencils.scalar_product(np, positive, values, threads) == special == diffusion.scalar_product(
            np, positive, values)


# --------------------------------------------------------------------------- the thread plan

def test_row_calls_are_cut_and_wait_only_where_their_rows_meet(small_slabs):
    """A stencil's slab reads one row beyond its own: an update of its input that follows needs a barrier, an
    update of another array does not."""
    rng = np.random.default_rng(5)
    shape, f32 = (12, 6, 5), np.float32
    level = _level(rng, shape)
    diagonal = diffusion._apply_diagonal(np, level, f32)
    v, out, other = (_random(rng, shape, f32) for _ in range(3))
    stencil = stencils.SOLVER_KERNELS.operator(np, level, f32, v, out, diagonal, partial(np.empty, shape, f32))
    assert len(stencil) == 1 and isinstance(stencil[0], RowCall)
    steps = plan(stencil + [partial(np.add, other, out, out=other), partial(np.add, v, out, out=v)], 2)
    assert [step.barrier for step in steps] == [False, False, True]
    assert all(part.run is not None for step in steps for part in step.parts)
    serial = [array.copy() for array in (v, out, other)]
    calls_serial = stencils.SOLVER_KERNELS.operator(np, level, f32, serial[0], serial[1], diagonal, None)
    CallList(np, calls_serial + [partial(np.add, serial[2], serial[1], out=serial[2]),
                                 partial(np.add, serial[0], serial[1], out=serial[0])])()
    CallList(np, stencil + [partial(np.add, other, out, out=other), partial(np.add, v, out, out=v)], 2)()
    for threaded, alone in zip((v, out, other), serial):
        assert _same_bits(threaded, alone)


def test_row_calls_with_fewer_rows_than_threads_run_whole(small_slabs):
    call = RowCall(1, 100, lambda start, stop: None, lambda start, stop: ((), ()))
    steps = plan([call], 3)
    assert steps[0].parts[0].run is not None and all(part.run is None for part in steps[0].parts[1:])


# --------------------------------------------------------------------------- solves and runs

@pytest.mark.parametrize("shape", [(20, 17, 14), (33, 26), (7, 5, 3)])
@pytest.mark.parametrize("transient", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_field_solves_with_compiled_loops_give_the_same_bits_and_iterations(small_slabs, shape, transient, threads):
    rng = np.random.default_rng(len(shape) * 7 + threads)
    faces = tuple(((None, 38.0) if axis == 0 else (None, None)) for axis in range(len(shape)))
    params = diffusion.FieldParameters(2000.0, 0.1, 20.0, faces)
    sink = rng.random(shape) * rng.choice([0.0, 0.5, 30.0], size=shape)
    source = rng.random(shape) * 2.0
    results = []
    for builders in (diffusion.SOLVER_KERNELS, stencils.SOLVER_KERNELS):
        solver = diffusion.FieldSolver(np, shape, params, sink, dt_min=60.0 if transient else None, threads=threads,
                                       solver_kernels=builders)
        first, first_iterations = (solver.step(np.zeros(shape, np.float32), source) if transient
                                   else solver.solve(np.zeros(shape, np.float32), source))
        solver.update_sink(sink * 3.0)
        second, second_iterations = (solver.step(first, source) if transient else solver.solve(first, source))
        results.append((first, second, first_iterations, second_iterations))
    reference, compiled = results
    assert _same_bits(compiled[0], reference[0]) and _same_bits(compiled[1], reference[1])
    assert compiled[2:] == reference[2:] and reference[2] > 0


def test_a_3d_run_is_the_same_with_the_compiled_loops_and_without():
    """configs/immune_excluded.yaml (five fields, vessels, T cells and suppressors) on a small cube for three cell
    steps: every array of the lattice ends with the same bits with fast paths on (compiled loops) and off."""
    overrides = ["lattice.shape=[24, 24, 24]", "tumor.initial.radius_um=120.0", "time.duration_days=1"]
    runs = []
    for fast_paths in (True, False):
        backend = get_backend("numpy", fast_paths=fast_paths)
        model = TumorModel(load_config("configs/immune_excluded.yaml", overrides), backend=backend)
        for _ in range(3):
            model.step()
        solvers = model.rule("fields").solvers
        assert all(solver.solver_kernels is (stencils.SOLVER_KERNELS if fast_paths else diffusion.SOLVER_KERNELS)
                   for solver in solvers.values())
        runs.append({name: np.array(field) for name, field in model.lattice.fields.items()}
                    | {"clone": np.array(model.lattice.tumor.clone), "agent": np.array(model.lattice.immune.agent)})
    compiled, reference = runs
    assert compiled.keys() == reference.keys()
    for name in reference:
        assert _same_bits(compiled[name], reference[name]), name


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(9, 4, 7), (13, 6)])
def test_a_fields_sink_and_source_give_the_references_bits(small_slabs, threads, shape):
    """Terms of every kind the fields rule builds (cell masks as bool, fractions and perfusion as float32 and
    float64, weights as Python and NumPy numbers, so that each product takes NumPy's dtype), with special values,
    and terms the loop leaves to the reference (integer products, strided and broadcast values)."""
    rng = np.random.default_rng(len(shape) * 10 + threads)
    mask = rng.random(shape) < 0.4
    fraction32 = _random(rng, shape, np.float32, special=True)
    fraction64 = _random(rng, shape, np.float64, special=True)
    counts = rng.integers(0, 9, shape).astype(np.uint8)
    strided = _random(rng, (shape[0] * 2,) + shape[1:], np.float32)[::2]
    terms = [(2.5e-3, mask), (0.37, fraction32), (np.float64(0.37), fraction32), (-1.5, fraction64), (3, mask),
             (1e300, fraction64), (0.125, counts), (7.0, strided), (-0.0, mask), (2.0, np.float32(0.5)),
             (np.float32(1.1), fraction64)]
    for first in range(len(terms)):
        chosen = terms[first:] + terms[:first]
        reference = diffusion.weighted_sum(np, shape, chosen)
        compiled = stencils.weighted_sum(np, shape, chosen, threads)
        assert _same_bits(compiled, reference)
    assert _same_bits(stencils.weighted_sum(np, shape, [], threads), np.zeros(shape))
