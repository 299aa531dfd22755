"""Runs that are killed, interrupted, refused a write, or raced by a second writer keep their records and stay usable;
nothing is written outside ``--out`` and nothing a user made is deleted.

The subprocess tests drive the real ``tme`` command (``python -m abm.cli``) the
way a scheduler or a user would: SIGKILL, SIGTERM, a file-size limit, a
read-only folder, two commands at once.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas
import pytest

from abm import rundir
from abm.cli import main
from abm.comparison import compare, run_path
from abm.config import load_config
from abm.interrupts import deferred_interrupts
from abm.io import RunDirectoryError, RunFailed
from abm.runner import run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
#: A tiny run long enough (hundreds of cell steps) to be caught in the middle.
LONG = ("--set", "time.duration_days=120", "--set", "time.snapshot_every_h=48")
#: Two cheap arms of the sequencing preset, shortened.
SEQUENCING = REPO / "configs" / "sequencing.yaml"
SHORT_ARMS = ["--set", "time.duration_days=6", "--arms", "untreated,chemo_only"]  # chemo_only starts on day 5


def tme(*arguments: str, environment: dict[str, str] | None = None, **options) -> subprocess.Popen:
    """Start ``tme ARGUMENTS`` as a subprocess (stdout and stderr piped, text), with ``environment`` added."""
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(environment or {})}
    return subprocess.Popen([sys.executable, "-m", "abm.cli", *arguments], cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)


def wait_for_records(run_dir: Path, rows: int, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Wait until the run's timeseries journal holds ``rows`` records (fails if the process ends first)."""
    journal = rundir.journal_path(run_dir, "timeseries")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before it was caught: {process.communicate()}"
        if journal.is_file() and journal.read_text(encoding="utf-8").count("\n") >= rows + 1:
            return
        time.sleep(0.05)
    pytest.fail(f"{journal}: fewer than {rows} records after {timeout_s} s")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_records_regular(frame: pandas.DataFrame, record_every_h: float) -> None:
    """The time series starts at 0 and has one row per record interval, none missing or repeated."""
    times = frame["time_h"].to_numpy()
    assert times[0] == 0.0
    assert (abs(times[1:] - times[:-1] - record_every_h) < 1e-9).all()


# --------------------------------------------------------------------------- killed runs


def test_sigkill_mid_run_keeps_the_records_up_to_the_last_interval(tmp_path):
    out = tmp_path / "run"
    process = tme("run", str(TINY), "--out", str(out), "--quiet", *LONG)
    wait_for_records(out, 6, process)
    process.kill()
    process.wait()
    series = rundir.read_table(out, "timeseries")
    assert len(series) >= 6
    assert_records_regular(series, 6.0)
    clones = rundir.read_table(out, "clones")
    assert set(clones["time_h"]) <= set(series["time_h"])
    assert not (out / rundir.SUMMARY).exists()
    # The directory is refused as a new --out (it holds a run), and a second process can lock it now.
    again = tme("run", str(TINY), "--out", str(out), "--quiet")
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 2 and "not empty" in stderr


def test_sigterm_is_an_interruption_that_writes_tables_and_summary(tmp_path):
    out = tmp_path / "run"
    process = tme("run", str(TINY), "--out", str(out), "--quiet", *LONG)
    wait_for_records(out, 4, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads((out / rundir.SUMMARY).read_text())
    assert summary["status"] == "interrupted"
    series = pandas.read_parquet(rundir.table_path(out, "timeseries"))
    assert len(series) >= 4
    assert_records_regular(series, 6.0)
    assert not (out / rundir.RECORDS).exists()  # the tables replaced the journals


def test_a_file_size_limit_ends_the_run_cleanly_with_its_records(tmp_path):
    """The limit also stops Numba from caching the compiled field-solve loops (an empty cache directory, so the
    run compiles and tries to save them): that costs nothing but the cache."""
    out = tmp_path / "run"

    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))  # bytes: snapshots exceed it, journals do not at first

    process = tme("run", str(TINY), "--out", str(out), "--quiet", "--set", "time.duration_days=4",
                  "--set", "time.snapshot_every_h=6", preexec_fn=limit_files,
                  environment={"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    [line] = error_lines(stderr)
    assert "file size limit" in line and "Traceback" not in stderr
    summary = json.loads((out / rundir.SUMMARY).read_text())
    assert summary["status"] == "failed" and "file size limit" in summary["error"]
    assert len(rundir.read_table(out, "timeseries")) >= 1
    assert not [path for path in out.rglob("*.part")]


def test_a_failed_snapshot_write_fails_the_run_with_its_records(tmp_path, monkeypatch):
    from abm import io, runner as run_module

    config = load_config(TINY, ["time.snapshot_every_h=6", "backend=numpy"])
    real = io.write_snapshot
    calls = []

    def fill_disk_on_third(path, arrays):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, arrays)

    monkeypatch.setattr(run_module, "write_snapshot", fill_disk_on_third)
    with pytest.raises(RunFailed, match="the disk is full"):
        run(config, tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / rundir.SUMMARY).read_text())
    assert summary["status"] == "failed" and "disk is full" in summary["error"]
    series = rundir.read_table(tmp_path / "run", "timeseries")
    assert series["time_h"].tolist() == [0.0, 6.0, 12.0]  # the third snapshot (12 h) met the full disk after its record


def in_private_mount(options: str, script: str) -> subprocess.CompletedProcess:
    """Run the shell ``script`` with a fresh tmpfs (mount ``options``) at ``$MNT``, in a private mount namespace.

    ``unshare --user --map-root-user --mount`` needs no privileges where user
    namespaces are allowed, and the mount vanishes with the script: nothing is
    left on the machine. Skips where the namespace or the mount is refused.
    """
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode(errors='replace').strip()}")
    wrapper = f'MNT=$(mktemp -d) && mount -t tmpfs -o {options} tmpfs "$MNT" && cd "{REPO}" && {script}'
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHON": sys.executable}
    return subprocess.run(["unshare", "-rm", "sh", "-c", wrapper], capture_output=True, text=True, env=environment,
                          timeout=300)


#: Printed after a run in a private mount: its status, error and how many records it kept.
REPORT_RUN = ('"$PYTHON" -c "import sys, json; from abm import rundir; d = sys.argv[1]; '
              'print(json.dumps({\'status\': rundir.summary_status(d), '
              '\'records\': len(rundir.read_table(d, \'timeseries\')), '
              '\'parts\': len(list(__import__(\'pathlib\').Path(d).rglob(\'*.part\')))}))" "$MNT/run"')


def test_a_full_disk_ends_the_run_cleanly_with_its_records():
    result = in_private_mount(
        "size=160k", f'"$PYTHON" -m abm.cli run configs/tiny.yaml --out "$MNT/run" --quiet '
        f'--set time.duration_days=8 --set time.snapshot_every_h=6; echo "exit=$?"; {REPORT_RUN}')
    assert "exit=1" in result.stdout, result
    [line] = error_lines(result.stderr)
    assert "disk is full" in line and "Traceback" not in result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    # The summary is written if the disk has room for it after the failed write (here it has none: the error says so).
    assert report["status"] in ("failed", None)
    assert report["status"] == "failed" or "cannot write" in line and "summary.json" in line
    assert report["records"] >= 2 and report["parts"] == 0


def test_a_read_only_folder_is_a_clean_error():
    result = in_private_mount("ro", '"$PYTHON" -m abm.cli run configs/tiny.yaml --out "$MNT/run" --quiet; '
                                    'echo "exit=$?"; ls -A "$MNT" | wc -l')
    assert "exit=2" in result.stdout, result
    [line] = error_lines(result.stderr)
    assert "cannot create the directory" in line and "read-only" in line.lower()
    assert result.stdout.splitlines()[-1] == "0"


# --------------------------------------------------------------------------- two writers


def test_two_runs_into_one_directory_never_mix_their_files(tmp_path):
    out = tmp_path / "run"
    first = tme("run", str(TINY), "--out", str(out), "--quiet", "--seed", "1", "--set", "time.duration_days=6")
    second = tme("run", str(TINY), "--out", str(out), "--quiet", "--seed", "2", "--set", "time.duration_days=6")
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    results = [(process.returncode, stderr) for process, (_, stderr) in zip((first, second), outputs)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(stderr for code, stderr in results if code == 2)
    assert len(error_lines(loser)) == 1 and ("another tme process" in loser or "not empty" in loser)
    summary = json.loads((out / rundir.SUMMARY).read_text())
    config_seed = rundir.read_yaml(out / rundir.CONFIG)["seed"]
    assert summary["seed"] == config_seed


def test_a_locked_directory_is_refused(tmp_path):
    from abm.io import lock_directory

    out = tmp_path / "run"
    out.mkdir()
    lock = lock_directory(out)
    try:
        assert main(["run", str(TINY), "--out", str(out), "--quiet"]) == 2
    finally:
        lock.close()
    assert [entry.name for entry in out.iterdir()] == [rundir.LOCK]


# --------------------------------------------------------------------------- comparisons


def test_compare_refuses_runs_of_another_config(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet",
                 *SHORT_ARMS]) == 0
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    capsys.readouterr()
    code = main(["compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet",
                 *SHORT_ARMS, "--set", "drugs.chemo.emax_per_h=0.5"])
    assert code == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "made by another config" in line and "runs/untreated/seed_1" in line
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before


def test_compare_never_deletes_a_file_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "cmp"
    unfinished = out / "runs" / "untreated" / "seed_1"
    (unfinished / "notes").mkdir(parents=True)
    (unfinished / "notes" / "mine.txt").write_text("keep me")
    rundir.Journal(unfinished).append("timeseries", ["time_h"], [[0.0]])
    code = main(["compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet",
                 *SHORT_ARMS])
    assert code == 2
    assert "no run writes it" in capsys.readouterr().err
    assert (unfinished / "notes" / "mine.txt").read_text() == "keep me"


def test_compare_writes_nothing_outside_out_through_a_link(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "runs").symlink_to(outside, target_is_directory=True)
    code = main(["compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet",
                 *SHORT_ARMS])
    assert code == 2
    assert "outside the output directory" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_run_paths_are_proven_inside_out(tmp_path):
    with pytest.raises(RunDirectoryError, match="outside the output directory"):
        run_path(tmp_path / "cmp", "../../victim", 1)


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_compare_refuses_a_worker_count_below_one_and_writes_nothing(tmp_path, capsys, workers):
    out = tmp_path / "cmp"
    assert main(["compare", str(SEQUENCING), "--out", str(out), "--workers", workers, *SHORT_ARMS]) == 2
    assert "--workers" in capsys.readouterr().err
    assert not out.exists()


def test_compare_refuses_an_empty_arm_name(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(SEQUENCING), "--out", str(out), "--arms", ""]) == 2
    assert "empty arm name" in capsys.readouterr().err
    assert not out.exists()


def _children(pid: int) -> set[int]:
    """PIDs of the processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _gone(pids: set[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and "(Z)" not in _state(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return "(" + Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] + ")"
    except OSError:
        return "(gone)"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killing_compare_ends_its_workers_and_a_restart_completes_it(tmp_path, how):
    out = tmp_path / "cmp"
    arguments = ["compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", "--workers", "2", "--quiet",
                 "--arms", "untreated,chemo_only", "--set", "time.duration_days=12"]
    process = tme(*arguments)
    first_run = out / "runs" / "untreated" / "seed_1"
    deadline = time.monotonic() + 60
    while not rundir.journal_path(first_run, "timeseries").is_file():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers
    process.send_signal(how)
    process.wait(timeout=60)
    assert _gone(workers, 30), f"workers still running: {[(pid, _state(pid)) for pid in workers]}"
    if how == signal.SIGTERM:
        assert process.returncode == 130
        assert rundir.read_json(first_run / rundir.SUMMARY)["status"] == "interrupted"
    restart = tme(*arguments)
    _, stderr = restart.communicate(timeout=300)
    assert restart.returncode == 0, stderr
    for arm in ("untreated", "chemo_only"):
        path = run_path(out, arm, 1)
        assert rundir.summary_status(path) == "complete"
        assert (path / rundir.CONFIG).is_file() and not (path / rundir.RECORDS).exists()
        assert len(pandas.read_parquet(rundir.table_path(path, "timeseries"))) == 13  # days 0 to 12


# --------------------------------------------------------------------------- journals and interruptions


def test_a_torn_last_journal_line_is_left_out_and_a_damaged_one_named(tmp_path):
    journal = rundir.Journal(tmp_path)
    journal.append("timeseries", ["time_h", "cells"], [[0.0, 10], [6.0, 12]])
    journal.close()
    path = rundir.journal_path(tmp_path, "timeseries")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("[12.0, 1")  # a write cut by a kill
    frame = rundir.read_table(tmp_path, "timeseries")
    assert frame.to_dict("list") == {"time_h": [0.0, 6.0], "cells": [10, 12]}
    path.write_text(path.read_text().replace("[6.0, 12]", "[6.0, "))
    with pytest.raises(RunDirectoryError, match="line 3 is not JSON"):
        rundir.read_table(tmp_path, "timeseries")


def test_an_interruption_during_the_final_writes_waits_for_them():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)
    assert finished == [True]


def test_journals_hold_the_same_tables_as_the_parquet_files(tmp_path, monkeypatch):
    """A run's journals (what a killed run leaves) read back as the tables it writes at the end."""
    monkeypatch.setattr(rundir.Journal, "remove", rundir.Journal.close)  # keep them to compare
    config = load_config(SEQUENCING, ["time.duration_days=8", "backend=numpy"])
    config = config.model_copy(update={"treatment": config.arms["chemo_then_checkpoint"]})
    run(config, tmp_path / "run", progress=False)
    for table in ("timeseries", "clones", "lineage", "immune", "events"):
        written = pandas.read_parquet(rundir.table_path(tmp_path / "run", table))
        pandas.testing.assert_frame_equal(rundir.read_journal(rundir.journal_path(tmp_path / "run", table)), written)


def test_compare_workers_in_process_pool_complete_like_one_worker(tmp_path):
    """The pool path (2 workers) gives the tables of the in-process path (1 worker)."""
    config = load_config(SEQUENCING, ["time.duration_days=6", "backend=numpy"])
    one = compare(config, tmp_path / "one", 1, ["untreated", "chemo_only"], workers=1, progress=False)
    two = compare(config, tmp_path / "two", 1, ["untreated", "chemo_only"], workers=2, progress=False)
    assert one == two


def test_a_run_that_completes_before_compare_clears_it_is_kept_and_not_run_again(tmp_path, monkeypatch):
    """The race of a killed comparison's remote run finishing between compare's look at its status and the
    emptying of its directory: the status is read again under the directory's lock, and the complete run is kept,
    not deleted, and not run again."""
    from abm import branching

    config = load_config(SEQUENCING, ["time.duration_days=6", "backend=numpy"])
    out = tmp_path / "cmp"
    first = compare(config, out, 1, ["untreated"], workers=1, progress=False)
    path = run_path(out, "untreated", 1)
    summary = (path / rundir.SUMMARY).read_bytes()
    (path / rundir.SUMMARY).unlink()  # the run as compare finds it: still going, on a worker of a killed comparison
    before = {entry: entry.read_bytes() for entry in path.rglob("*") if entry.is_file() and entry.name != rundir.LOCK}
    taking_lock = rundir.lock_directory

    def finishing_first(directory):  # the run writes its summary and lets go of the lock just before compare takes it
        if Path(directory) == path:
            (path / rundir.SUMMARY).write_bytes(summary)
        return taking_lock(directory)

    monkeypatch.setattr(rundir, "lock_directory", finishing_first)
    monkeypatch.setattr(branching, "run", lambda *arguments, **options: pytest.fail("the complete run ran again"))
    assert compare(config, out, 1, ["untreated"], workers=1, progress=False) == first
    assert {entry: entry.read_bytes() for entry in path.rglob("*")
            if entry.is_file() and entry.name not in (rundir.LOCK, rundir.SUMMARY)} == before
    assert (path / rundir.SUMMARY).read_bytes() == summary
