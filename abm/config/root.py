"""The root of the schema: ``Config``, a whole simulation, whose validator checks what spans its sections; choosing an arm."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from abm.config.base import MAX_CELL_STEPS, MAX_DRUGS, MAX_SUBSTEPS, NAME_RULE, ConfigError, Name, Strict
from abm.config.cohort import CohortConfig, config_key_problem
from abm.config.checks import (_check_treatment, check_anti_vegf, check_initial_tumor, check_perfusion_factors, check_treatment_starts,
                               check_vessel_file)
from abm.config.derive import field_substeps, margin_steps, movement_substeps
from abm.config.domain import FieldConfig, LatticeConfig, TimeConfig, UniformVessels, Vessels, default_fields
from abm.config.drugs import DRUG_KINDS, AntiVEGFDrug, Drug, DrugConfig, rebuild_with_drug_kinds
from abm.config.immune import T_CELL_ROLE, TUMOR_CELL_TYPES, ImmuneConfig, SuppressorConfig, TCellConfig
from abm.config.treatment import TreatmentConfig
from abm.config.tumor import TumorConfig


@rebuild_with_drug_kinds
class Config(Strict):
    """A whole simulation."""

    seed: Annotated[int, Field(ge=0, lt=2**63)] = Field(1, description="seeds Mesa's model.rng and every draw")
    backend: Literal["auto", "numpy", "cupy"] = Field("auto", description="array backend")
    lattice: LatticeConfig
    time: TimeConfig
    fields: dict[Name, FieldConfig] = Field(default_factory=default_fields, description=f"diffusible substrates by name; {NAME_RULE}")
    vessels: Vessels = Field(default_factory=UniformVessels)
    tumor: TumorConfig = Field(default_factory=TumorConfig)
    drugs: Annotated[dict[Name, Drug], Field(max_length=MAX_DRUGS)] = Field(
        default_factory=dict, description=f"drugs by the name of their tissue field (a field of `fields`), each of a kind (see drugs.NAME); at most {MAX_DRUGS}")
    immune: ImmuneConfig = Field(default_factory=ImmuneConfig)
    treatment: TreatmentConfig | None = Field(None, description="the treatment arm of `tme run`; null: untreated")
    arms: dict[Name, TreatmentConfig] = Field(
        default_factory=dict, description=f"named treatment arms for `tme compare` (and `tme run --arm NAME`); {NAME_RULE}, unique regardless of case")
    cohort: CohortConfig | None = Field(None, description="virtual patients for `tme compare` (docs/experiments.md); null: "
                                                          "one patient, the config as written; `tme run` runs the config as written")

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if "oxygen" not in self.fields:
            raise ValueError("fields: an 'oxygen' field is required (tumor cells respond to it)")
        cell_types = (*TUMOR_CELL_TYPES, T_CELL_ROLE, *self.immune.suppressor_slots)
        for name, field in self.fields.items():
            for key in ("uptake_per_min", "secretion_per_min"):
                for cell_type in getattr(field, key):
                    if cell_type not in cell_types:
                        raise ValueError(f"fields.{name}.{key}.{cell_type}: no cell type of that name; allowed: {', '.join(cell_types)} "
                                         f"(a suppressor type is declared under immune.suppressors)")
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
        for kind, suppressor in self.immune.suppressors.items():
            named.append((f"immune.suppressors.{kind}.drug_sensitivity", suppressor.drug_sensitivity))
        sensitive = self.drug_names
        for where, mapping in named:
            for drug in mapping:
                if drug not in sensitive:
                    kinds = " or ".join(name for name, kind in DRUG_KINDS.items() if kind.has_sensitivity)
                    raise ValueError(f"{where}.{drug}: no drug of that name with a sensitivity (kind {kinds}); allowed: "
                                     f"{', '.join(sensitive) or 'none (declare the drug under drugs, and its field under fields)'}")
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
        growth = self.vessels.angiogenesis
        if growth is not None and growth.field not in fields:
            raise ValueError(f"vessels.angiogenesis.field: no field named {growth.field!r}; fields: {', '.join(self.fields)} "
                             f"(declare it under fields, e.g. {growth.field}: {{preset: vegf}}; oxygen is no angiogenic signal)")
        dosed = {dose.drug for _, treatment in self._treatments() for line in treatment.lines for dose in line.doses}
        for name, drug in self.drugs.items():
            if isinstance(drug, AntiVEGFDrug):
                check_anti_vegf(name, drug, self.time, angiogenesis=growth is not None, dosed=name in dosed)
        check_perfusion_factors(self.drugs)
        for where, name in self._immune_field_references():
            if name is not None and name not in self.fields:
                raise ValueError(f"{where}: no field named {name!r}; fields: {', '.join(self.fields)} (declare it under fields, or null)")
        if self.cohort is not None and self.cohort.parameters:
            data = self.model_dump(mode="json")
            for key in self.cohort.parameters:
                problem = config_key_problem(data, key)
                if problem is not None:
                    raise ValueError(f"cohort.parameters.{key}: {problem}")
        factor = self.lattice.field_coarsening
        if any(extent % factor for extent in self.lattice.shape):
            raise ValueError(f"lattice.field_coarsening: {factor} does not divide every extent of lattice.shape "
                             f"{self.lattice.shape}; allowed: 1, 2 or 4, dividing every extent")
        check_initial_tumor(self.tumor.initial, self.lattice)
        self._check_costs()
        if self.vessels.pattern == "file":
            check_vessel_file(Path(self.vessels.file), tuple(self.lattice.shape))  # type: ignore[arg-type]
        return self

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
        """(key, section) of each immune cell kind the config has: t_cells (with clones), then suppressors.NAME per suppressor type."""
        sections: list[tuple[str, TCellConfig | SuppressorConfig]] = [("t_cells", self.immune.t_cells)] if self.immune.t_cells.clones else []
        return sections + [(f"suppressors.{kind}", section) for kind, section in self.immune.suppressors.items()]

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
        for kind, suppressor in immune.suppressors.items():
            references += [(f"immune.suppressors.{kind}.recruitment.field", suppressor.recruitment.field),
                           (f"immune.suppressors.{kind}.motility.chemotaxis_field", suppressor.motility.chemotaxis_field)]
        for kind, macrophage in immune.macrophages.items():
            references += [(f"immune.suppressors.{kind}.polarisation.m1_field", macrophage.polarisation.m1_field),
                           (f"immune.suppressors.{kind}.polarisation.m2_field", macrophage.polarisation.m2_field)]
        return references

    @property
    def drug_names(self) -> list[str]:
        """The drugs whose kind has a sensitivity per clone and immune cell kind (``has_sensitivity``), in the order of their fields."""
        return [name for name in self.fields if name in self.drugs and self.drugs[name].has_sensitivity]

    def drugs_acting(self, action: str) -> list[tuple[str, DrugConfig]]:
        """(name, drug) of the drugs whose kind has ``action`` (see :data:`abm.config.drugs.DRUG_ACTIONS`), in the order of their fields."""
        return [(name, self.drugs[name]) for name in self.fields if name in self.drugs and self.drugs[name].acts(action)]


def select_arm(config: Config, name: str, option: str = "arm") -> Config:
    """``config`` treated by its arm ``name``: what ``tme run --arm NAME`` runs, and each run of ``tme compare``.

    Args:
        option: how the arm was named, for the message (``--arm`` or ``--arms`` on the command line).

    Raises:
        ConfigError: the config has no arm ``name`` (naming it and listing the arms), or the arm starts at or
            after the end of the run (it would never start).
    """
    if name not in config.arms:
        raise ConfigError(f"{option} {name}: no arm of that name; arms: {', '.join(config.arms) or 'none (the config has no arms)'}")
    try:
        check_treatment_starts(f"arms.{name}", config.arms[name], config.time)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return config.model_copy(update={"treatment": config.arms[name]})
