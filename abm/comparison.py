"""Comparing treatment arms: every arm x replicate run, then survival and response statistics per arm.

``tme compare CONFIG --out DIR --replicates N`` runs each arm of the config's
``arms`` (or only those named, each selected by :func:`select_arm`) with
seeds ``seed, seed + 1, ...`` into ``DIR/runs/<arm>/seed_<n>/`` (ordinary
run directories; the names and columns of a comparison directory are
:mod:`abm.rundir`'s), on a pool of
worker processes. A run directory whose ``summary.json`` says ``complete``
is kept, so a restarted comparison runs only what is missing; an unfinished
one is emptied (only of the files a run writes) and run again. A comparison
directory holds the runs of one config: every run records the hash of its
resolved config and seed (:func:`abm.runner.config_hash`), and a restart with
a config that gives another hash is refused before anything runs. The main
process holds the directory's lock; its workers end with it (SIGTERM when it
dies, however it dies), and Ctrl-C or SIGTERM to it stops the queue at once,
each running run keeping its records (status ``interrupted``). Then it writes

* ``runs.parquet``: one row per run: arm, seed, time to progression and
  whether it is censored, best overall response, best change of the burden
  from baseline, final tumor cells, lines given;
* ``km.parquet``: the Kaplan-Meier estimate of progression-free time per
  arm (time, at risk, events, censored, survival);
* ``burden.parquet``: per arm and record time, the median and quartiles of
  live tumor cells and of the equivalent diameter over replicates;
* ``compare.json``: per arm, the number of runs and progressions, median
  time to progression with a 95 % confidence interval, response counts and
  the objective response rate; the log-rank test of each arm against the
  first; and the runs that failed (a numerical failure: their directories
  hold the error and the records up to it; the statistics leave them out).

Statistics: S(t) = prod(1 - d_i / n_i) over event times, censoring runs
that end without progression [KM]; the median's confidence interval is
Brookmeyer-Crowley's, where the log(-log S) band from Greenwood's variance
crosses 0.5; the log-rank
statistic is chi-square with one degree of freedom.
"""
from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from abm import rundir
from abm.config import RESPONSE_CATEGORIES, Config, ConfigError, select_arm
from abm.io import RunDirectoryError, RunFailed, create_output_directory, inside, lock_directory, write_json, write_parquet
from abm.rundir import COMPARE_COLUMNS, COMPARE_RESULT, RESPONDERS


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


def _worker_start(parent: int) -> None:
    """Pool worker set-up: end with the main process, and at once on SIGINT or SIGTERM while no run goes.

    A run handles both signals itself (it writes its records, then
    :func:`_run_one` ends the worker). Between runs the worker exits on the
    spot: unwinding through the pool's queues could wait forever on a pipe
    that the dead main process no longer reads. On Linux the kernel sends
    SIGTERM to the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
    even by SIGKILL, so no orphan goes on through the queue.
    """
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda signum, frame: os._exit(128 + signum))
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _run_one(job: tuple[Config, str]) -> tuple[str, str | None]:
    """One run into its directory: ``(directory, None)``, or the message of a failed run.

    In a pool worker, an interruption (the main process stopping the queue)
    ends the worker process at once, once the run has written its records,
    so it takes no further job; in the main process it propagates.
    """
    from abm.runner import run

    config, out = job
    try:
        run(config, Path(out), progress=False)
    except RunFailed as exc:
        return out, str(exc)
    except KeyboardInterrupt:
        if multiprocessing.parent_process() is None:
            raise
        os._exit(130)
    return out, None


def _runs_to_do(out: Path, configs: dict[str, Config], seeds: list[int]) -> list[tuple[Config, Path]]:
    """The config and directory of each run under ``out`` not yet complete.

    Raises:
        RunDirectoryError: a run directory there was made by another config.
    """
    from abm.runner import config_hash

    todo = []
    for arm, arm_config in configs.items():
        for seed in seeds:
            path = run_path(out, arm, seed)
            run_config = arm_config.model_copy(update={"seed": seed})
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


def compare(config: Config, out: Path, replicates: int, arms: list[str] | None = None, workers: int | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Run every arm x replicate not yet complete under ``out``, then write the comparison (module doc).

    Args:
        config: the validated config (with ``arms``).
        out: the comparison directory (created; may hold an earlier, partial comparison of the same config).
        replicates: runs per arm (seeds ``config.seed`` onward).
        arms: the arms to run (default: all).
        workers: worker processes (default: the CPUs, at most 4; 1 on a GPU).
        progress: print one line per finished run.

    Returns:
        The contents of ``compare.json``.

    Raises:
        ConfigError, RunDirectoryError: before any run starts (bad arguments, a run of another config, a
            directory another process writes, a file in a run directory that no run wrote).
        KeyboardInterrupt: Ctrl-C or SIGTERM; the queue is stopped and the workers ended.
    """
    if replicates < 1:
        raise ConfigError(f"--replicates: {replicates}; at least 1")
    if config.seed + replicates - 1 >= 2**63:
        raise ConfigError(f"--replicates: {replicates} runs from seed {config.seed} pass the largest seed, 2**63 - 1; "
                          f"use fewer replicates or a smaller seed")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: {workers}; at least 1 (or leave it out for the default)")
    configs = arm_configs(config, arms)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out}: exists and is not a directory")
    seeds = [config.seed + replicate for replicate in range(replicates)]
    for arm in configs:  # before --out exists: a path outside it must not leave an empty --out behind
        run_path(out, arm, seeds[0])
    create_output_directory(out)
    lock = lock_directory(out)
    try:
        todo = _runs_to_do(out, configs, seeds)
        for _, path in todo:
            rundir.clear_run_directory(path)
        jobs = [(run_config, str(path)) for run_config, path in todo]
        if workers is None:
            workers = 1 if config.backend == "cupy" else max(1, min(4, os.cpu_count() or 1))
        if jobs:
            _run_jobs(jobs, workers, progress)
        return summarize(out, configs, replicates, config.seed)
    finally:
        lock.close()


def _run_jobs(jobs: list[tuple[Config, str]], workers: int, progress: bool) -> None:
    """Run ``jobs`` (in this process with one worker), printing a line per finished run (if ``progress``) and each failure."""
    if workers == 1:
        for job in jobs:
            _report(*_run_one(job), progress)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_start, initargs=(os.getpid(),))
    try:
        pending = {pool.submit(_run_one, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                _report(*future.result(), progress)
    except BrokenProcessPool:
        _stop_workers(pool)
        raise RunFailed("a worker process died (killed from outside?); the runs it and the others had not finished "
                        "are incomplete: run the same tme compare again to complete them") from None
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the running workers (SIGTERM: each writes its run's records), waiting for them."""
    pool.shutdown(wait=False, cancel_futures=True)
    workers = multiprocessing.active_children()
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=60)
        if worker.is_alive():
            worker.kill()


def _report(done: str, failure: str | None, progress: bool) -> None:
    """Print a line for a finished run (if ``progress``) or a failed one."""
    if failure is not None:
        print(f"run failed: {failure}", flush=True)
    elif progress:
        print(f"run complete: {done}", flush=True)


def summarize(out: Path, configs: dict[str, Config], replicates: int, first_seed: int) -> dict[str, Any]:
    """Read the runs under ``out`` and write ``runs.parquet``, ``km.parquet``, ``burden.parquet`` and ``compare.json``."""
    import pandas

    rows, burdens, curves, failed = [], [], [], []
    for arm, arm_config in configs.items():
        for seed in range(first_seed, first_seed + replicates):
            path = run_path(out, arm, seed)
            if rundir.summary_status(path) != "complete":
                failed.append(str(path.relative_to(out)))
                continue
            run = rundir.open_run(path)
            summary, series = run.summary, run.timeseries
            treatment = summary["treatment"]
            rows.append({
                "arm": arm, "seed": seed,
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
    first_arm = next(iter(configs))
    for arm, arm_config in configs.items():
        mine = runs[runs["arm"] == arm]
        if mine.empty:
            continue
        times, events = mine["time_to_progression_days"].to_numpy(float), ~mine["censored"].to_numpy(bool)
        curve = kaplan_meier(times, events)
        curves.append(pandas.DataFrame(curve).assign(arm=arm))
        criteria = arm_config.treatment.assessment.criteria
        counts = {category: int((mine["best_overall_response"] == category).sum()) for category in RESPONSE_CATEGORIES[criteria]}
        responders = sum(counts[category] for category in RESPONDERS[criteria])
        low, high = median_confidence_interval(curve)
        per_arm[arm] = {
            "runs": len(mine), "progressions": int(events.sum()), "criteria": criteria,
            "median_time_to_progression_days": median_survival(curve),
            "median_ci95_days": [low, high],
            "best_response_counts": counts,
            "objective_response_rate": responders / len(mine),
        }
        if arm != first_arm:
            reference = runs[runs["arm"] == first_arm]
            if reference.empty:
                continue
            chi2, p = log_rank(reference["time_to_progression_days"].to_numpy(float), ~reference["censored"].to_numpy(bool),
                               times, events)
            per_arm[arm]["log_rank_vs_" + first_arm] = {"chi2": chi2, "p": p}
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
    result = {"replicates": replicates, "first_seed": first_seed, "arms": per_arm, "failed_runs": failed}
    write_json(out / COMPARE_RESULT, result)
    return result


def kaplan_meier(times: np.ndarray, events: np.ndarray) -> dict[str, list[float]]:
    """Kaplan-Meier estimate: at each distinct time with an event or censoring, from 0.

    Args:
        times: time of progression or of censoring per run.
        events: True where the run progressed, False where it is censored.

    Returns:
        Columns ``time``, ``at_risk``, ``events``, ``censored``, ``survival``
        and ``greenwood`` (the running sum of d / (n (n - d))), first row at time 0.
    """
    table = {"time": [0.0], "at_risk": [float(len(times))], "events": [0.0], "censored": [0.0], "survival": [1.0], "greenwood": [0.0]}
    survival, greenwood, at_risk = 1.0, 0.0, len(times)
    for time in np.unique(times):
        deaths = int(events[times == time].sum())
        censored = int((~events[times == time]).sum())
        if deaths:
            survival *= 1.0 - deaths / at_risk
            greenwood += deaths / (at_risk * (at_risk - deaths)) if at_risk > deaths else math.inf
        for key, value in (("time", float(time)), ("at_risk", float(at_risk)), ("events", float(deaths)),
                           ("censored", float(censored)), ("survival", survival), ("greenwood", greenwood)):
            table[key].append(value)
        at_risk -= deaths + censored
    return table


def median_survival(curve: dict[str, list[float]]) -> float | None:
    """First time at which the survival falls to 0.5 or below; None if it never does."""
    for time, survival in zip(curve["time"], curve["survival"]):
        if survival <= 0.5:
            return time
    return None


def median_confidence_interval(curve: dict[str, list[float]], z: float = 1.959964) -> tuple[float | None, float | None]:
    """95 % interval of the median: where the pointwise log(-log S) band of the survival crosses 0.5.

    The band at each step is ``exp(-exp(log(-log S) +/- z se))`` with
    ``se = sqrt(greenwood) / |log S|`` (1 where S is 1, 0 where S is 0). The
    lower end is the first time the lower band reaches 0.5, the upper end the
    first time the upper band does (None, open, when it never does): the
    Brookmeyer-Crowley interval as R's survfit reports it.
    """
    target = math.log(-math.log(0.5))
    low = high = None
    for time, survival, greenwood in zip(curve["time"], curve["survival"], curve["greenwood"]):
        if survival >= 1.0:
            continue
        if survival <= 0.0 or not math.isfinite(greenwood):
            lower_reached = upper_reached = True
        else:
            spread = z * math.sqrt(greenwood) / abs(math.log(survival))
            centre = math.log(-math.log(survival))
            lower_reached, upper_reached = centre + spread >= target, centre - spread >= target
        if low is None and lower_reached:
            low = time
        if upper_reached:
            high = time
            break
    return low, high


def log_rank(times_a: np.ndarray, events_a: np.ndarray, times_b: np.ndarray, events_b: np.ndarray) -> tuple[float, float]:
    """Log-rank test of two groups: ``(chi-square, p)`` with one degree of freedom.

    NaN when neither group has an event; ``(0, 1)`` when the events carry no
    variance (every event at a time when one group is empty or everyone at
    risk has it): observed then equals expected, so there is no evidence of a
    difference.
    """
    observed_minus_expected = variance = 0.0
    for time in np.unique(np.concatenate([times_a[events_a], times_b[events_b]])):
        at_risk_a, at_risk_b = float((times_a >= time).sum()), float((times_b >= time).sum())
        deaths_a = float(((times_a == time) & events_a).sum())
        deaths = deaths_a + float(((times_b == time) & events_b).sum())
        at_risk = at_risk_a + at_risk_b
        if at_risk <= 1:
            continue
        observed_minus_expected += deaths_a - deaths * at_risk_a / at_risk
        variance += deaths * (at_risk_a / at_risk) * (at_risk_b / at_risk) * (at_risk - deaths) / (at_risk - 1)
    if variance == 0:
        return (0.0, 1.0) if events_a.any() or events_b.any() else (math.nan, math.nan)
    chi2 = observed_minus_expected**2 / variance
    return chi2, math.erfc(math.sqrt(chi2 / 2.0))
