"""Checkpoints: a run killed or interrupted and resumed with ``tme run --resume`` is the run never stopped, bit for bit;
a resume that cannot continue the run is refused before it writes anything."""
from __future__ import annotations

import json
import pickle
import signal
from pathlib import Path

import numpy as np
import pandas
import pytest
import yaml

from abm import checkpoint, rundir
from abm.cli import main
from abm.config import load_config, select_arm
from abm.model import TumorModel
from abm.runner import config_hash, continue_or_clear, read_run_config, resume, run
from tests.conftest import _CUPY, _CUPY_REASON
from tests.test_golden import VARYING_SUMMARY_KEYS
from tests.test_reliability import SEQUENCING, error_lines, tme, wait_for_records

REPO = Path(__file__).resolve().parents[1]
ESCAPE = REPO / "configs" / "immune_escape.yaml"
#: The sequencing preset's concurrent arm (therapy from day 5, T-cell priming with a 72 h delay), 9 days,
#: a checkpoint every day.
TREATED = [str(SEQUENCING), "--arm", "concurrent", "--set", "time.duration_days=9", "--set", "time.snapshot_every_h=48",
           "--set", "time.checkpoint_every_h=24"]
#: The immune-escape preset (3-D, mutation founding clones, T cells) on a smaller lattice, 4 days.
MUTATING = [str(ESCAPE), "--set", "lattice.shape=[20,20,20]", "--set", "tumor.initial.radius_um=120",
            "--set", "time.duration_days=4", "--set", "time.snapshot_every_h=24"]


def settings(arguments: list[str]) -> tuple[Path, list[str], str | None]:
    """The config file, the --set overrides and the arm of a list of tme arguments."""
    overrides = [arguments[k + 1] for k, value in enumerate(arguments) if value == "--set"]
    arm = arguments[arguments.index("--arm") + 1] if "--arm" in arguments else None
    return Path(arguments[0]), overrides, arm


def uninterrupted(arguments: list[str], out: Path, backend: str = "numpy") -> Path:
    """The run never stopped, in this process."""
    path, overrides, arm = settings(arguments)
    config = load_config(path, [*overrides, f"backend={backend}"])
    run(select_arm(config, arm) if arm else config, out, progress=False)
    return out


def saved(out: Path) -> dict:
    """The state in the checkpoint of the run directory ``out``."""
    return checkpoint.read(out, config_hash(read_run_config(out)))


def assert_same_run(resumed: Path, reference: Path) -> None:
    """Every table, every snapshot and the summary (less its timing) of two run directories are equal, bit for bit."""
    for table in (*rundir.TABLES, rundir.AGENTS):
        path = rundir.table_path(reference, table)
        assert path.is_file() == rundir.table_path(resumed, table).is_file(), table
        if path.is_file():
            pandas.testing.assert_frame_equal(pandas.read_parquet(rundir.table_path(resumed, table)),
                                              pandas.read_parquet(path), check_exact=True, obj=table)
    snapshots = rundir.list_snapshots(reference)
    assert [step for _, step in rundir.list_snapshots(resumed)] == [step for _, step in snapshots]
    for path, _ in snapshots:
        mine, theirs = rundir.read_snapshot(resumed / rundir.SNAPSHOTS / path.name), rundir.read_snapshot(path)
        assert mine.keys() == theirs.keys()
        for name in theirs:
            assert mine[name].dtype == theirs[name].dtype and np.array_equal(mine[name], theirs[name], equal_nan=True), \
                f"{path.name}: {name}"
    stable = [{key: value for key, value in rundir.read_json(directory / rundir.SUMMARY).items()
               if key not in VARYING_SUMMARY_KEYS | {"backend"}} for directory in (resumed, reference)]
    assert stable[0] == stable[1]
    assert not (resumed / rundir.RECORDS).exists() and not (resumed / rundir.CHECKPOINT).exists()


def test_a_run_killed_and_resumed_is_the_run_never_stopped(tmp_path):
    out = tmp_path / "killed"
    process = tme("run", *TREATED, "--out", str(out), "--quiet")
    wait_for_records(out, 8, process, timeout_s=120)  # day 7: past the start of treatment (day 5) and a checkpoint
    process.kill()
    process.wait()
    state = saved(out)
    assert 72 <= state["step"] < 108 and not (out / rundir.SUMMARY).exists()
    assert state["therapy"].started  # the checkpoint holds a treatment under way
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, uninterrupted(TREATED, tmp_path / "reference"))


def test_a_run_interrupted_by_sigterm_checkpoints_its_last_step_and_resumes_to_the_same_bits(tmp_path):
    out = tmp_path / "stopped"
    process = tme("run", *MUTATING, "--out", str(out), "--quiet")
    wait_for_records(out, 2, process, timeout_s=120)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    summary = rundir.read_json(out / rundir.SUMMARY)
    assert summary["status"] == "interrupted"
    state = saved(out)
    assert state["step"] == summary["cell_steps"] < 96  # the last completed step, not a periodic one
    assert "tme run --resume" in stderr
    process = tme("run", "--resume", str(out), "--quiet")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    reference = uninterrupted(MUTATING, tmp_path / "reference")
    assert len(rundir.read_table(reference, "lineage")) > 1  # mutants were founded, some maybe after the stop
    assert_same_run(out, reference)


def test_capture_and_restore_continue_a_model_exactly():
    config = select_arm(load_config(SEQUENCING, ["backend=numpy", "time.duration_days=8"]), "chemo_then_checkpoint")
    model = TumorModel(config)
    for _ in range(70):
        model.step()
    state = checkpoint.capture(model, "hash", {"note": 1})
    for _ in range(20):
        model.step()
    restored = TumorModel(config)
    assert checkpoint.restore(restored, state) == {"note": 1}
    for _ in range(20):
        restored.step()
    for table in ("timeseries", "clone_series", "lineage", "immune_series", "events"):
        pandas.testing.assert_frame_equal(getattr(restored, table)(), getattr(model, table)(), check_exact=True)
    for name, values in model.snapshot().items():
        assert np.array_equal(restored.snapshot()[name], values, equal_nan=True), name
    with pytest.raises(ValueError, match="just built"):
        checkpoint.restore(restored, state)


def test_restore_continues_fields_on_a_coarse_grid_exactly():
    """Fields on a coarse substrate grid are stored at cell resolution; the restored solvers start from their blocks."""
    config = load_config(ESCAPE, ["backend=numpy", "lattice.field_coarsening=2", "lattice.shape=[16, 16, 16]",
                                  "tumor.initial.radius_um=60"])
    model = TumorModel(config)
    for _ in range(3):
        model.step()
    state = checkpoint.capture(model, "hash", {})
    for _ in range(3):
        model.step()
    restored = TumorModel(config)
    checkpoint.restore(restored, state)
    for _ in range(3):
        restored.step()
    for name, values in model.snapshot().items():
        assert np.array_equal(restored.snapshot()[name], values, equal_nan=True), name


@pytest.mark.gpu
def test_resume_on_cupy_is_the_uninterrupted_run_on_cupy(tmp_path):
    if _CUPY is None:
        pytest.skip(f"no GPU backend: {_CUPY_REASON}")
    out = tmp_path / "stopped"
    process = tme("run", *MUTATING, "--backend", "cupy", "--out", str(out), "--quiet")
    wait_for_records(out, 2, process, timeout_s=120)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert rundir.read_json(out / rundir.SUMMARY)["backend"] == "cupy"
    assert_same_run(out, uninterrupted(MUTATING, tmp_path / "reference", backend="cupy"))


# --------------------------------------------------------------------------- refusals


def listing(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time (ns)."""
    return {str(file.relative_to(path)): (file.stat().st_size, file.stat().st_mtime_ns)
            for file in sorted(path.rglob("*")) if file.is_file()}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A short tiny run stopped by SIGTERM: it holds a checkpoint."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    process = tme("run", str(REPO / "configs" / "tiny.yaml"), "--out", str(out), "--quiet",
                  "--set", "time.duration_days=120")
    wait_for_records(out, 3, process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert (out / rundir.CHECKPOINT).is_file()
    return out


def refused(arguments: list[str], directory: Path, capsys) -> str:
    """Run ``tme ARGUMENTS``: exit 2, one error: line (returned), nothing under ``directory`` changed."""
    before = listing(directory)
    assert main([*arguments, "--quiet"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert listing(directory) == before
    return line


def test_resume_refuses_a_complete_run(tmp_path, capsys):
    out = uninterrupted([str(REPO / "configs" / "tiny.yaml"), "--set", "time.duration_days=1"], tmp_path / "run")
    assert "the run is complete" in refused(["run", "--resume", str(out)], tmp_path, capsys)


def test_resume_refuses_a_directory_without_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    process = tme("run", str(REPO / "configs" / "tiny.yaml"), "--out", str(out), "--quiet", "--set", "time.duration_days=120")
    wait_for_records(out, 2, process)
    process.kill()
    process.wait()
    assert "no checkpoint" in refused(["run", "--resume", str(out)], tmp_path, capsys)
    assert "no such run directory" in refused(["run", "--resume", str(tmp_path / "missing")], tmp_path, capsys)


def test_resume_refuses_a_checkpoint_of_another_config_or_version(interrupted, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    config_file = copy / rundir.CONFIG
    original = config_file.read_text()
    changed = yaml.safe_load(original)
    changed["seed"] += 1
    config_file.write_text(yaml.safe_dump(changed, sort_keys=False))
    assert "another config" in refused(["run", "--resume", str(copy)], tmp_path, capsys)
    config_file.write_text(original)
    state = saved(copy)
    checkpoint.write(copy, {**state, "format_version": checkpoint.FORMAT_VERSION + 1})
    assert "format version" in refused(["run", "--resume", str(copy)], tmp_path, capsys)
    (copy / rundir.CHECKPOINT).write_bytes(b"not a pickle")
    assert "cannot read the checkpoint" in refused(["run", "--resume", str(copy)], tmp_path, capsys)


def test_whether_a_checkpoint_continues_a_run_is_read_from_its_header_line_alone(interrupted, tmp_path, capsys,
                                                                                   monkeypatch):
    """The file opens with one JSON line (format, version, config hash, step): a comparison's restart
    (continue_or_clear) reads that alone, unpickling nothing; format version 1 (the bare pickle) is refused by
    --resume with one error line and started again by a restart. A write that fails leaves the last checkpoint."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    config = read_run_config(copy)
    sha = config_hash(config)
    line = (copy / rundir.CHECKPOINT).read_bytes().split(b"\n", 1)[0]
    header = json.loads(line)
    assert header == {"format": "tme-abm checkpoint", "format_version": 2, "config_sha256": sha,
                      "step": rundir.read_json(copy / rundir.SUMMARY)["cell_steps"]}

    def unpickle(*arguments, **options):
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "load", unpickle)
    monkeypatch.setattr(pickle, "loads", unpickle)
    assert checkpoint.header(copy, sha) == header
    assert continue_or_clear(config, copy) == "resume"
    monkeypatch.undo()
    state = checkpoint.read(copy, sha)
    assert state["step"] == header["step"]

    before = (copy / rundir.CHECKPOINT).read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):
        checkpoint.write(copy, {**state, "extra": lambda: None})  # a lambda does not pickle
    assert (copy / rundir.CHECKPOINT).read_bytes() == before
    assert not [path.name for path in copy.iterdir() if path.name.endswith(".part")]  # no temporary file left

    (copy / rundir.CHECKPOINT).write_bytes(pickle.dumps({**state, "format_version": 1}))  # as version 1 wrote it
    assert "no header line (format version 1" in refused(["run", "--resume", str(copy)], tmp_path, capsys)
    assert continue_or_clear(config, copy) == "start" and not (copy / rundir.CHECKPOINT).exists()


def test_resume_takes_no_config_options(interrupted, capsys):
    line = refused(["run", "--resume", str(interrupted), "--seed", "3"], interrupted, capsys)
    assert "--resume" in line and "--seed" in line
    assert "--resume DIR" in refused(["run"], interrupted, capsys)


def test_checkpoint_every_h_must_be_whole_steps_and_does_not_change_the_config_hash():
    config = load_config(REPO / "configs" / "tiny.yaml", ["time.checkpoint_every_h=12"])
    assert config_hash(config) == config_hash(load_config(REPO / "configs" / "tiny.yaml"))
    with pytest.raises(Exception, match="time.checkpoint_every_h"):
        load_config(REPO / "configs" / "tiny.yaml", ["time.checkpoint_every_h=0.3"])


def test_a_resumed_directory_is_a_clean_run_directory(interrupted, tmp_path):
    """The journals of a restored run read as the tables the run writes (a kill after resuming loses nothing)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    summary = json.loads((copy / rundir.SUMMARY).read_text())
    tables = {table: rundir.read_table(copy, table) for table in ("timeseries", "clones", "lineage")}
    from abm.runner import _restart_files, read_run_config

    config = read_run_config(copy)
    model = TumorModel(config)
    extra = checkpoint.restore(model, checkpoint.read(copy, config_hash(config)))
    journal = rundir.Journal(copy)
    _restart_files(copy, model, journal, extra["written"])
    journal.close()
    assert not (copy / rundir.SUMMARY).exists() and model.steps == summary["cell_steps"]
    for table, frame in tables.items():
        assert not rundir.table_path(copy, table).exists()
        pandas.testing.assert_frame_equal(rundir.read_table(copy, table), frame, check_dtype=False, obj=table)


def test_a_first_signal_stops_between_steps_and_a_second_at_once():
    from abm.interrupts import StopRequest

    request = StopRequest()
    request.check()  # nothing came: the run goes on
    request.handle(signal.SIGTERM, None)
    assert request.received
    with pytest.raises(KeyboardInterrupt):
        request.check()
    with pytest.raises(KeyboardInterrupt):
        request.handle(signal.SIGINT, None)


def test_a_comparison_stopped_by_sigterm_resumes_its_runs_to_the_tables_of_one_never_stopped(tmp_path, monkeypatch):
    """SIGTERM to tme compare mid-run: the run under way checkpoints its last step; the restarted comparison resumes
    it from there (not from step 0), and every table of the comparison and of its runs is the uninterrupted one's."""
    from abm import branching
    from abm.comparison import compare, run_path

    arms = ["untreated", "chemo_only"]  # branched: one job, the untreated arm first
    out = tmp_path / "stopped"
    process = tme("compare", str(SEQUENCING), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet",
                  "--arms", ",".join(arms), "--set", "time.duration_days=12")
    first = run_path(out, "untreated", 1)
    wait_for_records(first, 8, process, timeout_s=180)  # day 7 of the first arm, past its branch point (day 5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert rundir.summary_status(first) == "interrupted" and (first / rundir.CHECKPOINT).is_file()
    resumed = []
    monkeypatch.setattr(branching, "resume", lambda path, **options: resumed.append(path) or resume(path, **options))
    config = load_config(SEQUENCING, ["time.duration_days=12", "backend=numpy"])
    result = compare(config, out, 1, arms, workers=1, progress=False)
    assert resumed == [first]
    monkeypatch.undo()
    reference = tmp_path / "reference"
    assert result == compare(config, reference, 1, arms, workers=1, progress=False)
    for table in ("runs", "km", "burden", "paired"):
        pandas.testing.assert_frame_equal(pandas.read_parquet(rundir.table_path(out, table)),
                                          pandas.read_parquet(rundir.table_path(reference, table)), check_exact=True)
    for arm in arms:
        assert_same_run(run_path(out, arm, 1), run_path(reference, arm, 1))
