"""Running one simulation from a config into a run directory.

Everything that can fail because of the user's input (config, backend,
memory, the initial state and its field solve, output directory) is checked
by :func:`prepare` before the directory is created, so a rejected run leaves
nothing on disk; ``tme validate`` runs the same checks.

While the run goes, its records are journaled at record cadence
(:class:`abm.rundir.Journal`) and it holds the directory's lock. SIGTERM (a
scheduler's time limit) is handled as SIGINT. However it ends (complete,
interrupted, failed on a numerical error or on a failed write such as a full
disk) the directory keeps the records up to the last record, and, unless the
disk refused it, a ``summary.json`` with the status.

At each record the run checks the lattice's faces for tumor cells
(:class:`BoundaryWatch`): the first record with one there is written to the
summary (``boundary_contact_day``, ``boundary_contact_faces``) and warned
about in one ``warning:`` line on stderr, with or without a progress bar,
since growth against the domain's wall no longer models a tumor in tissue.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from abm import __version__
from abm.config import Config, ConfigError, FileVessels, parse_config, to_yaml
from abm import checkpoint, rundir
from abm.checkpoint import Trunk
from abm.io import (
    RunDirectoryError, RunFailed, check_output_directory, create_output_directory, describe_os_error, lock_directory,
    without_negative_zero, write_json, write_parquet, write_snapshot, write_text,
)
from abm.immunity import POLARISATION_COLUMN, immune_series_columns
from abm.interrupts import StopRequest, deferred_interrupts, stop_between_steps
from abm.measurement import NonFiniteRecord
from abm.model import TumorModel
from abm.tables import CLONE_COLUMNS
from abm.therapy import EVENT_COLUMNS
from kernels.backend import Backend, get_backend, host_available_memory_bytes
from kernels.diffusion import FieldSolverError

# Peak bytes per voxel of building the model and running cell steps, measured
# with benchmarks/memory.py on a 64^3 lattice of configs/default.yaml
# (2026-12-03, NumPy): a base of state arrays (tumor, vessels, immune cells),
# random draws, the rules' temporaries and the one solver workspace every
# steady or transient field shares (kernels.diffusion.Workspace: about 84 B
# per voxel in 3-D), and a share per field (its array, its solver's reaction,
# its sink and source while it is solved). Measured 196 + 16 per field
# (tracemalloc), 208 + 19 (peak RSS); docs/performance.md has the per-array
# table. CuPy measured 12 above NumPy's RSS on an H100 before; the constants
# add that margin and round up. Since the field solve's compiled CPU loops
# (kernels/cpu, 2026-12-03) NumPy measures 135 + 28 (tracemalloc) and 146 + 19
# (peak RSS, Numba's own runtime loaded first): the per-field share is the
# larger of the backends', rounded up.
BYTES_PER_VOXEL = 220
BYTES_PER_VOXEL_PER_FIELD = 30


def bytes_per_voxel(config: Config) -> int:
    """Estimated peak bytes per lattice voxel of a run of ``config`` on its device."""
    return BYTES_PER_VOXEL + BYTES_PER_VOXEL_PER_FIELD * len(config.fields)


def estimated_bytes(config: Config) -> int:
    """Rough peak memory of a run of ``config`` on its device, bytes."""
    return config.lattice.voxels * bytes_per_voxel(config)


def snapshot_bytes(config: Config) -> int:
    """Bytes of one snapshot's arrays on the host (:func:`abm.tables.snapshot`): what a run on a GPU copies back
    at each snapshot, beside its device memory."""
    per_voxel = 4 + 1 + 1 + 4  # clone, cell_state, vessel, perfusion
    if config.immune.enabled:
        per_voxel += 4 + 1 + 4  # immune agent, state, exhaustion
        if config.immune.macrophages:
            per_voxel += 4  # polarisation
    per_voxel += sum(8 if field.dtype == "float64" else 4 for field in config.fields.values())
    return config.lattice.voxels * per_voxel


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def describe_memory(config: Config, backend: Backend) -> str:
    """One line: the run's estimated peak memory on ``backend``'s device and what the device has free now; on a
    GPU also the host memory of a snapshot's copy and what the host has free (on the CPU the device is the host)."""
    need, free = estimated_bytes(config), backend.free_memory_bytes()
    line = (f"memory: about {_size(need)} on {backend.device} ({bytes_per_voxel(config)} B per voxel x "
            f"{config.lattice.voxels:,} voxels; {_size(free)} free)")
    if backend.name == "numpy":
        return line
    return f"{line}; host: about {_size(snapshot_bytes(config))} per snapshot copy ({_size(host_available_memory_bytes())} free)"


def check_memory(config: Config, backend: Backend) -> None:
    """Refuse a lattice whose estimated peak memory exceeds what the device has free, or, on a GPU, whose snapshot
    copy exceeds what the host has free."""
    need = estimated_bytes(config)
    have = backend.free_memory_bytes()
    shape = f"lattice.shape: {config.lattice.shape} ({config.lattice.voxels:,} voxels)"
    if need > have:
        raise ConfigError(
            f"{shape} needs about {need / 2**30:.1f} GiB on {backend.device} ({bytes_per_voxel(config)} B per voxel), "
            f"but only {have / 2**30:.1f} GiB is free; use a smaller lattice")
    if backend.name != "numpy":
        copy, host = snapshot_bytes(config), host_available_memory_bytes()
        if copy > host:
            raise ConfigError(
                f"{shape} needs about {copy / 2**30:.1f} GiB of host memory for each snapshot's copy, but only "
                f"{host / 2**30:.1f} GiB is free on the host; use a smaller lattice")


def config_hash(config: Config) -> str:
    """SHA-256 of what fixes a run's results: the resolved config (less ``backend``: NumPy and CuPy give the
    same bits; less ``cohort``: a run is one patient, the config as written; less ``time.checkpoint_every_h``: a
    resumed run is the uninterrupted one) and the contents of a vessel file. ``tme compare`` reuses a run, and
    ``tme run --resume`` a checkpoint, only when this matches."""
    data = config.model_dump(mode="json")
    data.pop("backend", None)
    data.pop("cohort", None)
    data["time"].pop("checkpoint_every_h", None)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8"))
    if isinstance(config.vessels, FileVessels):
        digest.update(Path(config.vessels.file).read_bytes())
    return digest.hexdigest()


def prepare(config: Config) -> TumorModel:
    """Every check a run makes before it writes anything, ending with the built model (initial state and field solve).

    Raises:
        ConfigError: the lattice does not fit in the device's free memory, or the initial field solve fails
            (extreme rates), naming the field.
        BackendError: the backend cannot run here.
    """
    backend = get_backend(config.backend)
    check_memory(config, backend)
    try:
        return TumorModel(config, backend)
    except (FieldSolverError, NonFiniteRecord) as exc:
        raise ConfigError(f"fields: the initial state cannot be computed: {exc}") from None


def tumor_faces(model: TumorModel) -> list[str]:
    """The faces of the model's lattice on which a tumor cell of any state sits, named by axis and end (``z_min``,
    ``z_max`` (3-D), ``y_min``, ``y_max``, ``x_min``, ``x_max``, in that order); reads the faces only, and copies one
    flag per face from the device."""
    clone, xp = model.lattice.tumor.clone, model.lattice.xp
    names, occupied = [], []
    for axis, name in enumerate("zyx"[-clone.ndim:]):
        for end, side in ((0, "min"), (-1, "max")):
            names.append(f"{name}_{side}")
            occupied.append((clone[(slice(None),) * axis + (end,)] >= 0).any())
    flags = model.backend.to_host(xp.stack(occupied))
    return [name for name, flag in zip(names, flags) if flag]


class BoundaryWatch:
    """When tumor cells first reach the lattice's boundary: :meth:`check` at each record, until they have.

    Attributes:
        day: the day of the first record with a tumor cell on a face; None until then.
        faces: the faces it found then (:func:`tumor_faces`); empty until then.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.day: float | None = None
        self.faces: list[str] = []

    def check(self, model: TumorModel) -> None:
        """Look at the model's faces (unless contact was already found); at the first contact, keep its day and faces
        and print one ``warning:`` line to stderr (through tqdm, so that a progress bar stays whole)."""
        if self.day is not None:
            return
        faces = tumor_faces(model)
        if faces:
            self.day, self.faces = model.time_h / 24.0, faces
            tqdm.write(f"warning: {self.out}: tumor cells reached the lattice boundary ({', '.join(faces)}) at day "
                       f"{self.day:g}; from then on the domain's wall shapes the growth: use a larger lattice.shape "
                       f"or a shorter time.duration_days", file=sys.stderr)


#: What a step of :class:`Stepping` can raise that ends a run as ``failed``: a numerical failure, or a refused write
#: (disk full, file-size limit, read-only) of its sink or checkpoint.
FAILURES = (FieldSolverError, NonFiniteRecord, OSError)


def describe_failure(model: TumorModel, error: BaseException) -> str:
    """One line of a failure in :data:`FAILURES` of ``model``'s run: the day it stopped at and what failed (an
    ``OSError`` described by :func:`abm.io.describe_os_error`)."""
    what = describe_os_error(error) if isinstance(error, OSError) else str(error)
    return f"day {model.time_h / 24.0:g}: {what}"


def journal_record(journal: rundir.Journal, model: TumorModel, written: dict[str, int]) -> None:
    """Append the rows of the model's latest record to the journals (clones and events only where new).

    ``written`` counts the lineage rows and events already journaled and is updated.
    """
    time_h = model.time_h
    days = time_h / 24.0
    journal.append("timeseries", model.columns, [[model.latest[column] for column in model.columns]])
    journal.append("clones", CLONE_COLUMNS, [[time_h, days, clone.index, clone.cell_count, clone.live_cell_count]
                                             for clone in model.subclones.agents if clone.cell_count > 0])
    if len(model.subclones) > written["lineage"]:
        lineage = model.lineage(first=written["lineage"])
        journal.append("lineage", lineage.columns, lineage.itertuples(index=False), {"antigens": "uint64"})
        written["lineage"] += len(lineage)
    if model.immune.enabled:
        columns = immune_series_columns(model.config)
        journal.append("immune", columns, [
            [time_h, days, agent.index, agent.name, agent.kind, *agent.series_values(),
             *([agent.polarisation_mean] if POLARISATION_COLUMN in columns else [])] for agent in model.immune.agents])
    if model.config.treatment is not None:
        events = model.therapy.events[written["events"]:]
        journal.append("events", EVENT_COLUMNS, [[event[column] for column in EVENT_COLUMNS] for event in events])
        written["events"] += len(events)


class DirectorySink:
    """Where :class:`Stepping` puts a run's records and snapshots: the run directory ``out``, as they come (its
    record journals, :func:`journal_record`, and its snapshot files).

    Attributes:
        journal: the directory's record journals.
        written: the lineage rows and events journaled so far (:func:`journal_record`).
    """

    def __init__(self, out: Path) -> None:
        self.journal = rundir.Journal(out)
        self.written = {"lineage": 0, "events": 0}
        self._snapshots = out / rundir.SNAPSHOTS

    def record(self, model: TumorModel) -> None:
        """Journal the rows of the model's latest record."""
        journal_record(self.journal, model, self.written)

    def snapshot(self, step: int, arrays: dict[str, Any]) -> None:
        """Write the snapshot ``arrays`` (:meth:`abm.model.TumorModel.snapshot`) of cell step ``step``."""
        write_snapshot(self._snapshots / rundir.snapshot_name(step), arrays)


class Stepping:
    """The one stepping loop of a model: :func:`run`'s and :func:`resume`'s, the trunk's of branched arms
    (:func:`abm.branching.trunk`) and the live model's of ``tme explore`` (:class:`abm.live.LiveRun`, which runs it
    one record at a time); no other code of the project steps a model (tests/test_architecture.py). After each step
    it does the runner's bookkeeping in one order: at a record, the record to the sink and the boundary check
    (:class:`BoundaryWatch`); at ``time.snapshot_every_h``, a snapshot to the sink; at ``time.checkpoint_every_h``
    before the run's end, the caller's checkpoint.

    A sink takes ``record(model)`` (the model's latest record; it keeps ``written``, the lineage rows and events
    it holds by then, :func:`journal_record`) and ``snapshot(step, arrays)``: :class:`DirectorySink` writes them to a
    run directory (a run's, or the live model's), :class:`abm.branching.TrunkSink` keeps them for the branches.

    Attributes:
        between_steps: whether the model holds a completed step (a checkpoint of it can be taken); False while a
            step is under way, so also after an interruption inside one.
    """

    def __init__(self, model: TumorModel, sink: Any, boundary: BoundaryWatch) -> None:
        self.model = model
        self.sink = sink
        self.boundary = boundary
        self.between_steps = True
        self._snapshot_steps = model.config.time.cadence_steps("snapshot_every_h")
        self._checkpoint_steps = model.config.time.cadence_steps("checkpoint_every_h")

    def state(self) -> dict[str, Any]:
        """The runner's own state, for a checkpoint's ``extra`` (:func:`abm.checkpoint.capture`): the rows the sink
        holds (``written``) and the boundary contact (``boundary``: day, faces)."""
        return {"written": self.sink.written, "boundary": (self.boundary.day, self.boundary.faces)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the runner's own state of a restored model (:meth:`state`, as :func:`abm.checkpoint.restore`
        gives it back)."""
        self.sink.written = state["written"]
        self.boundary.day, self.boundary.faces = state["boundary"]

    def begin(self) -> None:
        """The bookkeeping of a model at step 0: its first record, the boundary check and, with snapshots, its
        snapshot."""
        model = self.model
        self.sink.record(model)
        self.boundary.check(model)
        if self._snapshot_steps is not None:
            self.sink.snapshot(0, model.snapshot())

    def run(self, until: int, stop: StopRequest | None = None, bar: tqdm | None = None,
            save_checkpoint: Callable[[], None] | None = None) -> None:
        """Step the model to cell step ``until``, with the bookkeeping after each step.

        Args:
            stop: checked before each step (:func:`abm.interrupts.stop_between_steps`); None: signals act as their
                handlers outside say.
            bar: advanced by one per step, with the day and the tumor's cells at each record.
            save_checkpoint: called at the checkpoint cadence (``time.checkpoint_every_h``), except at the config's last
                step; None: no checkpoints.

        Raises:
            FieldSolverError, NonFiniteRecord: a numerical failure in a step (:data:`FAILURES`).
            OSError: a refused write of the sink or the checkpoint (:data:`FAILURES`).
            KeyboardInterrupt: from ``stop``, or a signal during a step.
        """
        model, sink, boundary = self.model, self.sink, self.boundary
        total_steps = model.config.time.total_steps
        while model.steps < until:
            if stop is not None:
                stop.check()
            self.between_steps = False
            model.step()
            self.between_steps = True
            recorded = model.steps % model.record_steps == 0
            if recorded:
                sink.record(model)
                boundary.check(model)
            if self._snapshot_steps is not None and model.steps % self._snapshot_steps == 0:
                sink.snapshot(model.steps, model.snapshot())
            if (save_checkpoint is not None and self._checkpoint_steps is not None
                    and model.steps % self._checkpoint_steps == 0 and model.steps < total_steps):
                save_checkpoint()
            if bar is not None:
                bar.update(1)
                if recorded:
                    bar.set_postfix(day=f"{model.time_h / 24:.1f}", cells=model.latest["tumor_cells_total"])


def _write_tables(out: Path, model: TumorModel) -> None:
    """The run's tables as Parquet, from the model's in-memory series."""
    write_parquet(rundir.table_path(out, "timeseries"), model.timeseries())
    write_parquet(rundir.table_path(out, "clones"), model.clone_series())
    write_parquet(rundir.table_path(out, "lineage"), model.lineage())
    if model.immune.enabled:
        write_parquet(rundir.table_path(out, "immune"), model.immune_series())
    if model.config.treatment is not None:
        write_parquet(rundir.table_path(out, "events"), model.events())


def run(config: Config, out: Path, progress: bool = True, trunk: Trunk | None = None) -> dict[str, Any]:
    """Run ``config`` to its end and write the run directory ``out`` (layout: :mod:`abm.rundir`).

    Args:
        trunk: start from this shared state instead of step 0 (a branched arm, :mod:`abm.branching`): its
            checkpoint, taken before any treatment started, and the snapshots up to it; the run keeps its own
            treatment and writes the directory an unbranched run writes.

    Returns:
        The summary written to ``out/summary.json``.

    Raises:
        ConfigError, BackendError, RunDirectoryError: before anything is written.
        RunFailed: a numerical failure or a failed write ended the run; the directory holds the records so far.
        KeyboardInterrupt: SIGINT or SIGTERM; the directory holds the records so far (status ``interrupted``) and a
            checkpoint of the last completed step.
    """
    out = Path(out)
    check_output_directory(out)
    model = prepare(config)
    create_output_directory(out)
    lock = lock_directory(out)
    try:
        check_output_directory(out)  # a writer that got here first and has finished since
        restored = None if trunk is None else checkpoint.restore(model, trunk.state, therapy=False)
        return _simulate(config, model, out, progress, restored, [] if trunk is None else trunk.snapshots)
    finally:
        lock.close()


def read_run_config(out: Path, backend: str | None = None) -> Config:
    """The config of the run directory ``out`` (its ``config.yaml``, less the ``run`` section), on ``backend`` if
    given (a run gives the same bits on either).

    Raises:
        RunDirectoryError: no run directory, or a ``config.yaml`` that is unreadable or no longer a valid config.
    """
    path = Path(out) / rundir.CONFIG
    raw = rundir.open_run(out).config
    raw.pop("run", None)
    if backend is not None:
        raw["backend"] = backend
    try:
        return parse_config(raw, str(path))
    except ConfigError as exc:
        raise RunDirectoryError(str(exc)) from None


def resume(out: Path, progress: bool = True, backend: str | None = None) -> dict[str, Any]:
    """Continue the run of the directory ``out`` from its checkpoint to its end, in place: the same tables,
    snapshots and final state as a run never stopped.

    Only the run's own files change: the journals are rewritten up to the checkpoint, the tables and summary of
    the earlier stop and the snapshots after the checkpoint are replaced as the run passes them again.

    Args:
        backend: run on this backend instead of the one ``config.yaml`` names.

    Raises:
        RunDirectoryError: before anything is written: not a run directory, a complete run, no checkpoint, or one
            of another format version or another config; another process writes the directory.
        ConfigError, BackendError: as :func:`run`, before anything is written.
        RunFailed, KeyboardInterrupt: as :func:`run`.
    """
    out = Path(out)
    status = rundir.open_run(out).status
    if status == "complete":
        raise RunDirectoryError(f"--resume {out}: the run is complete; there is nothing to resume")
    config = read_run_config(out, backend)
    state = checkpoint.read(out, config_hash(config))
    model = prepare(config)
    lock = lock_directory(out)
    try:
        if rundir.summary_status(out) == "complete":  # another resume got here first and has finished since
            raise RunDirectoryError(f"--resume {out}: the run is complete; there is nothing to resume")
        restored = checkpoint.restore(model, state)
        return _simulate(config, model, out, progress, restored, [])
    finally:
        lock.close()


def continue_or_clear(config: Config, out: Path) -> str:
    """Ready the run directory ``out`` of an unfinished run of ``config`` (``tme compare``'s restart) to go on:
    ``complete`` where the run has completed (nothing is touched), ``resume`` where it holds a checkpoint of this
    config to continue from (:func:`resume`), else ``start``: emptied of the files a run writes
    (:func:`abm.rundir.clear_run_directory`), for :func:`run`.

    Raises:
        RunDirectoryError: a file there that no run writes, or another process writes the directory.
    """
    out = Path(out)
    if rundir.summary_status(out) == "complete":
        return "complete"
    if (out / checkpoint.FILE).is_file():
        try:
            checkpoint.header(out, config_hash(config))  # its first line only: the state is unpickled by resume
            return "resume"
        except RunDirectoryError:
            pass  # unreadable, another version or another config: the run starts again
    return "start" if rundir.clear_run_directory(out) else "complete"


def run_meta(config: Config, backend: Backend) -> dict[str, Any]:
    """What ``config.yaml``'s ``run`` section and the summary say of how a run of ``config`` ran: the version, the
    backend (and why it was chosen), the device and the config's hash (:func:`config_hash`)."""
    return {"tme_abm_version": __version__, "backend": backend.name, "backend_reason": backend.reason,
            "device": backend.device, "config_sha256": config_hash(config)}


def begin_run_directory(out: Path, config: Config, model: TumorModel, meta: dict[str, Any]) -> None:
    """The first files of the run directory of ``config`` run by ``model``: ``config.yaml`` (the resolved config with
    ``meta``, :func:`run_meta`) and, with immune cells, the agent numbering, complete from the start (a killed run has
    it too)."""
    write_text(out / rundir.CONFIG, to_yaml(config, {"run": meta}))
    if model.immune.enabled:
        write_parquet(rundir.table_path(out, rundir.AGENTS), model.immune.agent_table())


def _restart_files(out: Path, model: TumorModel, journal: rundir.Journal, written: dict[str, int]) -> None:
    """Bring the run directory ``out`` to the restored ``model``'s step: the journals hold the records up to it
    (``written`` counts the lineage rows and events journaled then); the tables and summary of an earlier end and
    the snapshots after the step (a run stopped past its checkpoint) are removed."""
    journal.replace("timeseries", model.columns, zip(*(model.datacollector.model_vars[column] for column in model.columns)))
    clones = model.clone_series()
    journal.replace("clones", CLONE_COLUMNS, clones[list(CLONE_COLUMNS)].itertuples(index=False))
    lineage = model.lineage().iloc[:written["lineage"]]
    journal.replace("lineage", lineage.columns, lineage.itertuples(index=False), {"antigens": "uint64"})
    if model.immune.enabled:
        journal.replace("immune", immune_series_columns(model.config), model.immune_series().itertuples(index=False))
    if model.config.treatment is not None:
        events = model.therapy.events[:written["events"]]
        journal.replace("events", EVENT_COLUMNS, [[event[column] for column in EVENT_COLUMNS] for event in events])
    for table in rundir.TABLES:
        rundir.table_path(out, table).unlink(missing_ok=True)
    (out / rundir.SUMMARY).unlink(missing_ok=True)
    for path, step in rundir.list_snapshots(out):
        if step > model.steps:
            path.unlink()


def _simulate(config: Config, model: TumorModel, out: Path, progress: bool, restored: dict[str, Any] | None,
              snapshots_before: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """:func:`run`'s and :func:`resume`'s stepping (:class:`Stepping`) into the locked directory ``out``, and their final
    writes.

    Args:
        restored: the runner's state of a restored model (:func:`abm.checkpoint.restore`'s ``extra``); None for a
            model at step 0.
        snapshots_before: ``(step, arrays)`` of the snapshots a restored model took before its step, to write.
    """
    total_steps = config.time.total_steps
    meta = run_meta(config, model.backend)
    sink = DirectorySink(out)
    stepping = Stepping(model, sink, BoundaryWatch(out))
    if restored is not None:
        stepping.restore(restored)

    def save_checkpoint() -> None:
        checkpoint.write(out, checkpoint.capture(model, meta["config_sha256"], stepping.state()))

    started = time.perf_counter()
    status = "complete"
    failure = None
    disk_failed = False
    try:
        with stop_between_steps() as stop:
            begin_run_directory(out, config, model, meta)
            if restored is None:
                stepping.begin()
            else:
                _restart_files(out, model, sink.journal, sink.written)
                for step, arrays in snapshots_before:
                    sink.snapshot(step, arrays)
            with tqdm(total=total_steps, initial=model.steps, unit="step", desc="simulating", disable=not progress,
                      leave=True) as bar:
                stepping.run(total_steps, stop, bar, save_checkpoint)
    except KeyboardInterrupt:
        status = "interrupted"
    except FAILURES as exc:
        status = "failed"
        failure = describe_failure(model, exc)
        disk_failed = isinstance(exc, OSError)
    wall_s = time.perf_counter() - started

    summary = without_negative_zero({  # as summary.json will hold it
        "status": status,
        **meta,
        "seed": config.seed,
        "cell_steps": model.steps,
        "simulated_days": model.time_h / 24.0,
        "wall_seconds": wall_s,
        "voxel_steps_per_second": config.lattice.voxels * model.steps / wall_s if wall_s > 0 else math.nan,
        "boundary_contact_day": stepping.boundary.day,
        "boundary_contact_faces": stepping.boundary.faces,
        "final": {key: rundir.finite_or_none(value) for key, value in model.latest.items()},
        "treatment": model.therapy.summary(model.time_h),
    })
    try:
        with deferred_interrupts():
            if failure is not None:
                summary["error"] = failure
            if status == "interrupted" and stepping.between_steps:  # resumable from the last completed step
                save_checkpoint()
            if disk_failed:  # the journals hold the records; another large write would likely fail too
                sink.journal.close()
            else:
                _write_tables(out, model)
                sink.journal.remove()
            write_json(out / rundir.SUMMARY, summary)
            if status == "complete":  # nothing left to resume
                (out / checkpoint.FILE).unlink(missing_ok=True)
    except OSError as exc:
        sink.journal.close()
        lost = describe_os_error(exc)
        raise RunFailed(f"{out}: {failure + '; then ' if failure else ''}{lost}; the records up to the last record "
                        f"are in {out / rundir.RECORDS}") from None
    if status == "interrupted":
        raise KeyboardInterrupt
    if failure is not None:
        raise RunFailed(f"{out}: the run failed at {failure}; its records up to then are in the run directory")
    return summary
