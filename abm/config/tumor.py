"""Config sections of the tumor: oxygen response, founding clones and their traits, mutation, initial cells."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from abm.config.base import (MAX_ANTIGENS, MAX_AXIS, MAX_DIVISION_RATE_SD, MAX_LENGTH_UM, MAX_LEVEL, MAX_PUSH_DISTANCE,
                             MIN_DX_UM, NAME_RULE,
                             Factor, Fraction, Length, Level, Name, PositiveHours, PositiveLength, PositiveRate,
                             Probability, Rate, Strict, Variants, _require_unique_names)


class HypoxiaConfig(Strict):
    """Oxygen thresholds of the tumor cell response [PCc]."""

    quiescence_below_mmHg: Level = Field(5.0, description="no proliferation below this [PCc]")
    proliferation_saturation_mmHg: Annotated[float, Field(gt=0, le=MAX_LEVEL)] = Field(
        38.0, description="full division rate at or above this (assumption: the tissue boundary level)")
    necrosis_threshold_mmHg: Level = Field(5.0, description="necrosis starts below this [PCc]")
    necrosis_max_mmHg: Level = Field(2.5, description="maximum necrosis rate at or below this [PCc]")
    necrosis_max_rate_per_h: PositiveRate = Field(1.0 / 6.0, description="maximum necrosis rate, 1/h: 1/(6 h) [PCc]")

    @model_validator(mode="after")
    def _ordered(self) -> "HypoxiaConfig":
        if not self.proliferation_saturation_mmHg > self.quiescence_below_mmHg:
            raise ValueError("proliferation_saturation_mmHg must be above quiescence_below_mmHg")
        if not self.necrosis_max_mmHg < self.necrosis_threshold_mmHg:
            raise ValueError("necrosis_max_mmHg must be below necrosis_threshold_mmHg")
        if self.necrosis_threshold_mmHg > self.quiescence_below_mmHg:
            raise ValueError("necrosis_threshold_mmHg must not be above quiescence_below_mmHg (cells stop dividing before they die of hypoxia)")
        return self


class CloneConfig(Strict):
    """A founding tumor subclone and its heritable traits.

    Daughters inherit every trait; a mutation changes them by the rules of
    ``tumor.mutation``. A drug is named by its field: the drug's tissue
    concentration is the field of that name.
    """

    name: Name = Field(description=f"the clone's name; {NAME_RULE}")
    fraction: Annotated[float, Field(gt=0, le=1)] = Field(1.0, description="share of the initial cells")
    cycle_time_h: PositiveHours = Field(23.1, description="mean time between divisions in full oxygen, h: 0.00072/min [PCi]")
    apoptosis_per_h: Rate = Field(5.31667e-5 * 60.0, description="apoptosis rate, 1/h: 5.31667e-5/min [PCc]")
    resistance_cost: Fraction = Field(
        0.0, description="fitness cost of resistance: the clone divides at (1 - cost) / cycle_time_h (assumption: none)")
    drug_sensitivity: dict[str, Factor] = Field(
        default_factory=dict, description="per drug field: multiplier of the drug's kill (1: parental, 0: fully resistant); drugs not listed: 1")
    efflux: Fraction = Field(
        0.0, description="fraction of the local drug concentration pumped out of the cell: effective = (1 - efflux) x local")
    quiescence_entry_per_h: Rate = Field(
        0.0, description="rate at which a cycling cell in oxygen becomes quiescent (dormancy), 1/h (assumption: none)")
    quiescence_exit_per_h: PositiveRate | None = Field(
        None, description="rate at which a quiescent cell in oxygen resumes cycling, 1/h; null: as soon as oxygen allows")
    pdl1: Probability = Field(0.0, description="PD-L1 expression, fraction of the maximum (the brake on T-cell killing)")
    antigens: list[Annotated[int, Field(ge=0, lt=MAX_ANTIGENS)]] = Field(
        default_factory=list, description=f"neoantigens the clone presents, numbered 0 to {MAX_ANTIGENS - 1}")
    mutation_rate: Probability = Field(
        0.0, description="probability that a daughter cell mutates and founds a new subclone, per division (assumption: none)")

    @field_validator("antigens")
    @classmethod
    def _unique_antigens(cls, antigens: list[int]) -> list[int]:
        if len(set(antigens)) != len(antigens):
            raise ValueError("antigens must not repeat")
        return sorted(antigens)


class ResistanceGainConfig(Strict):
    """A mutation that makes the new clone less sensitive to one drug, at a fitness cost."""

    probability: Probability = Field(description="chance that a mutation carries this change")
    sensitivity_factor: Probability = Field(description="the new clone's sensitivity = parent's x this")
    cost: Fraction = Field(0.0, description="relative division-rate loss it adds: rate x (1 - cost)")


class EffluxGainConfig(Strict):
    """A mutation that raises drug efflux (a pump), at a fitness cost."""

    probability: Probability = Field(description="chance that a mutation carries this change")
    increase: Fraction = Field(description="efflux becomes 1 - (1 - parent's) x (1 - increase)")
    cost: Fraction = Field(0.0, description="relative division-rate loss it adds: rate x (1 - cost)")


class PDL1ChangeConfig(Strict):
    """A mutation that moves PD-L1 expression up or down."""

    probability: Probability = Field(description="chance that a mutation carries this change")
    max_change: Probability = Field(description="PD-L1 moves by a uniform amount in [-max_change, +max_change], clipped to [0, 1]")


class MutationConfig(Strict):
    """How a mutant daughter's traits differ from its parent clone's; each change is drawn independently."""

    max_clones: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10_000, description="at most this many clones in a run; past it daughters no longer found clones (counted as suppressed mutations)")
    division_rate_sd: Annotated[float, Field(ge=0, le=MAX_DIVISION_RATE_SD)] = Field(
        0.0, description="every mutation multiplies the division rate by exp(N(0, sd)) (passenger and driver effects; assumption: 0)")
    resistance: dict[str, ResistanceGainConfig] = Field(
        default_factory=dict, description="per drug field: gain of resistance")
    efflux: EffluxGainConfig | None = Field(None, description="gain of drug efflux")
    pdl1: PDL1ChangeConfig | None = Field(None, description="change of PD-L1 expression")
    antigen_loss_probability: Probability = Field(
        0.0, description="chance that a mutation loses one of the parent's neoantigens (immune escape)")
    antigen_gain_probability: Probability = Field(
        0.0, description="chance that a mutation creates one new neoantigen (one the parent lacks)")


class InitialTumorConfig(Strict):
    """The initial tumor cells: where they are (one of the geometries below, chosen by ``geometry``, default
    ``ball``) and how the founding clones are arranged among them.

    Each founding clone gets ``round(fraction x cells)`` of the initial cells
    (the first clone takes the rounding remainder), so a rare clone's share
    is exact.
    """

    geometry: str
    center_um: list[Length] | None = Field(None, description="centre in um from the low corner, axis order of lattice.shape, within the domain; default: the domain centre (ball: the seed cluster's centre; sectors: their centre; sparse_core vessels: the core's centre)")
    arrangement: Literal["mixed", "sectors", "nests"] = Field(
        "mixed", description="mixed: clones at random positions; sectors: each clone fills an angular sector around the centre; nests: clones fill patches of about nest_radius_um")
    nest_radius_um: Annotated[float, Field(ge=MIN_DX_UM, le=MAX_LENGTH_UM)] = Field(60.0, description="nests: typical radius of one patch, um")


class BallInitialTumor(InitialTumorConfig):
    """Every free voxel within ``radius_um`` of ``center_um`` (a disc in 2-D)."""

    geometry: Literal["ball"] = Field("ball", description="ball: every free voxel within radius_um of center_um")
    radius_um: PositiveLength = Field(60.0, description="radius of the seed cluster, um; it must hold at least one voxel centre")


class ScatteredInitialTumor(InitialTumorConfig):
    """``cells`` free voxels drawn uniformly over the domain."""

    geometry: Literal["scattered"] = Field(description="scattered: `cells` free voxels drawn uniformly over the domain")
    cells: Annotated[int, Field(ge=1, le=MAX_AXIS**3)] = Field(description="number of initial cells, at most the lattice's voxels")


#: The initial geometries, by the value of ``geometry``.
INITIAL_GEOMETRIES: dict[str, type[InitialTumorConfig]] = {"ball": BallInitialTumor, "scattered": ScatteredInitialTumor}
#: The annotation of the ``tumor.initial`` section.
InitialTumor = Annotated[InitialTumorConfig, Variants("geometry", lambda: INITIAL_GEOMETRIES, "ball", "initial geometry")]


class TumorConfig(Strict):
    """Tumor cells: initial cells, oxygen response, death, clones and mutation."""

    initial: InitialTumor = Field(default_factory=BallInitialTumor)
    hypoxia: HypoxiaConfig = Field(default_factory=HypoxiaConfig)
    apoptotic_duration_h: PositiveHours = Field(516.0 / 60.0, description="apoptosis to removal, h: 516 min [PCc]")
    necrotic_clearance_per_h: Rate = Field(
        0.0, description="removal rate of necrotic cells, 1/h (assumption: debris stays, which forms the necrotic core)")
    max_push_distance: Annotated[int, Field(ge=0, le=MAX_PUSH_DISTANCE)] = Field(
        0, description="the most cells a division may shove along a lattice line toward a free voxel at most this + 1 voxels away; 0: a cell with no free neighbour does not divide (contact inhibition)")
    clones: list[CloneConfig] = Field(default_factory=lambda: [CloneConfig(name="parental")], min_length=1)
    mutation: MutationConfig = Field(default_factory=MutationConfig)
    resistant_below: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="a clone counts as resistant to a drug when sensitivity x (1 - efflux) is below this (assumption: half the parental effect)")

    @field_validator("clones")
    @classmethod
    def _clones_consistent(cls, clones: list[CloneConfig]) -> list[CloneConfig]:
        _require_unique_names("clone", [clone.name for clone in clones])
        total = sum(clone.fraction for clone in clones)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"clone fractions must add up to 1, they add up to {total:g}")
        return clones
