"""Virtual patients: their draws, their configs and seeds, and the paired differences between arms.

A config's ``cohort`` section (:class:`abm.config.CohortConfig`) declares
``patients`` and a distribution per dotted config key. Patient ``p`` (0, 1,
...) is the config with each key set to its ``p``-th draw (as ``--set`` sets
it) and validated in full. The draws come from NumPy generators of their own,
one per key, seeded by ``(config.seed, crc32(key))`` through
:class:`numpy.random.SeedSequence` with a spawn key, so they are apart from
the runs' draws (Mesa's ``model.rng`` is seeded by ``config.seed`` alone),
reproducible, and a key's draws do not change when other keys are added or
reordered. A config without a cohort is one patient, 0: the config as written.

The design is paired: every arm runs every patient with the same seeds.
Patient ``p`` of ``P``'s replicate ``r`` has the seed ``config.seed + r x P +
p`` (:func:`seeds`): without a cohort the seeds are those of ``tme compare``
before cohorts, every run of an arm has a seed of its own (its directory
stays ``runs/<arm>/seed_<n>/``), and a restart with more replicates keeps
the runs it has (their seeds do not move).
"""
from __future__ import annotations

import json
import math
import zlib
from statistics import NormalDist
from typing import Any

import numpy as np

from abm.config import Config, ConfigError, with_values
from abm.config.cohort import (CategoricalDistribution, Distribution, LognormalDistribution, NormalDistribution,
                               TruncatedNormalDistribution, UniformDistribution)

#: The first word of every cohort generator's spawn key (ASCII "coho"): no other generator of the project uses it.
COHORT_STREAM = 0x636F686F
#: The endpoints of ``runs.parquet`` whose paired differences (arm minus reference arm, per patient and seed)
#: ``paired.parquet`` holds.
PAIRED_ENDPOINTS = ("time_to_progression_days", "best_change_from_baseline", "final_tumor_cells_live")


def _generator(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(COHORT_STREAM, zlib.crc32(key.encode("utf-8")))))


def _truncated_normal(rng: np.random.Generator, spec: TruncatedNormalDistribution, count: int) -> np.ndarray:
    """``count`` draws by the inverse distribution function, in the tail nearer the mean for precision (an interval
    above the mean is drawn as its mirror image below it)."""
    mirror = spec.lower > spec.mean
    lower, upper = (2 * spec.mean - spec.upper, 2 * spec.mean - spec.lower) if mirror else (spec.lower, spec.upper)
    normal = NormalDist(spec.mean, spec.sd)
    low, high = normal.cdf(lower), normal.cdf(upper)
    tiny = math.nextafter(0.0, 1.0)
    values = np.array([normal.inv_cdf(min(max(low + u * (high - low), tiny), 1.0 - 2**-53)) for u in rng.random(count)])
    values = np.clip(values, lower, upper)
    return 2 * spec.mean - values if mirror else values


def draw(spec: Distribution, count: int, rng: np.random.Generator) -> list[Any]:
    """``count`` values of one distribution: Python floats, or the ``values`` of a categorical one."""
    if isinstance(spec, NormalDistribution):
        values = spec.mean + spec.sd * rng.standard_normal(count)
    elif isinstance(spec, LognormalDistribution):
        values = spec.median * np.exp(spec.sigma * rng.standard_normal(count))
    elif isinstance(spec, TruncatedNormalDistribution):
        values = _truncated_normal(rng, spec, count)
    elif isinstance(spec, UniformDistribution):
        values = spec.lower + (spec.upper - spec.lower) * rng.random(count)
    elif isinstance(spec, CategoricalDistribution):
        weights = np.asarray(spec.weights if spec.weights is not None else [1.0] * len(spec.values), dtype=float)
        return [spec.values[index] for index in rng.choice(len(spec.values), size=count, p=weights / weights.sum())]
    else:
        raise TypeError(f"no sampler for distribution {spec.distribution!r}")
    return [float(value) for value in values]


def patients(config: Config) -> list[dict[str, Any]]:
    """Each patient's values: one mapping of dotted key -> value per patient, in patient order ([{}] without a cohort)."""
    cohort = config.cohort
    if cohort is None:
        return [{}]
    columns = {key: draw(spec, cohort.patients, _generator(config.seed, key)) for key, spec in cohort.parameters.items()}
    return [{key: values[patient] for key, values in columns.items()} for patient in range(cohort.patients)]


def patient_configs(config: Config, values: list[dict[str, Any]], origin: str = "cohort") -> list[Config]:
    """The config of each patient (``values`` from :func:`patients`), without the cohort section, validated in full.

    Raises:
        ConfigError: a patient whose values the config refuses, naming the patient, the key and the value.
    """
    base = config.model_copy(update={"cohort": None})
    configs = []
    for patient, assigned in enumerate(values):
        if not assigned:
            configs.append(base)
            continue
        drawn = ", ".join(f"{key}={_shown(value)}" for key, value in assigned.items())
        try:
            configs.append(with_values(base, assigned, f"{origin}: patient {patient} ({drawn})"))
        except ConfigError as exc:
            raise ConfigError(f"{exc}\n  (a draw the config refuses: narrow the distribution, e.g. truncated_normal "
                              f"or lognormal for a positive value)") from None
    return configs


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else json.dumps(value)


def seeds(first_seed: int, patients: int, replicates: int) -> list[tuple[int, int]]:
    """``(patient, seed)`` of every run of an arm, patient by patient: replicate ``r``'s seed is
    ``first_seed + r x patients + patient``."""
    return [(patient, first_seed + replicate * patients + patient)
            for patient in range(patients) for replicate in range(replicates)]


def patient_table(values: list[dict[str, Any]]):
    """``patients.parquet``: one row per patient, its number (``patient``) and one column per dotted key, the value
    drawn (numbers as float64; other categorical values as JSON text)."""
    import pandas

    table = pandas.DataFrame({"patient": np.arange(len(values), dtype=np.int64)})
    for key in values[0]:
        column = [row[key] for row in values]
        numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in column)
        table[key] = np.asarray(column, dtype=float) if numeric else [json.dumps(value) for value in column]
    return table


def paired_differences(runs, reference: str):
    """``paired.parquet``: for each run of an arm other than ``reference`` whose (patient, seed) the reference arm
    also completed, per endpoint of :data:`PAIRED_ENDPOINTS`: its value, the reference's, the difference (arm minus
    reference) and ``censored`` (either run ended without progression: a difference of times to progression is
    then a bound, not a value).

    Args:
        runs: ``runs.parquet``'s rows (columns of :data:`abm.rundir.COMPARE_COLUMNS` ``runs``).
    """
    import pandas

    base = runs[runs["arm"] == reference].set_index(["patient", "seed"])
    frames = []
    for arm in dict.fromkeys(runs["arm"]):
        if arm == reference:
            continue
        mine = runs[runs["arm"] == arm].set_index(["patient", "seed"])
        both = mine.index.intersection(base.index, sort=False)
        for endpoint in PAIRED_ENDPOINTS:
            value = mine.loc[both, endpoint].to_numpy(float)
            reference_value = base.loc[both, endpoint].to_numpy(float)
            censored = (mine.loc[both, "censored"].to_numpy(bool) | base.loc[both, "censored"].to_numpy(bool)
                        if endpoint == "time_to_progression_days" else np.zeros(len(both), dtype=bool))
            frames.append(pandas.DataFrame({
                "arm": arm, "reference_arm": reference, "patient": both.get_level_values(0).to_numpy(np.int64),
                "seed": both.get_level_values(1).to_numpy(np.int64), "endpoint": endpoint, "value": value,
                "reference_value": reference_value, "difference": value - reference_value, "censored": censored}))
    columns = ["arm", "reference_arm", "patient", "seed", "endpoint", "value", "reference_value", "difference", "censored"]
    return pandas.concat(frames, ignore_index=True) if frames else pandas.DataFrame(columns=columns)


def paired_summary(paired, arm: str) -> dict[str, Any]:
    """``compare.json``'s ``paired_vs_<reference>`` of ``arm``: per endpoint the pairs in which both runs have a
    value (an untreated run has no best change), the mean and median difference (None without pairs) and the pairs
    with the arm above, below and equal to the reference; for the time to progression also the pairs in which a run
    was censored."""
    summary = {}
    mine = paired[paired["arm"] == arm]
    for endpoint in PAIRED_ENDPOINTS:
        rows = mine[mine["endpoint"] == endpoint]
        difference = rows["difference"].to_numpy(float)
        difference = difference[np.isfinite(difference)]  # a run without the endpoint (e.g. untreated: no baseline)
        entry = {"pairs": int(len(difference)),
                 "mean_difference": float(difference.mean()) if len(difference) else None,
                 "median_difference": float(np.median(difference)) if len(difference) else None,
                 "higher": int((difference > 0).sum()), "lower": int((difference < 0).sum()),
                 "equal": int((difference == 0).sum())}
        if endpoint == "time_to_progression_days":
            entry["censored_pairs"] = int(rows["censored"].sum())
        summary[endpoint] = entry
    return summary
