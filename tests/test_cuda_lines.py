"""The fused CUDA line solver gives the xp sweep's bits on a GPU (its source compiles: tests/test_cuda_sources.py)."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import diffusion
from kernels.backend import get_backend, probe_cupy
from kernels.cuda import lines

_CUPY, _CUPY_REASON = probe_cupy()


def test_numpy_backend_sweeps_with_the_reference():
    assert get_backend("numpy").operation("field_line_sweep") is diffusion.solve_lines


CASES = [
    # shape, faces per axis
    ((2, 37, 23), ((0.0, None), (None, 1.0))),
    ((2, 11, 19, 13), ((None, None), (1.0, 0.5), (0.0, 0.0))),
]


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, faces", CASES)
def test_fused_sweeps_give_the_bits_of_the_numpy_sweeps(shape, faces, dtype):
    rng = np.random.default_rng(7)
    fields = rng.random(shape).astype(dtype)
    sink = rng.random(shape[1:]) * 0.1
    source = rng.random(shape[1:])
    params = [diffusion.FieldParameters(d, 0.01, 20.0, faces) for d in (1e5, 2e3)]
    on_host = diffusion.implicit_step_many(np, fields, 6.0, params, sink, source)
    fused = get_backend("cupy", fast_paths=True).operation("field_line_sweep")
    assert fused is lines.solve_lines and lines.usable(_CUPY.asarray(fields))
    outputs = [diffusion.implicit_step_many(_CUPY, _CUPY.asarray(fields), 6.0, params, _CUPY.asarray(sink),
                                            _CUPY.asarray(source), line_sweep=sweep)
               for sweep in (fused, get_backend("cupy", fast_paths=False).operation("field_line_sweep"))]
    for on_device in outputs:  # the fused sweep, and the xp reference on CuPy
        np.testing.assert_array_equal(_CUPY.asnumpy(on_device), on_host)
