"""Config sections of a treatment arm: lines of therapy, their doses and end rules, and response assessment."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from abm.config.base import (MAX_CELL_STEPS, NAME_RULE, Days, Factor, Hours, Length, Level, Name, PositiveDays,
                             PositiveFactor, PositiveLevel, Probability, Strict)


#: Response categories per criteria, best first (the order decides "or better" in end rules).
RESPONSE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "recist": ("CR", "PR", "SD", "PD"),
    "irecist": ("iCR", "iPR", "iSD", "iUPD", "iCPD"),
    "myeloma": ("CR", "VGPR", "PR", "MR", "SD", "PD"),
}
#: The categories that count as progression (they end a line whose end rule says `progression`).
PROGRESSION = {"recist": ("PD",), "irecist": ("iCPD",), "myeloma": ("PD",)}


class AssessmentConfig(Strict):
    """Response assessment at a clinical cadence, from the tumor burden.

    recist and irecist use the equivalent diameter of the lesion (tumor cells
    of any state, and immune cells next to them: infiltrate counts toward
    size); myeloma uses a marker proportional to live tumor cells (an
    M-protein-like level). Baseline: the first assessment of each line (at
    its start); nadir: the smallest burden since it.
    """

    every_days: PositiveDays = Field(42.0, description="days between assessments, from the start of treatment (6 weeks, a common trial cadence)")
    criteria: Literal["recist", "irecist", "myeloma"] = Field(
        "recist", description="recist: RECIST 1.1-like on diameter [RECIST]; irecist: with confirmation of progression [iRECIST]; myeloma: IMWG-like on a burden marker [IMWG]")
    partial_response_fall: Probability = Field(0.3, description="recist/irecist: PR at this fall of the diameter from baseline: 30 % [RECIST]")
    progression_rise: Factor = Field(0.2, description="recist/irecist: PD at this rise of the diameter over the nadir: 20 % [RECIST]")
    progression_absolute_um: Length = Field(
        100.0, description="recist/irecist: and at least this absolute rise, um (RECIST's 5 mm, scaled to a mm-sized domain; assumption)")
    complete_response_below_um: Length = Field(
        0.0, description="recist/irecist: CR when the lesion diameter is at most this, um (0: no tumor cell left)")
    marker_per_cell: PositiveLevel = Field(1.0, description="myeloma: marker units per live tumor cell (assumption; IMWG needs an M-protein-per-cell constant)")
    marker_detection_limit: Level = Field(0.0, description="myeloma: CR when the marker is at most this (negative immunofixation)")
    marker_progression_absolute: Level = Field(
        0.0, description="myeloma: PD also needs this absolute rise of the marker over the nadir (IMWG: 0.5 g/dL; scale to marker units)")
    progression_from: Literal["line", "treatment"] = Field(
        "line", description="the endpoints' progression (time to progression, the responses counted up to it): line: over each line's own baseline and nadir (a new line starts afresh, so a holiday's regrowth that ends the holiday never counts); treatment: over the baseline and nadir since the start of treatment, across lines. Lines' end rules always use their own line's")

    @property
    def categories(self) -> tuple[str, ...]:
        return RESPONSE_CATEGORIES[self.criteria]


class DoseConfig(Strict):
    """One dose of a drug within a cycle of a line."""

    drug: str = Field(description="a drug of `drugs` with `pk`")
    amount: PositiveLevel = Field(description="plasma level the dose adds (a bolus at once; an infusion over infusion_h), field units of the drug")
    days: list[Days] = Field(default_factory=lambda: [0.0], min_length=1, description="days after the start of each cycle")
    infusion_h: Hours = Field(0.0, description="infusion duration, h; 0: a bolus")


class EndRule(Strict):
    """When a line ends: the first of its conditions that holds (an empty rule: never)."""

    cycles: Annotated[int, Field(ge=1, le=MAX_CELL_STEPS)] | None = Field(None, description="after this many cycles")
    progression: bool = Field(False, description="at an assessment that finds progression")
    response: str | None = Field(None, description="at an assessment with this response or better (a category of the criteria, e.g. PR)")
    burden_below: PositiveFactor | None = Field(None, description="adaptive: at an assessment with burden below this fraction of the baseline (`burden_baseline`); below burden_above")
    burden_above: PositiveFactor | None = Field(None, description="adaptive: at an assessment with burden above this fraction of the baseline (`burden_baseline`)")
    burden_baseline: Literal["line", "treatment"] = Field(
        "line", description="baseline of burden_below / burden_above: the line's first measurement, or the burden when "
                            "treatment started (Zhang et al. 2017's adaptive rule: stop below 0.5 of it, resume at 1.0)")

    @property
    def empty(self) -> bool:
        return (self.cycles is None and not self.progression and self.response is None
                and self.burden_below is None and self.burden_above is None)


class LineConfig(Strict):
    """A line of therapy: a regimen repeated in cycles, until its end rule holds; then `next`."""

    name: Name = Field(description=f"the line's name; {NAME_RULE}")
    doses: list[DoseConfig] = Field(default_factory=list, description="the doses of one cycle; none: a treatment holiday or observation")
    cycle_days: PositiveDays | None = Field(None, description="length of a cycle, days, at least one cell step; null: one cycle that never repeats")
    end: EndRule = Field(default_factory=EndRule)
    next: str | None = Field(None, description="name of the line that follows; null: treatment stops")


class TreatmentConfig(Strict):
    """A treatment arm: lines of therapy from `start_day`, and how response is assessed."""

    start_day: Days = Field(0.0, description="day the first line starts, before the end of the run")
    lines: list[LineConfig] = Field(min_length=1, description="the lines; the first starts at start_day")
    assessment: AssessmentConfig = Field(default_factory=AssessmentConfig)
