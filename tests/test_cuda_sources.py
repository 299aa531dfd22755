"""Every CUDA source of kernels/cuda/ compiles with nvcc, and the generated random prelude draws the bits of
kernels/random.py (skipped where nvcc is not installed; no GPU needed: the prelude's functions also run on the host).

Syntax and type errors then show here before a GPU ever runs the kernels;
tests/test_cuda_lines.py, tests/test_cuda_movement.py and tests/test_cuda_division.py check on a GPU that
they give the bits of their xp references.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from kernels import accelerated, diffusion, random
from kernels.cuda import division, lines, movement, products
from kernels.cuda.prelude import random_prelude

NVCC = shutil.which("nvcc")

SOURCES = {
    "thomas_lines_float32": (lines.source_for("float32"), lines.OPTIONS),
    "thomas_lines_float64": (lines.source_for("float64"), lines.OPTIONS),
    "immune_movement": (movement.SOURCE, movement.OPTIONS),
    "daughter_placement": (division.SOURCE, division.OPTIONS),
    "scalar_products": (products.SOURCE, products.OPTIONS),
}

#: The modules of kernels/cuda/ whose kernels are compiled from a source (graphs.py captures CuPy's own kernels).
COMPILED = {division, lines, movement, products}


def test_every_cuda_implementation_with_a_source_is_compiled_here():
    """A new CUDA implementation registered in kernels.accelerated adds its source to SOURCES."""
    implementations = [operation.cuda for operation in accelerated.OPERATIONS.values() if operation.cuda is not None]
    functions = [getattr(bundle, field.name) for bundle in implementations if dataclasses.is_dataclass(bundle)
                 for field in dataclasses.fields(bundle)]  # a bundle's (kernels.diffusion.SolverKernels)
    functions += [implementation for implementation in implementations if not dataclasses.is_dataclass(implementation)]
    modules = {function.__module__ for function in functions if function.__module__.startswith("kernels.cuda")}
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


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("shape", [(1,), (2,), (7,), (3, 5), (4, 6, 9), (5, 3, 1), (2, 1, 13)])
def test_the_scalar_product_source_sums_in_the_references_order(tmp_path, shape):
    """The products kernels' arithmetic (``column_sum`` then ``pairwise`` per row, then ``pairwise`` over the rows),
    compiled by nvcc and run on the host, gives kernels.diffusion.scalar_product's bits and row sums."""
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape) * 10.0 ** rng.integers(-9, 10, size=shape)
    b = rng.standard_normal(shape)
    rows, depth, width = diffusion.as_rows(a).shape
    literal = lambda values: ", ".join(float(value).hex() for value in values.reshape(-1))  # noqa: E731
    program = products.SOURCE + f"""
#include <cstdio>
#include <cstring>
static const double a[] = {{{literal(a)}}};
static const double b[] = {{{literal(b)}}};
int main()
{{
    double columns[{width}], sums[{rows}], work[{rows}];
    for (long long i = 0; i < {rows}; ++i) {{
        for (long long k = 0; k < {width}; ++k) {{
            columns[k] = column_sum(a, b, i, k, {depth}, {width});
        }}
        sums[i] = pairwise(columns, columns, {width});
    }}
    const double total = pairwise(sums, work, {rows});
    for (long long i = 0; i <= {rows}; ++i) {{
        const double value = i < {rows} ? sums[i] : total;
        unsigned long long bits;
        memcpy(&bits, &value, sizeof bits);
        printf("%llu\\n", bits);
    }}
    return 0;
}}
"""
    source = tmp_path / "products.cu"
    source.write_text(program, encoding="utf-8")
    binary = tmp_path / "products"
    result = subprocess.run([NVCC, *products.OPTIONS, "-o", str(binary), str(source)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    got = [int(line) for line in subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.split()]
    expected_rows = np.empty(rows)
    diffusion.row_products(np, a, b, expected_rows)
    expected = np.append(expected_rows, diffusion.scalar_product(np, a, b))
    assert got == [int(bits) for bits in expected.view(np.uint64)]
