"""Checkpoints: the complete state of a run after a cell step, in one file, to resume it or to fork arms from it.

A checkpoint holds everything a step reads that a model built again from
the same config does not already have:

* the lattice: every array of the tumor, immune and vessel layers and every
  field (host copies, their dtypes kept);
* the subclones: the trait table, each agent's name, parent, birth time and
  origin, the mutation counters;
* the immune compartment: the systemic pools, activations, the ring buffer
  of past antigen release, and the kill count and time of the last record;
* the treatment: the :class:`abm.therapy.Therapy` object (lines, doses,
  assessors, events), pickled whole;
* the running totals, Mesa's clock (``model.steps``) and the records so far
  (Mesa's DataCollector series and the last record);
* what the runner keeps beside the model (``extra``: the first boundary
  contact, the rows already journaled).

The random numbers are counter-based (:mod:`kernels.random`): their state is
the key, which the seed fixes and a rebuilt model draws again (the
checkpoint stores it to prove that), and the step. The field solvers are
not stored: they warm-start from the fields, and a solver built anew gives
the same bits as one updated in place (:class:`kernels.diffusion.FieldSolver`);
tests/test_checkpoint.py proves that a resumed run is the uninterrupted one.

The file is a header line, then a pickle of a plain mapping (host NumPy
arrays and Python values), written to a temporary name in the run
directory, flushed to disk and renamed into place (:mod:`abm.io`), so a kill
never leaves a torn checkpoint. The header is one line of JSON, ``{"format":
"tme-abm checkpoint", "format_version": 2, "config_sha256": ..., "step":
...}``, so that whether a checkpoint can continue a run is read from its
first bytes (:func:`header`), not by unpickling the whole state; :func:`read`
checks it before it unpickles the rest. A file of another version or config,
or without the header (version 1, written before it, or a damaged file), is
refused. Only open checkpoints you or your runs wrote: unpickling a file can
run code.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

import numpy as np

from abm.io import RunDirectoryError, write_stream
from abm.rundir import CHECKPOINT

if TYPE_CHECKING:
    from abm.model import TumorModel

#: The checkpoint's file name in a run directory (the latest checkpoint; each new one replaces it).
FILE = CHECKPOINT
#: The layout of the file and of :func:`capture`'s mapping; a checkpoint of another version is refused. 1: the
#: pickle alone; 2: a header line before it.
FORMAT_VERSION = 2
#: The header's ``format`` value, which tells a checkpoint from another file.
FORMAT_NAME = "tme-abm checkpoint"
#: The most bytes a header line may take (it takes about 150).
HEADER_MAX_BYTES = 4096
_LAYERS = ("tumor", "immune", "vessels")


@dataclass(frozen=True)
class Trunk:
    """The shared start of branched arms (:mod:`abm.branching`): a state of :func:`capture`, taken before any arm's
    treatment started, and the snapshots taken up to it, ``(cell step, arrays)`` in step order."""

    state: dict[str, Any]
    snapshots: list[tuple[int, dict[str, np.ndarray]]]


def capture(model: "TumorModel", config_sha256: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The model's complete state after its last completed step, as host copies (see the module doc).

    Args:
        model: the model, between steps.
        config_sha256: the hash of the config it runs (:func:`abm.runner.config_hash`).
        extra: the runner's own state (plain Python values), given back by :func:`restore`.
    """
    to_host = model.backend.to_host

    def host(array: Any) -> np.ndarray:
        return np.array(to_host(array), copy=True)  # NumPy's to_host does not copy; the model goes on changing it

    lattice, subclones, immune = model.lattice, model.subclones, model.immune
    layers = {name: {item.name: host(getattr(getattr(lattice, name), item.name))
                     for item in dataclasses.fields(getattr(lattice, name))} for name in _LAYERS}
    return {
        "format_version": FORMAT_VERSION,
        "config_sha256": config_sha256,
        "step": model.steps,
        "random_key": model.run.random_key,
        "layers": layers,
        "fields": {name: host(values) for name, values in lattice.fields.items()},
        "clone_traits": {column: values.copy() for column, values in subclones.traits.items()},
        "clone_agents": [(agent.name, None if agent.parent is None else agent.parent.index, agent.birth_time_h,
                          agent.origin_um, agent.cell_count, agent.live_cell_count) for agent in subclones.agents],
        "mutations": (subclones.mutations_total, subclones.mutations_suppressed),
        "priming": {name: host(getattr(immune, name)) for name in ("pool", "activation", "release_history")},
        "immune_record": (immune.kills_at_last_record, immune.time_at_last_record_h),
        "therapy": copy.deepcopy(model.therapy),
        "totals": {item.name: int(getattr(model.totals, item.name)) for item in dataclasses.fields(model.totals)},
        "model_vars": copy.deepcopy(model.datacollector.model_vars),
        "agenttype_records": copy.deepcopy(model.datacollector._agenttype_records),  # Mesa 3's agent-type series
        "latest": dict(model.latest),
        "extra": copy.deepcopy(extra),
    }


def restore(model: "TumorModel", state: dict[str, Any], therapy: bool = True) -> dict[str, Any]:
    """Put ``state`` (of :func:`capture`) into ``model``, freshly built from the same config; returns its ``extra``.

    Args:
        model: a model just built (at step 0) from the config the state was captured from, on any backend.
        state: the captured state; left unchanged (the model gets copies), so several models can start from it.
        therapy: take the state's treatment; False keeps the model's own (a fork of another arm, taken before
            any arm's treatment started: :mod:`abm.branching`).

    Raises:
        ValueError: the model is not fresh, or its random key is not the state's (another seed).
    """
    if model.steps != 0 or len(model.subclones) != len(model.config.tumor.clones):
        raise ValueError("a checkpoint is restored into a model just built, before its first step")
    if model.run.random_key != state["random_key"]:
        raise ValueError("the checkpoint was taken with another random key (another seed)")
    xp = model.xp
    lattice = model.lattice
    for name in _LAYERS:
        layer = getattr(lattice, name)
        setattr(lattice, name, layer.replace(**{key: xp.array(values) for key, values in state["layers"][name].items()}))
    lattice.fields = {name: xp.array(values) for name, values in state["fields"].items()}
    model.subclones.restore(state["clone_traits"], state["clone_agents"], state["mutations"])
    immune = model.immune
    for name, values in state["priming"].items():
        setattr(immune, name, xp.array(values))
    immune.kills_at_last_record, immune.time_at_last_record_h = state["immune_record"]
    if therapy:
        model.context.therapy = copy.deepcopy(state["therapy"])
    for name, value in state["totals"].items():
        setattr(model.totals, name, xp.asarray(value, dtype=xp.int64))
    model.datacollector.model_vars = copy.deepcopy(state["model_vars"])
    model.datacollector._agenttype_records = copy.deepcopy(state["agenttype_records"])
    model.latest = dict(state["latest"])
    model.steps = state["step"]
    model.context.new_step(model.steps)
    return copy.deepcopy(state["extra"])


def write(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the run directory's checkpoint, atomically (replacing the previous one): its header line
    (the state's ``format_version``, ``config_sha256`` and ``step``), then the state pickled; returns its path."""
    path = Path(run_dir) / FILE
    line = json.dumps({"format": FORMAT_NAME, **{key: state[key] for key in ("format_version", "config_sha256", "step")}})

    def dump(handle: Any) -> None:
        handle.write(line.encode("ascii") + b"\n")
        pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)  # streamed: the state is not held twice

    write_stream(path, dump)
    return path


def header(run_dir: Path, config_sha256: str) -> dict[str, Any]:
    """The header of ``run_dir``'s checkpoint (``format``, ``format_version``, ``config_sha256``, ``step``), read
    from its first line only and checked against the config hash of the run it continues.

    Raises:
        RunDirectoryError: as :func:`read`.
    """
    return _opened(run_dir, config_sha256, lambda handle, checked: checked)


def read(run_dir: Path, config_sha256: str) -> dict[str, Any]:
    """The checkpoint of ``run_dir``, checked against the config hash of the run it continues by its header before
    the state is unpickled.

    Raises:
        RunDirectoryError: no checkpoint, an unreadable one, one without the header (format version 1, or damaged),
            one of another format version or of another config, naming the file.
    """
    return _opened(run_dir, config_sha256, lambda handle, checked: pickle.load(handle))


def _opened(run_dir: Path, config_sha256: str, then: Callable[[BinaryIO, dict[str, Any]], Any]) -> Any:
    """``then(handle, header)``: ``run_dir``'s checkpoint file, open past its header line, and the header, checked."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        raise RunDirectoryError(f"{path}: no checkpoint in {run_dir} (a run writes one every time.checkpoint_every_h "
                                f"and when it is interrupted); it cannot be resumed")
    try:
        with path.open("rb") as handle:
            line = handle.readline(HEADER_MAX_BYTES)
            try:
                checked = json.loads(line) if line.endswith(b"\n") else None
            except ValueError:
                checked = None
            if not isinstance(checked, dict) or checked.get("format") != FORMAT_NAME:
                raise RunDirectoryError(f"{path}: cannot read the checkpoint: it has no header line (format version 1, "
                                        f"written by an earlier tme, or a damaged file); this tme reads version "
                                        f"{FORMAT_VERSION} only: run the config again from the start")
            version = checked.get("format_version")
            if version != FORMAT_VERSION:
                raise RunDirectoryError(f"{path}: checkpoint format version {version!r}; this tme reads version "
                                        f"{FORMAT_VERSION} only: run the config again from the start")
            if checked.get("config_sha256") != config_sha256:
                raise RunDirectoryError(f"{path}: taken from another config (hash {str(checked.get('config_sha256'))[:12]}, "
                                        f"the run's config.yaml gives {config_sha256[:12]}); it cannot continue this run")
            return then(handle, checked)
    except RunDirectoryError:
        raise
    except Exception as exc:  # OSError, and unpickling's many errors for a damaged file
        raise RunDirectoryError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
