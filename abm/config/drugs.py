"""Config sections of a drug: its kind, plasma pharmacokinetics and action on cells."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from abm.config.base import MAX_HILL, PositiveHours, PositiveLevel, Probability, Rate, Strict


class PharmacokineticsConfig(Strict):
    """Plasma level of a drug after its doses: linear, one or two exponential phases.

    A bolus of ``amount`` raises the plasma level by ``amount`` and decays as
    ``amount x (f exp(-ln2 t / t_dist) + (1 - f) exp(-ln2 t / t_half))`` with
    ``f = distribution_fraction`` (0: one compartment). An infusion delivers
    the same amount at a constant rate over its duration. Doses add up.
    """

    half_life_h: PositiveHours = Field(description="terminal (elimination) half-life, h")
    distribution_half_life_h: PositiveHours | None = Field(
        None, description="two compartments: half-life of the fast distribution phase, h; null: one compartment")
    distribution_fraction: Probability = Field(
        0.0, description="two compartments: share of a bolus that leaves plasma in the distribution phase")

    @model_validator(mode="after")
    def _two_phases(self) -> "PharmacokineticsConfig":
        if (self.distribution_half_life_h is None) != (self.distribution_fraction == 0.0):
            raise ValueError("a two-compartment drug needs both distribution_half_life_h and distribution_fraction > 0; "
                             "a one-compartment drug neither")
        if self.distribution_half_life_h is not None and self.distribution_half_life_h >= self.half_life_h:
            raise ValueError("distribution_half_life_h must be shorter than half_life_h (the terminal phase is the slow one)")
        return self


class DrugConfig(Strict):
    """A drug: its kind, plasma pharmacokinetics and action; its tissue concentration is the field of the same name.

    Cytotoxic kill: a live tumor cell (only a cycling one if the drug is
    cycle-specific) starts apoptosis at rate
    ``emax_per_h x s x c^h / (ec50^h + c^h)`` with ``c = (1 - efflux) x local
    concentration`` and ``s`` its clone's sensitivity; immune cells die at the
    same rate times their kind's sensitivity, in tissue and in the systemic
    T-cell pools (lymphodepletion). Anti-PD-1: PD-1 occupancy on T cells is
    ``c / (c + kd)`` of the local antibody level.
    """

    kind: Literal["cytotoxic", "anti_pd1"] = Field(
        "cytotoxic", description="cytotoxic: kills cells (Emax/Hill on the local, efflux-adjusted level); anti_pd1: blocks PD-1 on T cells")
    pk: PharmacokineticsConfig | None = Field(
        None, description="plasma pharmacokinetics of dosed drugs; null: the plasma level stays at the field's vessel.blood_level")
    emax_per_h: Rate = Field(
        0.9 / 24.0, description="cytotoxic: maximum kill rate of a fully sensitive cell, 1/h: 0.9/d [dP06]")
    ec50: PositiveLevel = Field(1.0, description="cytotoxic: concentration of half the maximum kill, field units (assumption: no source found)")
    hill: Annotated[float, Field(gt=0, le=MAX_HILL)] = Field(1.0, description="cytotoxic: Hill coefficient of the kill (assumption)")
    cycle_specific: bool = Field(True, description="cytotoxic: true kills only cycling tumor cells (quiescent cells are spared); false kills any live cell")
    immunogenic_fraction: Probability = Field(
        0.0, description="cytotoxic: share of the tumor cells it kills that die immunogenically (they release more antigen / danger signal; assumption: 0)")
    kd: PositiveLevel = Field(1.0, description="anti_pd1: antibody level of half PD-1 occupancy, field units (assumption)")
