"""Counter-based random numbers: exact definition, statistics, backend parity."""
from __future__ import annotations

import numpy as np

from kernels.random import random_bits, stream_offset, uniform, voxel_index
from tests.conftest import to_host

MASK = (1 << 64) - 1


def reference_bits(key: int, step: int, stream: int, index: int) -> int:
    """The hash written out with Python integers, independently of the array code."""
    z = (index * 0x9E3779B97F4A7C15 + stream_offset(key, step, stream)) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_bits_match_python_integer_reference(xp):
    index = xp.asarray(np.array([0, 1, 2, 12345, 2**40 + 7, 2**63 + 5], dtype=np.uint64))
    got = to_host(random_bits(xp, 987654321, 17, 3, index))
    expected = [reference_bits(987654321, 17, 3, int(i)) for i in to_host(index)]
    assert [int(value) for value in got] == expected


def test_numpy_and_backend_give_identical_uniforms(xp):
    shape = (7, 9, 11)
    on_backend = to_host(uniform(xp, 42, 5, 2, voxel_index(xp, shape)))
    on_numpy = uniform(np, 42, 5, 2, voxel_index(np, shape))
    assert on_backend.dtype == np.float64
    np.testing.assert_array_equal(on_backend, on_numpy)


def test_uniform_statistics():
    draws = uniform(np, 1, 0, 0, voxel_index(np, (1_000_000,)))
    assert draws.min() >= 0.0 and draws.max() < 1.0
    assert abs(draws.mean() - 0.5) < 5 * np.sqrt(1 / 12 / draws.size)
    assert abs(draws.var() - 1 / 12) < 0.002
    counts, _ = np.histogram(draws, bins=100, range=(0, 1))
    expected = draws.size / 100
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 160  # 99 degrees of freedom: p ~ 1e-4
    lag_one = np.corrcoef(draws[:-1], draws[1:])[0, 1]
    assert abs(lag_one) < 0.005


def test_streams_steps_and_keys_are_independent():
    index = voxel_index(np, (100_000,))
    base = uniform(np, 1, 0, 0, index)
    for other in (uniform(np, 2, 0, 0, index), uniform(np, 1, 1, 0, index), uniform(np, 1, 0, 1, index)):
        assert not np.array_equal(base, other)
        assert abs(np.corrcoef(base, other)[0, 1]) < 0.02
    np.testing.assert_array_equal(base, uniform(np, 1, 0, 0, index))
