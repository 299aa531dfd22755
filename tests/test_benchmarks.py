"""The benchmarks run end to end on tiny inputs (their figures are for docs/performance.md, not asserted here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_scale_benchmark_reports_every_figure_for_a_small_cube(tmp_path):
    rows_file = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "benchmarks/scale.py", "--backend", "numpy", "--sizes", "16", "--warmup", "0",
                             "--steps", "1", "--json", str(rows_file)], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "16^3 (4,096 voxels)" in result.stdout and "ms/step" in result.stdout and "field line sweep" in result.stdout
    (row,) = json.loads(rows_file.read_text())
    assert row["voxels"] == 16**3 and row["step_ms"] > 0 and row["sweep_bytes_per_s"] > 0
    assert set(row["rules_ms"]) >= {"fields", "immune_movement", "tumor_division"}
    assert row["host_bytes_per_voxel"] >= 0


def test_scale_benchmark_refuses_a_bad_size_list():
    result = subprocess.run([sys.executable, "benchmarks/scale.py", "--sizes", "96,big"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "--sizes '96,big'" in result.stderr


def test_fields_and_their_solvers_keep_at_most_150_bytes_per_voxel():
    """configs/immune_excluded.yaml (3-D, five fields): the fields and everything their solvers keep between steps
    (benchmarks/inventory.py) fit in 150 bytes per voxel, because the solvers share one workspace and each keeps
    only its reaction of its own."""
    from abm.config import load_config
    from abm.model import TumorModel
    from benchmarks.inventory import CONFIG, inventory
    from kernels.backend import get_backend

    model = TumorModel(load_config(CONFIG, ["lattice.shape=[32, 32, 32]"]), get_backend("numpy"))
    model.step()
    rule = model.rule("fields")
    assert len(rule.solvers) == 5 and all(solver.workspace is rule.workspace for solver in rule.solvers.values())
    rows = inventory(model)
    own = {path for path, _, _ in rows if path.startswith("fields rule.solvers")}
    assert own == {f"fields rule.solvers.{name}.reaction" for name in rule.solvers}
    kept = sum(per_voxel for path, _, per_voxel in rows if path.startswith(("lattice.fields", "fields rule")))
    assert 100 <= kept <= 150


def test_compare_throughput_reports_runs_per_hour_for_one_and_two_workers(tmp_path):
    rows_file = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "benchmarks/compare_throughput.py", "--workers", "1,2", "--arms",
                             "untreated,chemo_only", "--set", "time.duration_days=6", "--json", str(rows_file)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 worker(s): 2 runs (0 failed)" in result.stdout and "2 worker(s): 2 runs (0 failed)" in result.stdout
    one, two = json.loads(rows_file.read_text())
    assert (one["workers"], two["workers"]) == (1, 2) and one["runs"] == two["runs"] == 2
    assert one["runs_per_hour"] == 2 / one["wall_s"] * 3600 and one["speedup"] == 1.0
    assert two["speedup"] == two["runs_per_hour"] / one["runs_per_hour"]
    assert "load average" in result.stdout and one["load_before"] >= 0 and two["load_after"] >= 0


def test_compare_throughput_refuses_a_bad_worker_list():
    result = subprocess.run([sys.executable, "benchmarks/compare_throughput.py", "--workers", "1,two"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--workers '1,two'" in result.stderr


def test_branching_benchmark_reports_runs_per_hour_with_and_without_branching():
    result = subprocess.run([sys.executable, "benchmarks/branching.py", "--arms", "untreated,chemo_only", "--repeats", "1",
                             "--set", "time.duration_days=6", "--set", "lattice.shape=[40,40]",
                             "--set", "time.snapshot_every_h=null"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "branch point: step 60 (day 5)" in result.stdout
    assert "unbranched:" in result.stdout and "144 cell steps" in result.stdout and "84 cell steps" in result.stdout
    assert "branched / unbranched runs per hour:" in result.stdout


def test_branching_benchmark_refuses_an_unknown_arm():
    result = subprocess.run([sys.executable, "benchmarks/branching.py", "--arms", "nonesuch"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "nonesuch" in result.stderr


def test_large_3d_benchmark_times_steps_and_extrapolates_the_whole_run(tmp_path):
    """benchmarks/large_3d.py (run by benchmarks/gpu_session.sh at full size) on a tiny cube: it builds the preset,
    times the steps asked for and extrapolates the mean step to the config's 2400 steps."""
    rows_file = tmp_path / "row.json"
    result = subprocess.run([sys.executable, "benchmarks/large_3d.py", "--backend", "numpy", "--steps", "3", "--set",
                             "lattice.shape=[16, 16, 16]", "--set", "tumor.initial.radius_um=60", "--json",
                             str(rows_file)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "configs/large_3d.yaml on numpy: 16x16x16 (4,096 voxels)" in result.stdout
    assert "2400 steps extrapolated" in result.stdout
    row = json.loads(rows_file.read_text())
    assert row["steps_timed"] == 2 and row["total_steps"] == 2400 and row["cells_end"] > 0
    assert row["extrapolated_min"] == 2400 * row["step_s"] / 60.0
    assert set(row["rules_s"]) >= {"fields", "tumor_division", "immune_movement", "drug_kill"}


def test_gpu_session_script_parses_and_runs_the_large_3d_benchmark():
    """benchmarks/gpu_session.sh is valid bash and times configs/large_3d.yaml at full size."""
    script = REPO / "benchmarks" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "benchmarks/large_3d.py --backend cupy" in script.read_text(encoding="utf-8")
