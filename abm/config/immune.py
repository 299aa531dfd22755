"""Config sections of the immune microenvironment: T-cell clonotypes, priming, recruitment, motility, suppressor cells."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from abm.config.base import (MAX_ANTIGENS, MAX_CELL_STEPS, MAX_SPEED_UM_PER_MIN, MAX_SUBSTEPS, NAME_RULE, Cells, Factor,
                             Hours, Name, PositiveHours, PositiveLength, PositiveLevel, Probability, Rate, Strict,
                             Variants, _require_unique_names)
from abm.config.presets import IMMUNE_DRUG_SENSITIVITY, SUPPRESSOR_PRESETS
from kernels.immune import T_CELL_ROLE  # the role of kind code 0 (T cells); each suppressor type has role suppressor

#: Most suppressor types in ``immune.suppressors`` (each takes a kind code and an entry stream, abm.streams).
MAX_SUPPRESSOR_TYPES = 16
#: Cell types of the tumor, for a field's uptake and secretion (the immune ones are the T cells' role and the suppressor
#: names); tumor_hypoxic: the live tumor cells below the quiescence threshold of oxygen (tumor.hypoxia).
TUMOR_CELL_TYPES = ("tumor", "tumor_dying", "tumor_immunogenic", "tumor_hypoxic")


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
    occupancy by the drugs whose kind blocks PD-1, 0 without), times
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
    """A suppressor cell type (e.g. regulatory T cells, MDSCs): recruitment, movement, contact inhibition, life, drugs."""

    role: Literal["suppressor"] = Field("suppressor", description="what the cells do: suppressor (recruited at vessels, inhibit T cells in contact); macrophage: see immune.suppressors.NAME (role: macrophage)")
    recruitment: RecruitmentConfig = Field(default_factory=lambda: RecruitmentConfig(rate_per_h=0.005))
    motility: MotilityConfig = Field(default_factory=MotilityConfig)
    contact_inhibition: Probability = Field(
        0.5, description="fraction of kill rate and motility a T cell loses while one of these is in its Moore neighbourhood (assumption)")
    lifespan_h: PositiveHours = Field(240.0, description="mean life, h (assumption)")
    drug_sensitivity: dict[str, Factor] = Field(
        default_factory=dict, description=f"per drug: multiplier of the drug's kill on these cells; drugs not listed: {IMMUNE_DRUG_SENSITIVITY:.3f} [dP06]")


class PolarisationConfig(Strict):
    """A macrophage's polarisation ``m`` (0: M1-like, anti-tumor; 1: M2-like, pro-tumor) relaxes toward a target set by two signals.

    ``dm/dt = rate_per_h x (m* - m)`` with ``m* = (1 - b) x (baseline + s2) / (1 + s1 + s2)``,
    ``s1 = u_m1 / m1_half_saturation`` (IFN-gamma-like), ``s2 = u_m2 / m2_half_saturation``
    (tumor-derived, e.g. CSF-1 / lactate of hypoxic tumor cells) and ``b`` the M2 blockade of CSF1R
    inhibitors (docs/model.md, Macrophages).
    """

    m1_field: str | None = Field(None, description="field of the M1 signal (IFN-gamma-like, e.g. secreted by t_cell); null: none")
    m1_half_saturation: PositiveLevel = Field(0.1, description="M1 signal level that weighs as much as the baseline, field units (assumption)")
    m2_field: str | None = Field(None, description="field of the M2 signal (tumor-derived, e.g. secreted by tumor_hypoxic); null: none")
    m2_half_saturation: PositiveLevel = Field(0.1, description="M2 signal level that weighs as much as the baseline, field units (assumption)")
    baseline: Probability = Field(0.5, description="target polarisation without either signal (assumption: unpolarised, M0)")
    initial: Probability = Field(0.5, description="polarisation of a cell entering from blood (monocyte-derived, unpolarised; assumption)")
    rate_per_h: Rate = Field(1.0 / 24.0, description="relaxation rate toward the target, 1/h: polarisation shifts within about a day [Mantovani] (assumption)")


class PhagocytosisConfig(Strict):
    """Clearance of dead tumor cells by M1-like macrophages (docs/model.md, Macrophages): a macrophage of polarisation
    below ``m1_below`` engages one dead (apoptotic or necrotic) tumor cell in its voxel or Moore neighbourhood and
    removes it at ``rate_per_h``."""

    rate_per_h: Rate = Field(0.0, description="removal rate of an engaged dead tumor cell by one M1-like macrophage, 1/h (assumption; 0: off)")
    m1_below: Probability = Field(0.5, description="a macrophage phagocytoses while its polarisation is below this (M1-like; assumption)")


class MacrophageConfig(SuppressorConfig):
    """A macrophage type: recruited and moving like a suppressor, with a polarisation between M1-like (kills) and M2-like (suppresses)."""

    role: Literal["macrophage"] = Field(description="macrophage: polarised by signals (polarisation); M2-like cells inhibit T cells "
                                                    "in contact, M1-like cells kill tumor cells in contact")
    recruitment: RecruitmentConfig = Field(default_factory=lambda: RecruitmentConfig(rate_per_h=0.005))
    contact_inhibition: Probability = Field(
        0.5, description="fraction of kill rate and motility a T cell loses next to a fully M2 macrophage of this type, times the "
                         "highest polarisation among them (assumption)")
    kill_rate_per_h: Rate = Field(
        0.02, description="kill rate of a fully M1 macrophage on a live tumor cell in contact, times (1 - polarisation), 1/h (assumption)")
    polarisation: PolarisationConfig = Field(default_factory=PolarisationConfig)
    phagocytosis: PhagocytosisConfig = Field(default_factory=PhagocytosisConfig)
    vessel_support: Probability = Field(
        0.0, description="share of an immature vessel's regression rate (vessels.angiogenesis, anti-VEGF pruning) removed by a fully M2 "
                         "macrophage of this type in its voxel or Moore neighbourhood, times the highest polarisation among them "
                         "(perivascular TIE2+ macrophages [DePalma]; the value an assumption; 0: off)")


#: role -> class of an immune.suppressors entry (the key ``role`` chooses; default suppressor).
CELL_ROLES: dict[str, type[SuppressorConfig]] = {"suppressor": SuppressorConfig, "macrophage": MacrophageConfig}
#: The annotation of an immune.suppressors entry: a section chosen by its ``role``.
ImmuneCellType = Annotated[SuppressorConfig, Variants("role", lambda: CELL_ROLES, "suppressor", "cell role")]


class ImmuneConfig(Strict):
    """The immune microenvironment: T-cell clones and suppressor cells, and how infiltration is measured."""

    t_cells: TCellConfig = Field(default_factory=TCellConfig)
    suppressors: dict[Name, ImmuneCellType] = Field(
        default_factory=dict, description=f"suppressor and macrophage cell types by name (each of a role), at most {MAX_SUPPRESSOR_TYPES}; the legacy keys "
        f"{', '.join(f'{key} (type {name})' for key, name in SUPPRESSOR_PRESETS.items())} declare the type of that name before these")
    margin_um: PositiveLength = Field(100.0, description="half-width of the invasive margin around the tumor border, for core and margin T-cell densities, um; with immune cells at most the longest lattice axis")
    pdl1_positive_at: Probability = Field(0.1, description="a tumor cell counts as PD-L1 positive when its clone's PD-L1 is at least this (assumption)")

    @property
    def enabled(self) -> bool:
        """Whether any immune cell can appear."""
        return bool(self.t_cells.clones) or bool(self.suppressors)

    @model_validator(mode="before")
    @classmethod
    def _legacy_suppressor_keys(cls, raw: Any) -> Any:
        """Move each legacy key of :data:`SUPPRESSOR_PRESETS` into ``suppressors`` under its preset name, before the table's own types."""
        if not isinstance(raw, dict) or not any(key in raw for key in SUPPRESSOR_PRESETS):
            return raw
        raw = dict(raw)
        table = raw.get("suppressors") or {}
        if not isinstance(table, dict):
            return raw  # the field's own check names the error
        moved: dict[Any, Any] = {}
        for key, name in SUPPRESSOR_PRESETS.items():
            section = raw.pop(key, None)
            if section is None:
                continue
            if name in table:
                raise ValueError(f"{key}: declares the suppressor type {name!r}, which suppressors also declares; keep one")
            moved[name] = section
        raw["suppressors"] = {**moved, **table}
        return raw

    @field_validator("suppressors")
    @classmethod
    def _suppressor_names(cls, suppressors: dict[str, SuppressorConfig]) -> dict[str, SuppressorConfig]:
        if len(suppressors) > MAX_SUPPRESSOR_TYPES:
            raise ValueError(f"{len(suppressors)} suppressor types; at most {MAX_SUPPRESSOR_TYPES}")
        for name in suppressors:
            if name == T_CELL_ROLE or name in TUMOR_CELL_TYPES:
                raise ValueError(f"{name}: a cell type of that name exists already ({', '.join((T_CELL_ROLE,) + TUMOR_CELL_TYPES)}); "
                                 f"choose another name")
        return suppressors

    @property
    def macrophages(self) -> dict[str, MacrophageConfig]:
        """The types of role macrophage in ``suppressors``, by name, in table order."""
        return {name: section for name, section in self.suppressors.items() if isinstance(section, MacrophageConfig)}

    @property
    def suppressor_slots(self) -> list[str]:
        """Names of the suppressor types by slot: the preset types (declared or not), then the table's other types.

        Slot ``k`` is kind code ``k + 1`` (T cells are 0) and the entry stream
        :func:`abm.streams.suppressor_enter_stream` ``(k)``; each slot is a count
        column ``<name>s`` of the immune timeseries.
        """
        return list(dict.fromkeys([*SUPPRESSOR_PRESETS.values(), *self.suppressors]))

    @property
    def kind_codes(self) -> dict[str, int]:
        """Kind code of each cell type the config declares: the T cells' role 0 (with clones), each suppressor type its slot + 1."""
        slots = self.suppressor_slots
        codes = {T_CELL_ROLE: 0} if self.t_cells.clones else {}
        return codes | {name: slots.index(name) + 1 for name in self.suppressors}
