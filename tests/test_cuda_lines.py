"""The fused CUDA line solver gives the xp sweep's bits on a GPU (its source compiles: tests/test_cuda_sources.py)."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import cuda_lines, diffusion
from kernels.backend import probe_cupy

_CUPY, _CUPY_REASON = probe_cupy()


def test_fused_path_is_never_taken_on_numpy():
    assert not cuda_lines.usable(np, np.zeros((1, 4, 4), dtype=np.float32))


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
    assert cuda_lines.usable(_CUPY, _CUPY.asarray(fields))
    on_device = diffusion.implicit_step_many(_CUPY, _CUPY.asarray(fields), 6.0, params, _CUPY.asarray(sink),
                                             _CUPY.asarray(source))
    np.testing.assert_array_equal(_CUPY.asnumpy(on_device), on_host)
