"""tme-abm: agent-based simulator of the tumor microenvironment (model layer).

The public Python API (docs/api.md has a worked example):

* :func:`load_config` (a YAML file and ``--set``-style overrides to a
  validated :class:`Config`; :class:`ConfigError` names the key),
* :func:`select_arm` (a config with its treatment set to one of its arms),
* :class:`TumorModel` (build from a config, ``step()``, read its state),
* :func:`run` (a config to its end, into a run directory),
* :func:`open_run` (a run directory as a :class:`RunDirectory`: config,
  summary, tables, snapshots; :class:`RunDirectoryError` names a file it
  cannot read),
* :func:`compare` (every arm x replicate into a comparison directory).

``import abm`` is cheap: each name is imported from its module on first use
(Mesa, pydantic and the kernels only then). ``run`` lives in
:mod:`abm.runner`, ``compare`` in :mod:`abm.comparison`.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Each name of the API and the module that defines it.
_API = {
    "load_config": "abm.config", "Config": "abm.config", "ConfigError": "abm.config",
    "select_arm": "abm.config", "TumorModel": "abm.model", "run": "abm.runner",
    "open_run": "abm.rundir", "RunDirectory": "abm.rundir", "RunDirectoryError": "abm.io",
    "compare": "abm.comparison",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """An API name, imported from its module on first use."""
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
