"""Comparing treatment arms: every arm x replicate run, then survival and response statistics per arm.

``tme compare CONFIG --out DIR --replicates N`` runs each arm of the config's
``arms`` (or only those named, each selected by :func:`select_arm`) with
seeds ``seed, seed + 1, ...`` into ``DIR/runs/<arm>/seed_<n>/`` (ordinary
run directories; the names and columns of a comparison directory are
:mod:`abm.rundir`'s), on a pool of
worker processes. The arms of one seed are one job: their shared run up to
the first start of any arm's treatment is simulated once, and each arm
continues from its checkpoint (:mod:`abm.branching`; ``branch=False``, or
``--no-branch``, runs each from step 0; the results are the same). A run directory whose ``summary.json`` says ``complete``
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
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from tqdm import tqdm

from abm import branching, rundir, survival
from abm.config import RESPONSE_CATEGORIES, Config, ConfigError, select_arm
from abm.io import RunDirectoryError, RunFailed, create_output_directory, inside, lock_directory, write_json, write_parquet
from abm.rundir import COMPARE_COLUMNS, COMPARE_RESULT, RESPONDERS
from abm.runner import estimated_bytes
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


def _run_one(job: list[tuple[Config, str]]) -> list[tuple[str, str | None]]:
    """The runs of one job (one run, or the branched arms of one seed: :func:`abm.branching.run_arms`), each into
    its directory: ``(directory, None)``, or the message of a failed run.

    In a pool worker, an interruption (the main process stopping the queue)
    ends the worker process at once, once the run has written its records,
    so it takes no further job; in the main process it propagates.
    """
    from abm.branching import run_arms

    try:
        return run_arms(job)
    except KeyboardInterrupt:
        if multiprocessing.parent_process() is None:
            raise
        os._exit(130)


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
            progress: bool = True, branch: bool = True) -> dict[str, Any]:
    """Run every arm x replicate not yet complete under ``out``, then write the comparison (module doc).

    Args:
        config: the validated config (with ``arms``).
        out: the comparison directory (created; may hold an earlier, partial comparison of the same config).
        replicates: runs per arm (seeds ``config.seed`` onward).
        arms: the arms to run (default: all).
        workers: worker processes (default: :func:`default_workers`).
        progress: show a progress bar of the runs (done, running, failed, ETA) on stderr.
        branch: run the arms of each seed from their shared state before any treatment starts
            (:mod:`abm.branching`; the same results); False: every run from step 0.

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
    if workers is None:  # before --out exists too: a GPU backend without a GPU is refused with nothing written
        workers = default_workers(list(configs.values()), get_backend(config.backend))
    create_output_directory(out)
    lock = lock_directory(out)
    try:
        todo = _runs_to_do(out, configs, seeds)
        for _, path in todo:
            rundir.clear_run_directory(path)
        runs = [(run_config, str(path)) for run_config, path in todo]
        if runs:
            _run_jobs(branching.jobs(runs, branch), workers, progress)
        return summarize(out, configs, replicates, config.seed)
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


def _run_jobs(jobs: list[list[tuple[Config, str]]], workers: int, progress: bool) -> None:
    """Run ``jobs`` (each a list of runs; in this process with one worker): a progress bar of runs done, running and
    failed with an ETA (if ``progress``; on stderr), and a line per failed run (always; on stdout)."""
    total = sum(len(job) for job in jobs)
    with tqdm(total=total, unit="run", desc="runs", disable=not progress, leave=True) as bar:
        failed = 0

        def finished(results: list[tuple[str, str | None]]) -> None:
            nonlocal failed
            for _, failure in results:
                if failure is not None:
                    failed += 1
                    tqdm.write(f"run failed: {failure}", file=sys.stdout)
            bar.update(len(results))
            bar.set_postfix(running=min(workers, total - bar.n), failed=failed)

        bar.set_postfix(running=min(workers, total), failed=0)
        if workers == 1:
            for job in jobs:
                finished(_run_one(job))
            return
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_start, initargs=(os.getpid(),))
        try:
            pending = {pool.submit(_run_one, job) for job in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
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
    first_arm = next(arm for arm in configs if (runs["arm"] == arm).any())  # the reference: the first arm with runs
    times, events = runs["time_to_progression_days"].to_numpy(float), ~runs["censored"].to_numpy(bool)
    arms = runs["arm"].to_numpy(str)
    # The horizon of the restricted means: the longest follow-up every arm has (its last progression or censoring).
    horizon = min(float(times[arms == arm].max()) for arm in dict.fromkeys(arms.tolist()))
    ratios = survival.hazard_ratios(times, events, arms, first_arm)
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
        }
        if arm != first_arm:
            reference = arms == first_arm
            chi2, p = survival.log_rank(times[reference], events[reference], times[mine], events[mine])
            per_arm[arm]["log_rank_vs_" + first_arm] = {"chi2": chi2, "p": p}
            per_arm[arm]["hazard_ratio_vs_" + first_arm] = ratios[arm]
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
    result = {"replicates": replicates, "first_seed": first_seed, "reference_arm": first_arm,
              "restricted_mean_horizon_days": horizon, "log_rank_all_arms": survival.log_rank_all(times, events, arms),
              "arms": per_arm, "failed_runs": failed}
    write_json(out / COMPARE_RESULT, result)
    return result
