"""Checks of values that depend on more than one config section, as functions of the sections they read.

``Config`` runs them when it validates (treatment lines against the cell
step, the initial tumor against the lattice, a vessel file against the
lattice's shape, an anti-VEGF drug's normalisation window against the cell
step and the vessels); :func:`check_treatment_starts` also runs when an arm is
chosen. Each raises ValueError naming the dotted key at fault.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from abm.config.base import _require_unique_names
from abm.config.domain import LatticeConfig, TimeConfig
from abm.config.drugs import MAX_PERFUSION_FACTOR, AntiVEGFDrug, DrugConfig
from abm.config.treatment import LineConfig, TreatmentConfig
from abm.config.tumor import InitialTumorConfig


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


def check_anti_vegf(name: str, drug: AntiVEGFDrug, time: TimeConfig, angiogenesis: bool, dosed: bool) -> None:
    """ValueError naming the key of anti-VEGF drug ``name`` that leaves it without effect, or its window unseen.

    The drug blocks the angiogenic signal and prunes immature vessels, both
    only under ``vessels.angiogenesis``, and raises vessel exchange in its
    normalisation window after each dose. Its window is looked at once per
    cell step, so it lasts at least one. Without angiogenesis the window is
    all it does, so it must be able to open within the run: a window of
    ``perfusion_factor`` above 1, starting before the run ends, after doses
    of the drug.

    Args:
        name: the drug's name (its field).
        angiogenesis: ``vessels.angiogenesis`` is set.
        dosed: a line of the treatment or of an arm doses the drug.
    """
    key, window = f"drugs.{name}.normalisation", drug.normalisation
    if window is not None and window.duration_h < time.dt_cell_h:
        raise ValueError(f"{key}.duration_h: {window.duration_h:g} h is shorter than one cell step (time.dt_cell_h = "
                         f"{time.dt_cell_h:g} h); the window is looked at once per cell step, so it lasts at least one")
    if angiogenesis:
        return
    idle = (f"without vessels.angiogenesis (null here: no sprouting to block, no immature vessels to prune) an anti_vegf "
            f"drug acts only in its normalisation window, so {name!r} would do nothing")
    if window is None:
        raise ValueError(f"{key}: null; {idle}; allowed: a window (perfusion_factor above 1), or set vessels.angiogenesis")
    if window.perfusion_factor == 1.0:
        raise ValueError(f"{key}.perfusion_factor: 1 leaves vessel exchange as it is; {idle}; allowed: above 1, up to "
                         f"{MAX_PERFUSION_FACTOR:g}, or set vessels.angiogenesis")
    run_h = time.duration_days * 24.0
    if window.start_h >= run_h:
        raise ValueError(f"{key}.start_h: {window.start_h:g} h after a dose is not before the end of the run ({run_h:g} h), "
                         f"so the window never opens; {idle}; allowed: below {run_h:g} h, or set vessels.angiogenesis")
    if not dosed:
        raise ValueError(f"drugs.{name}: no line of treatment or arms doses it, so its normalisation window never opens; "
                         f"{idle}; allowed: a dose of {name!r} in a line, or set vessels.angiogenesis")


def check_perfusion_factors(drugs: dict[str, DrugConfig]) -> None:
    """ValueError naming ``drugs.NAME.normalisation.perfusion_factor`` unless the normalisation windows of all the
    anti-VEGF drugs of ``drugs`` (name -> drug), which multiply where they overlap, together stay within
    :data:`~abm.config.drugs.MAX_PERFUSION_FACTOR`."""
    factors = [(name, drug.normalisation.perfusion_factor) for name, drug in drugs.items()
               if isinstance(drug, AntiVEGFDrug) and drug.normalisation is not None]
    if math.prod(factor for _, factor in factors) > MAX_PERFUSION_FACTOR:
        name = factors[-1][0]
        product = " x ".join(f"{factor:g} ({name})" for name, factor in factors)
        raise ValueError(f"drugs.{name}.normalisation.perfusion_factor: the windows of anti-VEGF drugs multiply where they "
                         f"overlap, {product} = {math.prod(f for _, f in factors):g}; allowed: at most "
                         f"{MAX_PERFUSION_FACTOR:g} together")


def check_initial_tumor(initial: InitialTumorConfig, lattice: LatticeConfig) -> None:
    """ValueError naming the key unless the initial tumor holds at least one cell and fits in the domain."""
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
