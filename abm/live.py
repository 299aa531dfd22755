"""A model stepped on demand into a run directory: the live mode of ``tme explore CONFIG``.

:class:`LiveRun` builds the model (:func:`abm.runner.prepare`, so every check
of ``tme run`` is made first) and steps it through the runner's one stepping
loop (:class:`abm.runner.Stepping`) into a :class:`abm.runner.DirectorySink`
of its folder, so it writes what ``tme run`` writes while it goes:
``config.yaml``, the agents table, the record journals and the snapshots, and
warns once of the first boundary contact. A live view wants a picture at each
record, so the live run's config takes its snapshots at the record cadence
(``time.snapshot_every_h`` = ``time.record_every_h``, as its ``config.yaml``
says; results do not depend on it). It writes no checkpoint and no summary:
the folder is an unfinished run directory that :func:`abm.rundir.open_run`
reads like any other, and the explorer draws it with the same pictures as a
finished run. The folder is the caller's (a temporary one, removed by it).
"""
from __future__ import annotations

from pathlib import Path

from abm.config import Config, ConfigError, load_config
from abm.model import TumorModel
from abm.runner import (
    FAILURES, BoundaryWatch, DirectorySink, Stepping, begin_run_directory, describe_failure, prepare, run_meta,
)
from kernels.backend import BackendError

#: What building a live model can raise for a bad config or backend (nothing is written then).
REFUSED = (ConfigError, BackendError)
#: What advancing a live model can raise: a numerical failure or a failed write (its records so far stay);
#: :func:`describe` says what happened.
FAILED = FAILURES
#: The config loader, for viz: :mod:`viz` reaches the model only through this module (and run directories through
#: :mod:`abm.rundir`).
load = load_config
#: One line of a failure in ``FAILED`` of a model (its day and what failed), for viz.
describe = describe_failure


def check(path: Path, overrides: list[str]) -> None:
    """Every check ``tme run`` makes of the config at ``path`` with ``overrides``, writing nothing.

    Raises:
        ConfigError, BackendError: the config or backend is refused.
    """
    prepare(load_config(path, overrides))


def snapshot_every_record(config: Config) -> Config:
    """``config`` with its snapshots at the record cadence (``time.snapshot_every_h`` = ``time.record_every_h``,
    a whole number of cell steps since the record cadence is); nothing else changes."""
    time = config.time.model_copy(update={"snapshot_every_h": config.time.record_every_h})
    return config.model_copy(update={"time": time})


class LiveRun:
    """A model and the run directory its records go to, advanced one record at a time.

    Args:
        config: a validated config (its ``time.snapshot_every_h`` is replaced, :func:`snapshot_every_record`).
        folder: an existing empty folder, written as a run directory.

    Attributes:
        model: the :class:`abm.model.TumorModel`.
        folder: the run directory.

    Raises:
        ConfigError, BackendError: as :func:`abm.runner.prepare` (before anything is written).
    """

    def __init__(self, config: Config, folder: Path) -> None:
        config = snapshot_every_record(config)
        self.model: TumorModel = prepare(config)
        self.folder = Path(folder)
        self._sink = DirectorySink(self.folder)
        self._stepping = Stepping(self.model, self._sink, BoundaryWatch(self.folder))
        begin_run_directory(self.folder, config, self.model, run_meta(config, self.model.backend))
        self._stepping.begin()

    @property
    def done(self) -> bool:
        """Whether the model has run the config's ``time.duration_days``."""
        return self.model.steps >= self.model.config.time.total_steps

    def advance(self) -> None:
        """Step the model to its next record (:class:`abm.runner.Stepping` journals it and writes its snapshot), or,
        after the run's last record, to the run's end (steps without a record, as in ``tme run``).

        Raises:
            abm.measurement.NonFiniteRecord, kernels.diffusion.FieldSolverError, OSError: a numerical failure or a
                refused write (the folder keeps the records before it).
        """
        model = self.model
        next_record = (model.steps // model.record_steps + 1) * model.record_steps
        self._stepping.run(min(next_record, model.config.time.total_steps))

    def close(self) -> None:
        """Close the journals (the folder stays; it is the caller's to remove)."""
        self._sink.journal.close()
