"""The tumor kernels over lists of cells against the whole-lattice formulation they replaced, bit for bit.

The oracles below are the whole-lattice versions (oxygen response, death and
division probability as elementwise passes over every voxel; daughter
placement as array passes per neighbour offset: a shifted copy of the free
voxels, the uniform choice, the claims) as they were before the kernels moved
to cell lists; they live here only (tests/test_immune_cell_lists.py uses the
claim and the placement). Each comparison runs on crowded and sparse random
lattices of every tumor state, with empty voxels, vessels and cells on the
boundary, in 2-D and 3-D, and the placement also with forced ties (priorities
from two values).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from kernels import tumor
from kernels.lattice import gather, moore_offsets, shifted, source_index, uniform_choice
from kernels.layers import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, TumorLayer
from kernels.random import uniform, voxel_index
from kernels.tumor import HypoxiaParameters, probability

SHAPES = [(23, 17), (7, 9, 6), (1, 7, 9)]
SHARES = [0.1, 0.5, 0.95]
HYPOXIA = HypoxiaParameters(quiescence_below_mmHg=5.0, proliferation_saturation_mmHg=38.0,
                            necrosis_threshold_mmHg=5.0, necrosis_max_mmHg=2.5, necrosis_max_rate_per_h=0.5)
#: Two clones: one dormant-prone with a finite exit rate, one that never enters and leaves at once.
ENTRY, EXIT = np.array([0.3, 0.0]), np.array([0.6, np.inf])


def draws(shape, stream, step=0):
    return uniform(np, 21, step, stream, voxel_index(np, shape))


def random_tumor(shape, share, step=0):
    """A tumor of two clones on ``share`` of the voxels, every state, ages 0-20 h, some cells immunogenic."""
    occupied = draws(shape, 1, step) < share
    clone = np.where(occupied, (draws(shape, 2, step) < 0.5).astype(np.int32), -1).astype(np.int32)
    state = np.where(occupied, np.floor(draws(shape, 3, step) * 4), CYCLING).astype(np.int8)
    age_h = np.where(occupied, np.floor(draws(shape, 4, step) * 40) / 2, 0.0).astype(np.float32)
    immunogenic = occupied & (state == APOPTOTIC) & (draws(shape, 5, step) < 0.5)
    return TumorLayer(clone=clone, state=state, age_h=age_h, immunogenic=immunogenic)


def oxygen(shape, step=0):
    """``float32`` oxygen from 0 to 45 mmHg: every regime of the thresholds."""
    return (draws(shape, 6, step) * 45.0).astype(np.float32)


def assert_same_layer(got, expected):
    for name in ("clone", "state", "age_h", "immunogenic"):
        value, reference = getattr(got, name), getattr(expected, name)
        assert value.dtype == reference.dtype and value.shape == reference.shape, name
        np.testing.assert_array_equal(value, reference, err_msg=name)


# --------------------------------------------------------------------------- oracles: the whole-lattice kernels

def _ramp(value, zero_at, one_at):
    return np.clip((value - zero_at) / (one_at - zero_at), 0.0, 1.0)


def lattice_oxygen_response(cells, *, oxygen_mmHg, draw_necrosis, draw_quiescence, dt_h):
    live = cells.live()
    hypoxic = oxygen_mmHg < HYPOXIA.quiescence_below_mmHg
    index = np.maximum(cells.clone, 0)
    leaves_cycling = draw_quiescence < probability(np, ENTRY[index], dt_h)
    leaves_quiescence = draw_quiescence < probability(np, EXIT[index], dt_h)
    oxygenated_target = np.where(cells.state == CYCLING, np.where(leaves_cycling, QUIESCENT, CYCLING),
                                 np.where(leaves_quiescence, CYCLING, QUIESCENT))
    target = np.where(hypoxic, QUIESCENT, oxygenated_target).astype(cells.state.dtype)
    switched = live & (target != cells.state)
    necrosis_rate = HYPOXIA.necrosis_max_rate_per_h * _ramp(oxygen_mmHg, HYPOXIA.necrosis_threshold_mmHg,
                                                            HYPOXIA.necrosis_max_mmHg)
    necrotic = live & (draw_necrosis < probability(np, necrosis_rate, dt_h))
    new_state = np.where(live, target, cells.state)
    new_state = np.where(necrotic, NECROTIC, new_state).astype(cells.state.dtype)
    new_age = np.where(switched | necrotic, 0.0, cells.age_h).astype(cells.age_h.dtype)
    return cells.replace(state=new_state, age_h=new_age)


def lattice_death(cells, *, apoptosis_rate_per_h, apoptotic_duration_h, necrotic_clearance_per_h, dt_h,
                  draw_apoptosis, draw_clearance):
    occupied = cells.clone >= 0
    starts = cells.live() & (draw_apoptosis < probability(np, apoptosis_rate_per_h[np.maximum(cells.clone, 0)], dt_h))
    finished = occupied & (cells.state == APOPTOTIC) & (cells.age_h >= apoptotic_duration_h)
    cleared = occupied & (cells.state == NECROTIC) & (draw_clearance < -math.expm1(-necrotic_clearance_per_h * dt_h))
    removed = finished | cleared
    new_clone = np.where(removed, -1, cells.clone).astype(cells.clone.dtype)
    new_state = np.where(starts, APOPTOTIC, cells.state)
    new_state = np.where(removed, CYCLING, new_state).astype(cells.state.dtype)
    new_age = np.where(starts | removed, 0.0, cells.age_h).astype(cells.age_h.dtype)
    return TumorLayer(clone=new_clone, state=new_state, age_h=new_age, immunogenic=cells.immunogenic & (new_clone >= 0))


def lattice_division_probability(cells, *, oxygen_mmHg, division_rate_per_h, dt_h):
    cycling = (cells.clone >= 0) & (cells.state == CYCLING)
    factor = _ramp(oxygen_mmHg, HYPOXIA.quiescence_below_mmHg, HYPOXIA.proliferation_saturation_mmHg)
    rate = division_rate_per_h[np.maximum(cells.clone, 0)] * factor
    return np.where(cycling, tumor.growth_probability(np, rate, dt_h), 0.0)


def lattice_claim(xp, choice, free, offsets, draw_priority):
    """Each claimed free voxel to its claimant of the highest priority (strictly higher: the lowest offset keeps a
    tie): ``(source_direction, won)``, int8 and bool, lattice shape."""
    best_priority = xp.full(choice.shape, -1.0, dtype=xp.float64)
    source_direction = xp.full(choice.shape, -1, dtype=xp.int8)
    for k, offset in enumerate(offsets):
        back = tuple(-step for step in offset)
        claimed = free & (shifted(xp, choice, back, -1) == k)
        priority = shifted(xp, draw_priority, back, -1.0)
        better = claimed & (priority > best_priority)
        best_priority = xp.where(better, priority, best_priority)
        source_direction = xp.where(better, k, source_direction).astype(xp.int8)
    won = xp.zeros(choice.shape, dtype=bool)
    for k, offset in enumerate(offsets):
        won |= (choice == k) & (shifted(xp, source_direction, offset, -1) == k)
    return source_direction, won


def lattice_place_daughters(xp, dividing, *, free, offsets, draw_direction, draw_priority):
    """The placement over the whole lattice: ``(source_direction, mother_won)``, int8 and bool, lattice shape."""
    free_neighbour = [shifted(xp, free, offset, False) for offset in offsets]
    choice = uniform_choice(xp, dividing, free_neighbour, draw_direction)
    return lattice_claim(xp, choice, free, offsets, draw_priority)


def lattice_divide(cells, *, dividing, free, offsets, draw_direction, draw_priority):
    source_direction, mother_won = lattice_place_daughters(np, dividing, free=free, offsets=offsets,
                                                           draw_direction=draw_direction, draw_priority=draw_priority)
    born = source_direction >= 0
    clone = gather(cells.clone, source_index(np, source_direction, offsets))
    state = np.where(born, CYCLING, cells.state).astype(cells.state.dtype)
    age_h = np.where(born | mother_won, 0.0, cells.age_h).astype(cells.age_h.dtype)
    return cells.replace(clone=clone, state=state, age_h=age_h), born


# --------------------------------------------------------------------------- the kernels

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("share", SHARES)
def test_listed_oxygen_response_is_the_lattice_response(shape, share):
    for step in range(3):
        cells, o2 = random_tumor(shape, share, step), oxygen(shape, step)
        necrosis, quiescence = draws(shape, 7, step), draws(shape, 8, step)
        expected = lattice_oxygen_response(cells, oxygen_mmHg=o2, draw_necrosis=necrosis, draw_quiescence=quiescence,
                                           dt_h=1.0)
        live = np.flatnonzero(cells.live())  # the rule's list
        got = tumor.oxygen_response(np, cells, cells=live, oxygen_mmHg=o2.reshape(-1)[live], hypoxia=HYPOXIA,
                                    quiescence_entry_per_h=ENTRY, quiescence_exit_per_h=EXIT, dt_h=1.0,
                                    draw_necrosis=necrosis.reshape(-1)[live], draw_quiescence=quiescence.reshape(-1)[live])
        assert_same_layer(got, expected)
        assert got.clone is cells.clone and got.immunogenic is cells.immunogenic
        assert cells.state is not got.state and (cells.state == expected.state).all() == (live.size == 0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("share", SHARES)
def test_listed_death_is_the_lattice_death(shape, share):
    rate = np.array([0.8, 0.3])
    taken, listed = np.zeros(3, dtype=int), 0
    for step in range(3):
        cells = random_tumor(shape, share, step)
        apoptosis, clearance = draws(shape, 9, step), draws(shape, 10, step)
        expected = lattice_death(cells, apoptosis_rate_per_h=rate, apoptotic_duration_h=8.5,
                                 necrotic_clearance_per_h=0.3, dt_h=1.0, draw_apoptosis=apoptosis,
                                 draw_clearance=clearance)
        occupied = np.flatnonzero(cells.occupied())  # the rule's list
        got = tumor.death(np, cells, cells=occupied, apoptosis_rate_per_h=rate, apoptotic_duration_h=8.5,
                          necrotic_clearance_per_h=0.3, dt_h=1.0, draw_apoptosis=apoptosis.reshape(-1)[occupied],
                          draw_clearance=clearance.reshape(-1)[occupied])
        assert_same_layer(got, expected)
        listed += occupied.size
        taken += [((got.state == APOPTOTIC) & (cells.state != APOPTOTIC)).sum(),
                  ((got.clone < 0) & (cells.state == APOPTOTIC) & cells.occupied()).sum(),
                  ((got.clone < 0) & (cells.state == NECROTIC) & cells.occupied()).sum()]
    assert listed < 100 or (taken > 0).all()  # every branch taken: starts, removals after apoptosis, clearance


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("share", SHARES)
@pytest.mark.parametrize("levels", [None, 2])
def test_listed_division_is_the_lattice_division(shape, share, levels):
    """Who divides (the rule's list of cycling cells and its draw), where the daughters go and the layer after:
    the whole-lattice result. ``levels``: priorities from that many values only (forced ties)."""
    offsets = moore_offsets(len(shape))
    rate = np.array([3.0, 2.0])
    placed, tried = 0, 0
    for step in range(3):
        cells, o2 = random_tumor(shape, share, step), oxygen(shape, step)
        vessel = draws(shape, 11, step) < 0.05
        free = (cells.clone < 0) & ~vessel
        division, direction, priority = draws(shape, 12, step), draws(shape, 13, step), draws(shape, 14, step)
        if levels is not None:
            priority = np.floor(priority * levels) / levels
        dividing = division < lattice_division_probability(cells, oxygen_mmHg=o2, division_rate_per_h=rate, dt_h=1.0)
        expected, born = lattice_divide(cells, dividing=dividing, free=free, offsets=offsets, draw_direction=direction,
                                        draw_priority=priority)

        clone = cells.clone.reshape(-1)  # as abm.rules.TumorDivision lists them
        cycling = np.flatnonzero((clone >= 0) & (cells.state.reshape(-1) == CYCLING))
        p = tumor.division_probability(np, clone[cycling], oxygen_mmHg=o2.reshape(-1)[cycling],
                                       division_rate_per_h=rate, hypoxia=HYPOXIA, dt_h=1.0)
        mothers = cycling[division.reshape(-1)[cycling] < p]
        np.testing.assert_array_equal(mothers, np.flatnonzero(dividing))
        got, daughters = tumor.divide(np, cells, mothers=mothers, free=free, offsets=offsets,
                                      draw_direction=direction.reshape(-1)[mothers],
                                      draw_priority=priority.reshape(-1)[mothers])
        assert_same_layer(got, expected)
        np.testing.assert_array_equal(np.sort(daughters), np.flatnonzero(born))
        assert got.immunogenic is cells.immunogenic
        placed, tried = placed + daughters.size, tried + mothers.size
    assert share != 0.5 or 0 < placed < tried  # some placed, some crowded out or without a free neighbour
