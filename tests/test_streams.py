"""The random streams of abm.streams: every id in its reserved range, no two ranges overlapping, room for the largest config."""
from __future__ import annotations

import re
from pathlib import Path

from abm import clones, streams
from abm.config import MAX_DRUGS, MAX_SUBSTEPS

REPO = Path(__file__).resolve().parents[1]


def stream_ids() -> dict[str, int]:
    return {name: value for name, value in vars(streams).items() if name.startswith("STREAM_")}


def test_every_stream_id_is_distinct_and_in_one_reserved_range():
    ids = stream_ids()
    assert len(set(ids.values())) == len(ids)
    for name, value in ids.items():
        assert sum(value in block for block in streams.RANGES) == 1, name


def test_reserved_ranges_are_ordered_and_do_not_overlap():
    for low, high in zip(streams.RANGES, streams.RANGES[1:]):
        assert low.last < high.first, (low, high)


def test_per_drug_and_per_substep_ids_fit_their_ranges_for_the_largest_config():
    mutant_traits = next(block for block in streams.RANGES if streams.STREAM_MUTATION_TRAITS == block.first)
    assert streams.STREAM_MUTATION_TRAITS + clones.MUTATION_STREAMS + MAX_DRUGS - 1 <= mutant_traits.last
    movement = next(block for block in streams.RANGES if streams.STREAM_IMMUNE_MOVE == block.first)
    assert streams.STREAM_IMMUNE_MOVE + streams.IMMUNE_MOVE_STREAMS_PER_SUBSTEP * MAX_SUBSTEPS - 1 <= movement.last


def test_no_module_defines_stream_ids_of_its_own():
    """Stream ids are taken only from abm.streams (a literal elsewhere could collide unseen)."""
    defining = re.compile(r"^STREAM_[A-Z_]+(, STREAM_[A-Z_]+)* =", re.M)
    found = [path.relative_to(REPO) for folder in ("abm", "kernels", "viz") for path in (REPO / folder).rglob("*.py")
             if path.name != "streams.py" and defining.search(path.read_text(encoding="utf-8"))]
    assert found == []


def test_suppressor_entry_ids_fit_their_range_for_the_most_suppressor_types():
    from abm.config import MAX_SUPPRESSOR_TYPES, SUPPRESSOR_PRESETS

    slots = len(SUPPRESSOR_PRESETS) + MAX_SUPPRESSOR_TYPES  # every preset slot, then the most types of other names
    entry = next(block for block in streams.RANGES if streams.STREAM_SUPPRESSOR_ENTER == block.first)
    ids = [streams.suppressor_enter_stream(slot) for slot in range(slots)]
    assert ids[:2] == [streams.STREAM_SUPPRESSOR_ENTER_FIRST, streams.STREAM_SUPPRESSOR_ENTER_SECOND]
    assert all(stream in entry for stream in ids[2:]) and len(set(ids)) == slots
