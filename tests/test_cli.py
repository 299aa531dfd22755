"""The ``tme`` command line end to end: run, validate, info, and the options they share.

Most tests call :func:`abm.cli.main` in-process (fast); one runs the installed
``tme`` console script in a subprocess, as a user would, on this checkout's code.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from abm import __version__
from abm.cli import main
from abm.config import load_config
from abm.measurement import RECORD_COLUMNS
from kernels.backend import get_backend, probe_cupy

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
_CUPY, _CUPY_REASON = probe_cupy()


def _run(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
    """``tme run configs/tiny.yaml --out OUT --quiet EXTRA...`` in-process: (status, stdout, stderr)."""
    status = main(["run", str(TINY), "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _resolved(out: Path) -> dict:
    """The resolved config a run wrote, as a mapping."""
    return yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))


def test_installed_script_writes_a_complete_run_directory(tmp_path):
    """The console script, in a subprocess: every file of the run directory, with the right contents."""
    script = Path(sys.executable).with_name("tme")
    assert script.is_file(), f"no tme console script beside {sys.executable}; run pip install -e ."
    # The script imports abm.cli from wherever the environment installed tme (the main checkout, for a git worktree
    # sharing its environment); with this checkout first on the path, it runs the code under test.
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    interpreter = script.read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
    where = subprocess.run([interpreter, "-c", "import abm; print(abm.__file__)"], cwd=tmp_path, env=environment,
                           capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()) == REPO / "abm" / "__init__.py", where.stderr
    out = tmp_path / "run"
    result = subprocess.run([str(script), "run", str(TINY), "--out", str(out), "--quiet"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "run complete" in result.stdout

    config = load_config(TINY)
    resolved = _resolved(out)
    assert resolved["run"]["tme_abm_version"] == __version__
    assert resolved["run"]["backend"] in ("numpy", "cupy")
    assert resolved["run"]["backend_reason"]
    # Every default is filled in, and the file reproduces the config that ran.
    meta = resolved.pop("run")
    assert resolved == config.model_dump(mode="json")
    assert resolved["tumor"]["clones"][0]["cycle_time_h"] == config.tumor.clones[0].cycle_time_h

    frame = pd.read_parquet(out / "timeseries.parquet")
    assert tuple(frame.columns) == RECORD_COLUMNS
    total_steps = config.time.total_steps
    record_steps = config.time.steps(config.time.record_every_h, "record_every_h")
    assert len(frame) == total_steps // record_steps + 1  # the initial state and every record step
    np.testing.assert_allclose(frame["time_h"], np.arange(len(frame)) * config.time.record_every_h)
    np.testing.assert_allclose(frame["time_days"], frame["time_h"] / 24.0)
    assert (frame["tumor_cells_total"] > 0).all()

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "complete"
    assert summary["backend"] == meta["backend"]
    assert summary["cell_steps"] == total_steps
    assert summary["simulated_days"] == config.time.duration_days
    assert summary["final"]["tumor_cells_total"] == int(frame["tumor_cells_total"].iloc[-1])

    snapshot_steps = config.time.steps(config.time.snapshot_every_h, "snapshot_every_h")
    expected = [f"step_{step:08d}.npz" for step in range(0, total_steps + 1, snapshot_steps)]
    assert sorted(path.name for path in (out / "snapshots").iterdir()) == expected
    assert not [path for path in out.rglob("*") if path.name.endswith(".part")]


def test_summary_holds_no_negative_zero(tmp_path, capsys):
    """The tiny run keeps one clone, so its Shannon diversity is a sum of negative zeros: summary.json holds 0.0."""
    out = tmp_path / "run"
    status, _, err = _run(capsys, out)
    assert status == 0, err
    signs = pd.read_parquet(out / "timeseries.parquet")["shannon_diversity"].map(lambda value: math.copysign(1.0, value))
    assert signs.min() < 0, \
        "the tiny run no longer computes a negative zero: this test needs another source of one"
    text = (out / "summary.json").read_text(encoding="utf-8")
    assert "-0.0," not in text and "-0.0\n" not in text
    assert math.copysign(1.0, json.loads(text)["final"]["shannon_diversity"]) == 1.0


def test_without_negative_zero_reaches_nested_values():
    from abm.io import without_negative_zero

    cleaned = without_negative_zero({"a": -0.0, "b": [1.5, -0.0, {"c": (-0.0, -2.0)}], "d": "-0.0", "e": 0})
    assert json.dumps(cleaned) == '{"a": 0.0, "b": [1.5, 0.0, {"c": [0.0, -2.0]}], "d": "-0.0", "e": 0}'
    assert isinstance(cleaned["b"][2]["c"], tuple)


def test_json_files_hold_null_where_a_value_is_not_finite(tmp_path):
    """JSON has no NaN: a statistic without data (a log-rank test without progression) is written as null, and
    the file parses under a strict reader."""
    from abm.io import write_json

    write_json(tmp_path / "x.json", {"p": math.nan, "hr": [math.inf, -0.0, 1.5], "n": {"chi2": -math.inf}, "s": "NaN"})
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a JSON file")) == {
        "p": None, "hr": [None, 0.0, 1.5], "n": {"chi2": None}, "s": "NaN"}


def test_snapshots_follow_their_cadence(tmp_path, capsys):
    """``snapshot_every_h`` sets which steps are saved; each snapshot holds the lattice at that time."""
    out = tmp_path / "run"
    status, _, err = _run(capsys, out, "--set", "time.snapshot_every_h=12", "--set", "time.duration_days=1")
    assert status == 0, err
    names = sorted(path.name for path in (out / "snapshots").iterdir())
    assert names == [f"step_{step:08d}.npz" for step in (0, 12, 24)]
    with np.load(out / "snapshots" / names[1]) as snapshot:
        assert float(snapshot["time_h"]) == 12.0
        assert snapshot["clone"].shape == (48, 48)
        assert snapshot["field_oxygen"].shape == (48, 48)
        assert (snapshot["clone"] >= 0).sum() > 0


def test_no_snapshots_when_the_cadence_is_null(tmp_path, capsys):
    """``snapshot_every_h: null`` writes no snapshots folder."""
    out = tmp_path / "run"
    status, _, err = _run(capsys, out, "--set", "time.snapshot_every_h=null", "--set", "time.duration_days=0.5")
    assert status == 0, err
    assert not (out / "snapshots").exists()
    assert (out / "summary.json").is_file()


def test_set_overrides_by_dotted_key_and_list_index(tmp_path, capsys):
    """``--set`` reaches nested keys, list items, and defaults the file leaves out."""
    out = tmp_path / "run"
    status, _, err = _run(capsys, out, "--set", "tumor.clones.0.cycle_time_h=20", "--set", "time.duration_days=0.5",
                          "--set", "vessels.density=0.01", "--set", "lattice.shape=[40, 36]")
    assert status == 0, err
    resolved = _resolved(out)
    assert resolved["tumor"]["clones"][0]["cycle_time_h"] == 20.0
    assert resolved["time"]["duration_days"] == 0.5
    assert resolved["vessels"]["density"] == 0.01  # not in tiny.yaml: a default, overridden
    assert resolved["lattice"]["shape"] == [40, 36]
    assert json.loads((out / "summary.json").read_text())["cell_steps"] == 12
    with np.load(out / "snapshots" / "step_00000000.npz") as snapshot:
        assert snapshot["clone"].shape == (40, 36)


def test_seed_option_sets_the_seed_and_changes_the_run(tmp_path, capsys):
    """``--seed`` overrides the config's seed; the same seed repeats a run, another seed does not."""
    runs = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        out = tmp_path / name
        status, _, err = _run(capsys, out, "--seed", str(seed), "--backend", "numpy")
        assert status == 0, err
        assert _resolved(out)["seed"] == seed
        assert json.loads((out / "summary.json").read_text())["seed"] == seed
        runs[name] = pd.read_parquet(out / "timeseries.parquet")
    pd.testing.assert_frame_equal(runs["a"], runs["b"])
    assert not runs["a"]["tumor_cells_total"].equals(runs["c"]["tumor_cells_total"])


def test_backend_numpy_is_recorded(tmp_path, capsys):
    """``--backend numpy`` runs on NumPy and says so in config.yaml and summary.json."""
    out = tmp_path / "run"
    status, stdout, err = _run(capsys, out, "--backend", "numpy", "--set", "time.duration_days=0.25")
    assert status == 0, err
    resolved = _resolved(out)
    assert resolved["backend"] == "numpy"
    assert resolved["run"]["backend"] == "numpy"
    assert resolved["run"]["backend_reason"] == "asked for numpy"
    assert json.loads((out / "summary.json").read_text())["backend"] == "numpy"
    assert "numpy" in stdout


@pytest.mark.skipif(_CUPY is not None, reason="a working GPU is present: cupy is a valid backend here")
def test_backend_cupy_without_gpu_exits_2_and_says_why(tmp_path, capsys):
    """Asking for CuPy where it cannot run is an error with the reason, not a fallback, and writes nothing."""
    out = tmp_path / "run"
    status, stdout, err = _run(capsys, out, "--backend", "cupy")
    assert status == 2
    assert stdout == ""
    assert err.startswith("error: backend: cupy was asked for but cannot be used")
    assert _CUPY_REASON in err
    assert not out.exists()


def test_validate_checks_without_running(tmp_path, capsys, monkeypatch):
    """``tme validate`` reports the lattice and step count, honours --set, and writes no file."""
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(TINY)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "48x48" in out and "48 steps" in out
    assert main(["validate", str(TINY), "--set", "time.duration_days=3", "--set", "lattice.shape=[10,12,14]"]) == 0
    out = capsys.readouterr().out
    assert "3-D lattice 10x12x14" in out and "72 steps" in out
    assert list(tmp_path.iterdir()) == []


def test_validate_and_info_print_the_estimated_memory(capsys):
    """The estimate is the per-voxel figure of abm.runner times the voxels, on the device the config's backend picks;
    a lattice beyond the free memory is refused by validate naming both numbers."""
    from abm.runner import BYTES_PER_VOXEL, BYTES_PER_VOXEL_PER_FIELD

    per_voxel = BYTES_PER_VOXEL + BYTES_PER_VOXEL_PER_FIELD  # tiny.yaml: one field
    assert main(["validate", str(TINY), "--set", "lattice.shape=[100,100,100]", "--backend", "numpy"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"memory: about {per_voxel * 1e6 / 2**20:.1f} MiB on CPU ({per_voxel} B per voxel x 1,000,000 voxels;")
    assert main(["info", str(TINY), "--set", "lattice.shape=[1000,1000,100]", "--backend", "numpy"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"{TINY}: memory: about {per_voxel * 1e8 / 2**30:.2f} GiB on CPU")
    assert main(["validate", str(TINY), "--set", "lattice.shape=[1000,1000,1000]", "--backend", "numpy"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "lattice.shape: [1000, 1000, 1000] (1,000,000,000 voxels) needs about" in captured.err


def test_memory_on_a_gpu_names_device_and_host(monkeypatch):
    """On a GPU the line gives the device estimate and the host's snapshot copy, each with its free memory, and a
    run whose snapshot copy does not fit in the host's free memory is refused with both numbers (a stand-in backend
    with the attributes the check reads)."""
    import types

    from abm import runner
    from abm.config import ConfigError

    config = load_config(TINY, ["lattice.shape=[100,100,100]"])
    gpu = types.SimpleNamespace(name="cupy", device="GPU 0 (test)", free_memory_bytes=lambda: 2**40)
    monkeypatch.setattr(runner, "host_available_memory_bytes", lambda: 2**30)
    line = runner.describe_memory(config, gpu)
    device = runner.estimated_bytes(config) / 2**20
    copy = runner.snapshot_bytes(config) / 2**20
    assert line == (f"memory: about {device:.1f} MiB on GPU 0 (test) ({runner.bytes_per_voxel(config)} B per voxel x "
                    f"1,000,000 voxels; 1024.00 GiB free); host: about {copy:.1f} MiB per snapshot copy (1.00 GiB free)")
    runner.check_memory(config, gpu)  # fits
    monkeypatch.setattr(runner, "host_available_memory_bytes", lambda: 2**20)
    with pytest.raises(ConfigError, match=r"lattice.shape: \[100, 100, 100\] \(1,000,000 voxels\) needs about 0.0 GiB "
                                          r"of host memory for each snapshot's copy, but only 0.0 GiB is free on the host"):
        runner.check_memory(config, gpu)
    gpu.free_memory_bytes = lambda: 2**20
    with pytest.raises(ConfigError, match=r"needs about 0.\d GiB on GPU 0 \(test\) \(\d+ B per voxel\), but only 0.0 GiB"):
        runner.check_memory(config, gpu)


def test_validate_and_info_of_a_run_above_the_build_limit_do_not_build_the_model(capsys, monkeypatch):
    """configs/large_3d.yaml (about 19 GiB): validate checks the config and the memory (the device's free memory
    stands in as 1 TiB, whatever this machine has) without building the model, as info does; a small config is
    still built (its initial state and field solve checked)."""
    from abm import cli, model, runner
    from kernels.backend import Backend

    built = []

    def record(config, backend):
        built.append(list(config.lattice.shape))
        return object()

    monkeypatch.setattr(runner, "TumorModel", record)
    monkeypatch.setattr(model, "TumorModel", record)
    monkeypatch.setattr(Backend, "free_memory_bytes", lambda self: 2**40)
    large = REPO / "configs" / "large_3d.yaml"
    need = runner.estimated_bytes(load_config(large))
    assert need > cli.VALIDATE_BUILD_LIMIT_BYTES
    assert main(["validate", str(large), "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    valid, state, memory = out.splitlines()
    assert valid.startswith(f"{large}: valid (3-D lattice 384x384x384") and memory.startswith(f"memory: about {need / 2**30:.2f} GiB")
    assert state.startswith("initial state: not built (its run needs more than the 1 GiB")
    assert main(["info", str(large), "--backend", "numpy"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{large}: memory: about {need / 2**30:.2f} GiB")
    assert built == []
    assert main(["validate", str(TINY)]) == 0
    assert built == [[48, 48]] and capsys.readouterr().out.splitlines()[1] == "initial state: built, its fields solved"
    monkeypatch.setattr(Backend, "free_memory_bytes", lambda self: 2**30)
    assert main(["validate", str(large), "--backend", "numpy"]) == 2  # the memory check still refuses what run refuses
    assert f"needs about {need / 2**30:.1f} GiB" in capsys.readouterr().err and built == [[48, 48]]


def test_validate_rejects_what_run_rejects(capsys):
    """A config error is reported by validate as by run: status 2, message naming the key."""
    assert main(["validate", str(TINY), "--set", "tumor.apoptotic_duration_h=-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "tumor.apoptotic_duration_h" in captured.err


def test_info_reports_backend_and_gpu_status(capsys):
    """``tme info`` prints versions, whether a GPU is seen (and why not), and the backend auto picks."""
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"tme-abm {__version__}"
    gpu = next(line for line in lines if line.startswith("gpu: "))
    backend = next(line for line in lines if line.startswith("backend auto -> "))
    if _CUPY is None:
        assert gpu == f"gpu: no: {_CUPY_REASON}"
        assert backend.startswith("backend auto -> numpy (auto: no GPU backend")
        assert f"numpy field-solve threads: {get_backend('numpy').threads} (TME_THREADS to change)" in lines
        solve = next(line for line in lines if line.startswith("numpy field solve: "))
        assert solve.startswith("numpy field solve: compiled loops (numba " if get_backend("numpy").fast_paths
                                else "numpy field solve: NumPy calls (TME_FAST_PATHS")
    else:
        assert gpu.startswith("gpu: yes: GPU ")
        assert backend.startswith("backend auto -> cupy (")


def test_a_bad_thread_count_is_one_error_line_and_nothing_written(tmp_path, capsys, monkeypatch):
    """``TME_THREADS`` that is not a whole number from 1 to 64: ``error:`` naming it, exit 2, no run directory."""
    monkeypatch.setenv("TME_THREADS", "0")
    out = tmp_path / "run"
    assert main(["run", str(REPO / "configs" / "default.yaml"), "--out", str(out), "--set", "time.duration_days=1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: backend: TME_THREADS='0'; allowed: a whole number from 1 to 64 (threads that share a NumPy field solve)"]
    assert not out.exists()
