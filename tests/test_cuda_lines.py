"""The fused CUDA line solver: its source compiles (where nvcc is), and on a GPU it gives the xp sweep's bits."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from kernels import cuda_lines, diffusion
from kernels.backend import probe_cupy

_CUPY, _CUPY_REASON = probe_cupy()
NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_line_kernel_source_compiles(tmp_path, dtype_name):
    source = tmp_path / f"thomas_lines_{dtype_name}.cu"
    source.write_text(cuda_lines.source_for(dtype_name), encoding="utf-8")
    result = subprocess.run([NVCC, "-cubin", "-arch=sm_90", *cuda_lines.OPTIONS, "-o", str(tmp_path / "out.cubin"),
                             str(source)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.cubin").stat().st_size > 0


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
