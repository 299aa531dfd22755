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
(Mesa, pydantic and the kernels only then). ``abm.run`` and ``abm.compare``
are also the modules of those names; calling either module calls its
function of the same name (``abm.run(config, out)`` is
``abm.run.run(config, out)``).
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: Each name of the API and the module that defines it.
_API = {
    "load_config": "abm.config", "Config": "abm.config", "ConfigError": "abm.config",
    "select_arm": "abm.config", "TumorModel": "abm.model", "run": "abm.run",
    "open_run": "abm.rundir", "RunDirectory": "abm.rundir", "RunDirectoryError": "abm.io",
    "compare": "abm.compare",
}
#: Submodules that are called as their function of the same name.
_CALLABLE_MODULES = ("run", "compare")

__all__ = ["__version__", *_API]


class _CallableModule(types.ModuleType):
    """A module that, called, calls its function of its own name."""

    def __call__(self, *arguments: Any, **options: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*arguments, **options)


class _Package(types.ModuleType):
    """The ``abm`` package: makes :data:`_CALLABLE_MODULES` callable as the import system binds them here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_MODULES and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    """An API name, imported from its module on first use."""
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_API[name])
    if name in _CALLABLE_MODULES:
        return module  # importing it bound it here, made callable
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


sys.modules[__name__].__class__ = _Package
