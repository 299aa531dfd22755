"""Comparing treatment arms: every arm x replicate run, then survival and response statistics per arm.

``tme compare CONFIG --out DIR --replicates N`` runs each arm of the config's
``arms`` (or only those named, each selected by :func:`select_arm`) with
seeds ``seed, seed + 1, ...`` into ``DIR/runs/<arm>/seed_<n>/`` (ordinary
run directories; the names and columns of a comparison directory are
:mod:`abm.rundir`'s), on a pool of worker processes or the workers of a
Dask cluster (:mod:`abm.executors`). The arms of one seed (of one patient
and sweep point) are one job: their shared run up to the first start of any
arm's treatment is simulated once, and each arm continues from its
checkpoint (:mod:`abm.branching`; ``branch=False``, or ``--no-branch``,
runs each from step 0; the results are the same). A run directory whose ``summary.json``
says ``complete`` is kept, so a restarted comparison runs only what is
missing; an unfinished one continues from its checkpoint where it has one of
its config (written every ``time.checkpoint_every_h``, and when a run is
interrupted: :func:`abm.runner.resume`, the same bits as a run never
stopped), else is emptied (only of the files a run writes) and run again. A comparison directory holds the runs of one config: every run
records the hash of its
resolved config and seed (:func:`abm.runner.config_hash`), and a restart with
a config that gives another hash is refused before anything runs. The main
process holds the directory's lock; its workers end with it (SIGTERM when it
dies, however it dies), and Ctrl-C or SIGTERM to it stops the queue at once,
each running run keeping its records (status ``interrupted``). Then it writes

* ``runs.parquet``: one row per run: arm, patient, seed, time to progression and
  whether it is censored, best overall response, best change of the burden
  from baseline, final tumor cells, lines given;
* ``km.parquet``: the Kaplan-Meier estimate of progression-free time per
  arm (time, at risk, events, censored, survival and its 95 % band);
* ``burden.parquet``: per arm and record time, the median and quartiles of
  live tumor cells and of the equivalent diameter over replicates;
* ``compare.json``: per arm, the number of runs and progressions, median
  time to progression with a 95 % confidence interval, the restricted mean
  time to progression up to the longest follow-up every arm has, response
  counts and the objective response rate; the log-rank test and the hazard
  ratio (Cox, with its 95 % interval) of each arm against the reference arm
  (the first with runs); the log-rank test of all arms together; and the
  runs that failed (a numerical failure: their directories hold the error
  and the records up to it; the statistics leave them out).

The statistics are lifelines' (:mod:`abm.survival`); runs that end without
progression are censored at their end.

With a ``cohort`` in the config, every arm runs every virtual patient
(:mod:`abm.cohort`) ``replicates`` times, patient ``p``'s replicate ``r``
with seed ``seed + r x patients + p`` in every arm (a paired design); the
statistics of an arm are over all its runs (patients x replicates), and
``compare.json`` and ``paired.parquet`` add, per arm against the reference,
the differences of the endpoints on the same patient and seed
(``patients.parquet`` holds the draws). With sweeps (:mod:`abm.sweep`) each
point of the grid is such a comparison in a folder of its own, and the sweep
directory's ``sweep.parquet`` holds each point's endpoints per arm.
Every config (each point's, each patient's, each arm's) is validated in full
before anything is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from abm import branching, cohort, rundir, survival, sweep
from abm.config import RESPONSE_CATEGORIES, Config, ConfigError, select_arm
from abm.executors import open_executor, run_jobs
from abm.io import RunDirectoryError, RunFailed, create_output_directory, inside, lock_directory, write_json, write_parquet
from abm.rundir import COMPARE_COLUMNS, COMPARE_RESULT, RESPONDERS
from abm.runner import continue_or_clear, estimated_bytes
from kernels.backend import Backend, get_backend


def arm_configs(config: Config, arms: list[str] | None) -> dict[str, Config]:
    """The config of each arm to compare (:func:`select_arm`): ``arms``, or every arm of the config.

    Raises:
        ConfigError: the config has no arms, or names an arm it lacks.
    """
    if not config.arms:
        raise ConfigError("arms: the config has no arms to compare; add arms: {NAME: {lines: [...]}, ...}")
    return {name: select_arm(config, name, "--arms") for name in arms or list(config.arms)}


def run_path(out: Path, arm: str, seed: int) -> Path:
    """The run directory of ``arm`` and ``seed`` in the comparison ``out``, proven to lie inside it."""
    return inside(out, rundir.compare_run_path(out, arm, seed))


def _runs_to_do(out: Path, planned: list[tuple[Config, Path]]) -> list[tuple[Config, Path]]:
    """The runs of ``planned`` (config with its seed, directory under ``out``) not yet complete.

    Raises:
        RunDirectoryError: a run directory there was made by another config.
    """
    from abm.runner import config_hash

    todo = []
    for run_config, path in planned:
        config_file = path / rundir.CONFIG
        if config_file.is_file():
            made_by = (rundir.read_yaml(config_file).get("run") or {}).get("config_sha256")
            wanted = config_hash(run_config)
            if made_by != wanted:
                raise RunDirectoryError(
                    f"--out {out}: {path.relative_to(out)} was made by another config (config hash "
                    f"{str(made_by)[:12] if made_by else 'missing'}, this config gives {wanted[:12]}); a comparison "
                    f"directory holds the runs of one config: choose a new --out for the changed config")
        if rundir.summary_status(path) != "complete":
            todo.append((run_config, path))
    return todo


@dataclass
class Point:
    """One comparison of a design: its folder, its swept values (none without a sweep) and the config of each
    arm for each patient (patient -> arm -> config, each validated in full; seeds are set per run)."""

    out: Path
    values: dict[str, Any]
    arms: list[dict[str, Config]]

    def planned(self, subjects: list[tuple[int, int]]) -> list[tuple[Config, Path]]:
        """Every run of the point: each arm, then each (patient, seed) of ``subjects``."""
        return [(self.arms[patient][arm].model_copy(update={"seed": seed}), run_path(self.out, arm, seed))
                for arm in self.arms[0] for patient, seed in subjects]


def design(config: Config, out: Path, arms: list[str] | None, sweeps: dict[str, list[Any]],
           values: list[dict[str, Any]]) -> list[Point]:
    """The points of a comparison: one in ``out`` without sweeps, else one per point of the grid in its folder; at
    each, the patients of ``values`` (:func:`abm.cohort.patients`).

    Raises:
        ConfigError: an arm the config lacks, or a sweep point or a patient whose config is refused.
    """
    arm_configs(config, arms)  # names the arms the config lacks before any patient's config is made
    drawn = list(config.cohort.parameters) if config.cohort is not None else []
    for label, key in [*(("cohort.parameters.", key) for key in drawn), *(("--sweep ", key) for key in sweeps)]:
        if key.split(".")[0] == "treatment":
            raise ConfigError(f"{label}{key}: tme compare treats each run by its arm, not by treatment; "
                              f"draw or sweep a key of an arm instead (arms.NAME.{key.split('.', 1)[-1]})")
    points = sweep.grid(sweeps)
    found = []
    for index, (point, point_config) in enumerate(zip(points, sweep.point_configs(config, points))):
        folder = rundir.sweep_point_path(out, index) if sweeps else out
        origin = f"--sweep point {index} ({sweep.describe(point)}): cohort" if sweeps else "cohort"
        patients = [arm_configs(patient, arms) for patient in cohort.patient_configs(point_config, values, origin)]
        found.append(Point(inside(out, folder), point, patients))
    return found


def compare(config: Config, out: Path, replicates: int, arms: list[str] | None = None, workers: int | None = None,
            progress: bool = True, executor: str = "process", scheduler: str | None = None,
            sweeps: dict[str, list[Any]] | None = None, branch: bool = True) -> dict[str, Any]:
    """Run every arm x patient x replicate (x sweep point) not yet complete under ``out``, then write the comparison
    (module doc).

    Args:
        config: the validated config (with ``arms``; with a ``cohort``, its patients are run).
        out: the comparison directory (created; may hold an earlier, partial comparison of the same config).
        replicates: runs per arm and patient (seeds :func:`abm.cohort.seeds`).
        arms: the arms to run (default: all).
        workers: worker processes of the pool or of a local Dask cluster (default: :func:`default_workers`); not with
            ``scheduler``, whose workers run the runs.
        progress: show a progress bar of the runs (done, running, failed, ETA) on stderr.
        executor: ``process`` (a local process pool) or ``dask`` (:mod:`abm.executors`).
        scheduler: with ``dask``, the address of a running Dask scheduler (default: a local cluster).
        sweeps: swept key -> values (:func:`abm.sweep.parse_sweeps`); each point of their grid is a comparison.
        branch: run the arms of each seed from their shared state before any treatment starts
            (:mod:`abm.branching`; the same results); False: every run from step 0.

    Returns:
        The contents of ``compare.json``; with sweeps, those of ``sweep.json``.

    Raises:
        ConfigError, RunDirectoryError: before any run starts (bad arguments, a sweep point or patient the config
            refuses, a scheduler that does not answer, a run of another config, a directory another process writes,
            a file in a run directory that no run wrote).
        KeyboardInterrupt: Ctrl-C or SIGTERM; the queue is stopped and the workers ended.
    """
    if replicates < 1:
        raise ConfigError(f"--replicates: {replicates}; at least 1")
    patients = config.cohort.patients if config.cohort is not None else 1
    if config.seed + patients * replicates - 1 >= 2**63:
        each = f" for each of {patients} patients (cohort.patients)" if config.cohort is not None else ""
        raise ConfigError(f"--replicates: {replicates} runs{each} from seed {config.seed} pass the largest seed, 2**63 - 1; "
                          f"use fewer replicates or a smaller seed")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: {workers}; at least 1 (or leave it out for the default)")
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out}: exists and is not a directory")
    values = cohort.patients(config)
    points = design(config, out, arms, sweeps or {}, values)  # before --out exists: every config validated, every path inside it
    subjects = cohort.seeds(config.seed, patients, replicates)
    planned = [run for point in points for run in point.planned(subjects)]
    if workers is None and scheduler is None:  # before --out exists too: a GPU backend without a GPU is refused
        workers = default_workers([run_config for run_config, _ in planned], get_backend(config.backend))
    with open_executor(executor, scheduler, workers) as (execute, workers):  # a scheduler is reached before --out
        create_output_directory(out)
        lock = lock_directory(out)
        try:
            # Each unfinished run is resumed from its checkpoint or emptied now, so that a file no run wrote stops
            # the comparison before any run starts; one that completed meanwhile (a remote worker of a killed
            # comparison finishing it) is left out.
            runs = [(run_config, str(path)) for run_config, path in _runs_to_do(out, planned)
                    if continue_or_clear(run_config, path) != "complete"]
            if runs:
                run_jobs(branching.jobs(runs, branch), workers, execute, progress)
            if config.cohort is not None:
                write_parquet(rundir.table_path(out, rundir.PATIENTS), cohort.patient_table(values))
            results = [summarize(point.out, point.arms[0], subjects, replicates, config.seed) for point in points]
            if not sweeps:
                return results[0]
            return sweep.summarize(out, sweeps, [point.values for point in points], results, patients, replicates,
                                   config.seed)
        finally:
            lock.close()


#: Device memory a worker process takes on a GPU beside its arrays: its CUDA context and CuPy's compiled kernels and
#: pools (an assumption until measured on a device; a margin, not a measurement).
CUDA_PROCESS_BYTES = 512 * 2**20


def default_workers(configs: list[Config], backend: Backend) -> int:
    """Worker processes when ``--workers`` is not given: on the CPU, the CPUs up to 4; on a GPU, as many runs as its
    free memory holds at once (each run's estimate, :func:`abm.runner.estimated_bytes`, plus
    :data:`CUDA_PROCESS_BYTES`), at most one per CPU, so small lattices that cannot fill a GPU alone share it."""
    cpus = os.cpu_count() or 1
    if backend.name != "cupy":
        return max(1, min(4, cpus))
    per_run = max(estimated_bytes(config) for config in configs) + CUDA_PROCESS_BYTES
    return max(1, min(cpus, backend.free_memory_bytes() // per_run))


def summarize(out: Path, configs: dict[str, Config], subjects: list[tuple[int, int]], replicates: int,
              first_seed: int) -> dict[str, Any]:
    """Read the runs under ``out`` (each arm of ``configs`` on each (patient, seed) of ``subjects``) and write
    ``runs.parquet``, ``km.parquet``, ``burden.parquet``, ``paired.parquet`` (two or more arms) and ``compare.json``."""
    import pandas

    rows, burdens, curves, failed = [], [], [], []
    for arm, arm_config in configs.items():
        for patient, seed in subjects:
            path = run_path(out, arm, seed)
            if rundir.summary_status(path) != "complete":
                failed.append(str(path.relative_to(out)))
                continue
            run = rundir.open_run(path)
            summary, series = run.summary, run.timeseries
            treatment = summary["treatment"]
            rows.append({
                "arm": arm, "patient": patient, "seed": seed,
                "time_to_progression_days": treatment["time_to_progression_days"],
                "censored": treatment["progression_censored"],
                "best_overall_response": treatment["best_overall_response"],
                "best_change_from_baseline": treatment["best_change_from_baseline"],
                "final_tumor_cells_live": summary["final"]["tumor_cells_live"],
                "lines": len(treatment["lines"]),
            })
            burdens.append(series[["time_days", "tumor_cells_live", "equivalent_diameter_um"]].assign(arm=arm, seed=seed))
    runs = pandas.DataFrame(rows, columns=list(COMPARE_COLUMNS["runs"]))
    if runs.empty:
        raise RunFailed(f"{out}: no run completed; see the runs' summary.json for their errors")
    per_arm: dict[str, Any] = {}
    first_arm = next(arm for arm in configs if (runs["arm"] == arm).any())  # the reference: the first arm with runs
    times, events = runs["time_to_progression_days"].to_numpy(float), ~runs["censored"].to_numpy(bool)
    arms = runs["arm"].to_numpy(str)
    # The horizon of the restricted means: the longest follow-up every arm has (its last progression or censoring).
    horizon = min(float(times[arms == arm].max()) for arm in dict.fromkeys(arms.tolist()))
    ratios = survival.hazard_ratios(times, events, arms, first_arm)
    paired = cohort.paired_differences(runs, first_arm)
    for arm, arm_config in configs.items():
        mine = arms == arm
        if not mine.any():
            continue
        curves.append(survival.kaplan_meier(times[mine], events[mine]).assign(arm=arm))
        criteria = arm_config.treatment.assessment.criteria
        best = runs["best_overall_response"].to_numpy()[mine]
        counts = {category: int((best == category).sum()) for category in RESPONSE_CATEGORIES[criteria]}
        responders = sum(counts[category] for category in RESPONDERS[criteria])
        median, low, high = survival.median(times[mine], events[mine])
        per_arm[arm] = {
            "runs": int(mine.sum()), "progressions": int(events[mine].sum()), "criteria": criteria,
            "median_time_to_progression_days": median,
            "median_ci95_days": [low, high],
            "restricted_mean_time_to_progression_days": survival.restricted_mean(times[mine], events[mine], horizon),
            "best_response_counts": counts,
            "objective_response_rate": responders / int(mine.sum()),
            "final_tumor_cells_live_mean": float(runs["final_tumor_cells_live"].to_numpy(float)[mine].mean()),
            "best_change_from_baseline_median": _median_or_none(runs["best_change_from_baseline"].to_numpy(float)[mine]),
        }
        if arm != first_arm:
            reference = arms == first_arm
            chi2, p = survival.log_rank(times[reference], events[reference], times[mine], events[mine])
            per_arm[arm]["log_rank_vs_" + first_arm] = {"chi2": chi2, "p": p}
            per_arm[arm]["hazard_ratio_vs_" + first_arm] = ratios[arm]
            per_arm[arm]["paired_vs_" + first_arm] = cohort.paired_summary(paired, arm)
    all_burden = pandas.concat(burdens)
    grouped = all_burden.groupby(["arm", "time_days"], sort=False)
    burden = grouped.agg(
        cells_median=("tumor_cells_live", "median"), cells_q25=("tumor_cells_live", lambda v: v.quantile(0.25)),
        cells_q75=("tumor_cells_live", lambda v: v.quantile(0.75)), diameter_median_um=("equivalent_diameter_um", "median"),
        diameter_q25_um=("equivalent_diameter_um", lambda v: v.quantile(0.25)),
        diameter_q75_um=("equivalent_diameter_um", lambda v: v.quantile(0.75)), runs=("seed", "count")).reset_index()
    tables = {"runs": runs, "km": pandas.concat(curves, ignore_index=True), "burden": burden}
    for name, table in tables.items():
        write_parquet(rundir.table_path(out, name), table[list(COMPARE_COLUMNS[name])])
    if len(per_arm) > 1:
        write_parquet(rundir.table_path(out, rundir.PAIRED), paired[list(rundir.PAIRED_COLUMNS)])
    result = {"replicates": replicates, "patients": len(dict.fromkeys(patient for patient, _ in subjects)),
              "first_seed": first_seed, "reference_arm": first_arm,
              "restricted_mean_horizon_days": horizon, "log_rank_all_arms": survival.log_rank_all(times, events, arms),
              "arms": per_arm, "failed_runs": failed}
    write_json(out / COMPARE_RESULT, result)
    return result


def _median_or_none(values: np.ndarray) -> float | None:
    """The median of the finite values (a run without a baseline has none), or None."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None
