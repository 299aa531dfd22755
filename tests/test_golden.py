"""Golden outputs: every config in configs/, run briefly per seed, writes the outputs whose hashes are stored.

A guard for refactors that must not change results. Each config of
configs/ (found with a glob) is run through the public run path,
:func:`abm.runner.run`, on the NumPy backend, for each seed of :data:`SEEDS`
and, in a config with ``arms:``, for each arm (selected as ``tme run --arm``
does). Each run is short: the fewest whole record intervals holding
:data:`MIN_CELL_STEPS` cell steps, or, with arms, reaching
:data:`TREATED_H` hours past the latest arm's ``start_day`` (so the first
doses are given and act); the lattice is the config's own, but for a preset
too large for the suite, which is shrunk first (``tests.presets.SHRINK``). Its only snapshot
besides step 0 is the final state.

Per run, every output is hashed by content (SHA-256, first
:data:`HEX_DIGITS` hex digits kept), one hash each so a failure names what
changed:

* each table of the run directory present (:data:`TABLES`): per column its
  name, dtype and values (numbers by their exact bytes; strings and other
  objects by pandas' per-value hashes);
* each per-voxel array of the final snapshot (key ``snapshot/<name>``): name,
  dtype, shape and bytes;
* ``summary.json`` less the keys that are no result (:data:`NOT_RESULTS`):
  those that vary between identical runs (timing, machine, version) and
  the rest of how the run was made (backend, the config's hash, the seed);
  so adding a config key, which changes every ``config_sha256``, leaves it
  alone;
* ``config``: the run's resolved config less the values equal to the
  schema's defaults (:func:`config_digest`), so that a change of a preset's
  config shows even where the short run does not reach what it changes,
  while a new key with a default (or a default written out) changes
  nothing. A changed default shows in docs/config-reference.md
  (tests/test_reference.py) and, where the short runs reach it, in the
  outputs.

The stored values are tests/golden/hashes.json. When a change is meant to
alter results, regenerate them from the repository root (all configs, or the
named ones)::

    OPENBLAS_NUM_THREADS=1 python -m tests.test_golden --update [CONFIG_STEM ...]

and say so in the commit message. Hashes are exact bits, so a NumPy, pandas
or pyarrow upgrade (or a CPU with other SIMD math routines) may change them
without a code change; the file records the versions it was generated with,
and a failure names them when they differ. The whole set takes about a
minute on two CPU cores.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas
import pyarrow
import pytest
from pandas.util import hash_pandas_object

from abm.config import Config, load_config
from abm.runner import run, run_meta
from kernels.backend import get_backend
from tests.presets import CONFIGS, shrunk

CONFIG_PATHS = sorted(CONFIGS.glob("*.yaml"))
HASHES = Path(__file__).resolve().parent / "golden" / "hashes.json"
REGENERATE = "OPENBLAS_NUM_THREADS=1 python -m tests.test_golden --update"
SEEDS = (1, 2)
#: Cell steps a run holds at least (rounded up to whole record intervals).
MIN_CELL_STEPS = 12
#: Hours a config with arms runs past its latest arm's start_day (the first day of treatment).
TREATED_H = 24.0
#: The tables of a run directory, hashed where written (immune.parquet: with immune cells; events.parquet: treated).
TABLES = ("timeseries.parquet", "clones.parquet", "lineage.parquet", "immune.parquet", "events.parquet")
#: summary.json keys that differ between identical runs (timing, machine, package version).
VARYING_SUMMARY_KEYS = frozenset({"wall_seconds", "voxel_steps_per_second", "backend_reason", "device", "tme_abm_version"})
#: summary.json keys that are no result: those that vary, and the rest of how the run was made (:func:`abm.runner.run_meta`:
#: the backend and the config's hash; and the seed, which the run's key names).
NOT_RESULTS = VARYING_SUMMARY_KEYS | {"backend", "config_sha256", "seed"}
#: Hex digits of each SHA-256 kept (64 bits: an accidental match is out of reach).
HEX_DIGITS = 16


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose bits the hashes depend on."""
    return {"numpy": np.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__}


def short_duration_h(config: Config) -> float:
    """Length of a golden run of ``config``, h: whole record intervals covering MIN_CELL_STEPS and the treatment start."""
    time = config.time
    wanted_h = MIN_CELL_STEPS * time.dt_cell_h
    if config.arms:
        wanted_h = max(wanted_h, max(arm.start_day for arm in config.arms.values()) * 24.0 + TREATED_H)
    return math.ceil(wanted_h / time.record_every_h - 1e-9) * time.record_every_h


def golden_runs(path: Path) -> dict[str, Config]:
    """The short runs of one config file: ``seed<N>`` or ``seed<N>/<arm>`` -> its config."""
    hours = short_duration_h(load_config(path, shrunk(path.stem)))
    runs = {}
    for seed in SEEDS:
        config = load_config(path, [*shrunk(path.stem), f"seed={seed}", "backend=numpy",
                                    f"time.duration_days={hours / 24.0!r}", f"time.snapshot_every_h={hours!r}"])
        if config.arms:
            runs.update({f"seed{seed}/{arm}": config.model_copy(update={"treatment": treatment})  # as tme run --arm
                         for arm, treatment in config.arms.items()})
        else:
            runs[f"seed{seed}"] = config
    return runs


def digest(chunks: Iterable[bytes]) -> str:
    """Hex SHA-256 (first HEX_DIGITS digits) of the chunks, each preceded by its length so no two splits collide."""
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(len(chunk).to_bytes(8, "little"))
        sha.update(chunk)
    return sha.hexdigest()[:HEX_DIGITS]


def column_bytes(column: pandas.Series) -> bytes:
    """A column's values as bytes: the exact bytes of a bool, number or time; pandas' per-value hashes otherwise."""
    values = column.to_numpy()
    if values.dtype.kind in "biufcmM":
        return np.ascontiguousarray(values).tobytes()
    return hash_pandas_object(column, index=False).to_numpy().tobytes()


def table_hash(path: Path) -> str:
    """Hash of a Parquet table's content: per column its name, dtype and values."""
    frame = pandas.read_parquet(path)
    return digest(chunk for name in frame.columns
                  for chunk in (str(name).encode(), str(frame[name].dtype).encode(), column_bytes(frame[name])))


def array_hash(array: np.ndarray) -> str:
    """Hash of an array's dtype, shape and C-order bytes."""
    return digest([array.dtype.str.encode(), repr(array.shape).encode(), np.ascontiguousarray(array).tobytes()])


def summary_digest(summary: dict) -> str:
    """Hash of a summary.json's results: its content less :data:`NOT_RESULTS`."""
    results = {key: value for key, value in summary.items() if key not in NOT_RESULTS}
    return digest([json.dumps(results, sort_keys=True).encode()])


def config_digest(config: Config) -> str:
    """Hash of ``config``'s values that differ from the schema's defaults (resolved: presets and ``extends:`` applied)."""
    return digest([json.dumps(config.model_dump(mode="json", exclude_defaults=True), sort_keys=True).encode()])


def run_hashes(config: Config, out: Path) -> dict[str, str]:
    """Run ``config`` into ``out`` and hash its outputs: table file name, ``snapshot/<array>`` or summary.json -> hash;
    and ``config`` -> :func:`config_digest`."""
    run(config, out, progress=False)
    hashes = {name: table_hash(out / name) for name in TABLES if (out / name).exists()}
    with np.load(sorted((out / "snapshots").glob("*.npz"))[-1]) as snapshot:  # the last: the final state
        hashes.update({f"snapshot/{name}": array_hash(snapshot[name]) for name in sorted(snapshot.files)})
    hashes["summary.json"] = summary_digest(json.loads((out / "summary.json").read_text(encoding="utf-8")))
    hashes["config"] = config_digest(config)
    return hashes


def config_hashes(path: Path, work: Path) -> dict[str, dict[str, str]]:
    """The hashes of every golden run of one config file, run in directories under ``work``."""
    return {key: run_hashes(config, work / key) for key, config in golden_runs(path).items()}


def read_stored() -> dict:
    """The stored file: ``{"generated_with": versions, "configs": {stem: {run: {output: hash}}}}``."""
    return json.loads(HASHES.read_text(encoding="utf-8"))


def differences(stored: dict[str, dict[str, str]], actual: dict[str, dict[str, str]]) -> list[str]:
    """One line per run whose outputs differ from the stored ones, naming the outputs changed, no longer written or new."""
    lines = []
    for key in sorted(stored.keys() | actual.keys()):
        if key not in actual:
            lines.append(f"{key}: stored, but the config no longer has this run")
        elif key not in stored:
            lines.append(f"{key}: a run with no stored hashes")
        else:
            before, after = stored[key], actual[key]
            changed = sorted(name for name in before.keys() & after.keys() if before[name] != after[name])
            kinds = (("changed", changed), ("stored but not written", sorted(before.keys() - after.keys())),
                     ("written but not stored", sorted(after.keys() - before.keys())))
            parts = [f"{kind} {', '.join(names)}" for kind, names in kinds if names]
            if parts:
                lines.append(f"{key}: {'; '.join(parts)}")
    return lines


def test_every_stored_config_is_in_configs():
    """No stored hashes outlive their config (regenerate after removing or renaming one)."""
    stale = sorted(read_stored()["configs"].keys() - {path.stem for path in CONFIG_PATHS})
    assert not stale, f"tests/golden/hashes.json holds configs that configs/ lacks: {', '.join(stale)}; regenerate with `{REGENERATE}`"


def test_the_summary_hash_holds_results_only():
    """How a run was made (every key of run_meta, the seed, the timing) leaves summary.json's hash alone; a result does not."""
    config = load_config(CONFIGS / "tiny.yaml")
    made = run_meta(config, get_backend("numpy"))
    assert made.keys() <= NOT_RESULTS, "a new key of abm.runner.run_meta: add it to NOT_RESULTS unless it is a result"
    summary = {"status": "complete", **made, "seed": 7, "wall_seconds": 0.1, "final": {"tumor_cells_live": 57}}
    remade = {**summary, "tme_abm_version": "9.9", "config_sha256": "0" * 64, "seed": 8, "wall_seconds": 0.2}
    assert summary_digest(remade) == summary_digest(summary)
    for result in ({"final": {"tumor_cells_live": 58}}, {"status": "failed"}, {"error": "day 1: field oxygen"}):
        assert summary_digest({**summary, **result}) != summary_digest(summary), result


def test_the_config_hash_leaves_out_values_at_their_defaults():
    """A value written out at its default (as a new key with a default is) leaves the ``config`` hash alone; another
    value, as a changed preset has, changes it."""
    tiny = CONFIGS / "tiny.yaml"
    default = Config.model_fields["tumor"].default_factory().necrotic_clearance_per_h
    plain = config_digest(load_config(tiny))
    assert config_digest(load_config(tiny, [f"tumor.necrotic_clearance_per_h={default!r}"])) == plain
    assert config_digest(load_config(tiny, [f"tumor.necrotic_clearance_per_h={default + 0.01!r}"])) != plain
    assert config_digest(load_config(tiny, ["seed=8"])) != plain


@pytest.mark.parametrize("path", CONFIG_PATHS, ids=[path.stem for path in CONFIG_PATHS])
def test_outputs_match_the_stored_hashes(path, tmp_path):
    """Every output of every short run of the config hashes to its stored value."""
    stored = read_stored()
    if path.stem not in stored["configs"]:
        pytest.fail(f"configs/{path.name} has no stored golden hashes; add them with `{REGENERATE} {path.stem}` "
                    "and commit tests/golden/hashes.json")
    changes = differences(stored["configs"][path.stem], config_hashes(path, tmp_path))
    if changes:
        versions = "" if stored["generated_with"] == library_versions() else (
            f"\nThe stored hashes come from {stored['generated_with']}, this run has {library_versions()}: "
            "a library upgrade can change the bits without a code change.")
        pytest.fail(f"configs/{path.name}: outputs differ from tests/golden/hashes.json:\n  " + "\n  ".join(changes) +
                    f"{versions}\nIf the change is meant to alter results, regenerate with `{REGENERATE} {path.stem}` "
                    "and say so in the commit message.")


def update(stems: list[str]) -> None:
    """Recompute and store the hashes of the named configs (all of configs/ when none is named)."""
    paths = [path for path in CONFIG_PATHS if not stems or path.stem in stems]
    unknown = sorted(set(stems) - {path.stem for path in paths})
    if unknown:
        raise SystemExit(f"no config named {', '.join(unknown)} in {CONFIGS}")
    configs = read_stored()["configs"] if stems and HASHES.exists() else {}
    with tempfile.TemporaryDirectory() as work:
        for path in paths:
            configs[path.stem] = config_hashes(path, Path(work) / path.stem)
            print(f"{path.stem}: {len(configs[path.stem])} runs hashed")
    HASHES.parent.mkdir(exist_ok=True)
    stored = {"generated_with": library_versions(), "configs": dict(sorted(configs.items()))}
    HASHES.write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
    print(f"written: {HASHES}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Regenerate the golden output hashes (tests/golden/hashes.json).")
    parser.add_argument("--update", action="store_true", required=True, help="recompute and store the hashes")
    parser.add_argument("configs", nargs="*", metavar="CONFIG_STEM", help="configs to regenerate (default: all)")
    update(parser.parse_args().configs)
