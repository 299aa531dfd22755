"""Config sections of the space and clock of a run: lattice, time, fields (substrates) and vessels."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from abm.config.base import (MAX_AXIS, MAX_CELL_STEPS, MAX_DIFFUSION_UM2_PER_MIN, MAX_DX_UM, MAX_SPAN_H, MAX_SPAN_MIN,
                             MAX_SUBSTEPS, MIN_DT_CELL_H, MIN_DX_UM, ConfigError, Length, Level, PositiveDays,
                             PositiveHours, PositiveLength, PositiveLevel, PositiveRate, Rate, Strict, Variants)
from abm.config.presets import FIELD_PRESETS


FaceName = Literal["x_min", "x_max", "y_min", "y_max", "z_min", "z_max"]
FaceCondition = Literal["no_flux"] | Level
AXIS_OF_FACE = {"z": 0, "y": 1, "x": 2}


class LatticeConfig(Strict):
    """The voxel grid."""

    shape: list[Annotated[int, Field(ge=3, le=MAX_AXIS)]] = Field(
        description="voxels per axis: [ny, nx] for 2-D or [nz, ny, nx] for 3-D")
    dx_um: Annotated[float, Field(ge=MIN_DX_UM, le=MAX_DX_UM)] = Field(20.0, description="voxel edge, um, about one cell [PCi]")
    field_coarsening: Literal[1, 2, 4] = Field(
        1, description="voxels per edge of a substrate voxel: fields are solved on a grid of shape / field_coarsening with edge dx_um x field_coarsening (cells' rates averaged over each block; cells read their block's value); every shape extent must be divisible by it; 1: fields at cell resolution (docs/fields.md, \"Coarse substrate grid\")")

    @field_validator("shape")
    @classmethod
    def _two_or_three_axes(cls, shape: list[int]) -> list[int]:
        if len(shape) not in (2, 3):
            raise ValueError(f"must list 2 (2-D) or 3 (3-D) axis lengths, got {len(shape)}")
        return shape

    @property
    def field_shape(self) -> tuple[int, ...]:
        """The substrate grid's shape: each extent divided by ``field_coarsening``."""
        return tuple(extent // self.field_coarsening for extent in self.shape)

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
    checkpoint_every_h: PositiveHours | None = Field(
        None, description="checkpoint cadence, h: the whole state to checkpoint.pkl, which `tme run --resume DIR` continues from (an interrupted run writes one anyway); null for none; does not change results")

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

    def cadence_steps(self, key: str) -> int | None:
        """Cell steps between the events of the optional cadence ``key`` (``snapshot_every_h``,
        ``checkpoint_every_h``); None where the config leaves it off."""
        hours = getattr(self, key)
        return None if hours is None else self.steps(hours, key)


class BoundaryConfig(Strict):
    """Domain-face conditions: a number holds the face at that value, ``no_flux`` closes it."""

    default: FaceCondition = Field("no_flux", description="condition of every face not listed in faces")
    faces: dict[FaceName, FaceCondition] = Field(default_factory=dict, description="per-face conditions")


class VesselExchangeConfig(Strict):
    """Exchange between blood and tissue at vessel voxels: ``supply * (blood_level - u)``."""

    supply_per_min: Rate = Field(description="exchange rate at a vessel voxel, 1/min")
    blood_level: Level = Field(description="level in blood, field units")


#: A cell type of a field's uptake and secretion: a tumor cell type, the T cells' role or a suppressor type's name
#: (checked against the immune section by the root config).
CellType = Annotated[str, Field(min_length=1, max_length=64)]


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
        default_factory=dict, description="first-order uptake by a cell filling a voxel, 1/min, per cell type (tumor: live tumor cells; tumor_dying: apoptotic or necrotic; tumor_immunogenic: dying by immunogenic death, besides tumor_dying; tumor_hypoxic: live tumor cells below tumor.hypoxia.quiescence_below_mmHg of oxygen at the step's start, besides tumor; t_cell: T cells; a suppressor type's name (immune.suppressors): its cells)")
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


class AngiogenesisConfig(Strict):
    """New vessels up an angiogenic signal (a VEGF-like field): sprouting, tips, anastomosis, maturation, regression.

    Perfused vessels sprout tips up the signal, tips migrate one voxel per
    cell step and anastomose, immature vessels mature to perfusion after a
    delay or regress without support (docs/model.md, "Angiogenesis").
    """

    field: str = Field("vegf", description="the field of the angiogenic signal (declare it under fields, e.g. with preset: vegf)")
    sprout_threshold: PositiveLevel = Field(
        0.05, description="a perfused mature vessel sprouts only where its best free neighbour's signal is above this, field units (assumption)")
    sprout_rate_per_h: PositiveRate = Field(
        0.01, description="sprouting rate of a vessel voxel above the threshold, 1/h (assumption)")
    maturation_h: PositiveHours = Field(
        48.0, description="hours after it formed that an immature vessel that is not a tip matures and carries blood (assumption)")
    perfusion: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="perfusion of a matured new vessel, 0 to 1 (assumption: tumor neovessels carry less flow than the initial ones)")
    regression_threshold: Level = Field(
        0.01, description="an immature vessel regresses where the signal is below this, field units (assumption)")
    regression_rate_per_h: PositiveRate = Field(
        0.05, description="regression rate of an immature vessel below regression_threshold, 1/h (assumption)")


class VesselConfig(Strict):
    """Where vessels are and how well they are perfused: one of the patterns below, chosen by ``pattern``
    (default ``uniform``). Vessel voxels hold no tumor cell.

    Perfusion (0 to 1) scales each vessel's exchange with blood: a field's
    vessel supply at a voxel is ``supply_per_min * perfusion``.
    """

    pattern: str
    collapse: VesselCollapseConfig | None = Field(
        None, description="null: vessels never collapse; a section: dense tumor compresses and collapses them")
    angiogenesis: AngiogenesisConfig | None = Field(
        None, description="null: no new vessels; a section: hypoxia-driven sprouting, anastomosis, maturation and regression")


class UniformVessels(VesselConfig):
    """Vessels at random voxels, at a uniform density, with perfusions drawn uniformly in a range."""

    pattern: Literal["uniform"] = Field("uniform", description="uniform: random voxels at `density`")
    density: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.005, description="fraction of voxels that are vessel (assumption: about one per 100 um)")
    perfusion_min: Annotated[float, Field(ge=0, le=1)] = Field(
        1.0, description="each vessel's perfusion is drawn uniformly in [perfusion_min, perfusion_max] (assumption: 1, fully perfused)")
    perfusion_max: Annotated[float, Field(ge=0, le=1)] = Field(1.0, description="see perfusion_min")

    @model_validator(mode="after")
    def _consistent(self) -> "UniformVessels":
        if self.perfusion_min > self.perfusion_max:
            raise ValueError(f"perfusion_min ({self.perfusion_min}) must not exceed perfusion_max ({self.perfusion_max})")
        return self


class SparseCoreVessels(UniformVessels):
    """Uniform vessels, but at ``density * core_density_factor`` within ``core_radius_um`` of the tumor's initial centre."""

    pattern: Literal["sparse_core"] = Field(  # type: ignore[assignment]
        description="sparse_core: uniform, with a poorly vascularised core around the tumor's initial centre")
    core_radius_um: PositiveLength = Field(description="radius of the poorly vascularised core, um")
    core_density_factor: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="vessel density in the core relative to `density` (0: an avascular core)")


class FileVessels(VesselConfig):
    """Vessels and their perfusion read from a .npy array of the lattice shape."""

    pattern: Literal["file"] = Field(description="file: the array in `file`")
    file: str = Field(
        description="a .npy array of the lattice shape, bool (vessel or not) or float in [0, 1] (perfusion, 0 = no vessel); relative to the config file's folder")


class NoVessels(VesselConfig):
    """No vessels (fields then enter only through the domain's boundary)."""

    pattern: Literal["none"] = Field(description="none: no vessels")


#: The vessel patterns, by the value of ``pattern``.
VESSEL_PATTERNS: dict[str, type[VesselConfig]] = {
    "uniform": UniformVessels, "sparse_core": SparseCoreVessels, "file": FileVessels, "none": NoVessels}
#: The annotation of the ``vessels`` section.
Vessels = Annotated[VesselConfig, Variants("pattern", lambda: VESSEL_PATTERNS, "uniform", "vessel pattern")]
