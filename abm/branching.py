"""Branched arms: the arms of one seed share their run up to the first step at which any arm's treatment acts.

Before its ``start_day`` a treatment does nothing: no line, no dose, no
assessment, every plasma level 0 (:class:`abm.therapy.Therapy`). Arms that
differ in their treatment alone therefore hold the same state, bit for bit,
at every step before the earliest start of any arm (:func:`branch_step`).
``tme compare`` (:mod:`abm.comparison`) simulates that stretch once per seed
(the *trunk*, :func:`trunk`), takes a checkpoint of it
(:func:`abm.checkpoint.capture`) and the snapshots up to it, and runs every
arm from there (:func:`abm.runner.run` with the trunk), each with its own,
fresh treatment. Each arm's run directory is the one an unbranched run
writes (tables, snapshots, summary less its timing;
tests/test_branching.py proves it).

The branch point is conservative: it is the earliest start of treatment of
any arm, even where two arms' first lines are the same, so progression- or
response-triggered lines never matter. Where the arms differ in anything
besides their treatment, or one starts at step 0, there is no branch point
and each arm runs from step 0. ``tme compare --no-branch`` runs every arm
from step 0 anyway.

The arms of one seed become one job (the trunk, then the arms in turn, in
one worker), so a comparison's parallelism is its seeds: with fewer seeds
than workers, ``--no-branch`` may finish sooner.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from abm.checkpoint import Trunk, capture
from abm.config import Config
from abm.io import RunDirectoryError, RunFailed
from abm.measurement import NonFiniteRecord, record_columns
from abm.model import TumorModel
from abm.runner import BoundaryWatch, Stepping, continue_or_clear, prepare, resume, run
from kernels.diffusion import FieldSolverError

#: Tolerance of a treatment's start time, h (as :meth:`abm.therapy.Therapy.begin_step` compares it).
_START_SLACK_H = 1e-9


def branch_step(configs: list[Config]) -> int:
    """The cell step up to which the runs of ``configs`` (the arms of one seed) are the same: the first step at
    whose start any arm's treatment starts; 0 where they differ in anything but their treatment (then there is no
    shared stretch)."""
    first = configs[0]

    def untreated(config: Config) -> dict:
        return config.model_dump(mode="json", exclude={"treatment"})

    if any(untreated(config) != untreated(first) or record_columns(config) != record_columns(first)
           for config in configs[1:]):
        return 0
    if any(config.treatment is None for config in configs):
        return 0
    dt_h = first.time.dt_cell_h
    start_h = min(config.treatment.start_day * 24.0 for config in configs) - _START_SLACK_H
    step = max(0, round(start_h / dt_h))
    while step > 0 and (step - 1) * dt_h >= start_h:
        step -= 1
    while step * dt_h < start_h:
        step += 1
    return min(step, first.time.total_steps)


class TrunkSink:
    """Where the trunk's stepping loop (:class:`abm.runner.Stepping`) puts its records and snapshots: in memory, for
    the branches. A record's rows stay in the model's series, which the trunk's checkpoint holds (each branch
    journals them from there, as a resumed run does); the sink counts them.

    Attributes:
        written: the lineage rows and events of the model's records so far (what a run's journals would hold).
        snapshots: ``(cell step, arrays)`` of the snapshots taken (:meth:`abm.model.TumorModel.snapshot`), in order.
    """

    def __init__(self) -> None:
        self.written = {"lineage": 0, "events": 0}
        self.snapshots: list[tuple[int, dict[str, Any]]] = []

    def record(self, model: TumorModel) -> None:
        """Count the lineage rows and events of the model's latest record."""
        self.written = {"lineage": len(model.subclones), "events": len(model.therapy.events)}

    def snapshot(self, step: int, arrays: dict[str, Any]) -> None:
        """Keep the snapshot ``arrays`` of cell step ``step``."""
        self.snapshots.append((step, arrays))


def trunk(config: Config, steps: int, label: str) -> Trunk:
    """Run ``config`` (any of the arms) for ``steps`` cell steps through the runner's stepping loop
    (:class:`abm.runner.Stepping`) without writing: the state then (with the runner's own: journaled rows, boundary
    contact) and the snapshots taken up to it.

    Args:
        label: names the runs in the warning of a first boundary contact.

    Raises:
        FieldSolverError, NonFiniteRecord: a numerical failure before the branch point.
    """
    model = prepare(config)
    sink = TrunkSink()
    stepping = Stepping(model, sink, BoundaryWatch(Path(label)))
    stepping.begin()
    stepping.run(steps)
    return Trunk(capture(model, "", stepping.state()), sink.snapshots)


def run_arms(runs: list[tuple[Config, str]]) -> list[tuple[str, str | None]]:
    """Run the arms of one seed (``(config, directory)`` each) that are not yet complete, branched from their trunk
    where they share one, else each from step 0: ``(directory, None)`` per run, or the message of a failed one.

    Each directory is readied first (:func:`abm.runner.continue_or_clear`): a
    complete run is kept, an unfinished one with a checkpoint of its config
    is resumed from it (:func:`abm.runner.resume`), any other is emptied and
    run; so a job given again (after its worker died, or by a restarted
    comparison) continues where its runs stopped. The trunk is simulated only
    if some arm starts afresh.

    Raises:
        KeyboardInterrupt: SIGINT or SIGTERM; the run under way keeps its records and a checkpoint.
    """
    steps = branch_step([config for config, _ in runs]) if len(runs) > 1 else 0
    shared: Trunk | None = None
    results = []
    for config, out in runs:
        try:
            how = continue_or_clear(config, Path(out))
            if how == "resume":
                resume(Path(out), progress=False, backend=config.backend)  # the backend this comparison asks for
            elif how == "start":
                if steps > 0 and shared is None:
                    shared = _trunk_or_none(runs, steps)
                run(config, Path(out), progress=False, trunk=shared)
        except (RunFailed, RunDirectoryError) as exc:
            results.append((out, str(exc)))
            continue
        results.append((out, None))
    return results


def _trunk_or_none(runs: list[tuple[Config, str]], steps: int) -> Trunk | None:
    """The trunk of ``runs`` (:func:`trunk`, ``steps`` cell steps); None after a numerical failure before the branch
    point (every arm fails there too: each then runs from step 0 and records its failure)."""
    first = Path(runs[0][1])
    try:
        return trunk(runs[0][0], steps, str(first.parent.parent / "*" / first.name))
    except (FieldSolverError, NonFiniteRecord):
        return None


def jobs(runs: list[tuple[Config, str]], branch: bool) -> list[list[tuple[Config, str]]]:
    """The runs of a comparison as jobs: with ``branch`` one per comparison folder (a sweep point's, or the
    comparison's) and seed (a patient's replicate): its arms, branched; else one per run."""
    if not branch:
        return [[job] for job in runs]
    by_seed: dict[tuple[Path, int], list[tuple[Config, str]]] = {}
    for config, out in runs:  # out: <comparison>/runs/<arm>/seed_<n>
        by_seed.setdefault((Path(out).parents[2], config.seed), []).append((config, out))
    return list(by_seed.values())
