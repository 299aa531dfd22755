"""Backend choice: numpy always works, cupy is never a silent fallback."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.backend import BackendError, get_backend, probe_cupy

CUPY, CUPY_REASON = probe_cupy()


def test_numpy_backend():
    backend = get_backend("numpy")
    assert backend.name == "numpy" and backend.xp is np
    assert backend.free_memory_bytes() > 0
    array = backend.xp.arange(3)
    assert isinstance(backend.to_host(array), np.ndarray)


def test_unknown_backend_names_the_allowed_ones():
    with pytest.raises(BackendError, match="allowed: auto, numpy, cupy"):
        get_backend("tpu")


@pytest.mark.skipif(CUPY is not None, reason="a GPU is present")
def test_auto_falls_back_to_numpy_and_says_why_and_cupy_is_an_error():
    backend = get_backend("auto")
    assert backend.name == "numpy"
    assert backend.reason.startswith("auto: no GPU backend") and CUPY_REASON in backend.reason
    with pytest.raises(BackendError, match="cupy was asked for but cannot be used"):
        get_backend("cupy")


@pytest.mark.gpu
@pytest.mark.skipif(CUPY is None, reason=f"no GPU backend: {CUPY_REASON}")
def test_auto_picks_cupy_on_a_gpu():
    backend = get_backend("auto")
    assert backend.name == "cupy" and backend.free_memory_bytes() > 0
