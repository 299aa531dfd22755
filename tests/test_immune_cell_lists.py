"""The immune kernels over lists of cells against the whole-lattice formulation they replaced, bit for bit.

The oracles below are the whole-lattice versions (one array pass per
neighbour offset) as they were before the kernels moved to cell lists; they
live here only. Each comparison runs on crowded and sparse random
configurations in 2-D and 3-D (cells on the boundary included) and, for the
claims and the uphill choice, with forced ties (equal priorities, coarse
fields).
"""
from __future__ import annotations

import numpy as np
import pytest

from kernels import immune
from kernels.lattice import (
    gather, listed_choice, listed_claim, moore_offsets, neighbour_indices, placed, shifted, source_index, uniform_choice,
)
from kernels.layers import APOPTOTIC, EFFECTOR, EXHAUSTED, NONE, ImmuneLayer, TumorLayer
from kernels.random import stream_offset, uniform, uniform_at, voxel_index
from kernels.tumor import probability
from tests.test_movement_substep import arrays, substep_inputs
from tests.test_tumor_cell_lists import lattice_claim, lattice_place_daughters

SHAPES = [(23, 17), (7, 9, 6)]
SHARES = [0.02, 0.5, 0.9]


def draws(xp, shape, stream, step=0):
    return uniform(xp, 33, step, stream, voxel_index(xp, shape))


# --------------------------------------------------------------------------- oracles: the whole-lattice kernels

def lattice_cleared(layer, mask):
    return ImmuneLayer(agent=np.where(mask, NONE, layer.agent).astype(np.int32),
                       state=np.where(mask, EFFECTOR, layer.state).astype(np.int8),
                       exhaustion=np.where(mask, 0.0, layer.exhaustion).astype(np.float32),
                       age_h=np.where(mask, 0.0, layer.age_h).astype(np.float32))


def lattice_gathered(layer, origin):
    return ImmuneLayer(agent=gather(layer.agent, origin), state=gather(layer.state, origin),
                       exhaustion=gather(layer.exhaustion, origin), age_h=gather(layer.age_h, origin))


def lattice_uphill_direction(xp, field, allowed, offsets, draw):
    best = field.copy()
    for k, offset in enumerate(offsets):
        level = shifted(xp, field, offset, -xp.inf)
        best = xp.where(allowed[k] & (level > best), level, best)
    climbs = best > field
    tied = xp.zeros(field.shape, dtype=xp.int32)
    for k, offset in enumerate(offsets):
        tied += allowed[k] & (shifted(xp, field, offset, -xp.inf) == best)
    rank = xp.floor(draw * tied).astype(xp.int32)
    choice = xp.full(field.shape, -1, dtype=xp.int8)
    seen = xp.zeros(field.shape, dtype=xp.int32)
    for k, offset in enumerate(offsets):
        top = allowed[k] & (shifted(xp, field, offset, -xp.inf) == best)
        choice = xp.where(climbs & top & (seen == rank), k, choice).astype(xp.int8)
        seen += top
    return choice


def lattice_movement_substep(xp, immune, *, chance, bias, agent_field, fields, uphill_offsets, offsets,
                             move_offset, bias_offset, direction_offset, priority_offset):
    index = voxel_index(xp, immune.agent.shape)
    occupied = immune.agent >= 0
    agent = xp.maximum(immune.agent, 0)
    free = ~occupied
    allowed = [shifted(xp, free, offset, False) for offset in offsets]
    uphill = xp.full(immune.agent.shape, -1, dtype=xp.int8)
    if len(fields):
        followed = xp.take(agent_field, agent)
        for number, field in enumerate(fields):
            climb = lattice_uphill_direction(xp, field, allowed, offsets, uniform_at(xp, uphill_offsets[number], index))
            uphill = xp.where(followed == number, climb, uphill).astype(xp.int8)
    movers = occupied & (uniform_at(xp, move_offset, index) < chance)
    random_choice = uniform_choice(xp, movers, allowed, uniform_at(xp, direction_offset, index))
    climbs = movers & (uphill >= 0) & (uniform_at(xp, bias_offset, index) < bias[agent])
    choice = xp.where(climbs, uphill, random_choice).astype(xp.int8)
    source, won = lattice_claim(xp, choice, free, offsets, uniform_at(xp, priority_offset, index))
    return lattice_cleared(lattice_gathered(immune, source_index(xp, source, offsets)), won)


def lattice_t_cell_kill(xp, tumor, immune_layer, *, effector, t_antigen, tumor_antigens, tumor_pdl1, occupancy,
                        kill_factor, targets_offsets, parameters, dt_h, draw_target, draw_kill):
    clone = tumor.clone
    live = tumor.live()
    bit = xp.maximum(t_antigen, 0).astype(xp.uint64)
    candidates = []
    for offset in targets_offsets:
        neighbour = shifted(xp, clone, offset, -1)
        presents = (tumor_antigens[xp.maximum(neighbour, 0)] >> bit) & xp.uint64(1)
        candidates.append(effector & shifted(xp, live, offset, False) & (presents == 1))
    choice = uniform_choice(xp, effector, candidates, draw_target)
    engaged = choice >= 0
    voxel_pdl1 = xp.where(clone >= 0, tumor_pdl1[xp.maximum(clone, 0)], 0.0)
    target_pdl1 = xp.zeros(clone.shape, dtype=xp.float64)
    for k, offset in enumerate(targets_offsets):
        target_pdl1 = xp.where(choice == k, shifted(xp, voxel_pdl1, offset, 0.0), target_pdl1)
    free_brake = target_pdl1 * (1.0 - occupancy)
    rate = parameters.kill_rate_per_h * (1.0 - parameters.pdl1_inhibition * free_brake) * kill_factor
    killers = engaged & (draw_kill < probability(xp, rate, dt_h))
    killed = xp.zeros(clone.shape, dtype=bool)
    for k, offset in enumerate(targets_offsets):
        back = tuple(-step for step in offset)
        killed |= shifted(xp, killers & (choice == k), back, False)
    added = xp.where(engaged, parameters.exhaustion_per_engagement_h * dt_h * free_brake, 0.0)
    added = added + xp.where(killers, parameters.exhaustion_per_kill, 0.0)
    new_state = xp.where(killed, APOPTOTIC, tumor.state).astype(tumor.state.dtype)
    new_age = xp.where(killed, 0.0, tumor.age_h).astype(tumor.age_h.dtype)
    exhaustion = immune_layer.exhaustion
    return (tumor.replace(state=new_state, age_h=new_age),
            immune_layer.replace(exhaustion=(exhaustion + added).astype(exhaustion.dtype)), killers, killed)


def lattice_divide(xp, immune_layer, *, dividing, offsets, draw_direction, draw_priority):
    source, _ = lattice_place_daughters(xp, dividing, free=immune_layer.agent < 0, offsets=offsets,
                                        draw_direction=draw_direction, draw_priority=draw_priority)
    daughters = lattice_gathered(immune_layer, source_index(xp, source, offsets))
    return daughters.replace(age_h=xp.where(source >= 0, 0.0, immune_layer.age_h).astype(xp.float32))


def lattice_neighbour_of(xp, mask, offsets):
    found = xp.zeros(mask.shape, dtype=bool)
    for offset in offsets:
        found |= shifted(xp, mask, offset, False)
    return found


# --------------------------------------------------------------------------- helpers

def on_lattice(shape, index, values=True):
    values = np.asarray(values)
    out = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    out[index] = values
    return out.reshape(shape)


def assert_same_layer(got, expected):
    for a, b in zip(arrays(got), arrays(expected)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def tumor_layer(shape, stream, share=0.7):
    clone = np.where(draws(np, shape, stream) < share, (draws(np, shape, stream + 1) * 3).astype(np.int32), -1)
    state = (draws(np, shape, stream + 2) * 4).astype(np.int8)  # every state, dying ones included
    return TumorLayer(clone=clone.astype(np.int32), state=np.where(clone >= 0, state, 0).astype(np.int8),
                      age_h=(draws(np, shape, stream + 3) * 10).astype(np.float32), immunogenic=np.zeros(shape, dtype=bool))


# --------------------------------------------------------------------------- the pieces

@pytest.mark.parametrize("shape", SHAPES)
def test_neighbour_indices_are_the_shifted_indices(shape):
    offsets = [(0,) * len(shape)] + moore_offsets(len(shape))
    every = np.arange(int(np.prod(shape)))
    got = neighbour_indices(np, shape, every, offsets)
    flat = every.reshape(shape)
    for k, offset in enumerate(offsets):
        np.testing.assert_array_equal(got[:, k], shifted(np, flat, offset, -1).reshape(-1))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("share", SHARES)
def test_listed_choice_is_uniform_choice(shape, share):
    offsets = moore_offsets(len(shape))
    allowed = [draws(np, shape, 40 + k) < share for k in range(len(offsets))]
    wants = draws(np, shape, 39) < 0.7
    draw = draws(np, shape, 38)
    expected = uniform_choice(np, wants, allowed, draw)
    listed = np.flatnonzero(wants)
    got = listed_choice(np, np.stack([a.reshape(-1)[listed] for a in allowed], axis=1), draw.reshape(-1)[listed])
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expected.reshape(-1)[listed])
    assert (expected[~wants] == -1).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("levels", [None, 2])
def test_listed_claim_is_the_lattice_claim(shape, share, levels):
    """Claims toward free voxels; ``levels``: priorities from only that many values (forced ties, lowest k wins)."""
    offsets = moore_offsets(len(shape))
    free = draws(np, shape, 50) >= share
    claimants = np.flatnonzero(~free.reshape(-1))
    neighbour = neighbour_indices(np, shape, claimants, offsets)
    allowed = (neighbour >= 0) & free.reshape(-1)[np.maximum(neighbour, 0)]
    choice = listed_choice(np, allowed, draws(np, shape, 51).reshape(-1)[claimants])
    priority = draws(np, shape, 52)
    if levels is not None:
        priority = np.floor(priority * levels) / levels
    choice_lattice = np.full(shape, -1, dtype=np.int8)
    choice_lattice.reshape(-1)[claimants] = choice
    source_direction, won = lattice_claim(np, choice_lattice, free, offsets, priority)
    source, target = placed(np, claimants, neighbour, choice, priority.reshape(-1)[claimants])
    np.testing.assert_array_equal(np.sort(source), np.flatnonzero(won))
    expected_target = np.flatnonzero(source_direction.reshape(-1) >= 0)
    np.testing.assert_array_equal(np.sort(target), expected_target)
    expected_source = source_index(np, source_direction, offsets).reshape(-1)[target]
    np.testing.assert_array_equal(source, expected_source)


def test_listed_claim_breaks_equal_priorities_by_the_lowest_direction():
    target = np.array([5, 5, 5, 9, 9])
    direction = np.array([3, 1, 2, 7, 0])
    won = listed_claim(np, target, direction, np.array([0.5, 0.5, 0.25, 0.0, 0.0]))
    np.testing.assert_array_equal(won, [False, True, False, False, True])


# --------------------------------------------------------------------------- the kernels

@pytest.mark.parametrize("n_fields", [0, 1, 2])
@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("shape", SHAPES + [(1, 40), (3, 3, 3)])
def test_movement_substep_is_the_lattice_substep(shape, share, n_fields):
    for key in (5, 6):
        inputs = substep_inputs(np, shape, n_fields, share=share, key=key)
        got = immune.movement_substep(np, **inputs)
        assert_same_layer(got, lattice_movement_substep(np, **inputs))
        assert share < 0.5 or not np.array_equal(got.agent, inputs["immune"].agent)  # some cells moved


@pytest.mark.parametrize("shape", SHAPES)
def test_movement_substep_with_flat_fields_ties_every_neighbour(shape):
    inputs = substep_inputs(np, shape, 2, share=0.3, bias=(1.0, 1.0, 1.0))
    inputs["fields"] = [np.zeros(shape, dtype=np.float32), np.floor(draws(np, shape, 60) * 2.0)]
    assert_same_layer(immune.movement_substep(np, **inputs), lattice_movement_substep(np, **inputs))


@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("shape", SHAPES)
def test_t_cell_kill_is_the_lattice_kill(shape, share):
    offsets = [(0,) * len(shape)] + moore_offsets(len(shape))
    tumor = tumor_layer(shape, 70)
    layer = ImmuneLayer.empty(np, shape).replace(exhaustion=(draws(np, shape, 75) * 0.9).astype(np.float32))
    effector = draws(np, shape, 76) < share
    t_antigen = (draws(np, shape, 77) * 3).astype(np.int64)
    occupancy = draws(np, shape, 78)
    kill_factor = draws(np, shape, 79)
    parameters = immune.KillParameters(kill_rate_per_h=0.7, pdl1_inhibition=0.8, exhaustion_per_kill=0.2,
                                       exhaustion_per_engagement_h=0.05)
    common = dict(tumor_antigens=np.array([0b011, 0b110, 0b101], dtype=np.uint64),
                  tumor_pdl1=np.array([0.0, 0.5, 1.0]), targets_offsets=offsets, parameters=parameters, dt_h=2.0)
    draw_target, draw_kill = draws(np, shape, 80), draws(np, shape, 81)
    expected = lattice_t_cell_kill(np, tumor, layer, effector=effector, t_antigen=t_antigen, occupancy=occupancy,
                                   kill_factor=kill_factor, draw_target=draw_target, draw_kill=draw_kill, **common)
    listed = np.flatnonzero(effector)

    def at(values):
        return values.reshape(-1)[listed]

    got = immune.t_cell_kill(np, tumor, layer, effectors=listed, t_antigen=at(t_antigen), occupancy=at(occupancy),
                             kill_factor=at(kill_factor), draw_target=at(draw_target), draw_kill=at(draw_kill), **common)
    for name in ("state", "age_h"):
        np.testing.assert_array_equal(getattr(got[0], name), getattr(expected[0], name))
    np.testing.assert_array_equal(got[1].exhaustion, expected[1].exhaustion)
    np.testing.assert_array_equal(on_lattice(shape, listed, got[2]), expected[2])
    np.testing.assert_array_equal(got[3], np.flatnonzero(expected[3]))
    assert expected[3].any() or share < 0.1


@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("shape", SHAPES)
def test_divide_is_the_lattice_divide(shape, share):
    offsets = moore_offsets(len(shape))
    layer = substep_inputs(np, shape, share=share)["immune"]
    dividing = (layer.agent >= 0) & (draws(np, shape, 90) < 0.6)
    draw_direction, draw_priority = draws(np, shape, 91), draws(np, shape, 92)
    expected = lattice_divide(np, layer, dividing=dividing, offsets=offsets, draw_direction=draw_direction,
                              draw_priority=draw_priority)
    listed = np.flatnonzero(dividing)
    got = immune.divide(np, layer, dividing=listed, offsets=offsets, draw_direction=draw_direction.reshape(-1)[listed],
                        draw_priority=draw_priority.reshape(-1)[listed])
    assert_same_layer(got, expected)
    assert share > 0.8 or (got.agent >= 0).sum() > (layer.agent >= 0).sum()  # some daughters placed


@pytest.mark.parametrize("shape", SHAPES)
def test_enter_and_die_are_the_lattice_kernels(shape):
    layer = substep_inputs(np, shape, share=0.3)["immune"]
    rate = np.where(draws(np, shape, 100) < 0.2, draws(np, shape, 101) * 3.0, 0.0)
    cumulative = np.array([0.2, 0.7, 1.0])
    draw_enter, draw_which = draws(np, shape, 102), draws(np, shape, 103)
    entered = (layer.agent < 0) & (draw_enter < probability(np, rate, 0.5))
    which = np.minimum(np.searchsorted(cumulative, draw_which, side="right"), 2)
    expected = ImmuneLayer(agent=np.where(entered, 4 + which, layer.agent).astype(np.int32),
                           state=np.where(entered, EFFECTOR, layer.state).astype(np.int8),
                           exhaustion=np.where(entered, 0.0, layer.exhaustion).astype(np.float32),
                           age_h=np.where(entered, 0.0, layer.age_h).astype(np.float32))
    sites = np.flatnonzero(rate.reshape(-1) > 0)
    got, new = immune.enter(np, layer, sites=sites, entry_rate_per_h=rate.reshape(-1)[sites], dt_h=0.5,
                            cumulative_weights=cumulative, first_agent=4, draw_enter=draw_enter.reshape(-1)[sites],
                            draw_which=draw_which.reshape(-1)[sites])
    assert_same_layer(got, expected)
    np.testing.assert_array_equal(new, np.flatnonzero(entered))

    death = np.where(layer.state == EXHAUSTED, 0.9, 0.2) * (layer.agent >= 0)
    draw = draws(np, shape, 104)
    died = (layer.agent >= 0) & (draw < probability(np, death, 1.0))
    cells = np.flatnonzero(layer.agent.reshape(-1) >= 0)
    got, listed_died = immune.die(np, layer, cells=cells, death_rate_per_h=death.reshape(-1)[cells], dt_h=1.0,
                                  draw=draw.reshape(-1)[cells])
    assert_same_layer(got, lattice_cleared(layer, died))
    np.testing.assert_array_equal(on_lattice(shape, cells, listed_died), died)


@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("shape", SHAPES)
def test_contact_scan_is_neighbour_of(shape, share):
    """The suppression factor's contact scan (abm.immunity.ImmuneSystem.suppression): a neighbour of the kind."""
    offsets = moore_offsets(len(shape))
    kinds = np.where(draws(np, shape, 110) < share, (draws(np, shape, 111) * 3).astype(np.int8), -1)
    cells = np.flatnonzero(kinds.reshape(-1) >= 0)
    neighbour = neighbour_indices(np, shape, cells, offsets)
    near_kinds = np.where(neighbour >= 0, kinds.reshape(-1)[np.maximum(neighbour, 0)], -1)
    for code in (1, 2):
        expected = lattice_neighbour_of(np, kinds == code, offsets).reshape(-1)[cells]
        np.testing.assert_array_equal((near_kinds == code).any(axis=1), expected)


def test_a_draw_at_listed_voxels_is_the_lattice_draw():
    shape = (9, 8, 7)
    offset = stream_offset(3, 4, 5)
    listed = np.array([0, 17, 200, 503])
    np.testing.assert_array_equal(uniform_at(np, offset, listed.astype(np.uint64)),
                                  uniform_at(np, offset, voxel_index(np, shape)).reshape(-1)[listed])
