"""What a record measures: the time series' columns, their values from the current state, and the checks that
keep every record finite; the tumor burden the assessments read.

A record is taken every ``time.record_every_h`` and once when the model is
built (:meth:`abm.model.TumorModel.record`); it reads the step context
(:class:`abm.step.StepContext`): the lattice, the subclones' traits, the
immune and therapy compartments and the totals.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from abm import clones as clone_table
from abm.config import AssessmentConfig, Config
from abm.immunity import IMMUNE_NO_DATA_COLUMNS, immune_columns
from abm.step import StepContext
from kernels import heterogeneity
from kernels.immune import neighbour_of
from kernels.layers import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT

RECORD_COLUMNS = (
    "time_h", "time_days", "cells_cycling", "cells_quiescent", "cells_apoptotic", "cells_necrotic",
    "tumor_cells_live", "tumor_cells_total", "tumor_volume_mm3", "equivalent_diameter_um",
    "hypoxic_fraction", "oxygen_mean_mmHg", "oxygen_min_tumor_mmHg",
    "clones_alive", "clones_total", "shannon_diversity", "simpson_diversity",
    "same_clone_neighbour_fraction", "same_clone_neighbour_fraction_random", "fraction_resistant",
    "mean_division_rate_per_h", "mean_apoptosis_per_h", "mean_resistance_cost", "mean_efflux",
    "mean_quiescence_entry_per_h", "mean_pdl1", "mean_mutation_rate", "mean_antigen_count",
    "divisions_total", "drug_kills_total", "mutations_total", "mutations_suppressed",
    "vessels", "vessels_perfused", "mean_perfusion",
)
#: Traits whose live-cell-weighted mean is recorded as ``mean_<trait>``.
MEAN_TRAITS = ("division_rate_per_h", "apoptosis_per_h", "resistance_cost", "efflux",
               "quiescence_entry_per_h", "pdl1", "mutation_rate")


class NonFiniteRecord(ArithmeticError):
    """A field, compartment or record value became NaN or infinite; the message names it and the day.

    Raised by :func:`check_state` and :func:`check_record` (every ``record_every_h``, and once
    when the model is built) before the record is kept, so the records kept
    are all finite but for :func:`no_data_columns`. Checked, in this order:
    the dosed drugs' plasma levels, the T-cells' priming compartment (pools,
    activations), every field (one reduction each), then each column of the
    record.
    """


def _kind_of_number(value: float) -> str:
    return "nan" if math.isnan(value) else "inf"


def no_data_columns(config: Config) -> frozenset[str]:
    """Columns of :func:`record_columns` that are NaN where they have no data: no tumor cell (oxygen and
    ``<field>`` minimum and mean over the tumor), no live tumor cell (trait means, resistant fractions,
    PD-L1-positive fraction, the random-mixing neighbour fraction), no live cell with a live neighbour
    (``same_clone_neighbour_fraction``), no vessel (``mean_perfusion``), no tumor core or margin (CD8 densities).
    Every other column, and any infinity, is non-finite arithmetic (:class:`NonFiniteRecord`)."""
    columns = {"oxygen_min_tumor_mmHg", "same_clone_neighbour_fraction", "same_clone_neighbour_fraction_random",
               "fraction_resistant", "mean_antigen_count", "mean_perfusion"}
    columns |= {f"mean_{trait}" for trait in MEAN_TRAITS}
    columns |= {f"{what}_{drug}" for drug in config.drug_names for what in ("mean_sensitivity", "fraction_resistant")}
    columns |= {f"{name}_tumor_{what}" for name in config.fields if name != "oxygen" for what in ("mean", "min")}
    if config.immune.enabled:
        columns |= set(IMMUNE_NO_DATA_COLUMNS)
    return frozenset(columns)


def record_columns(config: Config) -> tuple[str, ...]:
    """Columns of the time series of ``config``: :data:`RECORD_COLUMNS`, two per drug, two per other field, immune ones.

    Per drug: ``mean_sensitivity_<drug>``, ``fraction_resistant_<drug>``. Per
    field besides oxygen: ``<field>_tumor_mean`` and ``<field>_tumor_min``
    (over voxels with a tumor cell, in the field's units; NaN without tumor).
    With immune cells: :func:`abm.immunity.immune_columns`. With a treatment:
    ``line`` (index of the current line, -1 before and after treatment) and
    ``plasma_<drug>`` (mean plasma level over the step, field units) per dosed drug.
    """
    per_drug = [f"{what}_{drug}" for drug in config.drug_names for what in ("mean_sensitivity", "fraction_resistant")]
    per_field = [f"{name}_tumor_{what}" for name in config.fields if name != "oxygen" for what in ("mean", "min")]
    immune = immune_columns(config) if config.immune.enabled else ()
    treatment = ("line",) + tuple(f"plasma_{name}" for name, drug in config.drugs.items() if drug.pk is not None) \
        if config.treatment is not None else ()
    return RECORD_COLUMNS + tuple(per_drug) + tuple(per_field) + immune + treatment


def measure(context: StepContext, columns: tuple[str, ...]) -> dict[str, float]:
    """The record of the current state (host numbers; a few device syncs), its ``columns`` in order.

    Sets each subclone agent's ``cell_count`` and ``live_cell_count`` (and the immune agents' counts) on the way,
    for Mesa's agent-type series.
    """
    run, lattice, subclones, totals = context.run, context.lattice, context.subclones, context.totals
    xp, backend, cells = run.xp, run.backend, lattice.tumor
    occupied = cells.occupied()
    live = context.live_tumor()
    n_clones = len(subclones)
    by_state = backend.to_host(xp.bincount(cells.state[occupied].astype(xp.int64), minlength=4))
    per_clone = backend.to_host(xp.bincount(cells.clone[occupied].astype(xp.int64), minlength=n_clones))
    live_cells = backend.to_host(xp.bincount(cells.clone[live].astype(xp.int64), minlength=n_clones))
    for clone, count, live_count in zip(subclones.agents, per_clone.tolist(), live_cells.tolist()):
        clone.cell_count = count
        clone.live_cell_count = live_count
    oxygen = lattice.fields["oxygen"]
    hypoxic = live & (oxygen < run.hypoxia.quiescence_below_mmHg)
    live_total = int(by_state[CYCLING] + by_state[QUIESCENT])
    total = int(by_state.sum())
    volume_um3 = total * lattice.voxel_volume_um3
    if lattice.ndim == 3:
        diameter_um = (6.0 * volume_um3 / math.pi) ** (1.0 / 3.0)
    else:
        diameter_um = math.sqrt(4.0 * total * lattice.dx_um**2 / math.pi)
    vessel = lattice.vessels.present
    perfusion = lattice.vessels.perfusion
    vessels = int(vessel.sum())
    time_h = context.time_h
    record: dict[str, float] = {
        "time_h": time_h,
        "time_days": time_h / 24.0,
        "cells_cycling": int(by_state[CYCLING]),
        "cells_quiescent": int(by_state[QUIESCENT]),
        "cells_apoptotic": int(by_state[APOPTOTIC]),
        "cells_necrotic": int(by_state[NECROTIC]),
        "tumor_cells_live": live_total,
        "tumor_cells_total": total,
        "tumor_volume_mm3": volume_um3 * 1e-9,
        "equivalent_diameter_um": diameter_um,
        "hypoxic_fraction": float(hypoxic.sum()) / live_total if live_total else 0.0,
        "oxygen_mean_mmHg": float(oxygen.mean(dtype=xp.float64)),
        "oxygen_min_tumor_mmHg": float(xp.where(occupied, oxygen, xp.inf).min()) if total else float("nan"),
        "clones_alive": int((live_cells > 0).sum()),
        "clones_total": n_clones,
        "shannon_diversity": heterogeneity.shannon_index(np, live_cells),
        "simpson_diversity": heterogeneity.simpson_index(np, live_cells),
        "same_clone_neighbour_fraction": heterogeneity.same_clone_neighbour_fraction(xp, cells.clone, live, run.offsets),
        "same_clone_neighbour_fraction_random": 1.0 - heterogeneity.simpson_index(np, live_cells) if live_total else float("nan"),
        "divisions_total": int(totals.divisions),
        "drug_kills_total": int(totals.drug_kills),
        "mutations_total": subclones.mutations_total,
        "mutations_suppressed": subclones.mutations_suppressed,
        "vessels": vessels,
        "vessels_perfused": int((perfusion > 0).sum()),
        "mean_perfusion": float(perfusion[vessel].mean(dtype=xp.float64)) if vessels else float("nan"),
    }
    record.update(_trait_measures(run.config, subclones.traits, live_cells))
    for name, values in lattice.fields.items():
        if name != "oxygen":
            record[f"{name}_tumor_mean"] = float(values[occupied].mean(dtype=xp.float64)) if total else float("nan")
            record[f"{name}_tumor_min"] = float(values[occupied].min()) if total else float("nan")
    if context.immune.enabled:
        record.update(context.immune.measure(context))
    if run.config.treatment is not None:
        therapy = context.therapy
        record["line"] = -1 if therapy.line is None else therapy.line
        record.update({f"plasma_{name}": level for name, level in therapy.plasma.items()})
    return {column: record[column] for column in columns}


def _trait_measures(config: Config, traits: clone_table.CloneTable, live_cells: np.ndarray) -> dict[str, float]:
    """Live-cell-weighted trait means and resistant fractions (NaN where no cell is alive)."""
    live_total = int(live_cells.sum())
    weights = live_cells / live_total if live_total else np.full(len(live_cells), np.nan)
    out = {f"mean_{trait}": float(weights @ traits[trait]) for trait in MEAN_TRAITS}
    antigen_bits = np.unpackbits(traits["antigens"].astype("<u8").view(np.uint8)).reshape(-1, 64)
    out["mean_antigen_count"] = float(weights @ antigen_bits.sum(axis=1))
    threshold = config.tumor.resistant_below
    resistant_any = np.zeros(len(live_cells), dtype=bool)
    for drug in config.drug_names:
        sensitivity = traits[clone_table.sensitivity_column(drug)]
        resistant = sensitivity * (1.0 - traits["efflux"]) < threshold
        resistant_any |= resistant
        out[f"mean_sensitivity_{drug}"] = float(weights @ sensitivity)
        out[f"fraction_resistant_{drug}"] = float(weights[resistant].sum()) if live_total else float("nan")
    out["fraction_resistant"] = float(weights[resistant_any].sum()) if live_total else float("nan")
    return out


def burden(context: StepContext, assessment: AssessmentConfig) -> tuple[float, int]:
    """Tumor burden for response assessment, and the live tumor cells (one device sync).

    recist, irecist: the equivalent diameter (um) of the lesion: voxels with
    a tumor cell of any state, or with an immune cell next to one (so
    infiltrate counts toward size). myeloma: ``marker_per_cell`` x live cells.
    """
    xp, lattice = context.xp, context.lattice
    live = int(context.live_tumor().sum())
    if assessment.criteria == "myeloma":
        return assessment.marker_per_cell * live, live
    tumor = lattice.tumor.occupied()
    lesion = tumor | (lattice.immune.occupied() & neighbour_of(xp, tumor, context.run.offsets))
    voxels = int(lesion.sum())
    if lattice.ndim == 3:
        return (6.0 * voxels * lattice.voxel_volume_um3 / math.pi) ** (1.0 / 3.0), live
    return math.sqrt(4.0 * voxels * lattice.dx_um**2 / math.pi), live


def _non_finite(context: StepContext, what: str, kinds: str, hint: str) -> NonFiniteRecord:
    return NonFiniteRecord(f"{what}: non-finite values ({kinds}) at day {context.time_h / 24.0:g}; {hint}")


def check_state(context: StepContext) -> None:
    """The plasma levels (host numbers), then one device reduction per field and per array of the priming
    compartment, brought to the host together (one device sync).

    Raises:
        NonFiniteRecord: one of them holds NaN or infinity (the message names it, counts them and says where to look).
    """
    for name, level in context.therapy.plasma.items():
        if not math.isfinite(level):
            raise _non_finite(context, f"plasma level of {name}", _kind_of_number(level),
                              "check its doses and pharmacokinetics")
    xp = context.xp
    checked = [(f"field {name}", values, "voxels", "check its rates, doses and initial value")
               for name, values in context.lattice.fields.items()]
    system = context.immune
    if system.t_clones:
        hint = "check immune.t_cells.priming and the drugs' doses"
        checked += [("T-cell primed pools", system.pool, "clones", hint),
                    ("T-cell activations", system.activation, "clones", hint)]
    finite = context.run.backend.to_host(xp.stack([xp.isfinite(values).all() for _, values, _, _ in checked]))
    for (what, values, units, hint), ok in zip(checked, finite.tolist()):
        if not ok:
            counts = (("nan", int(xp.isnan(values).sum())), ("inf", int(xp.isinf(values).sum())))
            raise _non_finite(context, what, ", ".join(f"{kind} in {count} of {values.size} {units}"
                                                       for kind, count in counts if count), hint)


def check_record(context: StepContext, record: dict[str, Any], no_data: frozenset[str]) -> None:
    """Every float of ``record`` is finite, or NaN in a column of ``no_data`` (:func:`no_data_columns`).

    Raises:
        NonFiniteRecord: a column is infinite, or NaN outside ``no_data``.
    """
    for column, value in record.items():
        if isinstance(value, float) and not math.isfinite(value) and not (math.isnan(value) and column in no_data):
            raise _non_finite(context, f"record column {column}", _kind_of_number(value),
                              "an extreme parameter took the model's arithmetic beyond float64")
