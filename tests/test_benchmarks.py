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
                             "--steps", "1", "--coarsening", "1,2", "--json", str(rows_file)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "16^3 (4,096 voxels, fields at cell resolution)" in result.stdout and "ms/step" in result.stdout
    assert "16^3 (4,096 voxels, fields on 1/2)" in result.stdout and "field line sweep" in result.stdout
    rows = json.loads(rows_file.read_text())
    assert [(row["coarsening"], row["round"]) for row in rows] == [(1, 1), (2, 1)]
    for row in rows:
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


def test_compare_throughput_reports_the_grid_of_workers_and_branching_on_small_settings(tmp_path):
    """benchmarks/compare_throughput.py on two arms of 6 days on 40 x 40: every cell of workers (1, 2) x mode
    (branched, unbranched), its runs per hour from its own wall time, and the ratios from those; a bad list is a
    usage error."""
    rows_file = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "benchmarks/compare_throughput.py", "--workers", "1,2", "--arms",
                             "untreated,chemo_only", "--set", "time.duration_days=6", "--set", "lattice.shape=[40,40]",
                             "--set", "time.snapshot_every_h=null", "--json", str(rows_file)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "branch point: step 60 (day 5)" in result.stdout and "load average" in result.stdout
    rows = {(row["workers"], row["mode"]): row for row in json.loads(rows_file.read_text())}
    assert set(rows) == {(1, "branched"), (1, "unbranched"), (2, "branched"), (2, "unbranched")}
    for (workers, mode), row in rows.items():
        assert row["runs"] == 2 and row["failed_runs"] == 0
        assert row["cell_steps"] == {"branched": 84, "unbranched": 144}[mode]
        assert row["runs_per_hour"] == 2 / row["wall_s"] * 3600
        assert row["speedup_vs_first_workers"] == row["runs_per_hour"] / rows[1, mode]["runs_per_hour"]
        assert row["branched_vs_unbranched"] == rows[workers, "branched"]["runs_per_hour"] / rows[
            workers, "unbranched"]["runs_per_hour"]
        assert f"{workers} worker(s), {mode:>10}: 2 runs (0 failed)" in result.stdout
    assert "2 worker(s): branched against unbranched: x" in result.stdout
    refused = subprocess.run([sys.executable, "benchmarks/compare_throughput.py", "--workers", "1,two"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--workers '1,two'" in refused.stderr


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


def test_large_3d_benchmark_times_another_preset_treated_by_an_arm(tmp_path):
    """benchmarks/large_3d.py --config --arm (what benchmarks/gpu_presets.sh runs on each GPU size of a 3-D preset),
    here shrunk to a tiny cube: the preset's own run length, the arm's treatment, no large_3d target."""
    rows_file = tmp_path / "row.json"
    result = subprocess.run([sys.executable, "benchmarks/large_3d.py", "--config", "configs/therapy_macrophages_3d_gpu.yaml",
                             "--arm", "anti_pd1_csf1r", "--backend", "numpy", "--steps", "2", "--set",
                             "lattice.shape=[16, 16, 16]", "--set", "tumor.initial.radius_um=60", "--json",
                             str(rows_file)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "configs/therapy_macrophages_3d_gpu.yaml, arm anti_pd1_csf1r on numpy: 16x16x16" in result.stdout
    assert "target" not in result.stdout
    row = json.loads(rows_file.read_text())
    assert row["arm"] == "anti_pd1_csf1r" and row["total_steps"] == 35 * 12 and row["steps_timed"] == 1
    refused = subprocess.run([sys.executable, "benchmarks/large_3d.py", "--config", "configs/therapy_macrophages_3d_gpu.yaml",
                              "--arm", "nonesuch", "--backend", "numpy", "--steps", "1", "--set", "lattice.shape=[16, 16, 16]"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "arm nonesuch: no arm of that name" in refused.stderr


def test_gpu_presets_script_parses_and_times_every_gpu_size():
    """benchmarks/gpu_presets.sh is valid bash and runs the large_3d benchmark on each configs/*_3d_gpu.yaml."""
    script = REPO / "benchmarks" / "gpu_presets.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text(encoding="utf-8")
    assert "configs/*_3d_gpu.yaml" in text and 'benchmarks/large_3d.py --config "$config"' in text
    assert sorted((REPO / "configs").glob("*_3d_gpu.yaml")), "no GPU size of a 3-D preset to time"


def test_versions_benchmark_interleaves_the_cases_and_reports_ratios(tmp_path):
    rows_file = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "benchmarks/versions.py", "--case", f"a={REPO}", "--case", f"b={REPO}:2:1",
                             "--size", "16", "--rounds", "2", "--warmup", "0", "--steps", "1", "--json", str(rows_file)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(rows_file.read_text())
    assert [(row["round"], row["case"], row["coarsening"], row["threads"]) for row in rows] == [
        (1, "a", 1, None), (1, "b", 2, 1), (2, "b", 2, 1), (2, "a", 1, None)]
    assert "round 1 b (c=2, TME_THREADS=1): " in result.stdout
    assert all(row["step_ms"] > 0 and "tumor_division" in row["rules_ms"] and row["live_cells"] > 0 for row in rows)
    ratios = [rows[0]["step_ms"] / rows[1]["step_ms"], rows[3]["step_ms"] / rows[2]["step_ms"]]
    assert f"a / b: {ratios[0]:.2f}, {ratios[1]:.2f}" in result.stdout


def test_versions_benchmark_refuses_a_bad_case(tmp_path):
    for case, message in (("nameless", "expected NAME=PATH[:FACTOR"), (f"a={REPO}:0", "expected NAME=PATH[:FACTOR"),
                          (f"a={REPO}:1:0", "expected NAME=PATH[:FACTOR"), (f"a={REPO}:1:x", "expected NAME=PATH[:FACTOR"),
                          (f"a={REPO}:1:1:1", "expected NAME=PATH[:FACTOR"), (f"a={tmp_path}", "is not a source tree")):
        result = subprocess.run([sys.executable, "benchmarks/versions.py", "--case", case], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr and result.stdout == ""
