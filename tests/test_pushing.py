"""Pushing (tumor.max_push_distance): chains of cells shoved toward a free voxel, conflict-free and device-independent."""
from __future__ import annotations

from collections import Counter

import numpy as np

from abm.config import load_config
from abm.model import TumorModel
from kernels import tumor
from kernels.lattice import moore_offsets
from kernels.layers import APOPTOTIC, CYCLING, NECROTIC, TumorLayer
from kernels.random import uniform, voxel_index
from tests.conftest import to_host
from tests.presets import CONFIGS


def draws(xp, shape, stream, step=0):
    return uniform(xp, 5, step, stream, voxel_index(xp, shape))


def tagged_tumor(xp, shape, step):
    """A crowded lattice of cells that each carry a unique tag in every array, and its free voxels and vessels.

    The clone index is the tag; age, state and the immunogenic mark are functions of it, so a cell that moves
    without one of its arrays shows up as a tag whose arrays disagree.
    """
    size = int(np.prod(shape))
    roll = to_host(draws(xp, shape, 1, step))
    occupied, vessel = roll < 0.9, roll > 0.97
    tag = np.where(occupied, np.arange(size).reshape(shape), -1).astype(np.int32)
    state = np.where(occupied, tag % 4, CYCLING).astype(np.int8)
    cells = TumorLayer(clone=xp.asarray(tag), state=xp.asarray(state),
                       age_h=xp.asarray(np.where(occupied, tag, 0).astype(np.float32)),
                       immunogenic=xp.asarray(occupied & (tag % 3 == 0)))
    return cells, xp.asarray(~occupied & ~vessel), occupied


def run_push(xp, shape, step, max_cells):
    """One push of the tagged lattice by the cycling cells without a free neighbour; host arrays."""
    offsets = moore_offsets(len(shape))
    cells, free, occupied = tagged_tumor(xp, shape, step)
    pushing = cells.occupied() & (cells.state == CYCLING) & tumor.enclosed(xp, free, offsets)
    new, born, pushed = tumor.push(xp, cells, pushing=pushing, free=free, offsets=offsets, max_cells=max_cells,
                                   draw_direction=draws(xp, shape, 2, step), draw_priority=draws(xp, shape, 3, step))
    host = {name: to_host(getattr(new, name)) for name in ("clone", "state", "age_h", "immunogenic")}
    return offsets, occupied, to_host(pushing), host, to_host(born), to_host(pushed)


def test_no_cell_is_lost_or_copied_and_each_moves_at_most_one_voxel_with_all_its_arrays(xp):
    for shape in ((40, 41), (12, 13, 14)):
        for step in range(3):
            offsets, occupied, pushing, new, born, pushed = run_push(xp, shape, step, max_cells=4)
            assert pushing.any() and born.sum() == pushed.sum() > 0
            assert (pushing[pushed]).all()
            before = np.where(occupied, np.arange(occupied.size).reshape(shape), -1)
            # every cell but the daughters: each tag once, with its own state, age (mothers: 0) and mark
            kept = (new["clone"] >= 0) & ~born
            tags = new["clone"][kept]
            assert Counter(tags.tolist()) == Counter(before[occupied].tolist())
            np.testing.assert_array_equal(new["state"][kept], tags % 4)
            np.testing.assert_array_equal(new["immunogenic"][kept], tags % 3 == 0)
            mother = pushed[kept]
            np.testing.assert_array_equal(new["age_h"][kept], np.where(mother, 0.0, tags))
            # daughters: a copy of the mother's clone next to it, cycling, age 0, not immunogenic
            assert (new["state"][born] == CYCLING).all() and (new["age_h"][born] == 0).all()
            assert not new["immunogenic"][born].any()
            position = {tag: np.unravel_index(tag, shape) for tag in before[occupied].tolist()}
            where_now = {int(tag): index for index, tag in zip(zip(*np.nonzero(kept)), tags)}
            for tag, now in where_now.items():
                step_taken = tuple(n - p for n, p in zip(now, position[tag]))
                assert step_taken == (0,) * len(shape) or step_taken in offsets
            for daughter in zip(*np.nonzero(born)):
                tag = int(new["clone"][daughter])
                assert pushed[position[tag]]  # its mother pushed and stayed put
                assert tuple(d - p for d, p in zip(daughter, position[tag])) in offsets


def test_vessels_and_the_domain_edge_block_a_push():
    """Cells never enter a vessel voxel or leave the lattice; a push reaches no farther than max_cells + 1."""
    for max_cells in (1, 2, 6):
        _, occupied, pushing, new, born, pushed = run_push(np, (30, 30), 0, max_cells)
        cells, free, _ = tagged_tumor(np, (30, 30), 0)
        vessel = ~occupied & ~free
        assert (new["clone"][vessel] == -1).all()
        assert ((new["clone"] >= 0).sum() - born.sum()) == occupied.sum()
        lengths = tumor.push_lengths(np, pushing, free=free, occupied=occupied, offsets=moore_offsets(2),
                                     max_cells=max_cells)
        assert max(int(length.max()) for length in lengths) <= max_cells + 1
        reachable = np.any([length > 0 for length in lengths], axis=0)
        assert not (pushed & ~reachable).any()


def lane(xp, priority_left, priority_right):
    """Two dividing cells in a 1 x 7 lane, two cells between them around the lane's one free voxel:
    ``M c . c M`` at x = 1..5, vessels at both ends; the push of either needs the free voxel."""
    clone = xp.asarray([[-1, 0, 2, -1, 3, 1, -1]], dtype=xp.int32)
    cells = TumorLayer(clone=clone, state=xp.full(clone.shape, CYCLING, dtype=xp.int8),
                       age_h=xp.asarray([[0, 5, 6, 0, 7, 8, 0]], dtype=xp.float32),
                       immunogenic=xp.zeros(clone.shape, dtype=bool))
    free = xp.asarray([[False, False, False, True, False, False, False]])
    pushing = xp.asarray([[False, True, False, False, False, True, False]])
    priority = xp.asarray([[0.0, priority_left, 0.0, 0.0, 0.0, priority_right, 0.0]])
    new, born, pushed = tumor.push(xp, cells, pushing=pushing, free=free, offsets=moore_offsets(2), max_cells=2,
                                   draw_direction=xp.zeros(clone.shape), draw_priority=priority)
    return to_host(new.clone)[0].tolist(), to_host(pushed)[0].tolist()


def test_a_contested_free_voxel_goes_to_the_higher_priority_draw_and_the_loser_waits(xp):
    clone, pushed = lane(xp, 0.9, 0.1)
    assert clone == [-1, 0, 0, 2, 3, 1, -1] and pushed == [False, True, False, False, False, False, False]
    clone, pushed = lane(xp, 0.1, 0.9)
    assert clone == [-1, 0, 2, 3, 1, 1, -1] and pushed == [False, False, False, False, False, True, False]


def test_push_does_not_depend_on_backend(xp):
    for shape in ((33, 35), (11, 12, 13)):
        reference = run_push(np, shape, 1, max_cells=3)
        result = run_push(xp, shape, 1, max_cells=3)
        for a, b in zip(reference[3].values(), result[3].values()):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(reference[4:], result[4:]):
            np.testing.assert_array_equal(a, b)


def grown(max_push_distance):
    config = load_config(CONFIGS / "tiny.yaml", [f"tumor.max_push_distance={max_push_distance}",
                                                  "tumor.initial.radius_um=200", "time.duration_days=1"])
    model = TumorModel(config)
    for _ in range(config.time.total_steps):
        model.step()
    return model


def test_pushing_lets_cells_inside_a_packed_tumor_divide():
    """Without pushing only cells at the tumor's edge divide; with it, cells up to max_push_distance deep do too."""
    still, pushed = grown(0), grown(4)
    assert pushed.latest["divisions_total"] > 1.5 * still.latest["divisions_total"] > 0
    assert pushed.latest["tumor_cells_total"] > still.latest["tumor_cells_total"]


def test_dead_cells_are_shoved_like_live_ones():
    """A push moves apoptotic and necrotic cells along the line (they are cells in the way, not free space)."""
    clone = np.asarray([[0, 1, 2, -1]], dtype=np.int32)
    state = np.asarray([[CYCLING, APOPTOTIC, NECROTIC, CYCLING]], dtype=np.int8)
    cells = TumorLayer(clone=clone, state=state, age_h=np.asarray([[1, 2, 3, 0]], dtype=np.float32),
                       immunogenic=np.asarray([[False, True, False, False]]))
    new, born, pushed = tumor.push(np, cells, pushing=np.asarray([[True, False, False, False]]),
                                   free=clone < 0, offsets=moore_offsets(2), max_cells=2,
                                   draw_direction=np.zeros(clone.shape), draw_priority=np.zeros(clone.shape))
    assert new.clone.tolist() == [[0, 0, 1, 2]]
    assert new.state.tolist() == [[CYCLING, CYCLING, APOPTOTIC, NECROTIC]]
    assert new.age_h.tolist() == [[0, 0, 2, 3]] and new.immunogenic.tolist() == [[False, False, True, False]]
    assert born.tolist() == [[False, True, False, False]] and pushed.tolist() == [[True, False, False, False]]
