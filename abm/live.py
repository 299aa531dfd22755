"""A model stepped on demand into a run directory: the live mode of ``tme explore CONFIG``.

:class:`LiveRun` builds the model (:func:`abm.runner.prepare`, so every check
of ``tme run`` is made first) and writes what ``tme run`` writes while it goes:
``config.yaml``, the agents table, the record journals
(:func:`abm.runner.journal_record`), and a snapshot at every record (``tme run``
writes them at ``time.snapshot_every_h``; a live view wants each record). So
the folder is an unfinished run directory that :func:`abm.rundir.open_run`
reads like any other, and the explorer draws it with the same pictures as a
finished run. The folder is the caller's (a temporary one, removed by it).
"""
from __future__ import annotations

from pathlib import Path

from abm import rundir
from abm.config import Config, ConfigError, load_config
from abm.io import write_snapshot
from abm.measurement import NonFiniteRecord
from abm.model import TumorModel
from abm.runner import begin_run_directory, journal_record, prepare, run_meta
from kernels.backend import BackendError
from kernels.diffusion import FieldSolverError

#: What building a live model can raise for a bad config or backend (nothing is written then).
REFUSED = (ConfigError, BackendError)
#: What advancing a live model can raise: a numerical failure or a failed write (its records so far stay).
FAILED = (NonFiniteRecord, FieldSolverError, OSError)
#: The config loader, for viz: :mod:`viz` reaches the model only through this module (and run directories through
#: :mod:`abm.rundir`).
load = load_config


def check(path: Path, overrides: list[str]) -> None:
    """Every check ``tme run`` makes of the config at ``path`` with ``overrides``, writing nothing.

    Raises:
        ConfigError, BackendError: the config or backend is refused.
    """
    prepare(load_config(path, overrides))


class LiveRun:
    """A model and the run directory its records go to, advanced one record at a time.

    Args:
        config: a validated config.
        folder: an existing empty folder, written as a run directory.

    Attributes:
        model: the :class:`abm.model.TumorModel`.
        folder: the run directory.

    Raises:
        ConfigError, BackendError: as :func:`abm.runner.prepare` (before anything is written).
    """

    def __init__(self, config: Config, folder: Path) -> None:
        self.model: TumorModel = prepare(config)
        self.folder = Path(folder)
        self._journal = rundir.Journal(self.folder)
        self._written = {"lineage": 0, "events": 0}
        begin_run_directory(self.folder, config, self.model, run_meta(config, self.model.backend))
        self._record()

    @property
    def done(self) -> bool:
        """Whether the model has run the config's ``time.duration_days``."""
        return self.model.steps >= self.model.config.time.total_steps

    def advance(self) -> None:
        """Step the model to its next record, journal the record and write a snapshot of it (steps after the last
        record of the run are run without one, as in ``tme run``).

        Raises:
            abm.measurement.NonFiniteRecord, kernels.diffusion.FieldSolverError: a numerical failure (the folder
                keeps the records before it).
        """
        model = self.model
        total = model.config.time.total_steps
        while model.steps < total:
            model.step()
            if model.steps % model.record_steps == 0:
                self._record()
                return

    def _record(self) -> None:
        journal_record(self._journal, self.model, self._written)
        write_snapshot(self.folder / rundir.SNAPSHOTS / rundir.snapshot_name(self.model.steps), self.model.snapshot())

    def close(self) -> None:
        """Close the journals (the folder stays; it is the caller's to remove)."""
        self._journal.close()
