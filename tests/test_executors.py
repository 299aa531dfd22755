"""Executors of tme compare: a Dask local cluster gives the process pool's results, a scheduler that does not answer
is refused before anything is written, and a killed worker, a killed run or an interruption loses nothing else.

The subprocess tests drive the real ``tme compare`` (``python -m abm.cli``) and kill its processes the way a
scheduler or a user would.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas
import pytest
from distributed import LocalCluster

from abm import executors, rundir
from abm.cli import main
from abm.comparison import compare, run_path
from abm.config import ConfigError, load_config
from tests.test_reliability import SEQUENCING, SHORT_ARMS, TINY, error_lines, tme

ARMS = ["untreated", "chemo_only"]
#: Two runs long enough (12 days, a record a day) to be caught in the middle, each a job of its own (unbranched: the
#: arms of a branched seed are one job, in one process).
LONG_ARMS = ["--replicates", "1", "--quiet", "--arms", ",".join(ARMS), "--set", "time.duration_days=12", "--no-branch"]


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, by PID, with its command line (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        for child in frontier:
            try:
                found[child] = (Path(f"/proc/{child}") / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _run_processes(process: subprocess.Popen, out: Path, timeout_s: float = 90.0) -> dict[int, str]:
    """The run processes of the comparison ``process`` (``python -m abm.executors``), once both runs have a record."""
    journals = [rundir.journal_path(run_path(out, arm, 1), "timeseries") for arm in ARMS]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the comparison ended before it was caught: {process.communicate()}"
        runs = {pid: line for pid, line in _descendants(process.pid).items() if "abm.executors" in line}
        if len(runs) == 2 and all(journal.is_file() for journal in journals):
            return runs
        time.sleep(0.1)
    pytest.fail(f"no two runs with records after {timeout_s} s")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_dask_gives_the_tables_of_the_process_pool(tmp_path, monkeypatch):
    """A local cluster and a running scheduler give the process pool's compare.json, comparison tables and run
    tables; the local cluster's scratch space goes in a temporary directory that is removed, nothing lands in the
    working directory."""
    scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(executors.tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    config = load_config(SEQUENCING, ["time.duration_days=6", "backend=numpy"])
    pool = compare(config, tmp_path / "pool", 2, ARMS, workers=2, progress=False)
    assert not pool["failed_runs"]
    local = compare(config, tmp_path / "local", 2, ARMS, workers=2, progress=False, executor="dask")
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:  # a scheduler of its own
        remote = compare(config, tmp_path / "remote", 2, ARMS, progress=False, executor="dask",
                         scheduler=cluster.scheduler_address)
    assert local == pool and remote == pool
    for dask in (tmp_path / "local", tmp_path / "remote"):
        for name in ("runs", "km", "burden"):
            pandas.testing.assert_frame_equal(pandas.read_parquet(rundir.table_path(dask, name)),
                                              pandas.read_parquet(rundir.table_path(tmp_path / "pool", name)))
        for arm in ARMS:
            for seed in (1, 2):
                for table in ("timeseries", "clones", "immune", "events"):
                    pandas.testing.assert_frame_equal(rundir.read_table(run_path(dask, arm, seed), table),
                                                      rundir.read_table(run_path(tmp_path / "pool", arm, seed), table))
    assert list(cwd.iterdir()) == []
    assert [path.name for path in scratch.iterdir()] == ["dask-scratch-space"]  # the test's own cluster, not tme's


def test_an_unreachable_scheduler_is_one_error_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(executors, "SCHEDULER_CONNECT_S", 2.0)
    out = tmp_path / "cmp"
    code = main(["compare", str(SEQUENCING), "--out", str(out), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1",
                 "--replicates", "1", *SHORT_ARMS])
    assert code == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith("error: --scheduler tcp://127.0.0.1:1: no Dask scheduler answered within 2 s")
    assert not out.exists()


@pytest.mark.parametrize("arguments, key", [
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler tcp://127.0.0.1:1: only with --executor dask"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers 2: the scheduler's"),
])
def test_scheduler_arguments_that_do_not_fit_are_refused_before_anything_is_written(tmp_path, capsys, arguments, key):
    out = tmp_path / "cmp"
    assert main(["compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", *arguments, *SHORT_ARMS]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {key}")
    assert not out.exists()


def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path):
    config = load_config(SEQUENCING, ["time.duration_days=6", "backend=numpy"])
    with pytest.raises(ConfigError, match="--executor: 'threads'; one of process, dask"):
        compare(config, tmp_path / "cmp", 1, ARMS, workers=1, progress=False, executor="threads")
    assert not (tmp_path / "cmp").exists()


def test_a_killed_dask_worker_loses_nothing_and_the_comparison_finishes(tmp_path):
    """SIGKILL to the Dask worker of one run mid-run: its run process dies with it, the scheduler runs it again from
    the start, the other run goes on, and the comparison ends complete."""
    out = tmp_path / "cmp"
    process = tme("compare", str(SEQUENCING), "--out", str(out), "--executor", "dask", "--workers", "2", *LONG_ARMS)
    runs = _run_processes(process, out)
    victim = min(runs)
    os.kill(_parent(victim), signal.SIGKILL)  # the Dask worker process that started this run
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert not _alive(victim)
    result = json.loads((out / "compare.json").read_text())
    assert result["failed_runs"] == [] and {arm: stats["runs"] for arm, stats in result["arms"].items()} == {
        "untreated": 1, "chemo_only": 1}
    for arm in ARMS:
        path = run_path(out, arm, 1)
        assert rundir.summary_status(path) == "complete"
        assert len(rundir.read_table(path, "timeseries")) == 13  # days 0 to 12, none missing or repeated
    assert "run failed" not in stdout


def test_a_killed_dask_run_is_a_failure_that_stops_nothing_else(tmp_path):
    """SIGKILL to one run process: that run is reported failed with its records, the other completes, the
    comparison is written (status 1), and a restart completes the failed run."""
    out = tmp_path / "cmp"
    arguments = ["compare", str(SEQUENCING), "--out", str(out), "--executor", "dask", "--workers", "2", *LONG_ARMS]
    process = tme(*arguments)
    runs = _run_processes(process, out)
    os.kill(min(runs), signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    result = json.loads((out / "compare.json").read_text())
    [failed] = result["failed_runs"]
    assert "killed by signal 9" in stdout and f"1 run(s) failed: {failed}" in stderr
    killed = out / failed
    assert rundir.summary_status(killed) != "complete" and len(rundir.read_table(killed, "timeseries")) >= 1
    other = next(run_path(out, arm, 1) for arm in ARMS if run_path(out, arm, 1) != killed)
    assert rundir.summary_status(other) == "complete"
    restart = tme(*arguments)
    _, stderr = restart.communicate(timeout=300)
    assert restart.returncode == 0, stderr
    assert json.loads((out / "compare.json").read_text())["failed_runs"] == []


def test_a_dask_job_whose_workers_died_fails_only_its_runs_that_did_not_complete(tmp_path, monkeypatch):
    """KilledWorker for a job of two runs (the arms of one seed) of which the first completed before the worker
    died: the first is done, the second a failure, as the process pool reports a job it gave up on."""
    import distributed
    from types import SimpleNamespace

    config = load_config(TINY)
    done, killed = tmp_path / "done", tmp_path / "killed"
    done.mkdir()
    killed.mkdir()
    (done / rundir.SUMMARY).write_text(json.dumps({"status": "complete"}))
    death = distributed.KilledWorker("tme-job", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)

    class DeadFuture:
        def result(self):
            raise death

    class Client:
        def submit(self, function, *arguments, **options):
            return DeadFuture()

    monkeypatch.setattr(distributed, "as_completed", iter)  # the one future is done: it raised
    monkeypatch.setattr(distributed, "Event", lambda name, client=None: SimpleNamespace(name=name))
    [result] = list(executors._dask_jobs(Client(), 1, [[(config, str(done)), (config, str(killed))]], 1))
    assert result[0] == (str(done), None)
    path, failure = result[1]
    assert path == str(killed) and failure.startswith(f"{killed}: its Dask worker died each time it ran it (")
    assert failure.endswith("; the directory holds its records")



@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_a_dask_comparison_ends_every_worker_and_run_process(tmp_path, how):
    """SIGTERM or SIGKILL to tme compare on Dask: every worker and run process ends; after SIGTERM each running run
    has written its records (status interrupted) and the status is 130."""
    out = tmp_path / "cmp"
    process = tme("compare", str(SEQUENCING), "--out", str(out), "--executor", "dask", "--workers", "2", *LONG_ARMS)
    _run_processes(process, out)
    below = _descendants(process.pid)
    process.send_signal(how)
    process.wait(timeout=120)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in below if _alive(pid)], below
    if how == signal.SIGTERM:
        assert process.returncode == 130
        for arm in ARMS:
            assert rundir.read_json(run_path(out, arm, 1) / rundir.SUMMARY)["status"] == "interrupted"


def _pool_workers(pid: int) -> list[int]:
    """The pool processes below ``pid`` (spawned by multiprocessing; not its resource tracker), in PID order."""
    return sorted(child for child, line in _descendants(pid).items() if "spawn_main" in line)


def test_a_killed_pool_worker_is_replaced_its_run_done_again_and_the_other_run_goes_on(tmp_path):
    """SIGKILL to the pool process of one run mid-run: the other process goes on with its run to the end, a new
    process does the killed run again, and the comparison ends complete (status 0) with no run missing a record."""
    out = tmp_path / "cmp"
    process = tme("compare", str(SEQUENCING), "--out", str(out), "--workers", "2", *LONG_ARMS)
    journals = {arm: rundir.journal_path(run_path(out, arm, 1), "timeseries") for arm in ARMS}
    deadline = time.monotonic() + 90
    while not all(journal.is_file() for journal in journals.values()):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)
    workers = _pool_workers(process.pid)
    assert len(workers) == 2
    victim, other = workers
    [survivor] = [run_path(out, arm, 1) for arm in ARMS if _holds_lock(other, run_path(out, arm, 1))]
    os.kill(victim, signal.SIGKILL)
    while rundir.summary_status(survivor) is None:
        assert process.poll() is None and _alive(other), "the other pool process did not finish its run"
        time.sleep(0.1)
    assert rundir.summary_status(survivor) == "complete"  # not interrupted: the same process ran it to its end
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "run failed" not in stdout
    assert json.loads((out / "compare.json").read_text())["failed_runs"] == []
    for arm in ARMS:
        path = run_path(out, arm, 1)
        assert rundir.summary_status(path) == "complete"
        assert len(rundir.read_table(path, "timeseries")) == 13  # days 0 to 12, none missing or repeated


def _holds_lock(pid: int, run_dir: Path) -> bool:
    """Whether the process ``pid`` has the run directory's lock file open (it is running that run)."""
    lock = str((run_dir / rundir.LOCK).resolve())
    try:
        return any(os.readlink(link) == lock for link in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def test_a_job_whose_pool_process_dies_each_time_fails_after_the_deaths_dask_allows(tmp_path):
    """A job whose process is killed each time it starts (a run that runs out of memory, say) is given again after
    each of the first ALLOWED_DEATHS deaths, as many as Dask allows a task, and is a failed run after the next."""
    import dask

    assert executors.ALLOWED_DEATHS == dask.config.get("distributed.scheduler.allowed-failures") == 3
    config = load_config(TINY, ["time.duration_days=120", "backend=numpy"])
    out = tmp_path / "run"
    killed: list[int] = []
    stop = threading.Event()

    def kill_each_pool_process() -> None:
        while not stop.is_set():
            for pid in _pool_workers(os.getpid()):
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_each_pool_process)
    killer.start()
    try:
        [result] = list(executors.process_pool([[(config, str(out))]], 2))
    finally:
        stop.set()
        killer.join()
    [(path, failure)] = result
    assert path == str(out)
    assert "died each of the 4 times it ran it (last: killed by signal 9)" in failure
    assert len(killed) == 4
