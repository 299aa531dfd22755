"""Neighbourhoods and shifts."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.lattice import moore_offsets, shifted
from tests.conftest import to_host


def test_moore_neighbourhood_sizes():
    assert len(moore_offsets(2)) == 8
    assert len(moore_offsets(3)) == 26
    assert len(set(moore_offsets(3))) == 26
    with pytest.raises(ValueError):
        moore_offsets(4)


def test_shift_matches_indexing_and_fills_outside(xp):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 100, size=(4, 5, 6))
    for offset in moore_offsets(3) + [(0, 0, 0), (2, -3, 1)]:
        got = to_host(shifted(xp, xp.asarray(array), offset, -1))
        for position in np.ndindex(array.shape):
            source = tuple(p + o for p, o in zip(position, offset))
            inside = all(0 <= s < n for s, n in zip(source, array.shape))
            assert got[position] == (array[source] if inside else -1)
