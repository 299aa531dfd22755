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
import re
import reprlib
import typing
from collections import Counter
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernels.diffusion import FieldParameters
from kernels.tumor import HypoxiaParameters


class ConfigError(ValueError):
    """A config cannot be used; the message names the key and what is allowed."""


class Strict(BaseModel):
    """Base of every config section: unknown keys, infinite or NaN numbers and values of the wrong type are errors.

    Types are strict: ``true`` is no number, ``1`` is no boolean and ``"20"``
    is no number; an integer is a valid float (``20`` for ``20.0``).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


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
FaceName = Literal["x_min", "x_max", "y_min", "y_max", "z_min", "z_max"]
FaceCondition = Literal["no_flux"] | Level
AXIS_OF_FACE = {"z": 0, "y": 1, "x": 2}


class LatticeConfig(Strict):
    """The voxel grid."""

    shape: list[Annotated[int, Field(ge=3, le=MAX_AXIS)]] = Field(
        description="voxels per axis: [ny, nx] for 2-D or [nz, ny, nx] for 3-D")
    dx_um: Annotated[float, Field(ge=MIN_DX_UM, le=MAX_DX_UM)] = Field(20.0, description="voxel edge, um, about one cell [PCi]")

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

    dt_cell_h: Annotated[float, Field(ge=MIN_DT_CELL_H, le=MAX_SPAN_H)] = Field(1.0, description="cell step, h (assumption; [IO] uses 6 h)")
    duration_days: PositiveDays = Field(description=f"simulated time, days; at most {MAX_CELL_STEPS:,} cell steps")
    record_every_h: PositiveHours = Field(6.0, description="time-series cadence, h")
    snapshot_every_h: PositiveHours | None = Field(24.0, description="snapshot cadence, h; null for none")

    def steps(self, hours: float, key: str) -> int:
        """Whole number of cell steps (at most :data:`MAX_CELL_STEPS`) in ``hours``; ConfigError naming ``key`` otherwise."""
        ratio = hours / self.dt_cell_h
        if not ratio <= MAX_CELL_STEPS + 0.5:
            raise ConfigError(f"time.{key}: {hours:g} h is {ratio:.3g} cell steps of dt_cell_h = {self.dt_cell_h:g} h; "
                              f"at most {MAX_CELL_STEPS:,} cell steps (lengthen dt_cell_h or shorten it)")
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

    supply_per_min: Rate = Field(description="exchange rate at a vessel voxel, 1/min")
    blood_level: Level = Field(description="level in blood, field units")


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
    D_um2_per_min: Annotated[float, Field(ge=0, le=MAX_DIFFUSION_UM2_PER_MIN)] = Field(description="diffusion coefficient, um^2/min")
    decay_per_min: Rate = Field(description="first-order decay, 1/min")
    solver: Literal["steady", "transient", "transient_lod"] = Field(
        "transient", description="steady: equilibrium each cell step (fast substrates); transient: exact backward-Euler steps (multigrid CG; any step, exact equilibrium); transient_lod: BioFVM-style split steps (cheapest per step; needs steps well below 1 / (decay + sink))")
    dt_min: Annotated[float, Field(gt=0, le=MAX_SPAN_MIN)] | None = Field(
        None, description=f"transient solvers: longest field step, min; the cell step is split into equal substeps no longer than this, at most {MAX_SUBSTEPS} (null: one step per cell step)")
    initial: Level = Field(0.0, description="initial value everywhere, field units")
    boundary: BoundaryConfig = Field(default_factory=BoundaryConfig)
    uptake_per_min: dict[CellType, Rate] = Field(
        default_factory=dict, description="first-order uptake by a cell filling a voxel, 1/min, per cell type (tumor: live tumor cells; tumor_dying: apoptotic or necrotic; tumor_immunogenic: dying by immunogenic death, besides tumor_dying; t_cell, treg, mdsc: immune cells)")
    secretion_per_min: dict[CellType, Rate] = Field(
        default_factory=dict, description="secretion rate per cell type, 1/min: a cell adds rate * (secretion_saturation - u), as PhysiCell does")
    secretion_saturation: Level = Field(1.0, description="level at which secretion stops, field units")
    vessel: VesselExchangeConfig | None = Field(None, description="exchange with blood at vessel voxels")
    dtype: Literal["float32", "float64"] = Field("float32", description="storage precision of the field")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, raw: Any) -> Any:
        name = raw.get("preset") if isinstance(raw, dict) else None
        if not isinstance(name, str) or name not in FIELD_PRESETS:
            return raw  # no preset, or one that `_known_preset` refuses
        return {**FIELD_PRESETS[name], **raw}

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str | None) -> str | None:
        if name is not None and name not in FIELD_PRESETS:
            raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(FIELD_PRESETS)}")
        return name


def default_fields() -> dict[str, FieldConfig]:
    """Oxygen with PhysiCell's values [PCi]: D 1e5 um^2/min, decay 0.1/min, uptake 10/min, 38 mmHg."""
    return {"oxygen": FieldConfig(preset="oxygen")}


class VesselCollapseConfig(Strict):
    """Compression of vessels by dense tumor: a vessel with many tumor neighbours stops carrying blood."""

    tumor_neighbour_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="a vessel voxel is compressed when at least this share of its Moore neighbours (8 in 2-D, 26 in 3-D) hold tumor cells of any state (assumption)")
    rate_per_h: PositiveRate = Field(
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
    core_radius_um: Length = Field(
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


MAX_ANTIGENS = 64
#: Most drugs a config may declare: each draws a resistance stream for mutants from a range of its own
#: (abm.streams), which holds this many.
MAX_DRUGS = 64
Probability = Annotated[float, Field(ge=0, le=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


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
    """The initial tumor cells: where they are and how the founding clones are arranged among them.

    Each founding clone gets ``round(fraction x cells)`` of the initial cells
    (the first clone takes the rounding remainder), so a rare clone's share
    is exact.
    """

    geometry: Literal["ball", "scattered"] = Field(
        "ball", description="ball: every free voxel within radius_um of center_um (a disc in 2-D); scattered: `cells` free voxels drawn uniformly over the domain")
    radius_um: PositiveLength = Field(60.0, description="ball: radius of the seed cluster, um; it must hold at least one voxel centre")
    center_um: list[Length] | None = Field(None, description="centre in um from the low corner, axis order of lattice.shape, within the domain; default: the domain centre")
    cells: Annotated[int, Field(ge=1, le=MAX_AXIS**3)] | None = Field(None, description="scattered: number of initial cells, at most the lattice's voxels")
    arrangement: Literal["mixed", "sectors", "nests"] = Field(
        "mixed", description="mixed: clones at random positions; sectors: each clone fills an angular sector around the centre; nests: clones fill patches of about nest_radius_um")
    nest_radius_um: Annotated[float, Field(ge=MIN_DX_UM, le=MAX_LENGTH_UM)] = Field(60.0, description="nests: typical radius of one patch, um")

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
    apoptotic_duration_h: PositiveHours = Field(516.0 / 60.0, description="apoptosis to removal, h: 516 min [PCc]")
    necrotic_clearance_per_h: Rate = Field(
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


IMMUNE_DRUG_SENSITIVITY = 0.6 / 0.9  # [dP06]: chemotherapy kills immune cells at 0.6/d, tumor cells at 0.9/d


class TCellCloneConfig(Strict):
    """A T-cell clonotype: the neoantigen it recognises and its naive precursors."""

    name: Name = Field(description=f"the clonotype's name; {NAME_RULE}")
    antigen: Annotated[int, Field(ge=0, lt=MAX_ANTIGENS)] = Field(description=f"the neoantigen it recognises, 0 to {MAX_ANTIGENS - 1}")
    precursors: Cells = Field(10.0, description="naive precursor cells of the clonotype in the systemic pool (assumption)")


class PrimingConfig(Strict):
    """The systemic priming compartment: antigen released in the tumor primes, after a delay, the clones that recognise it.

    Antigen release of antigen ``k`` per step: the sum of the priming field
    (the antigen / danger signal) over voxels whose tumor cell presents ``k``.
    Activation ``A = R / (R + half_saturation)`` of the release ``delay_h``
    earlier drives clonal expansion of the clone's pool.
    """

    field: str = Field("danger_signal", description="field whose level at tumor cells presenting an antigen is that antigen's release (an antigen / danger signal field)")
    delay_h: Hours = Field(72.0, description=f"antigen release to effector output: migration to the lymph node, priming, expansion, h (assumption); at most {MAX_CELL_STEPS:,} cell steps")
    half_saturation: PositiveLevel = Field(50.0, description="release giving half the maximum activation, field units x voxels (assumption)")
    expansion_per_h: Rate = Field(0.05, description="expansion rate of a fully activated clone's pool, 1/h (assumption)")
    max_pool: Cells = Field(1.0e4, description="largest primed pool of one clone, cells (assumption)")
    contraction_per_h: Rate = Field(0.01, description="return of the primed pool to the precursors without activation, 1/h (assumption)")


class MotilityConfig(Strict):
    """Biased random walk on the lattice: speed and chemotaxis."""

    speed_um_per_min: Annotated[float, Field(ge=0, le=MAX_SPEED_UM_PER_MIN)] = Field(1.0, description=f"mean speed, um/min: T cells 1 um/min [PCi]; a cell moves at most one voxel per substep, and a cell step has at most {MAX_SUBSTEPS} substeps (speed x dt_cell_h x 60 / dx_um)")
    chemotaxis_field: str | None = Field("chemokine", description="field whose gradient the cells climb; null: unbiased walk")
    chemotaxis_bias: Probability = Field(0.5, description="share of moves that go to the free neighbour of highest field level, the rest random [PCi]")


class RecruitmentConfig(Strict):
    """Entry of cells from blood at perfused vessel voxels free of immune cells."""

    rate_per_h: Rate = Field(0.01, description="entry rate per fully perfused vessel voxel at a saturating signal, 1/h (assumption)")
    field: str | None = Field("chemokine", description="field whose level at the vessel scales entry as u / (u + half_saturation); null: no dependence")
    half_saturation: PositiveLevel = Field(0.5, description="field level of half the maximum entry, field units (assumption)")


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
    pool_reference: Cells = Field(
        1000.0, description="primed cells (above the precursors, all clones) at which recruitment runs at recruitment.rate_per_h (it scales linearly with the primed pool; assumption)")
    motility: MotilityConfig = Field(default_factory=MotilityConfig)
    kill_rate_per_h: Rate = Field(1.0 / 6.0, description="kill rate of an effector in contact with a target, 1/h: 6 h per kill in vivo [Breart]")
    pdl1_inhibition: Probability = Field(0.9, description="fraction of the kill that full PD-L1 on the target blocks when PD-1 is free (assumption)")
    exhaustion_per_kill: Probability = Field(0.2, description="exhaustion added by a kill (exhausted at 1: a capacity of 5 kills [Kather])")
    exhaustion_per_engagement_h: Rate = Field(
        0.05, description="exhaustion added per hour of engagement with a target, times its PD-L1 and (1 - occupancy) (assumption)")
    proliferation_after_kill: Probability = Field(0.0, description="chance that an effector divides into a free neighbour after a kill (assumption: off)")
    lifespan_h: PositiveHours = Field(240.0, description="mean life of an effector, h: 10 d [PCi]")
    exhausted_lifespan_h: PositiveHours = Field(96.0, description="mean life of an exhausted T cell, h (assumption)")
    suppression_field: str | None = Field(None, description="suppressive cytokine field (e.g. tgf_beta); null: none")
    suppression_ec50: PositiveLevel = Field(0.5, description="cytokine level that halves killing and motility, field units (assumption)")
    drug_sensitivity: dict[str, Factor] = Field(
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
    lifespan_h: PositiveHours = Field(240.0, description="mean life, h (assumption)")
    drug_sensitivity: dict[str, Factor] = Field(
        default_factory=dict, description=f"per drug: multiplier of the drug's kill on these cells; drugs not listed: {IMMUNE_DRUG_SENSITIVITY:.3f} [dP06]")


class ImmuneConfig(Strict):
    """The immune microenvironment: T-cell clones and suppressor cells, and how infiltration is measured."""

    t_cells: TCellConfig = Field(default_factory=TCellConfig)
    tregs: SuppressorConfig | None = Field(None, description="regulatory T cells (contact inhibition; secretion through fields); null: none")
    mdscs: SuppressorConfig | None = Field(None, description="myeloid-derived suppressor cells (secretion through fields, contact inhibition); null: none")
    margin_um: PositiveLength = Field(100.0, description="half-width of the invasive margin around the tumor border, for core and margin T-cell densities, um; with immune cells at most the longest lattice axis")
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



def check_treatment_starts(where: str, treatment: TreatmentConfig, time: TimeConfig) -> None:
    """ValueError naming ``<where>.start_day`` unless the treatment starts before the run of ``time`` ends.

    Checked for ``treatment`` at load, and for an arm when it is chosen
    (:func:`select_arm`): a config's other arms may start later than a short run.
    """
    if treatment.start_day >= time.duration_days:
        raise ValueError(f"{where}.start_day: day {treatment.start_day:g} is not before the end of the run "
                         f"(time.duration_days = {time.duration_days:g}); the treatment would never start")


def _check_treatment(where: str, treatment: TreatmentConfig, time: TimeConfig) -> None:
    """ValueError naming the key (``<where>.lines.N...``) of a line that cannot work as written with cell steps of ``time``."""
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
        if line.cycle_days is not None and line.cycle_days * 24.0 < time.dt_cell_h:
            raise ValueError(f"{key}.cycle_days: {line.cycle_days:g} days is shorter than one cell step "
                             f"(time.dt_cell_h = {time.dt_cell_h:g} h); a cycle lasts at least one cell step")
        if line.end.burden_below is not None and line.end.burden_above is not None \
                and line.end.burden_below >= line.end.burden_above:
            raise ValueError(f"{key}.end.burden_below: {line.end.burden_below:g} is not below burden_above "
                             f"({line.end.burden_above:g}) of the same baseline, so every assessment would end the line")
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
    fields: dict[Name, FieldConfig] = Field(default_factory=default_fields, description=f"diffusible substrates by name; {NAME_RULE}")
    vessels: VesselConfig = Field(default_factory=VesselConfig)
    tumor: TumorConfig = Field(default_factory=TumorConfig)
    drugs: Annotated[dict[Name, DrugConfig], Field(max_length=MAX_DRUGS)] = Field(
        default_factory=dict, description=f"drugs by the name of their tissue field (a field of `fields`); at most {MAX_DRUGS}")
    immune: ImmuneConfig = Field(default_factory=ImmuneConfig)
    treatment: TreatmentConfig | None = Field(None, description="the treatment arm of `tme run`; null: untreated")
    arms: dict[Name, TreatmentConfig] = Field(
        default_factory=dict, description=f"named treatment arms for `tme compare` (and `tme run --arm NAME`); {NAME_RULE}, unique regardless of case")

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
            _check_treatment(where, treatment, self.time)
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
        if self.treatment is not None:
            check_treatment_starts("treatment", self.treatment, self.time)
        folders = {name.lower(): name for name in self.arms}
        if len(folders) < len(self.arms):
            raise ValueError(f"arms: names that differ only in case ({', '.join(sorted(set(self.arms) - set(folders.values())))}); "
                             f"each arm becomes a folder, and some file systems ignore case")
        for where, name in self._immune_field_references():
            if name is not None and name not in self.fields:
                raise ValueError(f"{where}: no field named {name!r}; fields: {', '.join(self.fields)} (declare it under fields, or null)")
        self._check_initial_tumor()
        self._check_costs()
        if self.vessels.pattern == "file":
            check_vessel_file(Path(self.vessels.file), tuple(self.lattice.shape))  # type: ignore[arg-type]
        return self

    def _check_initial_tumor(self) -> None:
        """ValueError naming the key unless the initial tumor holds at least one cell and fits in the domain."""
        initial, lattice = self.tumor.initial, self.lattice
        extents = [extent * lattice.dx_um for extent in lattice.shape]
        center = initial.center_um if initial.center_um is not None else [extent / 2.0 for extent in extents]
        for axis, (value, extent) in enumerate(zip(center, extents)):
            if not 0.0 <= value <= extent:
                raise ValueError(f"tumor.initial.center_um.{axis}: {value:g} um lies outside the domain; allowed: 0 to {extent:g} um "
                                 f"(lattice.shape x lattice.dx_um along that axis)")
        if initial.geometry == "scattered":
            if initial.cells > lattice.voxels:  # type: ignore[operator]
                raise ValueError(f"tumor.initial.cells: {initial.cells:,} cells do not fit in the {lattice.voxels:,} voxels of the lattice")
            return
        # The voxel centre nearest to the ball's centre, (i + 0.5) dx per axis: the ball holds a voxel centre iff it holds this one.
        nearest = [(min(max(math.floor(value / lattice.dx_um), 0), extent - 1) + 0.5) * lattice.dx_um
                   for value, extent in zip(center, lattice.shape)]
        if not sum((point - value) ** 2 for point, value in zip(nearest, center)) <= initial.radius_um**2:  # as the model seeds
            raise ValueError(f"tumor.initial.radius_um: {initial.radius_um:g} um holds no voxel centre around center_um "
                             f"(the nearest is {math.dist(nearest, center):.3g} um away), so the run would start without tumor cells")

    def _check_costs(self) -> None:
        """ValueError naming the key of a value that would make a cell step too costly: substeps, margin loops, priming delay."""
        dt_h, dx_um = self.time.dt_cell_h, self.lattice.dx_um
        for name, field in self.fields.items():
            if field.solver != "steady" and field_substeps(field.dt_min, dt_h) > MAX_SUBSTEPS:
                raise ValueError(f"fields.{name}.dt_min: {field.dt_min:g} min splits a cell step of {dt_h * 60.0:g} min into "
                                 f"{field_substeps(field.dt_min, dt_h):,} steps; at most {MAX_SUBSTEPS:,} "
                                 f"(dt_min at least {dt_h * 60.0 / MAX_SUBSTEPS:.3g} min)")
        for kind, section in self._immune_sections():
            speed = section.motility.speed_um_per_min
            if movement_substeps(speed, dt_h, dx_um) > MAX_SUBSTEPS:
                raise ValueError(f"immune.{kind}.motility.speed_um_per_min: {speed:g} um/min moves up to "
                                 f"{movement_substeps(speed, dt_h, dx_um):,} voxels of {dx_um:g} um in a cell step of {dt_h:g} h; "
                                 f"at most {MAX_SUBSTEPS:,} (a substep per voxel)")
        if self.immune.enabled:
            steps, longest = margin_steps(self.immune.margin_um, dx_um), max(self.lattice.shape)
            if steps > longest:
                raise ValueError(f"immune.margin_um: {self.immune.margin_um:g} um is {steps:,} voxels; at most the longest "
                                 f"lattice axis ({longest} voxels, {longest * dx_um:g} um)")
        delay = self.immune.t_cells.priming.delay_h
        if delay / dt_h > MAX_CELL_STEPS:
            raise ValueError(f"immune.t_cells.priming.delay_h: {delay:g} h is {delay / dt_h:.3g} cell steps of dt_cell_h = {dt_h:g} h; "
                             f"at most {MAX_CELL_STEPS:,} cell steps")

    def _immune_sections(self) -> list[tuple[str, "TCellConfig | SuppressorConfig"]]:
        """(key, section) of each immune cell kind the config has: t_cells (with clones), tregs, mdscs."""
        sections: list[tuple[str, TCellConfig | SuppressorConfig]] = [("t_cells", self.immune.t_cells)] if self.immune.t_cells.clones else []
        return sections + [(kind, getattr(self.immune, kind)) for kind in ("tregs", "mdscs") if getattr(self.immune, kind) is not None]

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


def field_substeps(dt_min: float | None, dt_cell_h: float) -> int:
    """Steps of a transient field in one cell step of ``dt_cell_h`` hours: equal steps no longer than ``dt_min`` minutes (None: one)."""
    return 1 if dt_min is None else max(1, math.ceil(dt_cell_h * 60.0 / dt_min - 1e-9))


def movement_substeps(speed_um_per_min: float, dt_cell_h: float, dx_um: float) -> int:
    """Immune movement substeps in one cell step: a cell at ``speed_um_per_min`` moves at most one voxel per substep."""
    return max(1, math.ceil(speed_um_per_min * dt_cell_h * 60.0 / dx_um - 1e-9))


def margin_steps(margin_um: float, dx_um: float) -> int:
    """Moore-neighbourhood dilations (or erosions) that span the invasive margin ``margin_um``."""
    return max(1, round(margin_um / dx_um))


def select_arm(config: Config, name: str) -> Config:
    """``config`` treated by its arm ``name``, as `tme run --arm` and `tme compare` run it.

    Raises:
        ConfigError: no arm of that name, or it starts at or after the end of the run.
    """
    if name not in config.arms:
        raise ConfigError(f"--arm {name}: no arm of that name; arms: {', '.join(config.arms) or 'none (the config has no arms)'}")
    try:
        check_treatment_starts(f"arms.{name}", config.arms[name], config.time)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return config.model_copy(update={"treatment": config.arms[name]})


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


#: Most values (scalars, lists and mappings) in a config after aliases are expanded: a hand-written
#: config holds hundreds; the limit stops an "alias bomb" (billion laughs) before it is expanded.
MAX_YAML_NODES = 100_000
#: Deepest nesting of lists and mappings, aliases expanded (the schema itself is 6 deep).
MAX_YAML_DEPTH = 100
#: Largest config file, bytes (a config is a few kB).
MAX_CONFIG_BYTES = 1 << 20
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: Top-level keys of a config file that start with this are ignored: a place to define YAML anchors.
EXTENSION_PREFIX = "x-"


class YAMLRefused(yaml.YAMLError):
    """YAML that parses but is refused: a repeated key, too many values, or nesting too deep.

    Attributes:
        key: dotted key of the value at fault ("" for the top level).
        problem: what is wrong and what is allowed.
        mark: where in the text.
    """

    def __init__(self, key: str, problem: str, mark: Any) -> None:
        super().__init__(key, problem, mark)
        self.key, self.problem, self.mark = key, problem, mark

    def __str__(self) -> str:
        where = f"line {self.mark.line + 1}, column {self.mark.column + 1}: " if self.mark is not None else ""
        return f"{self.key or '(top level)'}: {where}{self.problem}"


try:  # libyaml scans and parses about ten times faster; composing (the checks below) stays in Python
    from yaml._yaml import CParser as _CParser

    class _SafeLoader(yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """yaml.CSafeLoader with PyYAML's Python composer, so that :class:`_ConfigLoader` can check each node."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
except ImportError:  # PyYAML without libyaml
    _SafeLoader = yaml.SafeLoader  # type: ignore[misc, assignment]


class _ConfigLoader(_SafeLoader):
    """YAML's safe loader, with the checks a config needs while its text is composed.

    * A key written twice in one mapping is an error (YAML keeps the last);
      keys brought in by a merge key (``<<: *base``, YAML 1.1) may be
      overridden, as the merge-key rules say.
    * At most :data:`MAX_YAML_NODES` values and :data:`MAX_YAML_DEPTH` levels,
      counted with aliases expanded, and checked before anything is expanded.
    * Numbers with an exponent and no sign or dot (``1e-3``, ``1.0e5``) are
      floats, as in YAML 1.2 (YAML 1.1 reads them as strings).

    Errors name the dotted key (``key_prefix`` first: the key of a ``--set``).
    """

    def __init__(self, stream: str, key_prefix: tuple[str, ...] = ()) -> None:
        super().__init__(stream)
        self._path: list[str] = list(key_prefix)
        self._depth = 0
        self._count = 0
        self._size: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
        self._height: dict[int, int] = {}  # id(node) -> levels in it, aliases expanded

    def current_key(self) -> str:
        """Dotted key of the value being read (cut short past 12 parts)."""
        return ".".join(self._path[:12]) + ("..." if len(self._path) > 12 else "")

    def _refuse(self, problem: str, mark: Any) -> YAMLRefused:
        return YAMLRefused(self.current_key(), problem, mark)

    def _add(self, values: int, mark: Any) -> None:
        self._count += values
        if self._count > MAX_YAML_NODES:
            raise self._refuse(f"more than {MAX_YAML_NODES:,} values with aliases expanded; a config holds at most "
                               f"{MAX_YAML_NODES:,}", mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        # index: None for a mapping key (and the document), the key's node for a mapping value, a number in a list
        part = index.value if isinstance(index, yaml.ScalarNode) else str(index) if isinstance(index, int) else (
            None if index is None else "?")
        if part is not None:
            self._path.append(part)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self._expand_alias(event, parent, index)
        else:
            node = self._compose_counted(event, parent, index)
        if part is not None:
            self._path.pop()
        return node

    def _expand_alias(self, event: Any, parent: Any, index: Any) -> Any:
        """The node an alias names, counted as if written out again here."""
        target = self.anchors.get(event.anchor)
        if target is not None:  # else PyYAML refuses the undefined alias
            if id(target) not in self._size:
                raise self._refuse(f"alias *{event.anchor} lies inside the node it names (a cycle)", event.start_mark)
            if self._depth + self._height[id(target)] > MAX_YAML_DEPTH:
                raise self._refuse(f"alias *{event.anchor} nests values more than {MAX_YAML_DEPTH} levels deep; "
                                   f"at most {MAX_YAML_DEPTH}", event.start_mark)
            self._add(self._size[id(target)], event.start_mark)
        return super().compose_node(parent, index)

    def _compose_counted(self, event: Any, parent: Any, index: Any) -> Any:
        """A node written out here, its values and levels counted (aliases in it expanded)."""
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise self._refuse(f"values nested more than {MAX_YAML_DEPTH} levels deep; at most {MAX_YAML_DEPTH}", event.start_mark)
        before = self._count
        self._add(1, event.start_mark)
        node = super().compose_node(parent, index)
        children = [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        self._height[id(node)] = 1 + max((self._height[id(child)] for child in children), default=0)
        self._size[id(node)] = self._count - before
        self._depth -= 1
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys may be overridden; a key that is a list or mapping is refused when constructed
            key = self.construct_object(key_node)
            if key in seen:
                self._path.append(str(key))
                raise self._refuse(f"key {key!r} appears twice in the same mapping; a key must be unique", key_node.start_mark)
            seen.add(key)
        return node


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and why YAML does not parse, on one line: `` at line L, column C, in KEY: problem``."""
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    where += f", in {error.key}" if getattr(error, "key", "") else ""
    problem = getattr(error, "problem", None) or str(error)
    return f"{where}: {' '.join(problem.split())}"


def read_yaml(text: str, key_prefix: tuple[str, ...] = ()) -> Any:
    """The value of a YAML text, read by :class:`_ConfigLoader` (its limits and key checks).

    Raises:
        YAMLRefused: a repeated key, too many values or too deep.
        yaml.YAMLError: text that does not parse; a ``key`` attribute holds the dotted key being read.
    """
    loader = _ConfigLoader(text, key_prefix)
    try:
        return loader.get_single_data()
    except YAMLRefused:
        raise
    except yaml.YAMLError as exc:
        exc.key = loader.current_key()  # type: ignore[attr-defined]
        raise
    finally:
        loader.dispose()


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


#: Most validation errors listed in one message (the rest are counted).
MAX_ERRORS_SHOWN = 20
_SHOW = reprlib.Repr()  # a value as text, cut short (a list of a million values is not printed)
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 4, 4, 60, 60


#: The last part pydantic adds to the key of an error for each member of a union it tried (``'no_flux'`` or a number).
_UNION_MEMBER = re.compile(r"literal\[.*\]|constrained-\w+|float|int|str|bool")


def _merge_union_members(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors with those of one value that fits no member of a union made one, its messages joined by "or"."""
    def base(item: dict[str, Any]) -> tuple[Any, ...] | None:
        location = tuple(item["loc"])
        tagged = location and isinstance(location[-1], str) and _UNION_MEMBER.fullmatch(location[-1])
        return location[:-1] if tagged else None

    members = Counter(base(item) for item in errors)
    merged: dict[Any, dict[str, Any]] = {}
    for number, item in enumerate(errors):
        key = base(item)
        if key is None or members[key] < 2:
            merged[number] = item
        elif key in merged:
            merged[key]["msg"] += f", or: {item['msg']}"
        else:
            merged[key] = {**item, "loc": key}
    return list(merged.values())


def _describe_errors(error: ValidationError) -> str:
    """One line per validation error: the dotted key, what is wrong, and the value given (shortened)."""
    lines = []
    errors = _merge_union_members(error.errors())
    for item in errors[:MAX_ERRORS_SHOWN]:
        location = tuple(item["loc"])
        key = ".".join(str(part) for part in location)
        if location[-1:] == ("[key]",):  # a mapping key that is no valid name
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{'.'.join(str(part) for part in location[:-2])}: key {location[-2]!r}: {message}")
            continue
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
        got = "" if item["type"] == "missing" or is_section else f" (got {_SHOW.repr(shown)})"
        lines.append(f"{key}: {message}{got}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"... and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "\n  ".join(lines)


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override to a raw config mapping, in place.

    The value is read as YAML (``3``, ``0.5``, ``[64, 64]``, ``no_flux``), with
    the limits of a config file (:func:`read_yaml`).
    A number in the path indexes a list (``tumor.clones.0.cycle_time_h=20``).
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    dotted, text = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: empty part in key {dotted!r}")
    try:
        value = read_yaml(text, tuple(parts))
    except YAMLRefused as exc:
        raise ConfigError(f"--set {exc.key}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {dotted}: value {_SHOW.repr(text)} is not valid YAML{_yaml_problem(exc)}") from None
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
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config file holds at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except YAMLRefused as exc:
        raise ConfigError(f"{path}: invalid config:\n  {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML does not parse{_yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if raw is None:
        raw = {}
    if isinstance(raw, dict):  # a place for YAML anchors (`x-base: &base {...}`, then `<<: *base`)
        raw = {key: value for key, value in raw.items() if not (isinstance(key, str) and key.startswith(EXTENSION_PREFIX))}
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
