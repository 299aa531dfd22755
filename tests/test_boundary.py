"""A run records and warns when tumor cells reach the lattice's boundary (issue 16, item 4).

The day and faces in ``summary.json`` are checked against the snapshots
(taken at every record), the warning against stderr, and the report's line
against ``report.md``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from abm import rundir
from abm.cli import main
from abm.runner import tumor_faces
from tests.conftest import to_host

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
#: tiny.yaml on a lattice too narrow in y for its tumor, with a snapshot at every record.
NARROW = ("lattice.shape=[12,16]", "time.snapshot_every_h=6")


def faces_of(clone, xp) -> list[str]:
    """tumor_faces of a model whose lattice holds ``clone``."""
    lattice = SimpleNamespace(xp=xp, tumor=SimpleNamespace(clone=xp.asarray(clone)))
    return tumor_faces(SimpleNamespace(lattice=lattice, backend=SimpleNamespace(to_host=to_host)))


def test_tumor_faces_names_each_face_a_tumor_cell_sits_on(xp):
    empty = -np.ones((5, 6, 7), dtype=np.int32)
    assert faces_of(empty, xp) == []
    inside = empty.copy()
    inside[1:-1, 1:-1, 1:-1] = 0
    assert faces_of(inside, xp) == [], "cells next to the faces, none on them"
    for index, face in (((0, 2, 3), "z_min"), ((4, 2, 3), "z_max"), ((2, 0, 3), "y_min"), ((2, 5, 3), "y_max"),
                        ((2, 2, 0), "x_min"), ((2, 2, 6), "x_max")):
        clone = empty.copy()
        clone[index] = 3
        assert faces_of(clone, xp) == [face]
    corner = empty.copy()
    corner[0, 5, 6] = 1  # on three faces at once
    assert faces_of(corner, xp) == ["z_min", "y_max", "x_max"]
    square = -np.ones((4, 5), dtype=np.int32)
    square[3, 0] = 0
    assert faces_of(square, xp) == ["y_max", "x_min"]


def first_contact_in_snapshots(run_dir: Path) -> tuple[float, list[str]] | None:
    """The day and faces of the first snapshot with a tumor cell on a face, found independently of the runner."""
    for path, _ in rundir.list_snapshots(run_dir):
        snapshot = rundir.read_snapshot(path)
        clone = snapshot["clone"]
        faces = [name for name, face in (("y_min", clone[0]), ("y_max", clone[-1]), ("x_min", clone[:, 0]),
                                         ("x_max", clone[:, -1])) if (face >= 0).any()]
        if faces:
            return float(snapshot["time_h"]) / 24.0, faces
    return None


def tme_run(out: Path, settings: tuple[str, ...], *options: str) -> int:
    arguments = [argument for setting in settings for argument in ("--set", setting)]
    return main(["run", str(TINY), "--out", str(out), *options, *arguments])


@pytest.mark.parametrize("quiet", [True, False])
def test_a_run_reaching_the_boundary_records_the_first_contact_and_warns_once(tmp_path, capsys, quiet):
    out = tmp_path / "narrow"
    assert tme_run(out, NARROW, *(["--quiet"] if quiet else [])) == 0
    summary = json.loads((out / rundir.SUMMARY).read_text(encoding="utf-8"))
    contact = first_contact_in_snapshots(out)
    assert contact is not None and contact[0] > 0, "the tumor starts inside and grows onto a face"
    assert (summary["boundary_contact_day"], summary["boundary_contact_faces"]) == contact
    assert rundir.open_run(out).boundary_contact == contact
    err = capsys.readouterr().err
    assert err.count("warning:") == 1, "once per run, --quiet or not (it drops only the progress bar)"
    warnings = [line for line in re.split(r"[\r\n]", err) if line.startswith("warning: ")]  # a line of its own
    assert len(warnings) == 1
    assert f"reached the lattice boundary ({', '.join(contact[1])}) at day {contact[0]:g}" in warnings[0]


def test_a_run_inside_its_lattice_records_no_contact_and_does_not_warn(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert tme_run(out, ("time.snapshot_every_h=6",), "--quiet") == 0
    summary = json.loads((out / rundir.SUMMARY).read_text(encoding="utf-8"))
    assert first_contact_in_snapshots(out) is None
    assert summary["boundary_contact_day"] is None and summary["boundary_contact_faces"] == []
    assert rundir.open_run(out).boundary_contact is None
    assert "warning" not in capsys.readouterr().err


def test_a_tumor_on_the_boundary_from_the_start_is_a_contact_at_day_0(tmp_path, capsys):
    out = tmp_path / "start"
    assert tme_run(out, ("lattice.shape=[6,30]", "time.duration_days=0.5"), "--quiet") == 0
    summary = json.loads((out / rundir.SUMMARY).read_text(encoding="utf-8"))
    assert summary["boundary_contact_day"] == 0 and summary["boundary_contact_faces"] == ["y_min", "y_max"]
    assert "at day 0;" in capsys.readouterr().err


def test_the_report_warns_of_the_boundary_contact(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "narrow"
    assert tme_run(out, ("lattice.shape=[12,16]", "time.snapshot_every_h=null"), "--quiet") == 0
    day, faces = rundir.open_run(out).boundary_contact
    assert main(["report", str(out), "--quiet", "--out", str(tmp_path / "report.md")]) == 0
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"> **Warning: tumor cells reached the lattice boundary** ({', '.join(faces)}) at day {day:g};" in report

    summary = json.loads((out / rundir.SUMMARY).read_text(encoding="utf-8"))
    summary["boundary_contact_day"], summary["boundary_contact_faces"] = None, []
    (out / rundir.SUMMARY).write_text(json.dumps(summary), encoding="utf-8")
    assert main(["report", str(out), "--quiet", "--out", str(tmp_path / "report.md")]) == 0
    assert "lattice boundary" not in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_a_damaged_boundary_record_is_an_error_naming_the_key(tmp_path):
    out = tmp_path / "narrow"
    assert tme_run(out, ("lattice.shape=[12,16]", "time.snapshot_every_h=null"), "--quiet") == 0
    summary = json.loads((out / rundir.SUMMARY).read_text(encoding="utf-8"))
    summary["boundary_contact_faces"] = "x_max"
    (out / rundir.SUMMARY).write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(rundir.RunDirectoryError, match="boundary_contact_faces"):
        rundir.open_run(out).boundary_contact
