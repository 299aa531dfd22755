"""Branched arms: a comparison whose arms start from their shared state writes what one running each arm from step 0
writes, table for table and snapshot for snapshot."""
from __future__ import annotations

import numpy as np
import pandas
import pytest

from abm import branching, checkpoint, rundir
from abm.comparison import compare, run_path
from abm.config import load_config, select_arm
from abm.runner import run
from tests.test_checkpoint import assert_same_run
from tests.test_reliability import SEQUENCING

#: Four arms of the sequencing preset (one progression-triggered), 10 days: treatment starts on day 5 (step 60 of 120).
ARMS = ["untreated", "chemo_only", "checkpoint_then_chemo", "concurrent"]
OVERRIDES = ["backend=numpy", "time.duration_days=10", "time.snapshot_every_h=48", "time.record_every_h=12"]


def test_branched_arms_equal_arms_run_from_step_0(tmp_path):
    config = load_config(SEQUENCING, OVERRIDES)
    branched = compare(config, tmp_path / "branched", 2, ARMS, workers=1, progress=False)
    unbranched = compare(config, tmp_path / "unbranched", 2, ARMS, workers=1, progress=False, branch=False)
    assert branched == unbranched
    for table in rundir.COMPARE_TABLES:
        pandas.testing.assert_frame_equal(pandas.read_parquet(rundir.table_path(tmp_path / "branched", table)),
                                          pandas.read_parquet(rundir.table_path(tmp_path / "unbranched", table)),
                                          check_exact=True, obj=table)
    for arm in ARMS:
        for seed in (1, 2):
            assert_same_run(run_path(tmp_path / "branched", arm, seed), run_path(tmp_path / "unbranched", arm, seed))
    events = rundir.read_table(run_path(tmp_path / "branched", "concurrent", 1), "events")
    assert (events["event"] == "dose").sum() > 0  # the arms were treated after the branch point


def test_the_trunk_holds_what_a_run_checkpoints_at_the_branch_point(tmp_path, monkeypatch):
    """The trunk steps through the run's own loop: its runner state (rows journaled, boundary contact), its layers
    and its snapshots are those of an unbranched run at the branch point (step 60, a record and checkpoint step)."""
    config = select_arm(load_config(SEQUENCING, [*OVERRIDES, "time.checkpoint_every_h=120"]), "concurrent")
    states = []
    monkeypatch.setattr(checkpoint, "write", lambda run_dir, state: states.append(state))
    run(config, tmp_path / "run", progress=False)
    shared = branching.trunk(config, 60, "trunk")
    assert [state["step"] for state in states] == [60] and shared.state["step"] == 60
    assert shared.state["extra"] == states[0]["extra"]
    assert shared.state["extra"]["written"]["lineage"] > 0
    for name, layer in states[0]["layers"].items():
        for key, values in layer.items():
            assert np.array_equal(shared.state["layers"][name][key], values), f"{name}.{key}"
    written = [(step, rundir.read_snapshot(path)) for path, step in rundir.list_snapshots(tmp_path / "run") if step <= 60]
    assert [step for step, _ in shared.snapshots] == [step for step, _ in written] == [0, 24, 48]
    for (step, mine), (_, theirs) in zip(shared.snapshots, written):
        assert mine.keys() == theirs.keys()
        for name in theirs:
            assert np.array_equal(mine[name], theirs[name], equal_nan=True), f"step {step}: {name}"


def test_the_branch_point_is_the_earliest_start_of_any_arm():
    config = load_config(SEQUENCING, ["time.duration_days=10"])
    arms = [select_arm(config, arm) for arm in ARMS]
    assert branching.branch_step(arms) == 60  # day 5 at 2 h steps
    later = arms[1].model_copy(update={"treatment": arms[1].treatment.model_copy(update={"start_day": 7.0})})
    assert branching.branch_step([later, arms[2]]) == 60
    assert branching.branch_step([later]) == 84
    early = arms[0].model_copy(update={"treatment": arms[0].treatment.model_copy(update={"start_day": 0.0})})
    assert branching.branch_step([early, later]) == 0


def test_arms_that_differ_in_more_than_their_treatment_do_not_branch():
    config = load_config(SEQUENCING, ["time.duration_days=10"])
    first, second = select_arm(config, "untreated"), select_arm(config, "chemo_only")
    assert branching.branch_step([first, second.model_copy(update={"seed": 2})]) == 0


@pytest.mark.parametrize("branch", [True, False])
def test_jobs_group_the_arms_of_a_seed_only_when_branching(branch):
    """One job per comparison folder (a sweep point's) and seed: the same seed at two sweep points is two jobs."""
    config = load_config(SEQUENCING, ["time.duration_days=10"])
    runs = [(select_arm(config, arm).model_copy(update={"seed": seed}), f"{point}/runs/{arm}/seed_{seed}")
            for point in ("p0", "p1") for seed in (1, 2) for arm in ARMS[:2]]
    groups = branching.jobs(runs, branch)
    expected = [[f"{point}/runs/{arm}/seed_{seed}" for arm in ARMS[:2]] for point in ("p0", "p1") for seed in (1, 2)]
    assert [[out for _, out in group] for group in groups] == (expected if branch else [[out] for _, out in runs])


@pytest.mark.parametrize("flag, branch", [([], True), (["--no-branch"], False)])
def test_tme_compare_passes_no_branch_to_compare(monkeypatch, tmp_path, flag, branch):
    from abm import cli, comparison

    seen = {}

    def fake_compare(config, out, replicates, arms, workers, progress, branch, **options):
        seen["branch"] = branch
        return {"arms": {}, "failed_runs": [], "reference_arm": None}

    monkeypatch.setattr(comparison, "compare", fake_compare)
    assert cli.main(["compare", str(SEQUENCING), "--out", str(tmp_path / "cmp"), "--quiet", *flag]) == 0
    assert seen == {"branch": branch}
