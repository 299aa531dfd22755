"""Tumor kernels: oxygen response, death, division and conflict resolution."""
from __future__ import annotations

import numpy as np

from kernels import lattice, tumor
from kernels.lattice import moore_offsets
from kernels.layers import TumorLayer
from kernels.random import uniform, voxel_index
from tests.conftest import to_host

HYPOXIA = tumor.HypoxiaParameters(
    quiescence_below_mmHg=5.0, proliferation_saturation_mmHg=38.0,
    necrosis_threshold_mmHg=5.0, necrosis_max_mmHg=2.5, necrosis_max_rate_per_h=1 / 6)


def draws(xp, shape, stream, step=0):
    return uniform(xp, 11, step, stream, voxel_index(xp, shape))


NO_DORMANCY = (np.zeros(1), np.full(1, np.inf))  # entry and exit rates of one clone


def at(values, index):
    """``values`` (lattice shape) at the flat voxels ``index``."""
    return values.reshape(-1)[index]


def respond(xp, clone, state, age, oxygen, entry_exit=NO_DORMANCY):
    """``(state, age)`` after one step of :func:`kernels.tumor.oxygen_response` of the live cells, as the rule lists them."""
    entry, exit_ = (xp.asarray(rates) for rates in entry_exit)
    layer = cells(xp, clone, state, age)
    live = xp.flatnonzero(layer.live())
    new = tumor.oxygen_response(xp, layer, cells=live, oxygen_mmHg=at(oxygen, live), hypoxia=HYPOXIA,
                                quiescence_entry_per_h=entry, quiescence_exit_per_h=exit_, dt_h=1.0,
                                draw_necrosis=at(draws(xp, oxygen.shape, 1), live),
                                draw_quiescence=at(draws(xp, oxygen.shape, 8), live))
    return new.state, new.age_h


def cells(xp, clone, state, age):
    """The tumor layer of these arrays, no cell dying immunogenically."""
    return TumorLayer(clone=clone, state=state, age_h=age, immunogenic=xp.zeros(clone.shape, dtype=bool))


def die(xp, clone, state, age, rate, shape):
    """``(clone, state, age)`` after one step of :func:`kernels.tumor.death` (8.6 h apoptosis, no necrotic clearance)."""
    occupied = xp.flatnonzero(clone >= 0)
    new = tumor.death(xp, cells(xp, clone, state, age), cells=occupied, apoptosis_rate_per_h=rate,
                      apoptotic_duration_h=8.6, necrotic_clearance_per_h=0.0, dt_h=1.0,
                      draw_apoptosis=at(draws(xp, shape, 2), occupied), draw_clearance=at(draws(xp, shape, 3), occupied))
    return new.clone, new.state, new.age_h




def full_tumor(xp, shape):
    return (xp.zeros(shape, dtype=xp.int32), xp.full(shape, tumor.CYCLING, dtype=xp.int8),
            xp.zeros(shape, dtype=xp.float32))


def test_oxygen_response_thresholds(xp):
    shape = (200, 200)
    clone, state, age = full_tumor(xp, shape)
    oxygen = xp.full(shape, 4.0)
    oxygen[:100] = 20.0
    oxygen[150:] = 1.0  # at or below necrosis_max: full necrosis rate
    new_state, new_age = respond(xp, clone, state, age, oxygen)
    new_state = to_host(new_state)
    assert (new_state[:100] == tumor.CYCLING).all()
    assert set(np.unique(new_state[100:150])) <= {tumor.QUIESCENT, tumor.NECROTIC}
    necrotic_fraction = (new_state[150:] == tumor.NECROTIC).mean()
    expected = 1 - np.exp(-1 / 6)
    assert abs(necrotic_fraction - expected) < 4 * np.sqrt(expected * (1 - expected) / new_state[150:].size)
    # between 2.5 and 5 mmHg the rate ramps: fewer deaths than at full rate
    assert (new_state[100:150] == tumor.NECROTIC).mean() < necrotic_fraction
    assert (to_host(new_age)[new_state == tumor.NECROTIC] == 0).all()


def test_dormancy_entry_and_exit_in_oxygen_follow_the_clone_rates(xp):
    """Clone 0 enters quiescence at 0.2/h, clone 1 never; quiescent cells in oxygen leave at 0.5/h (clone 0) or at once (1)."""
    shape = (200, 200)
    clone = xp.zeros(shape, dtype=xp.int32)
    clone[:, 100:] = 1
    state = xp.full(shape, tumor.CYCLING, dtype=xp.int8)
    state[100:] = tumor.QUIESCENT
    age = xp.zeros(shape, dtype=xp.float32)
    oxygen = xp.full(shape, 20.0)
    rates = (np.array([0.2, 0.0]), np.array([0.5, np.inf]))
    new_state = to_host(respond(xp, clone, state, age, oxygen, rates)[0])
    n = 100 * 100
    for block, expected in (((slice(None, 100), slice(None, 100)), 1 - np.exp(-0.2)),
                            ((slice(100, None), slice(None, 100)), np.exp(-0.5))):
        observed = (new_state[block] == tumor.QUIESCENT).mean()
        assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert (new_state[:, 100:] == tumor.CYCLING).all()  # clone 1: no dormancy, and immediate exit
    hypoxic = to_host(respond(xp, clone, state, age, xp.full(shape, 4.0), rates)[0])
    assert set(np.unique(hypoxic)) <= {tumor.QUIESCENT, tumor.NECROTIC}  # hypoxia overrides the clone rates


def test_growth_probability_keeps_the_mean_growth_of_the_rate(xp):
    rate = xp.asarray([0.0, 0.01, 0.1, 0.5, 10.0])
    p = to_host(tumor.growth_probability(xp, rate, 1.0))
    np.testing.assert_allclose(p[:4], np.expm1([0.0, 0.01, 0.1, 0.5]), rtol=1e-12)
    assert p[4] == 1.0  # clipped at ln 2: at most one division per step


def test_mutant_daughters_only_among_newborn_cells_at_the_clone_rate(xp):
    shape = (300, 300)
    born = draws(xp, shape, 20) < 0.5
    clone = xp.where(xp.arange(300)[None, :] < 150, 0, 1).astype(xp.int32) * xp.ones(shape, dtype=xp.int32)
    mutants = to_host(tumor.mutant_daughters(xp, born, clone=clone, mutation_rate=xp.asarray([0.1, 0.0]),
                                             draw_mutation=draws(xp, shape, 7)))
    born_host = to_host(born)
    assert not mutants[~born_host].any() and not mutants[:, 150:].any()
    n = born_host[:, :150].sum()
    assert abs(mutants.sum() - 0.1 * n) < 4 * np.sqrt(0.1 * 0.9 * n)


def test_apoptosis_rate_and_removal_after_duration(xp):
    shape = (300, 300)
    clone, state, age = full_tumor(xp, shape)
    rate = xp.asarray([0.05])
    new_clone, new_state, _ = die(xp, clone, state, age, rate, shape)
    fraction = (to_host(new_state) == tumor.APOPTOTIC).mean()
    expected = 1 - np.exp(-0.05)
    assert abs(fraction - expected) < 4 * np.sqrt(expected * (1 - expected) / (300 * 300))
    assert (to_host(new_clone) == 0).all()  # nobody removed in the step apoptosis starts
    apoptotic = xp.full(shape, tumor.APOPTOTIC, dtype=xp.int8)
    old = xp.full(shape, 9.0, dtype=xp.float32)
    old[:150] = 5.0
    removed_clone, _, _ = die(xp, clone, apoptotic, old, rate, shape)
    removed_clone = to_host(removed_clone)
    assert (removed_clone[150:] == -1).all() and (removed_clone[:150] == 0).all()


def test_division_probability_follows_oxygen(xp):
    oxygen = xp.asarray([0.0, 5.0, 21.5, 38.0, 60.0])
    p = to_host(tumor.division_probability(xp, xp.zeros(5, dtype=xp.int32), oxygen_mmHg=oxygen,
                                           division_rate_per_h=xp.asarray([0.1]), hypoxia=HYPOXIA, dt_h=1.0))
    full = np.expm1(0.1)
    np.testing.assert_allclose(p, [0.0, 0.0, np.expm1(0.05), full, full], rtol=1e-12)


def run_division(xp, shape, occupied_fraction, step):
    """A random lattice, its dividing cells and :func:`kernels.tumor.place_daughters`'s ``(source, target)``, on the host."""
    offsets = moore_offsets(len(shape))
    occupied = draws(xp, shape, 9, step) < occupied_fraction
    dividing = occupied & (draws(xp, shape, 10, step) < 0.7)
    mothers = xp.flatnonzero(dividing)
    source, target = tumor.place_daughters(xp, mothers, free=~occupied, offsets=offsets,
                                           draw_direction=at(draws(xp, shape, 5, step), mothers),
                                           draw_priority=at(draws(xp, shape, 6, step), mothers))
    return offsets, to_host(occupied), to_host(dividing), to_host(source), to_host(target)


def test_every_daughter_has_one_winning_dividing_mother_in_a_free_voxel(xp):
    for shape in ((40, 40), (12, 13, 14)):
        for step in range(3):
            offsets, occupied, dividing, source, target = run_division(xp, shape, 0.5, step)
            assert source.shape == target.shape and source.size > 0
            assert len(set(source.tolist())) == len(set(target.tolist())) == source.size  # one daughter per mother
            assert not occupied.reshape(-1)[target].any()
            assert dividing.reshape(-1)[source].all()
            assert (np.diff(source) > 0).all()  # in the order of the mothers
            moves = np.stack(np.unravel_index(target, shape)) - np.stack(np.unravel_index(source, shape))
            assert (np.abs(moves).max(axis=0) == 1).all()  # a Moore neighbour (inside: unravel_index of a flat index)


def test_division_result_does_not_depend_on_backend(xp):
    numpy_result = run_division(np, (10, 11, 12), 0.6, 1)
    backend_result = run_division(xp, (10, 11, 12), 0.6, 1)
    for a, b in zip(numpy_result[1:], backend_result[1:]):
        np.testing.assert_array_equal(a, b)


def test_gather_from_sources_copies_the_source_value(xp):
    shape = (20, 20)
    offsets, _, _, source, target = run_division(xp, shape, 0.4, 0)
    moves = [tuple(m) for m in (np.stack(np.unravel_index(target, shape)) - np.stack(np.unravel_index(source, shape))).T]
    source_direction = np.full(shape, -1, dtype=np.int8)
    source_direction.reshape(-1)[target] = [offsets.index(move) for move in moves]
    values = np.arange(400, dtype=np.int32).reshape(shape)
    copied = to_host(lattice.gather(xp.asarray(values), lattice.source_index(xp, xp.asarray(source_direction), offsets)))
    np.testing.assert_array_equal(copied.reshape(-1)[target], source)
    untouched = source_direction < 0
    np.testing.assert_array_equal(copied[untouched], values[untouched])
