"""What every config section shares: the strict base model, ConfigError, the name rule and the limits.

Every number in a config has a bounded type of this module (``Rate``,
``Level``, ``Hours``, ...) or a range built from its ``MAX_*`` / ``MIN_*``
limits, which docs/config-reference.md shows.
"""
from __future__ import annotations

import re
from collections.abc import Callable
import typing
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema


class ConfigError(ValueError):
    """A config cannot be used; the message names the key and what is allowed."""


class Strict(BaseModel):
    """Base of every config section: unknown keys, infinite or NaN numbers and values of the wrong type are errors.

    Types are strict: ``true`` is no number, ``1`` is no boolean and ``"20"``
    is no number; an integer is a valid float (``20`` for ``20.0``).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def field_annotation(field: Any) -> Any:
    """A pydantic field's annotation, with its :class:`abm.config.base.Variants` marker if it has one (pydantic
    keeps a field's ``Annotated`` markers apart, in ``field.metadata``)."""
    marker = next((item for item in field.metadata if isinstance(item, Variants)), None)
    return field.annotation if marker is None else typing.Annotated[field.annotation, marker]


#: The error type of a section whose variant key names no variant (abm.config.loading names the key).
UNKNOWN_VARIANT = "unknown_variant"


class Variants:
    """``Annotated[Base, Variants(tag, members, default, noun)]``: a section that is one of several variants, each a class
    of its own chosen by the section's ``tag`` key (``default`` when the key is missing): a discriminated union.

    Each variant's class holds only its own keys (a key of another variant is an unknown key) and declares
    ``tag`` as a one-value ``Literal``. ``members`` gives ``value -> class`` when the schema is built, so a
    registry that grows (drug kinds) is read then; ``noun`` names a variant in messages (``drug kind``).
    """

    def __init__(self, tag: str, members: Callable[[], dict[str, type[BaseModel]]], default: str, noun: str) -> None:
        self.tag, self._members, self.default, self.noun = tag, members, default, noun

    def members(self) -> dict[str, type[BaseModel]]:
        """value of the tag -> variant class, as now."""
        return dict(self._members())

    def _tag_of(self, value: Any) -> Any:
        if isinstance(value, dict):
            return value.get(self.tag, self.default)
        return getattr(value, self.tag, None) if isinstance(value, BaseModel) else None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        members = self.members()
        choices = {name: handler.generate_schema(cls) for name, cls in members.items()}
        return core_schema.tagged_union_schema(
            choices, self._tag_of, custom_error_type=UNKNOWN_VARIANT,
            custom_error_message=f"unknown {self.noun}; allowed: {', '.join(members)}")


#: What a name may be: names of arms, fields (and so drugs), clones, T-cell clones and lines become
#: folder and file names, table columns and dotted keys, so they are plain identifiers.
NAME_RULE = "a name starts with a letter and has at most 64 letters, digits, _ and - (no dot, slash or space)"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if it follows :data:`NAME_RULE`; ValueError saying what is allowed otherwise."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a valid name; {NAME_RULE}")
    return name


Name = Annotated[str, AfterValidator(check_name)]


def _require_unique_names(what: str, names: list[str]) -> None:
    """ValueError listing the names that appear more than once."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")


# --------------------------------------------------------------------------- limits
# Every number in a config has a stated range (shown in docs/config-reference.md),
# so nothing overflows, divides by zero or loops without end; the ranges are far
# wider than any tissue needs. What a value costs per cell step (substeps, margin
# loops, delays in steps) is checked against the lattice and the cell step in
# Config._check_costs; tests/test_fuzz_config.py walks every number of every preset.

#: Longest lattice axis, voxels.
MAX_AXIS = 4096
#: Most cells one division may shove (tumor.max_push_distance): the push kernel loops over this many voxels per direction.
MAX_PUSH_DISTANCE = 32
#: Most cell steps in a run (duration_days x 24 / dt_cell_h), record or snapshot cadence, or priming delay.
MAX_CELL_STEPS = 1_000_000
#: Most substeps in one cell step: immune movement (a cell moves at most one voxel per substep) and field steps (dt_min).
MAX_SUBSTEPS = 1000
#: Largest rate, 1/min or 1/h: a time scale of well under a second, faster than any process modelled.
MAX_RATE = 1.0e6
#: Largest level of a field, dose or threshold, in the field's units: float32 fields hold 3.4e38, and
#: products of two levels (and sums over 4096^3 voxels) must stay finite.
MAX_LEVEL = 1.0e12
#: Smallest positive half-saturation level (ec50, kd, ...): ec50^hill must not underflow to 0.
MIN_LEVEL = 1.0e-12
#: Largest diffusion coefficient, um^2/min: 100 x the fastest small molecule in water (oxygen about 1.2e5).
MAX_DIFFUSION_UM2_PER_MIN = 1.0e7
#: Voxel edge range, um: from a tenth of a cell's size to coarse tissue blocks of 1 mm.
MIN_DX_UM, MAX_DX_UM = 1.0, 1000.0
#: Largest length, um (10 m): more than any domain (4096 voxels of 1 mm).
MAX_LENGTH_UM = 1.0e7
#: Longest time span (about a century), in the unit of the key.
MAX_SPAN_DAYS = 40_000.0
MAX_SPAN_H = 24.0 * MAX_SPAN_DAYS
MAX_SPAN_MIN = 60.0 * MAX_SPAN_H
#: Shortest cell step, h (3.6 s; PhysiCell's finest mechanics step is 6 s).
MIN_DT_CELL_H = 0.001
#: Largest cell count (precursors, pools): about the T cells of a human body.
MAX_CELLS = 1.0e12
#: Largest dimensionless multiplier (sensitivities, burden fractions, relative rises).
MAX_FACTOR = 1.0e6
#: Largest Hill coefficient: c^hill of levels up to MAX_LEVEL stays finite.
MAX_HILL = 10.0
#: Fastest cell, um/min (immune cells crawl at up to about 30 um/min).
MAX_SPEED_UM_PER_MIN = 1000.0
#: Largest spread of a mutation's log division rate: exp(N(0, 2)) multiplies the rate by up to e^6 at 3 sd.
MAX_DIVISION_RATE_SD = 2.0
MAX_ANTIGENS = 64
#: Most drugs a config may declare: each draws a resistance stream for mutants from a range of its own
#: (abm.streams), which holds this many.
MAX_DRUGS = 64

Rate = Annotated[float, Field(ge=0, le=MAX_RATE)]
PositiveRate = Annotated[float, Field(gt=0, le=MAX_RATE)]
Level = Annotated[float, Field(ge=0, le=MAX_LEVEL)]
PositiveLevel = Annotated[float, Field(ge=MIN_LEVEL, le=MAX_LEVEL)]
Length = Annotated[float, Field(ge=0, le=MAX_LENGTH_UM)]
PositiveLength = Annotated[float, Field(gt=0, le=MAX_LENGTH_UM)]
Hours = Annotated[float, Field(ge=0, le=MAX_SPAN_H)]
PositiveHours = Annotated[float, Field(gt=0, le=MAX_SPAN_H)]
Days = Annotated[float, Field(ge=0, le=MAX_SPAN_DAYS)]
PositiveDays = Annotated[float, Field(gt=0, le=MAX_SPAN_DAYS)]
Cells = Annotated[float, Field(gt=0, le=MAX_CELLS)]
Factor = Annotated[float, Field(ge=0, le=MAX_FACTOR)]
PositiveFactor = Annotated[float, Field(gt=0, le=MAX_FACTOR)]
Probability = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
