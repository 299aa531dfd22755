"""The config schema: what a YAML config may say, with units in every name.

Every model forbids unknown keys. Defaults carry their literature source
(see docs/config-reference.md and ../shared/reference/parameters.md):

* [PCi] PhysiCell cancer-immune sample project (doi:10.1371/journal.pcbi.1005991)
* [PCc] PhysiCell core defaults

Values marked "assumption" have no literature source and are stated as such.
Conversions to the units the kernels use happen here, once
(:func:`field_parameters`, :func:`hypoxia_parameters`).

The package's modules, each importing only those listed before it:

* :mod:`abm.config.base`: the strict base model, :class:`ConfigError`, the
  name rule, the limits (``MAX_*``, ``MIN_*``) and the bounded number types;
* :mod:`abm.config.presets`: literature default sets with their sources
  (:data:`FIELD_PRESETS`, :data:`IMMUNE_DRUG_SENSITIVITY`);
* the sections by topic: :mod:`abm.config.domain` (lattice, time, fields,
  vessels), :mod:`abm.config.tumor`, :mod:`abm.config.drugs`,
  :mod:`abm.config.immune`, :mod:`abm.config.treatment`;
* :mod:`abm.config.cohort`: the virtual patients of ``tme compare`` (their
  distributions) and the check that a dotted key names a config value;
* :mod:`abm.config.checks`: checks that span sections;
* :mod:`abm.config.derive`: step counts and kernel parameters from a config;
* :mod:`abm.config.root`: :class:`Config`, a whole simulation, and
  :func:`select_arm`;
* :mod:`abm.config.loading`: YAML with its limits, ``--set``,
  :func:`parse_config`, :func:`load_config`, :func:`to_yaml`.

Every public name of those modules is importable from ``abm.config``.
"""
from __future__ import annotations

from abm.config.base import (MAX_ANTIGENS, MAX_AXIS, MAX_CELL_STEPS, MAX_CELLS, MAX_DIFFUSION_UM2_PER_MIN,
                             MAX_DIVISION_RATE_SD, MAX_DRUGS, MAX_DX_UM, MAX_FACTOR, MAX_HILL, MAX_LENGTH_UM, MAX_LEVEL,
                             MAX_PUSH_DISTANCE, MAX_RATE, MAX_SPAN_DAYS, MAX_SPAN_H, MAX_SPAN_MIN, MAX_SPEED_UM_PER_MIN,
                             MAX_SUBSTEPS, MIN_DT_CELL_H, MIN_DX_UM, MIN_LEVEL, NAME_RULE, Cells, ConfigError, Days, Factor,
                             Fraction, Hours, Length, Level, Name, PositiveDays, PositiveFactor, PositiveHours,
                             PositiveLength, PositiveLevel, PositiveRate, Probability, Rate, Strict, check_name)
from abm.config.cohort import (DISTRIBUTIONS, MAX_PATIENTS, RESERVED_KEYS, CategoricalDistribution, CohortConfig,
                               LognormalDistribution, NormalDistribution, TruncatedNormalDistribution,
                               UniformDistribution, config_key_problem)
from abm.config.checks import check_initial_tumor, check_treatment_starts, check_vessel_file
from abm.config.derive import field_parameters, field_substeps, hypoxia_parameters, margin_steps, movement_substeps
from abm.config.domain import (AXIS_OF_FACE, BoundaryConfig, CellType, FaceCondition, FaceName, FieldConfig, LatticeConfig,
                               TimeConfig, VesselCollapseConfig, VesselConfig, VesselExchangeConfig, Vessels,
                               VESSEL_PATTERNS, FileVessels, NoVessels, SparseCoreVessels, UniformVessels,
                               default_fields)
from abm.config.drugs import (DEFAULT_DRUG_KIND, DRUG_ACTIONS, DRUG_KINDS, AntiPD1Drug, AntiVEGFDrug, CSF1RInhibitorDrug,
                              CytotoxicDrug, Drug, DrugConfig,
                              PharmacokineticsConfig, register_drug_kind, unregister_drug_kind)
from abm.config.immune import (MAX_SUPPRESSOR_TYPES, T_CELL_ROLE, TUMOR_CELL_TYPES, ImmuneConfig, MacrophageConfig, MotilityConfig, PrimingConfig, RecruitmentConfig, SuppressorConfig,
                               TCellCloneConfig, TCellConfig)
from abm.config.loading import (EXTENSION_PREFIX, MAX_CONFIG_BYTES, MAX_ERRORS_SHOWN, MAX_YAML_DEPTH, MAX_YAML_NODES,
                                YAMLRefused, apply_override, assign, load_config, parse_config, read_yaml, to_yaml,
                                with_values)
from abm.config.presets import (FIELD_PRESETS, IMMUNE_DRUG_SENSITIVITY, MINUTES_PER_SECOND, SUPPRESSOR_LABELS, SUPPRESSOR_PRESETS,
                                UM2_PER_CM2)
from abm.config.root import Config, select_arm
from abm.config.treatment import (PROGRESSION, RESPONSE_CATEGORIES, AssessmentConfig, DoseConfig, EndRule, LineConfig,
                                  TreatmentConfig)
from abm.config.tumor import (INITIAL_GEOMETRIES, BallInitialTumor, CloneConfig, EffluxGainConfig, HypoxiaConfig,
                              InitialTumor, ScatteredInitialTumor,
                              InitialTumorConfig, MutationConfig, PDL1ChangeConfig, ResistanceGainConfig, TumorConfig)
