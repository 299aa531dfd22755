"""The random streams of the model: one id per decision, in reserved ranges that never overlap.

A draw is a function of (key, cell step, stream id, voxel index)
(:func:`kernels.random.uniform`), so every decision that draws has a stream
id of its own, and a new rule takes new ids instead of shifting the numbers
another rule sees. The ids are grouped in :data:`RANGES`; tests/test_streams.py
checks that every ``STREAM_*`` id lies in its range, that the ranges do not
overlap, and that the ids a range hands out per drug or per substep fit in it
for the largest config the schema admits.

Changing an id changes every run's results (the golden outputs say so).
"""
from __future__ import annotations

from dataclasses import dataclass

# Per cell step: one id per decision of a rule.
STREAM_NECROSIS = 1
STREAM_APOPTOSIS = 2
STREAM_CLEARANCE = 3
STREAM_DIVISION = 4
STREAM_DIRECTION = 5
STREAM_PRIORITY = 6
STREAM_MUTATION = 7
STREAM_QUIESCENCE = 8
STREAM_VESSEL_COLLAPSE = 9
STREAM_DRUG_KILL = 10
STREAM_IMMUNE_DRUG = 11
STREAM_T_ENTER, STREAM_T_WHICH = 12, 13
#: Entry of the suppressor types of slots 0 and 1 (abm.config ImmuneConfig.suppressor_slots); later slots draw from
#: STREAM_SUPPRESSOR_ENTER on (see :func:`suppressor_enter_stream`).
STREAM_SUPPRESSOR_ENTER_FIRST, STREAM_SUPPRESSOR_ENTER_SECOND = 14, 15
STREAM_KILL_TARGET, STREAM_KILL = 16, 17
STREAM_IMMUNE_DEATH = 18
STREAM_PROLIFERATE, STREAM_PROLIFERATE_DIRECTION, STREAM_PROLIFERATE_PRIORITY = 19, 20, 21
STREAM_IMMUNOGENIC = 22
#: Pushing (tumor.max_push_distance): the line a dividing cell without a free neighbour shoves along, its priority.
STREAM_PUSH_DIRECTION, STREAM_PUSH_PRIORITY = 30, 31
#: Angiogenesis (vessels.angiogenesis): regression of immature vessels, sprouting, where a sprout goes, where a tip goes.
STREAM_VESSEL_REGRESSION, STREAM_SPROUT, STREAM_SPROUT_DIRECTION, STREAM_TIP_DIRECTION = 40, 41, 42, 43
#: Macrophages (immune.suppressors of role macrophage): the M1 kill's target and kill, depletion by CSF1R inhibitors.
STREAM_MACROPHAGE_TARGET, STREAM_MACROPHAGE_KILL, STREAM_MACROPHAGE_DEPLETION = 50, 51, 52
#: Phagocytosis (immune.suppressors.NAME.phagocytosis): the dead tumor cell an M1-like macrophage engages, its removal.
STREAM_PHAGOCYTOSIS_TARGET, STREAM_PHAGOCYTOSIS = 53, 54
#: First of the entry streams of suppressor types in slots 2 on, one per slot (SUPPRESSOR_ENTER_STREAMS of them).
STREAM_SUPPRESSOR_ENTER = 85
SUPPRESSOR_ENTER_STREAMS = 16
# The initial state (drawn at step 0).
STREAM_SETUP_VESSELS = 101
STREAM_SETUP_CLONES = 102
STREAM_SETUP_PERFUSION = 103
STREAM_SETUP_CELLS = 104
STREAM_SETUP_NEST_CENTRES = 105
STREAM_SETUP_NEST_ORDER = 106
#: First of the streams that draw a mutant clone's traits (abm.clones adds its offsets, one per change and drug).
STREAM_MUTATION_TRAITS = 200
#: First of the streams of immune movement: :data:`IMMUNE_MOVE_STREAMS_PER_SUBSTEP` per substep (move, bias,
#: direction, priority, then the tie-breaking order of uphill moves, one per chemotactic field, at most four).
STREAM_IMMUNE_MOVE = 1000
IMMUNE_MOVE_STREAMS_PER_SUBSTEP = 8


@dataclass(frozen=True)
class StreamRange:
    """Stream ids ``first`` to ``first + size - 1``, reserved for ``purpose``."""

    purpose: str
    first: int
    size: int

    @property
    def last(self) -> int:
        return self.first + self.size - 1

    def __contains__(self, stream: int) -> bool:
        return self.first <= stream <= self.last


#: The reserved ranges, in increasing order; a new kind of decision takes ids from a free range.
RANGES = (
    StreamRange("rules of a cell step", 1, STREAM_SUPPRESSOR_ENTER - 1),
    StreamRange("entry of suppressor types in slots 2 on", STREAM_SUPPRESSOR_ENTER, SUPPRESSOR_ENTER_STREAMS),
    StreamRange("initial state", 101, 99),
    StreamRange("mutant traits (abm.clones offsets)", STREAM_MUTATION_TRAITS, STREAM_IMMUNE_MOVE - STREAM_MUTATION_TRAITS),
    StreamRange("immune movement substeps", STREAM_IMMUNE_MOVE, 2**32),
)


def suppressor_enter_stream(slot: int) -> int:
    """The entry stream of the suppressor type in ``slot`` (0 and 1: the ids they had as fixed kinds, so runs keep their bits)."""
    if slot < 2:
        return (STREAM_SUPPRESSOR_ENTER_FIRST, STREAM_SUPPRESSOR_ENTER_SECOND)[slot]
    if slot - 2 >= SUPPRESSOR_ENTER_STREAMS:
        raise ValueError(f"suppressor slot {slot}: at most {SUPPRESSOR_ENTER_STREAMS + 1}")
    return STREAM_SUPPRESSOR_ENTER + slot - 2
