"""Damaged and unfinished run and comparison directories read by ``tme plot``, ``render``, ``report`` and ``export``.

Every file a viz command reads goes through :mod:`abm.rundir`'s readers, so a
file it cannot read is one ``error:`` line naming the file, exit 2, never a
traceback. A command reads only the files it needs (docs/visualization.md):
a damaged file it does not need (``summary.json`` for ``render``, the tables
for ``export``) is not read, and the command does its work. Each damaged file
is tried four ways (empty, its first half, garbage bytes, a valid file of
another kind) with the cheapest command that reads it, and once with every
command, in a run directory made by ``tme run configs/tiny.yaml`` and a
comparison made by ``tme compare`` (two arms, one run each), both made once
and copied per case.

A run killed before it wrote its tables and summary (SIGKILL, a full disk)
keeps its records in journals (``records/<table>.jsonl``, see
:mod:`abm.rundir`); such a directory is plotted and reported like a finished
one, with its status at the top of the report. A journal whose last line is
torn reads as a run killed during that write (the line is left out), not as
damage.
"""
from __future__ import annotations

import ctypes.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from abm import rundir
from abm.cli import main
from tests.test_viz_compare import CONFIG as COMPARE_CONFIG

REPO = Path(__file__).resolve().parents[1]
LAST_SNAPSHOT = "snapshots/step_00000048.npz"
JOURNAL = "records/timeseries.jsonl"
GARBAGE = bytes(range(256)) * 8
KINDS = ("empty", "truncated", "garbage", "wrong_type")
KILLED_AT_H = 24.0
TREATED_RUN = rundir.compare_run_path(Path(), "sequential", 7).as_posix()

#: The commands that read each file of a run directory (the others do not read it, and succeed).
RUN_FILES = {
    rundir.CONFIG: {"plot", "render", "report", "export"},
    rundir.SUMMARY: {"report"},
    "timeseries.parquet": {"plot", "report"},
    "clones.parquet": {"plot", "report"},
    "lineage.parquet": {"plot", "report", "render", "export"},  # clone names: legends, the VTK files' field data
    LAST_SNAPSHOT: {"plot", "report", "render", "export"},
    JOURNAL: {"plot", "report"},  # in a killed run's directory
}
#: The files of a comparison directory; plot and report read each.
COMPARE_FILES = rundir.COMPARE_FILES + (f"{TREATED_RUN}/{rundir.CONFIG}", f"{TREATED_RUN}/{rundir.SUMMARY}",
                                        f"{TREATED_RUN}/events.parquet")
#: The cheapest command that reads each run file (``--only`` a figure that needs it, before anything is drawn).
CHEAPEST = {rundir.CONFIG: "export", rundir.SUMMARY: "report", "timeseries.parquet": "plot:burden",
            "clones.parquet": "plot:muller", "lineage.parquet": "plot:muller", LAST_SNAPSHOT: "export", JOURNAL: "plot:burden"}
#: Render cases, a few: those that fail before drawing and one that renders past a file it does not need.
RENDERED = (rundir.CONFIG, rundir.SUMMARY, "lineage.parquet", LAST_SNAPSHOT)


def has_opengl() -> bool:
    return bool(ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa") or ctypes.util.find_library("GL"))


def journal_copy(source: Path, out: Path, until_h: float = float("inf")) -> Path:
    """A copy of the run directory ``source`` as a run killed after its record at ``until_h`` hours leaves it: its
    tables as journals only (written by :class:`abm.rundir.Journal`), no summary.json, the snapshots up to then."""
    shutil.copytree(source, out)
    journal = rundir.Journal(out)
    for table in rundir.TABLES:
        path = rundir.table_path(out, table)
        if not path.is_file():
            continue
        frame = pd.read_parquet(path)
        time_column = "birth_time_h" if table == "lineage" else "time_h"
        frame = frame[frame[time_column] <= until_h]
        journal.append(table, frame.columns, frame.itertuples(index=False), {column: str(dtype) for column, dtype in
                                                                           frame.dtypes.items() if dtype != object})
        path.unlink()
    journal.close()
    (out / rundir.SUMMARY).unlink()
    for snapshot in (out / rundir.SNAPSHOTS).glob("*.npz"):
        if int(snapshot.stem.split("_")[1]) > until_h:  # the step, hours in tiny.yaml (dt_cell_h 1)
            snapshot.unlink()
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """``tme run configs/tiny.yaml``: 48 x 48, 2 days, records every 6 h, snapshots at 0, 24 and 48 h."""
    out = tmp_path_factory.mktemp("unreadable") / "run"
    assert main(["run", str(REPO / "configs" / "tiny.yaml"), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def killed_dir(run_dir, tmp_path_factory) -> Path:
    """The run as a kill at day 1 leaves it: journals, no summary, no Parquet table."""
    return journal_copy(run_dir, tmp_path_factory.mktemp("unreadable") / "killed", KILLED_AT_H)


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory) -> Path:
    """``tme compare`` of test_viz_compare's observation and sequential arms, one run each (32 x 32, 10 days)."""
    folder = tmp_path_factory.mktemp("unreadable")
    config = folder / "arms.yaml"
    config.write_text(COMPARE_CONFIG, encoding="utf-8")
    out = folder / "compare"
    assert main(["compare", str(config), "--out", str(out), "--replicates", "1", "--arms", "observation,sequential",
                 "--workers", "1", "--quiet"]) == 0
    return out


def damage(path: Path, kind: str) -> None:
    """Make ``path`` unreadable: ``empty``, ``truncated`` (its first half), ``garbage``, ``wrong_type`` (a valid file
    of its format holding something else), or ``bad_line`` (a journal with a line in the middle that is not JSON)."""
    data = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(GARBAGE)
    elif kind == "bad_line":
        lines = data.decode("utf-8").split("\n")
        path.write_text("\n".join(lines[:2] + ["[1.0, {not json"] + lines[2:]), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text("[1, 2, 3]\n", encoding="utf-8")
    elif path.suffix == ".yaml":
        path.write_text("just a scalar\n", encoding="utf-8")
    elif path.suffix == ".parquet":
        pd.DataFrame({"other": [1, 2]}).to_parquet(path)
    elif path.suffix == ".npz":
        with open(path, "wb") as handle:
            np.savez(handle, other=np.zeros(3))
    else:
        path.write_text('["a list, not a header"]\n[1]\n', encoding="utf-8")


def command(name: str, target: Path, out: Path) -> list[str]:
    """The arguments of viz command ``name`` (``plot:FIGURE`` for ``plot --only FIGURE``) on ``target``, writing in ``out``."""
    name, _, figure = name.partition(":")
    arguments = {"plot": ["--out", str(out / "figures"), "--formats", "png", "--quiet"] + (["--only", figure] if figure else []),
                 "render": ["--out", str(out / "render.png"), "--size", "320x240", "--quiet"],
                 "report": ["--out", str(out / "report.md"), "--quiet"],
                 "export": ["--out", str(out / "vtk"), "--quiet"]}[name]
    return [name, str(target)] + arguments


def damaged_copy(source: Path, relative: str, kind: str, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the directory ``source`` with its file ``relative`` damaged; (the copy, the damaged file)."""
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    damage(copy / relative, kind)
    return copy, copy / relative


def assert_outcome(arguments: list[str], damaged: Path, fails: bool, capsys) -> str:
    """``tme ARGUMENTS`` exits 2 with one ``error:`` line naming ``damaged`` if ``fails``, else 0 without error;
    returns what it printed on stderr."""
    capsys.readouterr()
    status = main(arguments)
    err = capsys.readouterr().err
    if fails:
        assert status == 2 and err.count("\n") == 1 and err.startswith("error: ") and str(damaged) in err, (status, err)
    else:
        assert status == 0 and "error" not in err, (status, err)
    return err


# each damage, with a command that reads the file -----------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("relative", list(RUN_FILES))
def test_damaged_run_file(run_dir, killed_dir, tmp_path, capsys, relative, kind):
    source = killed_dir if relative == JOURNAL else run_dir
    copy, damaged = damaged_copy(source, relative, kind, tmp_path)
    assert_outcome(command(CHEAPEST[relative], copy, tmp_path), damaged, True, capsys)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("relative", COMPARE_FILES)
def test_damaged_comparison_file(compare_dir, tmp_path, capsys, relative, kind):
    copy, damaged = damaged_copy(compare_dir, relative, kind, tmp_path)
    assert_outcome(command("plot", copy, tmp_path), damaged, True, capsys)


def test_journal_with_a_bad_middle_line(killed_dir, tmp_path, capsys):
    copy, damaged = damaged_copy(killed_dir, JOURNAL, "bad_line", tmp_path)
    assert "line 3 is not JSON" in assert_outcome(command("plot:burden", copy, tmp_path), damaged, True, capsys)


def test_journal_with_a_torn_last_line_is_a_kill_during_a_write(killed_dir, tmp_path, capsys):
    from viz.rundir import open_run

    copy = tmp_path / "killed"
    shutil.copytree(killed_dir, copy)
    journal = copy / JOURNAL
    text = journal.read_text(encoding="utf-8")
    journal.write_text(text[: text.rindex("\n", 0, -1) + 40], encoding="utf-8")
    assert open_run(copy).timeseries["time_h"].iloc[-1] == KILLED_AT_H - 6.0, "the last record, torn, is left out"
    assert_outcome(command("plot:burden", copy, tmp_path), journal, False, capsys)


# each command, on each damaged file -----------------------------------------

RUN_CASES = [(name, relative) for relative in RUN_FILES for name in ("plot", "render", "report", "export")
             if name != "render" or relative in RENDERED]


@pytest.mark.parametrize("name, relative", RUN_CASES)
def test_each_command_on_a_damaged_run(run_dir, killed_dir, tmp_path, capsys, name, relative):
    if name == "render" and not has_opengl():
        pytest.skip("no system OpenGL library for VTK: apt-get install libegl1 (or libosmesa6)")
    source = killed_dir if relative == JOURNAL else run_dir
    copy, damaged = damaged_copy(source, relative, "bad_line" if relative == JOURNAL else "truncated", tmp_path)
    assert_outcome(command(name, copy, tmp_path), damaged, name in RUN_FILES[relative], capsys)


@pytest.mark.parametrize("name", ("plot", "report"))
@pytest.mark.parametrize("relative", COMPARE_FILES)
def test_each_command_on_a_damaged_comparison(compare_dir, tmp_path, capsys, name, relative):
    copy, damaged = damaged_copy(compare_dir, relative, "truncated", tmp_path)
    assert_outcome(command(name, copy, tmp_path), damaged, True, capsys)


def test_no_traceback_from_the_command_line(run_dir, tmp_path):
    copy, damaged = damaged_copy(run_dir, "timeseries.parquet", "garbage", tmp_path)
    result = subprocess.run([sys.executable, "-m", "abm.cli", *command("plot", copy, tmp_path)], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(result.stderr.splitlines()) == 1 and str(damaged) in result.stderr


# files that parse but lack what viz reads ----------------------------------

def edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


CONFIG_EDITS = [
    (lambda config: config["lattice"].pop("shape"), "export", "no lattice.shape"),
    (lambda config: config["time"].pop("duration_days"), "plot:burden", "no time.duration_days"),
    (lambda config: config.update(lattice={"shape": "48x48", "dx_um": 20.0}), "export", "lattice.shape is '48x48', not a list"),
    (lambda config: config.update(lattice={"shape": [48], "dx_um": 20.0}), "export", "not 2 or 3 positive whole numbers"),
    (lambda config: config.pop("arms"), "export", "no arms (a truncated file"),
    (lambda config: config["tumor"]["hypoxia"].pop("necrosis_max_mmHg"), "plot:oxygen", "no tumor.hypoxia.necrosis_max_mmHg"),
]


@pytest.mark.parametrize("edit, name, message", CONFIG_EDITS)
def test_config_without_a_key_viz_reads(run_dir, tmp_path, capsys, edit, name, message):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    edit_yaml(copy / rundir.CONFIG, edit)
    assert main(command(name, copy, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {copy / rundir.CONFIG}: " in err and message in err, err


def test_immune_section_without_clone_names(run_dir, tmp_path):
    from viz.rundir import VizError, open_run

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    edit_yaml(copy / rundir.CONFIG, lambda config: config["immune"].update(t_cells={"clones": [{"antigen": 0}]}))
    with pytest.raises(VizError, match=f"^{copy / rundir.CONFIG}: immune is not a section of T-cell clones"):
        open_run(copy).immune_agents  # noqa: B018 - read on first use (by renders and figures of immune runs)


SUMMARY_EDITS = [
    (lambda summary: summary.pop("status"), "no status"),
    (lambda summary: summary.update(status=3), "status is 3, not a text"),
    (lambda summary: summary.update(final=[1, 2]), "final is [1, 2], not a mapping"),
    (lambda summary: summary["treatment"]["lines"][0].pop("end_day"), "no treatment.lines[0].end_day"),
    (lambda summary: summary["treatment"]["exposure"]["cis"].pop("doses"), "no treatment.exposure.cis.doses"),
]


@pytest.mark.parametrize("edit, message", SUMMARY_EDITS)
def test_summary_without_a_key_viz_reads(compare_dir, tmp_path, capsys, edit, message):
    copy = tmp_path / "run"
    shutil.copytree(compare_dir / TREATED_RUN, copy)
    edit_json(copy / rundir.SUMMARY, edit)
    assert main(command("report", copy, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {copy / rundir.SUMMARY}: " in err and message in err, err


def test_compare_json_without_arms(compare_dir, tmp_path, capsys):
    copy = tmp_path / "compare"
    shutil.copytree(compare_dir, copy)
    edit_json(copy / "compare.json", lambda result: result.pop("arms"))
    assert main(command("plot", copy, tmp_path)) == 2
    assert capsys.readouterr().err == f"error: {copy / 'compare.json'}: no arms (not written by this version of tme?)\n"


# unfinished runs --------------------------------------------------------------

def test_a_killed_run_reads_like_the_finished_run_up_to_its_last_record(run_dir, killed_dir):
    from viz.rundir import open_run

    finished, killed = open_run(run_dir), open_run(killed_dir)
    assert killed.status == "unfinished" and killed.summary == {} and finished.status == "complete"
    assert not list(killed_dir.glob("*.parquet")) and (killed_dir / rundir.RECORDS).is_dir()
    for table in ("timeseries", "clone_series", "lineage"):
        expected = getattr(finished, table)
        time_column = "birth_time_h" if table == "lineage" else "time_h"
        expected = expected[expected[time_column] <= KILLED_AT_H].reset_index(drop=True)
        pd.testing.assert_frame_equal(getattr(killed, table), expected, check_dtype=table != "lineage")
    assert killed.timeseries["time_h"].iloc[-1] == KILLED_AT_H
    assert [snapshot.step for snapshot in killed.snapshots] == [0, 24]


def test_plot_and_report_of_a_killed_run(killed_dir, tmp_path, capsys):
    copy = tmp_path / "killed"
    shutil.copytree(killed_dir, copy)
    assert main(["plot", str(copy), "--formats", "png", "--quiet"]) == 0
    figures = sorted(path.name for path in (copy / "figures").glob("*.png"))
    assert figures == ["burden.png", "heterogeneity.png", "muller.png", "oxygen.png", "slices.png"]
    if not has_opengl():
        pytest.skip("the report renders the last snapshot: no system OpenGL library for VTK")
    assert main(["report", str(copy), "--quiet"]) == 0
    text = (copy / "report.md").read_text(encoding="utf-8")
    status = text.split("\n\n")[2]
    assert status.startswith("> **Status: unfinished.** The run wrote no summary.json: it was killed (or is still going). "
                             "Its records end at day 1 of 2, read from its journals (killed/records/).")
    assert "| status | unfinished |" in text and "![Last snapshot, day 1," in text
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("status, error, expected", [
    ("failed", "day 1.5: the field solve of oxygen did not converge",
     "> **Status: failed:** day 1.5: the field solve of oxygen did not converge. Its records end at day 2 of 2."),
    ("interrupted", None, "> **Status: interrupted.** The run was stopped before its end. Its records end at day 2 of 2."),
    ("complete", None, None),
])
def test_report_states_a_run_that_did_not_complete(run_dir, tmp_path, status, error, expected):
    from viz.report import _status_lines
    from viz.rundir import open_run

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    edit_json(copy / rundir.SUMMARY, lambda summary: summary.update(status=status, **({"error": error} if error else {})))
    run = open_run(copy)
    assert run.status == status
    assert _status_lines(run, run.status, float(run.timeseries["time_days"].iloc[-1])) == ([expected, ""] if expected else [])
