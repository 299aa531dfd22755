"""The public Python API (docs/api.md): the names ``abm`` exports, its worked example run as written, and the
run-directory module as viz's only way into a run directory.

The worked example's fenced ``python`` blocks are executed in order, in one
namespace, in a temporary folder that sees the repository's ``configs/``
(a few seconds: a 40 x 40 lattice for 3 days).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import abm
from abm import rundir

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"


def python_blocks(path: Path) -> list[str]:
    """The fenced ``python`` code blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


def test_every_exported_name_exists():
    assert set(abm.__all__) >= {"load_config", "TumorModel", "run", "open_run", "compare", "select_arm"}
    for name in abm.__all__:
        assert getattr(abm, name) is not None, name
    assert callable(abm.load_config) and callable(abm.select_arm) and callable(abm.open_run)
    assert isinstance(abm.TumorModel, type) and isinstance(abm.RunDirectory, type)
    assert issubclass(abm.ConfigError, Exception) and issubclass(abm.RunDirectoryError, Exception)
    assert set(abm.__all__) <= set(dir(abm))


def test_run_and_compare_are_the_functions_of_their_modules():
    import abm.comparison
    import abm.runner

    assert abm.run is abm.runner.run and abm.compare is abm.comparison.compare


def test_import_abm_is_cheap():
    """``import abm`` loads neither Mesa, pydantic nor the kernels (every abm submodule imports the package)."""
    code = ("import sys, abm; heavy = [name for name in ('mesa', 'pydantic', 'numpy', 'kernels', 'abm.config') "
            "if name in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_select_arm_names_the_arm_and_lists_the_arms():
    config = abm.load_config(REPO / "configs" / "sequencing.yaml")
    chosen = abm.select_arm(config, "concurrent")
    assert chosen.treatment == config.arms["concurrent"] and chosen.arms == config.arms
    with pytest.raises(abm.ConfigError, match="^arm nothing: no arm of that name; arms: untreated, chemo_only, "):
        abm.select_arm(config, "nothing")
    with pytest.raises(abm.ConfigError, match=r"arms: none \(the config has no arms\)"):
        abm.select_arm(abm.load_config(REPO / "configs" / "tiny.yaml"), "a")


def test_the_worked_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(API_DOC)
    assert len(blocks) >= 6
    (tmp_path / "configs").symlink_to(REPO / "configs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "api_example"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{API_DOC.name} block {number}", "exec"), namespace)  # noqa: S102 - the doc's own example
    out = capsys.readouterr().out
    assert "lattice.dx_um" in out and "arm chemo_forever: no arm of that name" in out
    run = namespace["run"]
    assert isinstance(run, abm.RunDirectory) and run.status == "complete"
    assert {"dose", "assessment"} <= set(run.events["event"])
    assert (namespace["out"] / "figures" / "treatment.png").is_file()
    assert (namespace["out"] / "figures" / "burden_again.png").is_file()
    assert set(namespace["result"]["arms"]) == {"untreated", "chemo_then_checkpoint"}


def abm_imports(path: Path) -> set[str]:
    """The ``abm`` modules a source file imports (anywhere in it, functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "abm"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "abm":
            found |= {f"{node.module}.{alias.name}" if node.module == "abm" else node.module for alias in node.names}
    return found


def test_viz_reads_run_directories_through_abm_rundir_only():
    """viz imports from abm only the run-directory module (and abm.io's atomic writes for its own files), and the
    explorer's live mode reaches a model through abm.live alone."""
    for path in sorted((REPO / "viz").glob("*.py")):
        assert abm_imports(path) <= {"abm.rundir", "abm.io", "abm.live"}, path.name
        assert "abm.live" not in abm_imports(path) or path.name in {"commands.py", "explorer_page.py"}, path.name


def test_run_directory_reader(tmp_path):
    """open_run on a run and on what is not one: RunDirectoryError naming the path."""
    with pytest.raises(abm.RunDirectoryError, match="no such run directory"):
        abm.open_run(tmp_path / "missing")
    (tmp_path / rundir.COMPARE_RESULT).write_text("{}", encoding="utf-8")
    with pytest.raises(abm.RunDirectoryError, match="a tme compare directory, not a run directory"):
        abm.open_run(tmp_path)
    config = abm.load_config(REPO / "configs" / "tiny.yaml", ["time.duration_days=0.5", "time.snapshot_every_h=6",
                                                              "backend=numpy"])
    abm.run(config, tmp_path / "run", progress=False)
    run = abm.open_run(tmp_path / "run")
    assert run.status == "complete" and run.shape == (48, 48) and run.events is None and run.immune_series is None
    assert [snapshot.step for snapshot in run.snapshots] == [0, 6, 12]
    assert run.snapshot_at(5.0).step == 6 and run.last_snapshot().clone.shape == run.shape
    assert list(run.table("timeseries")["time_h"]) == [0.0, 6.0, 12.0]
    assert run.summary_value("final", "tumor_cells_total") == run.summary["final"]["tumor_cells_total"]
    with pytest.raises(abm.RunDirectoryError, match="no final.missing"):
        run.summary_value("final", "missing")
    with pytest.raises(abm.RunDirectoryError, match="field 'nothing' is not in step_00000012.npz"):
        run.last_snapshot().field("nothing")
