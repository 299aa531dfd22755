"""The CUDA scalar products give the NumPy reference's bits on a GPU, alone and inside whole field solves; without
one, the bundle's wiring with the kernels emulated on the host (the source compiles, and its arithmetic gives the
reference's bits on the host: tests/test_cuda_sources.py)."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import diffusion
from kernels.backend import get_backend, probe_cupy
from kernels.cuda import products

_CUPY, _CUPY_REASON = probe_cupy()

#: Skips a test that needs a GPU where there is none.
gpu_only = pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")


def _emulated_kernels(xp):
    """The three kernels as host functions of the reference's arithmetic, with the launch arguments the bundle
    passes (grid, block, arguments): to check the bundle's wiring where no GPU is at hand."""
    def column_products(grid, block, arguments):
        a, b, columns, rows, depth, width = arguments
        assert grid[0] * block[0] >= rows * width
        a3, b3 = a.reshape(int(rows), int(depth), int(width)), b.reshape(int(rows), int(depth), int(width))
        total = np.zeros((int(rows), int(width)))
        for j in range(int(depth)):
            total = total + a3[:, j, :] * b3[:, j, :]
        columns[...] = total

    def pairwise_rows(grid, block, arguments):
        columns, out, rows, width = arguments
        assert grid[0] * block[0] >= rows and columns.shape == (rows, width)
        for call in diffusion.pairwise_calls(np, columns, out):
            call()

    def pairwise_total(grid, block, arguments):
        rows, work, out, count = arguments
        out[...] = diffusion.row_total(np, rows[:int(count)])

    return column_products, pairwise_rows, pairwise_total


@pytest.mark.parametrize("shape, transient", [((20, 17, 14), False), ((33, 26), True), ((9, 1, 12), True)])
def test_the_bundles_wiring_gives_the_references_bits_with_the_kernels_emulated(monkeypatch, shape, transient):
    """Without a GPU: the CUDA bundle's functions (which arrays, rows and products each kernel gets) with the
    kernels replaced by host functions give the reference's bits and iterations, over two solves."""
    monkeypatch.setattr(products, "_kernels", _emulated_kernels)
    rng = np.random.default_rng(len(shape) + transient)
    faces = tuple(((None, 38.0) if axis == 0 else (None, None)) for axis in range(len(shape)))
    params = diffusion.FieldParameters(2000.0, 0.1, 20.0, faces)
    sink = rng.random(shape) * rng.choice([0.0, 0.5, 30.0], size=shape)
    source = rng.random(shape) * 2.0
    results = []
    for kernels in (diffusion.SOLVER_KERNELS, products.SOLVER_KERNELS):
        solver = diffusion.FieldSolver(np, shape, params, sink, dt_min=60.0 if transient else None,
                                       solver_kernels=kernels)
        solve = solver.step if transient else solver.solve
        first, first_iterations = solve(np.zeros(shape, np.float32), source)
        solver.update_sink(sink * 2.0)
        second, second_iterations = solve(first, source)
        results.append((first.tobytes() + second.tobytes(), first_iterations, second_iterations))
    assert results[1] == results[0] and results[0][1] > 0


@pytest.mark.parametrize("shape", [(1,), (97,), (33, 26), (20, 17, 14), (9, 1, 12)])
@pytest.mark.gpu
@gpu_only
def test_scalar_products_and_row_products_give_the_references_bits(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape) * 10.0 ** rng.integers(-9, 10, size=shape)
    b = rng.standard_normal(shape)
    rows = diffusion.as_rows(a).shape[0]
    expected_rows = np.empty(rows)
    diffusion.row_products(np, a, b, expected_rows)
    on_device = _CUPY.empty(rows)
    products.row_products(_CUPY, _CUPY.asarray(a), _CUPY.asarray(b), on_device)
    np.testing.assert_array_equal(_CUPY.asnumpy(on_device).view(np.uint64), expected_rows.view(np.uint64))
    expected = np.float64(diffusion.scalar_product(np, a, b))
    for found in (products.scalar_product(_CUPY, _CUPY.asarray(a), _CUPY.asarray(b)),
                  diffusion.scalar_product(_CUPY, _CUPY.asarray(a), _CUPY.asarray(b))):  # kernels, and the xp calls
        assert np.float64(found.get()).view(np.uint64) == expected.view(np.uint64)


@pytest.mark.parametrize("shape", [(20, 17, 14), (33, 26)])
@pytest.mark.parametrize("transient", [False, True])
@pytest.mark.gpu
@gpu_only
def test_field_solves_with_the_cuda_products_give_the_xp_calls_bits(shape, transient):
    """On CuPy the kernels give the bits and iterations of the reference's calls; NumPy agrees to rounding (the
    coarsest level's dense product is each library's BLAS)."""
    rng = np.random.default_rng(len(shape))
    faces = tuple(((None, 38.0) if axis == 0 else (None, None)) for axis in range(len(shape)))
    params = diffusion.FieldParameters(2000.0, 0.1, 20.0, faces)
    sink = rng.random(shape) * rng.choice([0.0, 0.5, 30.0], size=shape)
    source = rng.random(shape) * 2.0
    results = []
    for xp, fast_paths in ((_CUPY, True), (_CUPY, False), (np, False)):
        backend = get_backend("cupy" if xp is _CUPY else "numpy", fast_paths=fast_paths)
        kernels = backend.operation("field_solver_kernels")
        assert (kernels is products.SOLVER_KERNELS) is (xp is _CUPY and fast_paths)
        solver = diffusion.FieldSolver(xp, shape, params, xp.asarray(sink), dt_min=60.0 if transient else None,
                                       solver_kernels=kernels, replayable=backend.operation("replayable"))
        start = xp.zeros(shape, xp.float32)
        u, iterations = solver.step(start, xp.asarray(source)) if transient else solver.solve(start, xp.asarray(source))
        results.append((np.asarray(u.get() if xp is _CUPY else u), iterations))
    (kernels_u, kernels_iterations), (calls_u, calls_iterations), (numpy_u, _) = results
    assert kernels_iterations == calls_iterations > 0
    np.testing.assert_array_equal(kernels_u.view(np.uint32), calls_u.view(np.uint32))
    np.testing.assert_allclose(kernels_u, numpy_u, rtol=1e-6, atol=1e-9)
