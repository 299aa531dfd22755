"""Every CUDA source of kernels/cuda/ compiles with nvcc, and the generated random prelude draws the bits of
kernels/random.py (skipped where nvcc is not installed; no GPU needed: the prelude's functions also run on the host).

Syntax and type errors then show here before a GPU ever runs the kernels;
tests/test_cuda_lines.py, tests/test_cuda_movement.py and tests/test_cuda_division.py check on a GPU that
they give the bits of their xp references.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from kernels import accelerated, random
from kernels.cuda import division, lines, movement
from kernels.cuda.prelude import random_prelude

NVCC = shutil.which("nvcc")

SOURCES = {
    "thomas_lines_float32": (lines.source_for("float32"), lines.OPTIONS),
    "thomas_lines_float64": (lines.source_for("float64"), lines.OPTIONS),
    "immune_movement": (movement.SOURCE, movement.OPTIONS),
    "daughter_placement": (division.SOURCE, division.OPTIONS),
}

#: The modules of kernels/cuda/ whose kernels are compiled from a source (graphs.py captures CuPy's own kernels).
COMPILED = {division, lines, movement}


def test_every_cuda_implementation_with_a_source_is_compiled_here():
    """A new CUDA implementation registered in kernels.accelerated adds its source to SOURCES."""
    modules = {operation.cuda.__module__ for operation in accelerated.OPERATIONS.values() if operation.cuda is not None}
    assert modules - {"kernels.cuda.graphs"} == {module.__name__ for module in COMPILED}


def test_the_movement_source_takes_the_random_constants_from_kernels_random():
    """The numbers of the hash are written once, in kernels/random.py: the source has them only through the prelude."""
    assert movement.SOURCE.startswith(random_prelude())
    kernels_only = movement.KERNELS
    for constant in (random.WEYL, random.MIX1, random.MIX2):
        assert f"{constant:X}" in random_prelude()
        assert f"{constant:X}" not in kernels_only.upper()


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


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_generated_prelude_draws_the_bits_of_kernels_random(tmp_path):
    """The prelude compiled by nvcc and run on the host gives kernels.random's bits and uniforms for the same
    (offset, index) pairs, large indices and offsets included."""
    pairs = [(random.stream_offset(key, step, stream), index)
             for key, step, stream in ((0, 0, 0), (987654321, 17, 3), (2**64 - 1, 12345, 1003))
             for index in (0, 1, 2, 12345, 2**40 + 7, 2**63 + 5, 2**64 - 1)]
    table = ",\n".join(f"    {{{offset}ULL, {index}ULL}}" for offset, index in pairs)
    program = random_prelude() + f"""
#include <cstdio>
#include <cstring>
static const unsigned long long pairs[][2] = {{
{table}
}};
int main()
{{
    for (unsigned i = 0; i < sizeof(pairs) / sizeof(pairs[0]); ++i) {{
        const double u = uniform_at(pairs[i][0], pairs[i][1]);
        unsigned long long u_bits;
        memcpy(&u_bits, &u, sizeof u_bits);
        printf("%llu %llu\\n", splitmix_bits(pairs[i][0], pairs[i][1]), u_bits);
    }}
    return 0;
}}
"""
    source = tmp_path / "prelude.cu"
    source.write_text(program, encoding="utf-8")
    binary = tmp_path / "prelude"
    result = subprocess.run([NVCC, "--fmad=false", "-o", str(binary), str(source)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    output = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.split("\n")
    got = [tuple(int(word) for word in line.split()) for line in output if line]
    expected = []
    for offset, index in pairs:
        counter = np.array([index], dtype=np.uint64)
        bits = int(random.bits_at(np, offset, counter)[0])
        uniform = random.uniform_at(np, offset, counter)
        expected.append((bits, int(uniform.view(np.uint64)[0])))
    assert got == expected
