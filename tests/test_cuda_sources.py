"""Every CUDA source of kernels/ compiles with nvcc (skipped where nvcc is not installed; no GPU needed).

Syntax and type errors then show here before a GPU ever runs the kernels;
tests/test_cuda_lines.py and tests/test_cuda_movement.py check on a GPU that
they give the bits of the xp code.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from kernels import cuda_lines, cuda_movement

NVCC = shutil.which("nvcc")

SOURCES = {
    "thomas_lines_float32": (cuda_lines.source_for("float32"), cuda_lines.OPTIONS),
    "thomas_lines_float64": (cuda_lines.source_for("float64"), cuda_lines.OPTIONS),
    "immune_movement": (cuda_movement.SOURCE, cuda_movement.OPTIONS),
}


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("name", SOURCES)
def test_kernel_source_compiles(tmp_path, name):
    code, options = SOURCES[name]
    source = tmp_path / f"{name}.cu"
    source.write_text(code, encoding="utf-8")
    result = subprocess.run([NVCC, "-cubin", "-arch=sm_90", *options, "-o", str(tmp_path / "out.cubin"), str(source)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.cubin").stat().st_size > 0
