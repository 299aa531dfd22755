"""The fused CUDA daughter placement and enclosed test give the bits of their xp references on a GPU (their source
compiles: tests/test_cuda_sources.py).

The xp references themselves (kernels.tumor.place_daughters, kernels.tumor.enclosed) are tested on the CPU in
tests/test_tumor_kernels.py and tests/test_pushing.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from abm.config import load_config
from abm.model import TumorModel
from kernels.backend import get_backend, probe_cupy
from kernels.cuda import division
from kernels.lattice import moore_offsets
from kernels.random import uniform
from kernels.tumor import enclosed, place_daughters
from tests.presets import CONFIGS

_CUPY, _CUPY_REASON = probe_cupy()


def test_numpy_backend_places_daughters_with_the_references():
    assert get_backend("numpy").operation("place_daughters") is place_daughters
    assert get_backend("numpy").operation("enclosed") is enclosed


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")
@pytest.mark.parametrize("shape", [(72, 64), (26, 22, 24), (1, 7, 9)])
@pytest.mark.parametrize("occupied", [0.3, 0.7, 0.95])
def test_fused_placement_gives_the_bits_of_the_xp_placement(shape, occupied):
    """Random lattices, dense enough that many cells claim one voxel and many find none free; edges and a
    one-voxel-thick 3-D lattice included; the same draws for both."""
    cp = _CUPY
    offsets = moore_offsets(len(shape))
    index = cp.arange(int(np.prod(shape)), dtype=cp.uint64).reshape(shape)
    for step in range(3):
        free = uniform(cp, 7, step, 0, index) >= occupied
        mothers = cp.flatnonzero(~free & (uniform(cp, 7, step, 1, index) < 0.6))
        at = mothers.astype(cp.uint64)
        draws = {"draw_direction": uniform(cp, 7, step, 2, at), "draw_priority": uniform(cp, 7, step, 3, at)}
        got = division.place_daughters(cp, mothers, free=free, offsets=offsets, **draws)
        expected = place_daughters(cp, mothers, free=free, offsets=offsets, **draws)
        for value, reference in zip(got, expected):
            assert value.dtype == reference.dtype and value.shape == reference.shape
            np.testing.assert_array_equal(cp.asnumpy(value), cp.asnumpy(reference), err_msg=f"step {step}")
        assert expected[0].size > 0
        shut = enclosed(cp, free, offsets)
        np.testing.assert_array_equal(cp.asnumpy(division.enclosed(cp, free, offsets)), cp.asnumpy(shut))
        assert occupied < 0.9 or int(shut.sum()) > 0


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")
def test_a_model_with_fused_placement_steps_as_the_reference():
    """configs/necrotic_core.yaml (3-D, fast cycling) with pushing, stepped with fast paths on and off: the same tumor
    cells."""
    def run(fast_paths):
        model = TumorModel(load_config(CONFIGS / "necrotic_core.yaml", ["backend=cupy", "tumor.max_push_distance=3"]),
                           get_backend("cupy", fast_paths=fast_paths))
        for _ in range(8):
            model.step()
        return [_CUPY.asnumpy(array) for array in (model.lattice.tumor.clone, model.lattice.tumor.state,
                                                   model.lattice.tumor.age_h)]

    fused, reference = run(True), run(False)
    for got, expected in zip(fused, reference):
        np.testing.assert_array_equal(got, expected)
