"""Shared fixtures: the array module under test and small configs."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.backend import probe_cupy

_CUPY, _CUPY_REASON = probe_cupy()


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module: NumPy always, CuPy where a working GPU is present."""
    if request.param == "numpy":
        return np
    if _CUPY is None:
        pytest.skip(f"no GPU backend: {_CUPY_REASON}")
    return _CUPY


def to_host(array):
    """A NumPy copy of a NumPy or CuPy array."""
    return array.get() if hasattr(array, "get") else np.asarray(array)
