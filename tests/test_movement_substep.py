"""The immune movement substep alone (kernels.immune.movement_substep, the xp reference of the
``immune_movement_substep`` operation): cells are conserved, move one Moore step into voxels that were free,
carry their state, and climb their field; on a GPU its CUDA implementation, called alone, gives its bits.

The whole rule, fused against the reference over model steps, is in tests/test_cuda_movement.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from kernels import immune
from kernels.backend import probe_cupy
from kernels.cuda import movement
from kernels.lattice import moore_offsets
from kernels.layers import EFFECTOR, EXHAUSTED, NONE, ImmuneLayer
from kernels.random import stream_offset, uniform, voxel_index
from tests.conftest import to_host

_CUPY, _CUPY_REASON = probe_cupy()


def substep_inputs(xp, shape, n_fields=2, share=0.4, chance=0.8, bias=(0.3, 0.9, 0.0), key=5):
    """Keyword arguments of one substep: agents 0..2 on ``share`` of the voxels, each cell told apart by its
    exhaustion (distinct values); agent k follows field k (agent 2 none when ``n_fields`` < 3)."""
    index = voxel_index(xp, shape)
    draw = uniform(xp, key, 0, 1, index)
    occupied = draw < share
    agents = xp.where(occupied, (uniform(xp, key, 0, 2, index) * 3).astype(xp.int32), NONE).astype(xp.int32)
    ids = (index.astype(xp.float64) + 1.0).astype(xp.float32)  # exact below 2**24
    fields = [xp.floor(uniform(xp, key, 0, 10 + number, index) * 4.0).astype(dtype)  # coarse: many ties
              for number, dtype in zip(range(n_fields), (xp.float32, xp.float64))]
    return dict(
        immune=ImmuneLayer(agent=agents,
                           state=xp.where(occupied & (draw < share / 2), EXHAUSTED, EFFECTOR).astype(xp.int8),
                           exhaustion=xp.where(occupied, ids, 0.0).astype(xp.float32),
                           age_h=xp.where(occupied, 2.0 * ids, 0.0).astype(xp.float32)),
        chance=xp.where(occupied, chance, 0.0).astype(xp.float64),
        bias=xp.asarray(np.array(bias, dtype=np.float64)),
        agent_field=xp.asarray(np.array([k if k < n_fields else -1 for k in range(3)], dtype=np.int8)),
        fields=fields,
        uphill_offsets=xp.asarray(np.array([stream_offset(key, 1, 4 + k) for k in range(n_fields)], dtype=np.uint64)),
        offsets=moore_offsets(len(shape)),
        move_offset=stream_offset(key, 1, 0), bias_offset=stream_offset(key, 1, 1),
        direction_offset=stream_offset(key, 1, 2), priority_offset=stream_offset(key, 1, 3),
    )


def arrays(layer):
    """The immune layer's arrays on the host: agent, state, exhaustion, age."""
    return [to_host(a) for a in (layer.agent, layer.state, layer.exhaustion, layer.age_h)]


def cells(immune_array, immune_state, exhaustion, immune_age_h):
    """Each cell (told apart by its exhaustion): position, agent, state, age."""
    positions = np.argwhere(immune_array >= 0)
    return {float(exhaustion[tuple(p)]): (tuple(p), int(immune_array[tuple(p)]), int(immune_state[tuple(p)]),
                                          float(immune_age_h[tuple(p)])) for p in positions}


@pytest.mark.parametrize("shape", [(40, 36), (12, 14, 10)])
def test_substep_conserves_cells_and_moves_them_one_step_into_free_voxels(xp, shape):
    inputs = substep_inputs(xp, shape)
    before_arrays = arrays(inputs["immune"])
    after_arrays = arrays(immune.movement_substep(xp, **inputs))
    for array, expected in zip(after_arrays, before_arrays):
        assert array.dtype == expected.dtype and array.shape == expected.shape
    before, after = cells(*before_arrays), cells(*after_arrays)
    assert set(after) == set(before) and len(after) == (before_arrays[0] >= 0).sum()  # none lost, none doubled
    moved = 0
    for cell, (position, agent, state, age) in after.items():
        start, agent_before, state_before, age_before = before[cell]
        assert (agent, state, age) == (agent_before, state_before, age_before)  # the cell carries its state
        step = np.subtract(position, start)
        assert np.abs(step).max() <= 1  # at most one Moore step
        if step.any():
            moved += 1
            assert before_arrays[0][position] < 0  # into a voxel free at the start of the substep
    assert moved > 0.1 * len(before)
    empty = after_arrays[0] < 0
    assert (after_arrays[1][empty] == EFFECTOR).all()
    assert (after_arrays[2][empty] == 0).all() and (after_arrays[3][empty] == 0).all()


def test_substep_without_chance_moves_nothing_and_is_deterministic(xp):
    still = substep_inputs(xp, (30, 30), chance=0.0)
    for got, expected in zip(arrays(immune.movement_substep(xp, **still)), arrays(still["immune"])):
        np.testing.assert_array_equal(got, expected)
    inputs = substep_inputs(xp, (30, 30))
    for first, second in zip(arrays(immune.movement_substep(xp, **inputs)), arrays(immune.movement_substep(xp, **inputs))):
        np.testing.assert_array_equal(first, second)


def test_substep_climbs_the_followed_field_only(xp):
    """Agent 0 follows a field rising along x with bias 1; agent 1 follows a flat field (no direction) and
    agent 2 none: their moves average no x step."""
    shape = (80, 80)
    inputs = substep_inputs(xp, shape, share=0.1, bias=(1.0, 1.0, 1.0))
    inputs["fields"] = [xp.broadcast_to(xp.arange(shape[1], dtype=xp.float32), shape), xp.ones(shape)]
    before = cells(*arrays(inputs["immune"]))
    after = cells(*arrays(immune.movement_substep(xp, **inputs)))
    dx = {0: [], 1: [], 2: []}
    for cell, (position, agent, _, _) in after.items():
        step = np.subtract(position, before[cell][0])
        if step.any():
            dx[agent].append(step[-1])
    assert np.mean(dx[0]) > 0.9
    assert abs(np.mean(dx[1] + dx[2])) < 0.2


@pytest.mark.gpu
@pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")
@pytest.mark.parametrize("n_fields", [0, 1, 2])
@pytest.mark.parametrize("shape", [(40, 36), (12, 14, 10)])
def test_fused_substep_alone_gives_the_bits_of_the_reference(shape, n_fields):
    """Called directly (no model), with no, one or two fields (float32 and float64)."""
    on_host = substep_inputs(np, shape, n_fields)
    expected = arrays(immune.movement_substep(np, **on_host))
    on_device = {name: ([_CUPY.asarray(f) for f in value] if name == "fields"
                        else _CUPY.asarray(value) if isinstance(value, np.ndarray) else value)
                 for name, value in on_host.items()}
    layer = on_host["immune"]
    on_device["immune"] = ImmuneLayer(*(_CUPY.asarray(a) for a in (layer.agent, layer.state, layer.exhaustion, layer.age_h)))
    for got, want in zip(arrays(movement.substep(_CUPY, **on_device)), expected):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
