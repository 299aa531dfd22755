"""Config sections of a drug: its plasma pharmacokinetics, and its kind, a registered class holding its keys and actions.

The kinds: :class:`CytotoxicDrug` (``cytotoxic``, the default), :class:`AntiPD1Drug` (``anti_pd1``),
:class:`AntiVEGFDrug` (``anti_vegf``) and :class:`CSF1RInhibitorDrug` (``csf1r_inhibitor``);
:func:`register_drug_kind` adds one.
"""
from __future__ import annotations

import typing
from functools import cached_property
from types import ModuleType
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from abm.config.base import MAX_HILL, Hours, PositiveHours, PositiveLevel, Probability, Rate, Strict, Variants
from kernels import therapy


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


# --------------------------------------------------------------------------- drug kinds
# A drug's kind is its class: the class holds the kind's keys and contributes its actions, which the rules
# sum over the drugs (in the order of their fields). A new kind is one subclass of DrugConfig and one
# register_drug_kind call; see "How to add a drug kind" in docs/therapy.md.

#: The kind of a drug section without ``kind``.
DEFAULT_DRUG_KIND = "cytotoxic"


class DrugConfig(Strict):
    """A drug, of one kind: the keys every kind has; a kind is a subclass that adds its keys and actions.

    Actions (methods; the base's do nothing and return None, and a kind overrides those it has):
    :meth:`tumor_kill_rate`, :meth:`immunogenic_kill_rate`, :meth:`immune_kill_rate`,
    :meth:`systemic_kill_rate`, :meth:`pd1_occupancy`, :meth:`vegf_blockade`, :meth:`vessel_prune_rate`,
    :meth:`perfusion_factor`, :meth:`macrophage_depletion_rate` and :meth:`m2_blockade`. The rules ask only the drugs whose kind
    overrides an action (:meth:`acts`), in the order of their fields, and add up what they return.
    """

    kind: str = Field(description="the drug's kind, one of the registered kinds (the keys below depend on it)")
    pk: PharmacokineticsConfig | None = Field(
        None, description="plasma pharmacokinetics of dosed drugs; null: the plasma level stays at the field's vessel.blood_level")

    #: The kind has a kill that each tumor clone (``tumor.clones[].drug_sensitivity``, resistance mutations) and
    #: each immune cell kind (``immune.*.drug_sensitivity``) scales by its own sensitivity; such drugs are
    #: :attr:`Config.drug_names`, with a sensitivity column per clone and per immune agent.
    has_sensitivity: ClassVar[bool] = False

    @classmethod
    def kind_name(cls) -> str:
        """The value of ``kind`` that selects this class (its ``kind`` annotation is a one-value Literal)."""
        values = typing.get_args(cls.model_fields["kind"].annotation)
        if typing.get_origin(cls.model_fields["kind"].annotation) is not Literal or len(values) != 1:
            raise TypeError(f"{cls.__name__}.kind must be annotated Literal['<kind>'] (one value)")
        return values[0]

    @classmethod
    def acts(cls, action: str) -> bool:
        """Whether the kind has ``action`` (one of :data:`DRUG_ACTIONS`): it overrides the base's method."""
        return getattr(cls, action) is not getattr(DrugConfig, action)

    def tumor_kill_rate(self, xp: ModuleType, clone: Any, cell_state: Any, concentration: Any, efflux: Any,
                        sensitivity: Any) -> Any:
        """Kill rate of live tumor cells (they start apoptosis), 1/h, lattice shape ``float64``; summed over drugs.

        Args:
            clone, cell_state: the tumor layer (clone index, -1 where none; :mod:`kernels.tumor` state codes).
            concentration: the drug's tissue field.
            efflux: per-clone fraction pumped out, ``float64`` ``(n_clones,)``.
            sensitivity: per-clone multiplier, ``float64`` ``(n_clones,)``; None unless :attr:`has_sensitivity`.
        """
        return None

    def immunogenic_kill_rate(self, rate: Any) -> Any:
        """The part of this drug's kill ``rate`` (:meth:`tumor_kill_rate`) that is immunogenic death, 1/h."""
        return None

    def immune_kill_rate(self, xp: ModuleType, agent: Any, concentration: Any, sensitivity: Any) -> Any:
        """Death rate of immune cells in tissue, 1/h, one per cell; summed over drugs.

        Args:
            agent: ``int`` ``(n_cells,)``: each immune cell's agent index.
            concentration: the drug's tissue level at each of those cells, ``(n_cells,)``.
            sensitivity: per-agent multiplier, ``float64`` ``(n_agents,)``; None unless :attr:`has_sensitivity`.
        """
        return None

    def systemic_kill_rate(self, plasma_level: float, sensitivity: float) -> float:
        """Death rate of the circulating T-cell pools at this plasma level (lymphodepletion), 1/h; summed over drugs.

        Args:
            sensitivity: the T cells' multiplier for this drug (``immune.t_cells.drug_sensitivity``).
        """
        return None  # type: ignore[return-value]

    def pd1_occupancy(self, xp: ModuleType, concentration: Any) -> Any:
        """Share of PD-1 on T cells this drug blocks at each voxel; drugs combine as ``1 - prod(1 - occupancy)``."""
        return None

    def vegf_blockade(self, xp: ModuleType, concentration: Any) -> Any:
        """Share of the angiogenic signal this drug blocks at each voxel, 0 to 1, ``float64`` lattice shape; drugs
        combine as ``1 - prod(1 - blockade)``."""
        return None

    def vessel_prune_rate(self, xp: ModuleType, concentration: Any) -> Any:
        """Regression rate this drug adds at immature vessels, 1/h, ``float64`` lattice shape; summed over drugs."""
        return None

    def perfusion_factor(self, hours_since_doses: list[float]) -> float:
        """Factor on the exchange of every field at perfused vessels, given the hours since each dose of this drug so far
        (vessel normalisation); drugs multiply."""
        return None  # type: ignore[return-value]

    def macrophage_depletion_rate(self, xp: ModuleType, concentration: Any) -> Any:
        """Death rate of macrophages (immune types of role macrophage), 1/h, one per cell; summed over drugs.

        Args:
            concentration: the drug's tissue level at each macrophage, ``(n_cells,)``.
        """
        return None

    def m2_blockade(self, xp: ModuleType, concentration: Any) -> Any:
        """Share of the M2 drive this drug blocks at each macrophage (``(n_cells,)`` levels in, ``float64`` out);
        drugs combine as ``1 - prod(1 - blockade)``."""
        return None


#: The actions a drug kind may contribute (methods of :class:`DrugConfig`).
DRUG_ACTIONS = ("tumor_kill_rate", "immunogenic_kill_rate", "immune_kill_rate", "systemic_kill_rate", "pd1_occupancy",
                "vegf_blockade", "vessel_prune_rate", "perfusion_factor", "macrophage_depletion_rate", "m2_blockade")
#: kind name -> class, in registration order (the order of the allowed kinds in messages).
DRUG_KINDS: dict[str, type[DrugConfig]] = {}
#: Config models whose schema holds a drug (rebuilt when a kind is registered or removed).
_USERS: list[type[BaseModel]] = []


def register_drug_kind(cls: type[DrugConfig]) -> type[DrugConfig]:
    """Make ``cls`` the drug kind named by its ``kind`` Literal, valid in configs from now on; returns ``cls`` (a decorator).

    Raises:
        TypeError: ``cls`` is no DrugConfig subclass, or its ``kind`` is no one-value Literal.
        ValueError: another class has that kind already.
    """
    if not (isinstance(cls, type) and issubclass(cls, DrugConfig)) or cls is DrugConfig:
        raise TypeError(f"a drug kind is a subclass of DrugConfig, got {cls!r}")
    name = cls.kind_name()
    if DRUG_KINDS.get(name, cls) is not cls:
        raise ValueError(f"drug kind {name!r} is registered already ({DRUG_KINDS[name].__name__})")
    DRUG_KINDS[name] = cls
    _rebuild()
    return cls


def unregister_drug_kind(name: str) -> None:
    """Remove the drug kind ``name`` (tests that register a kind of their own undo it with this)."""
    del DRUG_KINDS[name]
    _rebuild()


def rebuild_with_drug_kinds(model: type[BaseModel]) -> type[BaseModel]:
    """Mark ``model`` as holding drugs: its schema is rebuilt whenever the registered kinds change; returns it."""
    _USERS.append(model)
    return model


def _rebuild() -> None:
    for model in _USERS:
        model.model_rebuild(force=True)


#: The annotation of a drug in a config: a section validated by the class of its ``kind`` (default
#: :data:`DEFAULT_DRUG_KIND`), among the kinds registered when the schema is built.
Drug = Annotated[DrugConfig, Variants("kind", lambda: DRUG_KINDS, DEFAULT_DRUG_KIND, "drug kind")]


@register_drug_kind
class CytotoxicDrug(DrugConfig):
    """Cytotoxic drug: kills tumor cells (Emax/Hill on the local, efflux-adjusted level) and immune cells.

    A live tumor cell (only a cycling one if the drug is cycle-specific)
    starts apoptosis at rate ``emax_per_h x s x c^h / (ec50^h + c^h)`` with
    ``c = (1 - efflux) x local concentration`` and ``s`` its clone's
    sensitivity; immune cells die at the same rate (of the local level) times
    their kind's sensitivity, in tissue and, at the plasma level, in the
    systemic T-cell pools (lymphodepletion).
    """

    kind: Literal["cytotoxic"] = Field("cytotoxic", description="cytotoxic: kills cells (Emax/Hill on the local, efflux-adjusted level)")
    emax_per_h: Rate = Field(0.9 / 24.0, description="maximum kill rate of a fully sensitive cell, 1/h: 0.9/d [dP06]")
    ec50: PositiveLevel = Field(1.0, description="concentration of half the maximum kill, field units (assumption: no source found)")
    hill: Annotated[float, Field(gt=0, le=MAX_HILL)] = Field(1.0, description="Hill coefficient of the kill (assumption)")
    cycle_specific: bool = Field(True, description="true kills only cycling tumor cells (quiescent cells are spared); false kills any live cell")
    immunogenic_fraction: Probability = Field(
        0.0, description="share of the tumor cells it kills that die immunogenically (they release more antigen / danger signal; assumption: 0)")

    has_sensitivity: ClassVar[bool] = True

    @cached_property
    def parameters(self) -> therapy.CytotoxicParameters:
        """The kill's kernel parameters."""
        return therapy.CytotoxicParameters(self.emax_per_h, self.ec50, self.hill, self.cycle_specific)

    def tumor_kill_rate(self, xp: ModuleType, clone: Any, cell_state: Any, concentration: Any, efflux: Any,
                        sensitivity: Any) -> Any:
        return therapy.kill_rate(xp, clone, cell_state, concentration, efflux, sensitivity, self.parameters)

    def immunogenic_kill_rate(self, rate: Any) -> Any:
        return self.immunogenic_fraction * rate

    def immune_kill_rate(self, xp: ModuleType, agent: Any, concentration: Any, sensitivity: Any) -> Any:
        return self.emax_per_h * sensitivity[agent] * therapy.hill_response(xp, concentration, self.parameters)

    def systemic_kill_rate(self, plasma_level: float, sensitivity: float) -> float:
        return self.emax_per_h * sensitivity * float(therapy.hill_response(np, np.float64(plasma_level), self.parameters))


@register_drug_kind
class AntiPD1Drug(DrugConfig):
    """Anti-PD-1 antibody: blocks PD-1 on T cells, occupancy ``c / (c + kd)`` of the local antibody level."""

    kind: Literal["anti_pd1"] = Field(description="anti_pd1: blocks PD-1 on T cells")
    kd: PositiveLevel = Field(1.0, description="antibody level of half PD-1 occupancy, field units (assumption)")

    def pd1_occupancy(self, xp: ModuleType, concentration: Any) -> Any:
        level = concentration.astype(xp.float64)
        return level / (level + self.kd)


#: Largest factor on vessel exchange in a normalisation window (anti_vegf normalisation.perfusion_factor).
MAX_PERFUSION_FACTOR = 10.0


class NormalisationConfig(Strict):
    """The vessel normalisation window of an anti-VEGF drug [Jain; Winkler]: from ``start_h`` to ``start_h + duration_h``
    after a dose, every field's exchange at perfused vessels is ``perfusion_factor`` times its rate, then back."""

    start_h: Hours = Field(48.0, description="start of the window after a dose, h: day 2 [Winkler]")
    duration_h: PositiveHours = Field(72.0, description="length of the window, h, at least one cell step (time.dt_cell_h): "
                                                        "days 2 to 5 in mice [Winkler]")
    perfusion_factor: Annotated[float, Field(ge=1, le=MAX_PERFUSION_FACTOR)] = Field(
        1.5, description=f"factor on vessel exchange in the window, 1 to {MAX_PERFUSION_FACTOR:g}; the windows of several drugs "
                         f"multiply, at most {MAX_PERFUSION_FACTOR:g} together (assumption: the size of the rise in oxygenation "
                         f"[Winkler], not its shape)")


@register_drug_kind
class AntiVEGFDrug(DrugConfig):
    """Anti-VEGF antibody: blocks a share ``emax x c^h / (ec50^h + c^h)`` of the signal of vessels.angiogenesis.

    Where the rest is below ``sprout_threshold`` no vessel sprouts; immature
    vessels regress at ``prune_rate_per_h`` times the blocked share. With
    ``normalisation``, every field's vessel exchange is raised for a window
    after each dose (:class:`NormalisationConfig`); without vessels.angiogenesis
    that window is all it does (:func:`abm.config.checks.check_anti_vegf`).
    """

    kind: Literal["anti_vegf"] = Field(description="anti_vegf: blocks the angiogenic signal of vessels.angiogenesis, prunes immature vessels")
    emax: Probability = Field(0.95, description="share of the signal blocked at a saturating level (assumption)")
    ec50: PositiveLevel = Field(1.0, description="antibody level of half the maximum blockade, field units (assumption)")
    hill: Annotated[float, Field(gt=0, le=MAX_HILL)] = Field(1.0, description="Hill coefficient of the blockade (assumption)")
    prune_rate_per_h: Rate = Field(
        0.05, description="regression rate of immature vessels at full blockade, 1/h (assumption)")
    normalisation: NormalisationConfig | None = Field(
        None, description="a window after each dose in which perfused vessels exchange more (vessel normalisation); null: none. "
                          "Without vessels.angiogenesis it is all the drug does, so it is required, with perfusion_factor above 1 "
                          "and start_h before the end of the run, and a line must dose the drug")

    def vegf_blockade(self, xp: ModuleType, concentration: Any) -> Any:
        return self.emax * therapy.hill_response(xp, concentration.astype(xp.float64), self)

    def vessel_prune_rate(self, xp: ModuleType, concentration: Any) -> Any:
        return self.prune_rate_per_h * self.vegf_blockade(xp, concentration)

    def perfusion_factor(self, hours_since_doses: list[float]) -> float:
        window = self.normalisation
        if window is not None and any(window.start_h <= hours < window.start_h + window.duration_h
                                      for hours in hours_since_doses):
            return window.perfusion_factor
        return 1.0


@register_drug_kind
class CSF1RInhibitorDrug(DrugConfig):
    """CSF1R inhibitor (e.g. pexidartinib, an anti-CSF1R antibody): depletes macrophages and repolarises them toward M1.

    At the local level ``c`` the receptor occupancy is ``o = c / (c + kd)``; a
    macrophage dies at ``depletion_per_h x o`` and its polarisation target
    loses the share ``repolarisation x o`` (docs/model.md, Macrophages).
    """

    kind: Literal["csf1r_inhibitor"] = Field(description="csf1r_inhibitor: depletes and repolarises macrophages")
    kd: PositiveLevel = Field(1.0, description="level of half receptor occupancy, field units (assumption)")
    depletion_per_h: Rate = Field(
        1.0 / 48.0, description="death rate of macrophages at full occupancy, 1/h (assumption: most TAMs gone within a week [Ries])")
    repolarisation: Probability = Field(0.5, description="share of the polarisation target removed at full occupancy (assumption)")

    def _occupancy(self, xp: ModuleType, concentration: Any) -> Any:
        level = concentration.astype(xp.float64)
        return level / (level + self.kd)

    def macrophage_depletion_rate(self, xp: ModuleType, concentration: Any) -> Any:
        return self.depletion_per_h * self._occupancy(xp, concentration)

    def m2_blockade(self, xp: ModuleType, concentration: Any) -> Any:
        return self.repolarisation * self._occupancy(xp, concentration)
