"""The fused CUDA immune movement gives the xp substeps' bits on a GPU (its source compiles: tests/test_cuda_sources.py).

The xp reference itself (kernels.immune.movement_substep) is tested on the CPU in tests/test_immune.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from abm.config import parse_config
from abm.model import TumorModel
from kernels.backend import get_backend, probe_cupy
from kernels.cuda import movement
from kernels.immune import movement_substep
from kernels.layers import EFFECTOR, ImmuneLayer
from kernels.random import uniform

_CUPY, _CUPY_REASON = probe_cupy()


def test_numpy_backend_moves_with_the_reference():
    assert get_backend("numpy").operation("immune_movement_substep") is movement_substep


def build(shape, backend_name, share=0.4, fast_paths=True):
    """A tumor ball with immune cells on ``share`` of it (T cells on chemokine, MDSCs on danger signal)."""
    raw = {
        "seed": 3,
        "backend": backend_name,
        "lattice": {"shape": list(shape)},
        "time": {"duration_days": 1},
        "fields": {"oxygen": {"preset": "oxygen"}, "chemokine": {"preset": "chemokine"},
                   "danger_signal": {"preset": "danger_signal"}},
        "vessels": {"density": 0.02},
        "tumor": {"initial": {"radius_um": min(shape) * 20.0 / 3.0}, "clones": [{"name": "parental", "antigens": [0]}]},
        "immune": {"t_cells": {"clones": [{"name": "anti0", "antigen": 0}, {"name": "other", "antigen": 0}],
                               "motility": {"speed_um_per_min": 2.5}},
                   "tregs": {"motility": {"chemotaxis_field": None}},
                   "mdscs": {"motility": {"chemotaxis_field": "danger_signal"}}},
    }
    model = TumorModel(parse_config(raw, "fused-movement test"), get_backend(backend_name, fast_paths=fast_paths))
    xp, state = model.xp, model.lattice
    draw = uniform(xp, 99, 0, 1, state.voxel_index)
    place = (state.tumor.clone >= 0) & (draw < share)
    tregs, mdscs = (model.immune.suppressors[kind].index for kind in ("treg", "mdsc"))
    agent = xp.where(draw < 0.2 * share, xp.where(draw < 0.1 * share, tregs, mdscs),
                     xp.where(draw < 0.6 * share, 0, 1))
    state.immune = ImmuneLayer(agent=xp.where(place, agent, state.immune.agent).astype(xp.int32),
                               state=xp.where(place, EFFECTOR, state.immune.state).astype(xp.int8),
                               exhaustion=xp.where(place, draw, 0.0).astype(xp.float32),
                               age_h=xp.where(place, 2.0 * draw, 0.0).astype(xp.float32))
    return model


def immune_arrays(model):
    state = model.lattice
    return [_CUPY.asnumpy(a) for a in (state.immune.agent, state.immune.state, state.immune.exhaustion, state.immune.age_h)]


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")
@pytest.mark.parametrize("shape", [(72, 64), (26, 22, 24)])
def test_fused_movement_gives_the_bits_of_the_xp_movement(shape):
    fused, reference = build(shape, "cupy"), build(shape, "cupy", fast_paths=False)
    assert fused.backend.operation("immune_movement_substep") is movement.substep
    assert reference.backend.operation("immune_movement_substep") is movement_substep
    for step in range(4):  # whole model steps: fields, kills, entry, death, and the movement substeps
        fused.step()
        reference.step()
        for got, expected in zip(immune_arrays(fused), immune_arrays(reference)):
            np.testing.assert_array_equal(got, expected, err_msg=f"model step {step}")
    moved = 0
    for step in range(4):  # movement alone on coarse fields: many ties for the uphill tie-break
        for model in (fused, reference):
            levels = model.xp.floor(uniform(model.xp, 5, step, 2, model.lattice.voxel_index) * 3.0)
            for name in ("chemokine", "danger_signal"):
                model.lattice.fields[name] = levels.astype(model.lattice.fields[name].dtype)
        before = immune_arrays(fused)[0]
        for model in (fused, reference):
            model.context.new_step(model.steps + step)  # a new step's draws each time, as a model step would
            model.rule("immune_movement").apply(model.context)
        for got, expected in zip(immune_arrays(fused), immune_arrays(reference)):
            np.testing.assert_array_equal(got, expected, err_msg=f"movement {step}")
        moved += int((immune_arrays(fused)[0] != before).sum())
    assert moved > 0
    assert (immune_arrays(fused)[0] >= 0).sum() > 100
