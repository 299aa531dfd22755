"""The config schema: what a YAML config may say, with units in every name.

Every model forbids unknown keys. Defaults carry their literature source
(see docs/config-reference.md and ../shared/reference/parameters.md):

* [PCi] PhysiCell cancer-immune sample project (doi:10.1371/journal.pcbi.1005991)
* [PCc] PhysiCell core defaults

Values marked "assumption" have no literature source and are stated as such.
Conversions to the units the kernels use happen here, once
(:func:`field_parameters`, :func:`hypoxia_parameters`).
"""
from __future__ import annotations

import math
import typing
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernels.diffusion import FieldParameters
from kernels.tumor import HypoxiaParameters


class ConfigError(ValueError):
    """A config cannot be used; the message names the key and what is allowed."""


class Strict(BaseModel):
    """Base of every config section: unknown keys and infinite or NaN numbers are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _require_unique_names(what: str, names: list[str]) -> None:
    """ValueError listing the names that appear more than once."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
FaceName = Literal["x_min", "x_max", "y_min", "y_max", "z_min", "z_max"]
FaceCondition = Literal["no_flux"] | NonNegativeFloat
AXIS_OF_FACE = {"z": 0, "y": 1, "x": 2}


class LatticeConfig(Strict):
    """The voxel grid."""

    shape: list[Annotated[int, Field(ge=3, le=4096)]] = Field(
        description="voxels per axis: [ny, nx] for 2-D or [nz, ny, nx] for 3-D")
    dx_um: PositiveFloat = Field(20.0, description="voxel edge, um, about one cell [PCi]")

    @field_validator("shape")
    @classmethod
    def _two_or_three_axes(cls, shape: list[int]) -> list[int]:
        if len(shape) not in (2, 3):
            raise ValueError(f"must list 2 (2-D) or 3 (3-D) axis lengths, got {len(shape)}")
        return shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def voxels(self) -> int:
        return math.prod(self.shape)


class TimeConfig(Strict):
    """Cell step, run length and output cadences."""

    dt_cell_h: PositiveFloat = Field(1.0, description="cell step, h (assumption; [IO] uses 6 h)")
    duration_days: PositiveFloat = Field(description="simulated time, days")
    record_every_h: PositiveFloat = Field(6.0, description="time-series cadence, h")
    snapshot_every_h: PositiveFloat | None = Field(24.0, description="snapshot cadence, h; null for none")

    def steps(self, hours: float, key: str) -> int:
        """Whole number of cell steps in ``hours``; ConfigError naming ``key`` otherwise."""
        ratio = hours / self.dt_cell_h
        steps = round(ratio)
        if steps < 1 or abs(ratio - steps) > 1e-9 * max(1.0, ratio):
            raise ConfigError(f"time.{key}: {hours} h is not a whole number (>= 1) of cell steps of dt_cell_h = {self.dt_cell_h} h")
        return steps

    @property
    def total_steps(self) -> int:
        return self.steps(self.duration_days * 24.0, "duration_days")


class BoundaryConfig(Strict):
    """Domain-face conditions: a number holds the face at that value, ``no_flux`` closes it."""

    default: FaceCondition = Field("no_flux", description="condition of every face not listed in faces")
    faces: dict[FaceName, FaceCondition] = Field(default_factory=dict, description="per-face conditions")


class VesselExchangeConfig(Strict):
    """Exchange between blood and tissue at vessel voxels: ``supply * (blood_level - u)``."""

    supply_per_min: NonNegativeFloat = Field(description="exchange rate at a vessel voxel, 1/min")
    blood_level: NonNegativeFloat = Field(description="level in blood, field units")


CellType = Literal["tumor", "tumor_dying", "tumor_immunogenic", "t_cell", "treg", "mdsc"]
MINUTES_PER_SECOND = 1.0 / 60.0
UM2_PER_CM2 = 1.0e8

#: Default parameter sets of the substrates, chosen with ``preset:`` in a field;
#: keys given beside ``preset`` override the preset's. Sources: [PCi] PhysiCell
#: cancer-immune project, [HCC] SPQSP-HCC parameter file (cm^2/s and 1/s,
#: converted here), [MAPLE] SPQSP-PDAC calibration anchors, [dP06] de Pillis
#: 2006; "assumption" marks a value with no source (see docs/fields.md).
FIELD_PRESETS: dict[str, dict[str, Any]] = {
    # PhysiCell's oxygen [PCi]; vessel exchange rate: assumption.
    "oxygen": {"units": "mmHg", "D_um2_per_min": 1.0e5, "decay_per_min": 0.1, "solver": "steady",
               "initial": 38.0, "boundary": {"default": 38.0}, "uptake_per_min": {"tumor": 10.0},
               "vessel": {"supply_per_min": 10.0, "blood_level": 38.0}},
    # Generic T-cell attractant [PCi]: D 1000 um^2/min, decay 0.016/min, secretion 10/min toward 1.
    "chemokine": {"units": "au", "D_um2_per_min": 1000.0, "decay_per_min": 0.016,
                  "secretion_per_min": {"tumor": 10.0}, "secretion_saturation": 1.0},
    # CCL2 [HCC]: 1.31e-8 cm^2/s, 1.67e-5/s; secretion: assumption (the generic chemokine's).
    "ccl2": {"units": "au", "D_um2_per_min": 1.31e-8 * UM2_PER_CM2 * 60.0, "decay_per_min": 1.67e-5 * 60.0,
             "secretion_per_min": {"tumor": 10.0}, "secretion_saturation": 1.0},
    # TGF-beta-like suppressive cytokine [HCC]: 2.6e-7 cm^2/s, 1.65e-4/s; tumor secretion: assumption.
    "tgf_beta": {"units": "au", "D_um2_per_min": 2.6e-7 * UM2_PER_CM2 * 60.0, "decay_per_min": 1.65e-4 * 60.0,
                 "secretion_per_min": {"tumor": 1.0}, "secretion_saturation": 1.0},
    # IL-10 [HCC]: 1.4e-8 cm^2/s, 4.6e-5/s; tumor secretion: assumption.
    "il10": {"units": "au", "D_um2_per_min": 1.4e-8 * UM2_PER_CM2 * 60.0, "decay_per_min": 4.6e-5 * 60.0,
             "secretion_per_min": {"tumor": 1.0}, "secretion_saturation": 1.0},
    # Checkpoint antibody (anti-PD-1 IgG) in tissue [MAPLE]: D ~1e-7 cm^2/s, washout 5e-5/s; enters at
    # vessels from plasma (blood_level is set by the dosing schedule; exchange rate: assumption).
    "anti_pd1": {"units": "nM", "D_um2_per_min": 1.0e-7 * UM2_PER_CM2 * 60.0, "decay_per_min": 5.0e-5 * 60.0,
                 "vessel": {"supply_per_min": 0.01, "blood_level": 0.0}},
    # Small-molecule chemotherapy drug: tissue D not found (assumption: a tenth of oxygen's);
    # decay 0.9/d [dP06]; uptake by tumor cells: assumption; enters at vessels (rate: assumption).
    "chemo_drug": {"units": "uM", "D_um2_per_min": 1.0e4, "decay_per_min": 0.9 / 1440.0,
                   "uptake_per_min": {"tumor": 0.1}, "vessel": {"supply_per_min": 1.0, "blood_level": 0.0}},
    # Antigen / danger signal released by dying tumor cells: no source found (assumption:
    # a small protein like the generic chemokine, D 1000 um^2/min, half-life 1 h).
    "danger_signal": {"units": "au", "D_um2_per_min": 1000.0, "decay_per_min": math.log(2.0) / 60.0,
                      "secretion_per_min": {"tumor_dying": 1.0}, "secretion_saturation": 1.0},
}


class FieldConfig(Strict):
    """One diffusible substrate.

    ``preset`` fills every key it has (see :data:`FIELD_PRESETS`); keys written
    beside it override the preset's (a section such as ``boundary`` is replaced
    whole).
    """

    preset: str | None = Field(None, description=f"default parameter set: {', '.join(FIELD_PRESETS)}")
    units: str = Field(description="units of the field's values, e.g. mmHg")
    D_um2_per_min: NonNegativeFloat = Field(description="diffusion coefficient, um^2/min")
    decay_per_min: NonNegativeFloat = Field(description="first-order decay, 1/min")
    solver: Literal["steady", "transient", "transient_lod"] = Field(
        "transient", description="steady: equilibrium each cell step (fast substrates); transient: exact backward-Euler steps (multigrid CG; any step, exact equilibrium); transient_lod: BioFVM-style split steps (cheapest per step; needs steps well below 1 / (decay + sink))")
    dt_min: PositiveFloat | None = Field(
        None, description="transient solvers: longest field step, min; the cell step is split into equal substeps no longer than this (null: one step per cell step)")
    initial: NonNegativeFloat = Field(0.0, description="initial value everywhere, field units")
    boundary: BoundaryConfig = Field(default_factory=BoundaryConfig)
    uptake_per_min: dict[CellType, NonNegativeFloat] = Field(
        default_factory=dict, description="first-order uptake by a cell filling a voxel, 1/min, per cell type (tumor: live tumor cells; tumor_dying: apoptotic or necrotic; tumor_immunogenic: dying by immunogenic death, besides tumor_dying; t_cell, treg, mdsc: immune cells)")
    secretion_per_min: dict[CellType, NonNegativeFloat] = Field(
        default_factory=dict, description="secretion rate per cell type, 1/min: a cell adds rate * (secretion_saturation - u), as PhysiCell does")
    secretion_saturation: NonNegativeFloat = Field(1.0, description="level at which secretion stops, field units")
    vessel: VesselExchangeConfig | None = Field(None, description="exchange with blood at vessel voxels")
    dtype: Literal["float32", "float64"] = Field("float32", description="storage precision of the field")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or raw.get("preset") is None:
            return raw
        name = raw["preset"]
        if name not in FIELD_PRESETS:
            raise ValueError(f"preset: unknown preset {name!r}; allowed: {', '.join(FIELD_PRESETS)}")
        return {**FIELD_PRESETS[name], **raw}


def default_fields() -> dict[str, FieldConfig]:
    """Oxygen with PhysiCell's values [PCi]: D 1e5 um^2/min, decay 0.1/min, uptake 10/min, 38 mmHg."""
    return {"oxygen": FieldConfig(preset="oxygen")}


class VesselCollapseConfig(Strict):
    """Compression of vessels by dense tumor: a vessel with many tumor neighbours stops carrying blood."""

    tumor_neighbour_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="a vessel voxel is compressed when at least this share of its Moore neighbours (8 in 2-D, 26 in 3-D) hold tumor cells of any state (assumption)")
    rate_per_h: PositiveFloat = Field(
        0.05, description="rate at which a compressed vessel collapses (its perfusion drops to 0), 1/h (assumption)")


class VesselConfig(Strict):
    """Where vessels are and how well they are perfused. Vessel voxels hold no tumor cell.

    Perfusion (0 to 1) scales each vessel's exchange with blood: a field's
    vessel supply at a voxel is ``supply_per_min * perfusion``.
    """

    pattern: Literal["uniform", "sparse_core", "file", "none"] = Field(
        "uniform", description="uniform: random voxels at `density`; sparse_core: the same, but `density * core_density_factor` within `core_radius_um` of the tumor's initial centre; file: the array in `file`; none: no vessels")
    density: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.005, description="fraction of voxels that are vessel (assumption: about one per 100 um)")
    core_radius_um: NonNegativeFloat = Field(
        0.0, description="sparse_core: radius of the poorly vascularised core, um")
    core_density_factor: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="sparse_core: vessel density in the core relative to `density` (0: an avascular core)")
    file: str | None = Field(
        None, description="file: a .npy array of the lattice shape, bool (vessel or not) or float in [0, 1] (perfusion, 0 = no vessel); relative to the config file's folder")
    perfusion_min: Annotated[float, Field(ge=0, le=1)] = Field(
        1.0, description="uniform and sparse_core: each vessel's perfusion is drawn uniformly in [perfusion_min, perfusion_max] (assumption: 1, fully perfused)")
    perfusion_max: Annotated[float, Field(ge=0, le=1)] = Field(1.0, description="see perfusion_min")
    collapse: VesselCollapseConfig | None = Field(
        None, description="null: vessels never collapse; a section: dense tumor compresses and collapses them")

    @model_validator(mode="after")
    def _consistent(self) -> "VesselConfig":
        if self.perfusion_min > self.perfusion_max:
            raise ValueError(f"perfusion_min ({self.perfusion_min}) must not exceed perfusion_max ({self.perfusion_max})")
        if self.pattern == "file" and self.file is None:
            raise ValueError("pattern 'file' needs `file`, the path of a .npy vessel array")
        if self.pattern != "file" and self.file is not None:
            raise ValueError(f"`file` is only read with pattern 'file' (pattern is {self.pattern!r})")
        if self.pattern == "sparse_core" and self.core_radius_um <= 0:
            raise ValueError("pattern 'sparse_core' needs core_radius_um > 0")
        return self


class HypoxiaConfig(Strict):
    """Oxygen thresholds of the tumor cell response [PCc]."""

    quiescence_below_mmHg: NonNegativeFloat = Field(5.0, description="no proliferation below this [PCc]")
    proliferation_saturation_mmHg: PositiveFloat = Field(
        38.0, description="full division rate at or above this (assumption: the tissue boundary level)")
    necrosis_threshold_mmHg: NonNegativeFloat = Field(5.0, description="necrosis starts below this [PCc]")
    necrosis_max_mmHg: NonNegativeFloat = Field(2.5, description="maximum necrosis rate at or below this [PCc]")
    necrosis_max_rate_per_h: PositiveFloat = Field(1.0 / 6.0, description="maximum necrosis rate, 1/h: 1/(6 h) [PCc]")

    @model_validator(mode="after")
    def _ordered(self) -> "HypoxiaConfig":
        if not self.proliferation_saturation_mmHg > self.quiescence_below_mmHg:
            raise ValueError("proliferation_saturation_mmHg must be above quiescence_below_mmHg")
        if not self.necrosis_max_mmHg < self.necrosis_threshold_mmHg:
            raise ValueError("necrosis_max_mmHg must be below necrosis_threshold_mmHg")
        if self.necrosis_threshold_mmHg > self.quiescence_below_mmHg:
            raise ValueError("necrosis_threshold_mmHg must not be above quiescence_below_mmHg (cells stop dividing before they die of hypoxia)")
        return self


MAX_ANTIGENS = 64
Probability = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class CloneConfig(Strict):
    """A founding tumor subclone and its heritable traits.

    Daughters inherit every trait; a mutation changes them by the rules of
    ``tumor.mutation``. A drug is named by its field: the drug's tissue
    concentration is the field of that name.
    """

    name: Annotated[str, Field(min_length=1)]
    fraction: Annotated[float, Field(gt=0, le=1)] = Field(1.0, description="share of the initial cells")
    cycle_time_h: PositiveFloat = Field(23.1, description="mean time between divisions in full oxygen, h: 0.00072/min [PCi]")
    apoptosis_per_h: NonNegativeFloat = Field(5.31667e-5 * 60.0, description="apoptosis rate, 1/h: 5.31667e-5/min [PCc]")
    resistance_cost: Fraction = Field(
        0.0, description="fitness cost of resistance: the clone divides at (1 - cost) / cycle_time_h (assumption: none)")
    drug_sensitivity: dict[str, NonNegativeFloat] = Field(
        default_factory=dict, description="per drug field: multiplier of the drug's kill (1: parental, 0: fully resistant); drugs not listed: 1")
    efflux: Fraction = Field(
        0.0, description="fraction of the local drug concentration pumped out of the cell: effective = (1 - efflux) x local")
    quiescence_entry_per_h: NonNegativeFloat = Field(
        0.0, description="rate at which a cycling cell in oxygen becomes quiescent (dormancy), 1/h (assumption: none)")
    quiescence_exit_per_h: PositiveFloat | None = Field(
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
    division_rate_sd: NonNegativeFloat = Field(
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
    """The initial tumor cells: where they are and how the founding clones are arranged among them.

    Each founding clone gets ``round(fraction x cells)`` of the initial cells
    (the first clone takes the rounding remainder), so a rare clone's share
    is exact.
    """

    geometry: Literal["ball", "scattered"] = Field(
        "ball", description="ball: every free voxel within radius_um of center_um (a disc in 2-D); scattered: `cells` free voxels drawn uniformly over the domain")
    radius_um: PositiveFloat = Field(60.0, description="ball: radius of the seed cluster, um")
    center_um: list[float] | None = Field(None, description="centre in um from the low corner, axis order of lattice.shape; default: the domain centre")
    cells: Annotated[int, Field(ge=1)] | None = Field(None, description="scattered: number of initial cells")
    arrangement: Literal["mixed", "sectors", "nests"] = Field(
        "mixed", description="mixed: clones at random positions; sectors: each clone fills an angular sector around the centre; nests: clones fill patches of about nest_radius_um")
    nest_radius_um: PositiveFloat = Field(60.0, description="nests: typical radius of one patch, um")

    @model_validator(mode="after")
    def _consistent(self) -> "InitialTumorConfig":
        if self.geometry == "scattered" and self.cells is None:
            raise ValueError("geometry 'scattered' needs `cells`, the number of initial cells")
        if self.geometry == "ball" and self.cells is not None:
            raise ValueError("`cells` is only read with geometry 'scattered' (a ball holds every free voxel within radius_um)")
        return self


class TumorConfig(Strict):
    """Tumor cells: initial cells, oxygen response, death, clones and mutation."""

    initial: InitialTumorConfig = Field(default_factory=InitialTumorConfig)
    hypoxia: HypoxiaConfig = Field(default_factory=HypoxiaConfig)
    apoptotic_duration_h: PositiveFloat = Field(516.0 / 60.0, description="apoptosis to removal, h: 516 min [PCc]")
    necrotic_clearance_per_h: NonNegativeFloat = Field(
        0.0, description="removal rate of necrotic cells, 1/h (assumption: debris stays, which forms the necrotic core)")
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


class PharmacokineticsConfig(Strict):
    """Plasma level of a drug after its doses: linear, one or two exponential phases.

    A bolus of ``amount`` raises the plasma level by ``amount`` and decays as
    ``amount x (f exp(-ln2 t / t_dist) + (1 - f) exp(-ln2 t / t_half))`` with
    ``f = distribution_fraction`` (0: one compartment). An infusion delivers
    the same amount at a constant rate over its duration. Doses add up.
    """

    half_life_h: PositiveFloat = Field(description="terminal (elimination) half-life, h")
    distribution_half_life_h: PositiveFloat | None = Field(
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
    emax_per_h: NonNegativeFloat = Field(
        0.9 / 24.0, description="cytotoxic: maximum kill rate of a fully sensitive cell, 1/h: 0.9/d [dP06]")
    ec50: PositiveFloat = Field(1.0, description="cytotoxic: concentration of half the maximum kill, field units (assumption: no source found)")
    hill: PositiveFloat = Field(1.0, description="cytotoxic: Hill coefficient of the kill (assumption)")
    cycle_specific: bool = Field(True, description="cytotoxic: true kills only cycling tumor cells (quiescent cells are spared); false kills any live cell")
    immunogenic_fraction: Probability = Field(
        0.0, description="cytotoxic: share of the tumor cells it kills that die immunogenically (they release more antigen / danger signal; assumption: 0)")
    kd: PositiveFloat = Field(1.0, description="anti_pd1: antibody level of half PD-1 occupancy, field units (assumption)")


IMMUNE_DRUG_SENSITIVITY = 0.6 / 0.9  # [dP06]: chemotherapy kills immune cells at 0.6/d, tumor cells at 0.9/d


class TCellCloneConfig(Strict):
    """A T-cell clonotype: the neoantigen it recognises and its naive precursors."""

    name: Annotated[str, Field(min_length=1)]
    antigen: Annotated[int, Field(ge=0, lt=MAX_ANTIGENS)] = Field(description=f"the neoantigen it recognises, 0 to {MAX_ANTIGENS - 1}")
    precursors: PositiveFloat = Field(10.0, description="naive precursor cells of the clonotype in the systemic pool (assumption)")


class PrimingConfig(Strict):
    """The systemic priming compartment: antigen released in the tumor primes, after a delay, the clones that recognise it.

    Antigen release of antigen ``k`` per step: the sum of the priming field
    (the antigen / danger signal) over voxels whose tumor cell presents ``k``.
    Activation ``A = R / (R + half_saturation)`` of the release ``delay_h``
    earlier drives clonal expansion of the clone's pool.
    """

    field: str = Field("danger_signal", description="field whose level at tumor cells presenting an antigen is that antigen's release (an antigen / danger signal field)")
    delay_h: NonNegativeFloat = Field(72.0, description="antigen release to effector output: migration to the lymph node, priming, expansion, h (assumption)")
    half_saturation: PositiveFloat = Field(50.0, description="release giving half the maximum activation, field units x voxels (assumption)")
    expansion_per_h: NonNegativeFloat = Field(0.05, description="expansion rate of a fully activated clone's pool, 1/h (assumption)")
    max_pool: PositiveFloat = Field(1.0e4, description="largest primed pool of one clone, cells (assumption)")
    contraction_per_h: NonNegativeFloat = Field(0.01, description="return of the primed pool to the precursors without activation, 1/h (assumption)")


class MotilityConfig(Strict):
    """Biased random walk on the lattice: speed and chemotaxis."""

    speed_um_per_min: NonNegativeFloat = Field(1.0, description="mean speed, um/min: T cells 1 um/min [PCi]")
    chemotaxis_field: str | None = Field("chemokine", description="field whose gradient the cells climb; null: unbiased walk")
    chemotaxis_bias: Probability = Field(0.5, description="share of moves that go to the free neighbour of highest field level, the rest random [PCi]")


class RecruitmentConfig(Strict):
    """Entry of cells from blood at perfused vessel voxels free of immune cells."""

    rate_per_h: NonNegativeFloat = Field(0.01, description="entry rate per fully perfused vessel voxel at a saturating signal, 1/h (assumption)")
    field: str | None = Field("chemokine", description="field whose level at the vessel scales entry as u / (u + half_saturation); null: no dependence")
    half_saturation: PositiveFloat = Field(0.5, description="field level of half the maximum entry, field units (assumption)")


class TCellConfig(Strict):
    """Cytotoxic T cells: clonotypes, priming, recruitment, movement, killing, exhaustion.

    A T cell's kill rate on a target presenting its antigen is
    ``kill_rate_per_h x (1 - pdl1_inhibition x pdl1 x (1 - occupancy))`` (PD-1
    occupancy by the anti_pd1 drugs, 0 without), times
    ``1 / (1 + u / suppression_ec50)`` of the suppressive cytokine and
    ``1 - contact_inhibition`` of each suppressor type in contact.
    """

    clones: list[TCellCloneConfig] = Field(default_factory=list, description="T-cell clonotypes; none: no T cells")
    priming: PrimingConfig = Field(default_factory=PrimingConfig)
    recruitment: RecruitmentConfig = Field(default_factory=RecruitmentConfig)
    pool_reference: PositiveFloat = Field(
        1000.0, description="primed cells (above the precursors, all clones) at which recruitment runs at recruitment.rate_per_h (it scales linearly with the primed pool; assumption)")
    motility: MotilityConfig = Field(default_factory=MotilityConfig)
    kill_rate_per_h: NonNegativeFloat = Field(1.0 / 6.0, description="kill rate of an effector in contact with a target, 1/h: 6 h per kill in vivo [Breart]")
    pdl1_inhibition: Probability = Field(0.9, description="fraction of the kill that full PD-L1 on the target blocks when PD-1 is free (assumption)")
    exhaustion_per_kill: NonNegativeFloat = Field(0.2, description="exhaustion added by a kill (exhausted at 1: a capacity of 5 kills [Kather])")
    exhaustion_per_engagement_h: NonNegativeFloat = Field(
        0.05, description="exhaustion added per hour of engagement with a target, times its PD-L1 and (1 - occupancy) (assumption)")
    proliferation_after_kill: Probability = Field(0.0, description="chance that an effector divides into a free neighbour after a kill (assumption: off)")
    lifespan_h: PositiveFloat = Field(240.0, description="mean life of an effector, h: 10 d [PCi]")
    exhausted_lifespan_h: PositiveFloat = Field(96.0, description="mean life of an exhausted T cell, h (assumption)")
    suppression_field: str | None = Field(None, description="suppressive cytokine field (e.g. tgf_beta); null: none")
    suppression_ec50: PositiveFloat = Field(0.5, description="cytokine level that halves killing and motility, field units (assumption)")
    drug_sensitivity: dict[str, NonNegativeFloat] = Field(
        default_factory=dict, description=f"per drug: multiplier of the drug's kill on T cells; drugs not listed: {IMMUNE_DRUG_SENSITIVITY:.3f} (0.6/d immune vs 0.9/d tumor [dP06])")

    @field_validator("clones")
    @classmethod
    def _unique_names(cls, clones: list[TCellCloneConfig]) -> list[TCellCloneConfig]:
        _require_unique_names("T-cell clone", [clone.name for clone in clones])
        return clones


class SuppressorConfig(Strict):
    """A suppressor cell type (regulatory T cells or MDSCs): recruitment, movement, contact inhibition, life, drugs."""

    recruitment: RecruitmentConfig = Field(default_factory=lambda: RecruitmentConfig(rate_per_h=0.005))
    motility: MotilityConfig = Field(default_factory=MotilityConfig)
    contact_inhibition: Probability = Field(
        0.5, description="fraction of kill rate and motility a T cell loses while one of these is in its Moore neighbourhood (assumption)")
    lifespan_h: PositiveFloat = Field(240.0, description="mean life, h (assumption)")
    drug_sensitivity: dict[str, NonNegativeFloat] = Field(
        default_factory=dict, description=f"per drug: multiplier of the drug's kill on these cells; drugs not listed: {IMMUNE_DRUG_SENSITIVITY:.3f} [dP06]")


class ImmuneConfig(Strict):
    """The immune microenvironment: T-cell clones and suppressor cells, and how infiltration is measured."""

    t_cells: TCellConfig = Field(default_factory=TCellConfig)
    tregs: SuppressorConfig | None = Field(None, description="regulatory T cells (contact inhibition; secretion through fields); null: none")
    mdscs: SuppressorConfig | None = Field(None, description="myeloid-derived suppressor cells (secretion through fields, contact inhibition); null: none")
    margin_um: PositiveFloat = Field(100.0, description="half-width of the invasive margin around the tumor border, for core and margin T-cell densities, um")
    pdl1_positive_at: Probability = Field(0.1, description="a tumor cell counts as PD-L1 positive when its clone's PD-L1 is at least this (assumption)")

    @property
    def enabled(self) -> bool:
        """Whether any immune cell can appear."""
        return bool(self.t_cells.clones) or self.tregs is not None or self.mdscs is not None


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

    every_days: PositiveFloat = Field(42.0, description="days between assessments, from the start of treatment (6 weeks, a common trial cadence)")
    criteria: Literal["recist", "irecist", "myeloma"] = Field(
        "recist", description="recist: RECIST 1.1-like on diameter [RECIST]; irecist: with confirmation of progression [iRECIST]; myeloma: IMWG-like on a burden marker [IMWG]")
    partial_response_fall: Probability = Field(0.3, description="recist/irecist: PR at this fall of the diameter from baseline: 30 % [RECIST]")
    progression_rise: NonNegativeFloat = Field(0.2, description="recist/irecist: PD at this rise of the diameter over the nadir: 20 % [RECIST]")
    progression_absolute_um: NonNegativeFloat = Field(
        100.0, description="recist/irecist: and at least this absolute rise, um (RECIST's 5 mm, scaled to a mm-sized domain; assumption)")
    complete_response_below_um: NonNegativeFloat = Field(
        0.0, description="recist/irecist: CR when the lesion diameter is at most this, um (0: no tumor cell left)")
    marker_per_cell: PositiveFloat = Field(1.0, description="myeloma: marker units per live tumor cell (assumption; IMWG needs an M-protein-per-cell constant)")
    marker_detection_limit: NonNegativeFloat = Field(0.0, description="myeloma: CR when the marker is at most this (negative immunofixation)")
    marker_progression_absolute: NonNegativeFloat = Field(
        0.0, description="myeloma: PD also needs this absolute rise of the marker over the nadir (IMWG: 0.5 g/dL; scale to marker units)")

    @property
    def categories(self) -> tuple[str, ...]:
        return RESPONSE_CATEGORIES[self.criteria]


class DoseConfig(Strict):
    """One dose of a drug within a cycle of a line."""

    drug: str = Field(description="a drug of `drugs` with `pk`")
    amount: PositiveFloat = Field(description="plasma level the dose adds (a bolus at once; an infusion over infusion_h), field units of the drug")
    days: list[NonNegativeFloat] = Field(default_factory=lambda: [0.0], min_length=1, description="days after the start of each cycle")
    infusion_h: NonNegativeFloat = Field(0.0, description="infusion duration, h; 0: a bolus")


class EndRule(Strict):
    """When a line ends: the first of its conditions that holds (an empty rule: never)."""

    cycles: Annotated[int, Field(ge=1)] | None = Field(None, description="after this many cycles")
    progression: bool = Field(False, description="at an assessment that finds progression")
    response: str | None = Field(None, description="at an assessment with this response or better (a category of the criteria, e.g. PR)")
    burden_below: PositiveFloat | None = Field(None, description="adaptive: at an assessment with burden below this fraction of the baseline (`burden_baseline`)")
    burden_above: PositiveFloat | None = Field(None, description="adaptive: at an assessment with burden above this fraction of the baseline (`burden_baseline`)")
    burden_baseline: Literal["line", "treatment"] = Field(
        "line", description="baseline of burden_below / burden_above: the line's first measurement, or the burden when "
                            "treatment started (Zhang et al. 2017's adaptive rule: stop below 0.5 of it, resume at 1.0)")

    @property
    def empty(self) -> bool:
        return (self.cycles is None and not self.progression and self.response is None
                and self.burden_below is None and self.burden_above is None)


class LineConfig(Strict):
    """A line of therapy: a regimen repeated in cycles, until its end rule holds; then `next`."""

    name: Annotated[str, Field(min_length=1)]
    doses: list[DoseConfig] = Field(default_factory=list, description="the doses of one cycle; none: a treatment holiday or observation")
    cycle_days: PositiveFloat | None = Field(None, description="length of a cycle, days; null: one cycle that never repeats")
    end: EndRule = Field(default_factory=EndRule)
    next: str | None = Field(None, description="name of the line that follows; null: treatment stops")


class TreatmentConfig(Strict):
    """A treatment arm: lines of therapy from `start_day`, and how response is assessed."""

    start_day: NonNegativeFloat = Field(0.0, description="day the first line starts")
    lines: list[LineConfig] = Field(min_length=1, description="the lines; the first starts at start_day")
    assessment: AssessmentConfig = Field(default_factory=AssessmentConfig)



def _check_treatment(where: str, treatment: TreatmentConfig) -> None:
    """ValueError naming the key (``<where>.lines.N...``) of a line that cannot work as written."""
    names = [line.name for line in treatment.lines]
    try:
        _require_unique_names("line", names)
    except ValueError as exc:
        raise ValueError(f"{where}.lines: {exc}") from None
    categories = treatment.assessment.categories
    for index, line in enumerate(treatment.lines):
        key = f"{where}.lines.{index}"
        if line.next is not None and line.next not in names:
            raise ValueError(f"{key}.next: no line named {line.next!r}; lines: {', '.join(names)}")
        if line.end.empty and line.next is not None:
            raise ValueError(f"{key}.end: an empty end rule never triggers, so the next line {line.next!r} never starts; add a condition")
        if line.end.cycles is not None and line.cycle_days is None:
            raise ValueError(f"{key}.end.cycles: the line has no cycle_days, so its cycles never end; set cycle_days")
        if line.end.response is not None and line.end.response not in categories[:-1]:
            raise ValueError(f"{key}.end.response: {line.end.response!r} is no response of {treatment.assessment.criteria}; "
                             f"allowed: {', '.join(categories[:-1])}")
        if line.end.burden_baseline == "line":
            if line.end.burden_below is not None and line.end.burden_below >= 1.0:
                raise ValueError(f"{key}.end.burden_below: {line.end.burden_below} is not below 1 (a fraction of the line's "
                                 f"baseline, which the first assessment of the line measures)")
            if line.end.burden_above is not None and line.end.burden_above <= 1.0:
                raise ValueError(f"{key}.end.burden_above: {line.end.burden_above} is not above 1 (a fraction of the line's baseline)")
        for number, dose in enumerate(line.doses):
            if line.cycle_days is not None and max(dose.days) >= line.cycle_days:
                raise ValueError(f"{key}.doses.{number}.days: day {max(dose.days):g} is not within the cycle of {line.cycle_days:g} days")
        _check_infusions(key, line)


def _check_infusions(where: str, line: LineConfig) -> None:
    """ValueError naming the dose whose infusion of a drug overlaps another of the same drug (in its cycle or the next)."""
    cycle_h = line.cycle_days * 24.0 if line.cycle_days is not None else None
    by_drug: dict[str, list[tuple[float, float, str]]] = {}
    for number, dose in enumerate(line.doses):
        for day in dose.days:
            by_drug.setdefault(dose.drug, []).append((day * 24.0, day * 24.0 + dose.infusion_h, f"{where}.doses.{number}"))
    for drug, spans in by_drug.items():
        spans.sort()
        if cycle_h is not None:
            first_start, first_stop, first_key = spans[0]
            spans.append((first_start + cycle_h, first_stop + cycle_h, first_key))  # the next cycle's first dose
        for (start, stop, key), (next_start, _, next_key) in zip(spans, spans[1:]):
            if next_start < stop or next_start == start:
                raise ValueError(f"{next_key}: doses of {drug!r} overlap: one starts at {next_start:g} h of the cycle while "
                                 f"the one from {start:g} h ({key}) runs until {stop:g} h; space them or shorten infusion_h")


class Config(Strict):
    """A whole simulation."""

    seed: Annotated[int, Field(ge=0, lt=2**63)] = Field(1, description="seeds Mesa's model.rng and every draw")
    backend: Literal["auto", "numpy", "cupy"] = Field("auto", description="array backend")
    lattice: LatticeConfig
    time: TimeConfig
    fields: dict[str, FieldConfig] = Field(default_factory=default_fields)
    vessels: VesselConfig = Field(default_factory=VesselConfig)
    tumor: TumorConfig = Field(default_factory=TumorConfig)
    drugs: dict[str, DrugConfig] = Field(
        default_factory=dict, description="drugs by the name of their tissue field (a field of `fields`)")
    immune: ImmuneConfig = Field(default_factory=ImmuneConfig)
    treatment: TreatmentConfig | None = Field(None, description="the treatment arm of `tme run`; null: untreated")
    arms: dict[str, TreatmentConfig] = Field(
        default_factory=dict, description="named treatment arms for `tme compare` (and `tme run --arm NAME`)")

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if "oxygen" not in self.fields:
            raise ValueError("fields: an 'oxygen' field is required (tumor cells respond to it)")
        for name, field in self.fields.items():
            for face in field.boundary.faces:
                if self.lattice.ndim == 2 and face.startswith("z"):
                    raise ValueError(f"fields.{name}.boundary.faces.{face}: a 2-D lattice has no z faces; allowed: x_min, x_max, y_min, y_max")
        center = self.tumor.initial.center_um
        if center is not None and len(center) != self.lattice.ndim:
            raise ValueError(f"tumor.initial.center_um: needs {self.lattice.ndim} values (one per lattice axis), got {len(center)}")
        fields = [name for name in self.fields if name != "oxygen"]
        for drug in self.drugs:
            if drug not in fields:
                raise ValueError(f"drugs.{drug}: no field of that name holds its tissue concentration; "
                                 f"declare it under fields (fields now: {', '.join(self.fields)}; oxygen is no drug)")
        named = [(f"tumor.clones.{index}.drug_sensitivity", clone.drug_sensitivity) for index, clone in enumerate(self.tumor.clones)]
        named.append(("tumor.mutation.resistance", self.tumor.mutation.resistance))
        named.append(("immune.t_cells.drug_sensitivity", self.immune.t_cells.drug_sensitivity))
        for kind in ("tregs", "mdscs"):
            suppressor = getattr(self.immune, kind)
            if suppressor is not None:
                named.append((f"immune.{kind}.drug_sensitivity", suppressor.drug_sensitivity))
        cytotoxic = self.drug_names
        for where, mapping in named:
            for drug in mapping:
                if drug not in cytotoxic:
                    raise ValueError(f"{where}.{drug}: no cytotoxic drug of that name; allowed: "
                                     f"{', '.join(cytotoxic) or 'none (declare the drug under drugs, and its field under fields)'}")
        longest_step_h = math.log(2.0) * min(clone.cycle_time_h / (1.0 - clone.resistance_cost) for clone in self.tumor.clones)
        if self.time.dt_cell_h > longest_step_h:
            raise ValueError(f"time.dt_cell_h: {self.time.dt_cell_h} h is longer than ln 2 x the shortest effective cycle time "
                             f"({longest_step_h:.3g} h); a cell divides at most once per cell step")
        for where, treatment in self._treatments():
            _check_treatment(where, treatment)
            for index, line in enumerate(treatment.lines):
                for number, dose in enumerate(line.doses):
                    key = f"{where}.lines.{index}.doses.{number}.drug"
                    drug = self.drugs.get(dose.drug)
                    if drug is None:
                        raise ValueError(f"{key}: no drug named {dose.drug!r}; drugs: {', '.join(self.drugs) or 'none (declare it under drugs)'}")
                    if drug.pk is None:
                        raise ValueError(f"{key}: drug {dose.drug!r} has no pk, so a dose cannot set its plasma level; add drugs.{dose.drug}.pk")
                    if self.fields[dose.drug].vessel is None:
                        raise ValueError(f"{key}: field {dose.drug!r} has no vessel section, so the drug never enters tissue; "
                                         f"add fields.{dose.drug}.vessel")
        for where, name in self._immune_field_references():
            if name is not None and name not in self.fields:
                raise ValueError(f"{where}: no field named {name!r}; fields: {', '.join(self.fields)} (declare it under fields, or null)")
        if self.vessels.pattern == "file":
            check_vessel_file(Path(self.vessels.file), tuple(self.lattice.shape))  # type: ignore[arg-type]
        return self

    def _treatments(self) -> list[tuple[str, TreatmentConfig]]:
        """(dotted key, treatment) of the config's treatment and arms."""
        found = [("treatment", self.treatment)] if self.treatment is not None else []
        return found + [(f"arms.{name}", arm) for name, arm in self.arms.items()]

    def _immune_field_references(self) -> list[tuple[str, str | None]]:
        """(dotted key, field name) of every field the immune section names, for the cells it has."""
        immune = self.immune
        references: list[tuple[str, str | None]] = []
        if immune.t_cells.clones:
            t_cells = immune.t_cells
            references += [("immune.t_cells.priming.field", t_cells.priming.field),
                           ("immune.t_cells.recruitment.field", t_cells.recruitment.field),
                           ("immune.t_cells.motility.chemotaxis_field", t_cells.motility.chemotaxis_field),
                           ("immune.t_cells.suppression_field", t_cells.suppression_field)]
        for kind in ("tregs", "mdscs"):
            suppressor = getattr(immune, kind)
            if suppressor is not None:
                references += [(f"immune.{kind}.recruitment.field", suppressor.recruitment.field),
                               (f"immune.{kind}.motility.chemotaxis_field", suppressor.motility.chemotaxis_field)]
        return references

    @property
    def drug_names(self) -> list[str]:
        """The declared cytotoxic drugs (those with a kill and a sensitivity per clone), in the order of their fields."""
        return [name for name in self.fields if name in self.drugs and self.drugs[name].kind == "cytotoxic"]


def check_vessel_file(path: Path, shape: tuple[int, ...]) -> None:
    """Raise ValueError naming ``vessels.file`` unless ``path`` is a .npy array of ``shape`` with values in [0, 1]."""
    if not path.is_file():
        raise ValueError(f"vessels.file: {path}: no such file")
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"vessels.file: {path}: not a readable .npy array ({exc})") from None
    if tuple(values.shape) != shape:
        raise ValueError(f"vessels.file: {path}: shape {tuple(values.shape)} does not match lattice.shape {list(shape)}")
    if values.dtype != bool and not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"vessels.file: {path}: dtype {values.dtype}; allowed: bool, or numbers in [0, 1]")
    if values.dtype != bool and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
        raise ValueError(f"vessels.file: {path}: values must lie in [0, 1] (perfusion; 0 = no vessel)")


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key written twice in one mapping is an error (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in the same mapping (a field or key name must be unique)",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _allowed_keys(location: tuple[Any, ...]) -> list[str] | None:
    """Keys allowed in the config section at ``location``, or None if it is no section."""
    node: Any = Config
    for part in location:
        if typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]
        elif isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = node.model_fields[part].annotation
        else:
            return None
        for member in typing.get_args(node) if typing.get_origin(node) in (Union, UnionType) else ():
            if isinstance(member, type) and issubclass(member, BaseModel):
                node = member
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return None


def _describe_errors(error: ValidationError) -> str:
    """One line per validation error: the dotted key, what is wrong, and the value given."""
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        key = ".".join(str(part) for part in location)
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(location[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{key}: unknown key{hint}")
            continue
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if not location:  # a whole-config check: its message names its own key
            lines.append(message)
            continue
        shown = item.get("input")
        is_section = isinstance(shown, dict) or (isinstance(shown, list) and any(isinstance(entry, dict) for entry in shown))
        got = "" if item["type"] == "missing" or is_section else f" (got {shown!r})"
        lines.append(f"{key}: {message}{got}")
    return "\n  ".join(lines)


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override to a raw config mapping, in place.

    The value is read as YAML (``3``, ``0.5``, ``[64, 64]``, ``no_flux``).
    A number in the path indexes a list (``tumor.clones.0.cycle_time_h=20``).
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    dotted, text = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: empty part in key {dotted!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {dotted}: value {text!r} is not valid YAML ({exc})") from None
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {dotted}: {where} is not an index of a list of {len(node)}")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {dotted}: {where} is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {dotted}: {last} is not an index of a list of {len(node)}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {dotted}: {'.'.join(parts[:-1])} is a value, not a section")


def parse_config(raw: Any, origin: str = "config") -> Config:
    """Validate a raw mapping (as read from YAML) into a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        config = Config.model_validate(raw)
        config.time.total_steps  # noqa: B018 - checks that durations are whole steps
        config.time.steps(config.time.record_every_h, "record_every_h")
        if config.time.snapshot_every_h is not None:
            config.time.steps(config.time.snapshot_every_h, "snapshot_every_h")
    except ValidationError as exc:
        raise ConfigError(f"{origin}: invalid config:\n  {_describe_errors(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{origin}: invalid config:\n  {exc}") from None
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a YAML config.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings applied before validation.

    Raises:
        ConfigError: missing file, YAML that does not parse, or an invalid value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: YAML does not parse{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if raw is None:
        raw = {}
    vessels = raw.get("vessels") if isinstance(raw, dict) else None
    if isinstance(vessels, dict) and isinstance(vessels.get("file"), str):
        vessels["file"] = str((path.parent / vessels["file"]).resolve())
    if isinstance(raw, dict) and overrides:
        try:  # override the resolved config, so --set reaches defaults the file leaves out
            raw = Config.model_validate(raw).model_dump(mode="json")
        except ValidationError:
            pass  # the overrides may be what makes it valid; parse_config reports what is left
        for assignment in overrides:
            apply_override(raw, assignment)
    return parse_config(raw, str(path))


def to_yaml(config: Config, extra: dict[str, Any] | None = None) -> str:
    """The resolved config as YAML (every default filled in), with ``extra`` keys first."""
    data = dict(extra or {})
    data.update(config.model_dump(mode="json"))
    return yaml.safe_dump(data, sort_keys=False)


# --------------------------------------------------------------------------- unit conversion


def field_parameters(config: Config, name: str) -> FieldParameters:
    """Kernel parameters of field ``name`` on this lattice (faces per array axis)."""
    field = config.fields[name]
    axes = "zyx"[3 - config.lattice.ndim:]

    def condition(face: str) -> float | None:
        value = field.boundary.faces.get(face, field.boundary.default)  # type: ignore[arg-type]
        return None if value == "no_flux" else float(value)

    faces = tuple((condition(f"{axis}_min"), condition(f"{axis}_max")) for axis in axes)
    return FieldParameters(field.D_um2_per_min, field.decay_per_min, config.lattice.dx_um, faces)


def hypoxia_parameters(config: Config) -> HypoxiaParameters:
    """Kernel parameters of the tumor's oxygen response."""
    hypoxia = config.tumor.hypoxia
    return HypoxiaParameters(
        quiescence_below_mmHg=hypoxia.quiescence_below_mmHg,
        proliferation_saturation_mmHg=hypoxia.proliferation_saturation_mmHg,
        necrosis_threshold_mmHg=hypoxia.necrosis_threshold_mmHg,
        necrosis_max_mmHg=hypoxia.necrosis_max_mmHg,
        necrosis_max_rate_per_h=hypoxia.necrosis_max_rate_per_h,
    )
