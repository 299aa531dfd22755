"""The CUDA scalar products give the NumPy reference's bits on a GPU, alone and inside whole field solves (their
source compiles, and its arithmetic gives the reference's bits on the host: tests/test_cuda_sources.py)."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import diffusion
from kernels.backend import get_backend, probe_cupy
from kernels.cuda import products

_CUPY, _CUPY_REASON = probe_cupy()

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")]


@pytest.mark.parametrize("shape", [(1,), (97,), (33, 26), (20, 17, 14), (9, 1, 12)])
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
