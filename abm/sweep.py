"""Sweeps: ``tme compare --sweep KEY=V1,V2,... [--sweep ...]`` runs the comparison at every point of the grid.

Each ``--sweep`` names a dotted config key (as ``--set`` takes it; it must name
a value of the config, :func:`abm.config.config_key_problem`) and its values,
read as one YAML flow list (``KEY=1,2`` is ``[1, 2]``; ``lattice.shape=[32,
32],[48, 48]`` gives two lists). The grid is every combination, the first
``--sweep`` varying slowest; point ``k`` is the config with those values set
as ``--set`` sets them, validated in full, and its comparison is an ordinary
comparison directory ``DIR/points/point_<k>/`` (:func:`abm.rundir.sweep_point_path`).
``DIR/sweep.json`` lists the points and their values and ``DIR/sweep.parquet``
holds each point's endpoints per arm (:data:`abm.rundir.SWEEP_COLUMNS`).
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import yaml

from abm import rundir
from abm.config import Config, ConfigError, config_key_problem, read_yaml, with_values
from abm.io import write_json, write_parquet
from abm.rundir import SWEEP_COLUMNS, SWEEP_RESULT, sweep_point_path

#: Most points of a sweep's grid.
MAX_SWEEP_POINTS = 1000


def parse_sweeps(texts: list[str], config: Config) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` strings as ``{key: [values]}``, in the order given.

    Raises:
        ConfigError: a text without ``=``, a key that names no config value (or one of
            :data:`abm.config.RESERVED_KEYS`, or a key the cohort draws), values that are no YAML list or repeat,
            a key given twice, or a grid of more than :data:`MAX_SWEEP_POINTS` points.
    """
    data = config.model_dump(mode="json")
    drawn = set(config.cohort.parameters) if config.cohort is not None else set()
    sweeps: dict[str, list[Any]] = {}
    for text in texts:
        if "=" not in text:
            raise ConfigError(f"--sweep {text!r}: expected dotted.key=value1,value2,...")
        key, values_text = (part.strip() for part in text.split("=", 1))
        problem = config_key_problem(data, key)
        if problem is not None:
            raise ConfigError(f"--sweep {key}: {problem}")
        if key in sweeps:
            raise ConfigError(f"--sweep {key}: given twice; give all its values in one --sweep {key}=v1,v2,...")
        if key in drawn:
            raise ConfigError(f"--sweep {key}: cohort.parameters draws it for each patient; sweep another key")
        try:
            values = read_yaml(f"[{values_text}]", (key,))
        except yaml.YAMLError as exc:
            raise ConfigError(f"--sweep {key}: values {values_text!r} are no comma-separated YAML values "
                              f"({' '.join(str(exc).split())})") from None
        if not values:
            raise ConfigError(f"--sweep {key}: no values; give one or more, comma-separated")
        shown = [json.dumps(value, sort_keys=True) for value in values]
        repeated = sorted({text for text in shown if shown.count(text) > 1})
        if repeated:
            raise ConfigError(f"--sweep {key}: value {repeated[0]} given twice; each value once")
        sweeps[key] = values
    points = 1
    for values in sweeps.values():
        points *= len(values)
    if points > MAX_SWEEP_POINTS:
        raise ConfigError(f"--sweep: a grid of {points:,} points; at most {MAX_SWEEP_POINTS:,}")
    return sweeps


def grid(sweeps: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid (key -> value), the first key varying slowest; one empty point without sweeps."""
    return [dict(zip(sweeps, combination)) for combination in itertools.product(*sweeps.values())]


def describe(point: dict[str, Any]) -> str:
    """``key=value, ...`` of a point, the values as JSON."""
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in point.items())


def point_configs(config: Config, points: list[dict[str, Any]]) -> list[Config]:
    """The config of each point, validated in full (the config itself for an empty point).

    Raises:
        ConfigError: a point whose values the config refuses, naming the point, its values and the key.
    """
    return [with_values(config, point, f"--sweep point {index} ({describe(point)})") if point else config
            for index, point in enumerate(points)]


def _numeric(values: list[Any]) -> bool:
    """Whether every value is a number (a column of numbers in ``sweep.parquet``; else one of JSON texts)."""
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)


def summarize(out: Path, sweeps: dict[str, list[Any]], points: list[dict[str, Any]], results: list[dict[str, Any]],
              patients: int, replicates: int, first_seed: int) -> dict[str, Any]:
    """Write ``sweep.parquet`` (per point and arm, the endpoints of its ``compare.json``: :data:`SWEEP_COLUMNS`) and
    ``sweep.json`` (the keys, and per point its values, folder, reference arm and failed runs); returns the latter."""
    import pandas

    rows = []
    for index, (point, result) in enumerate(zip(points, results)):
        for arm, stats in result["arms"].items():
            row: dict[str, Any] = {"point": index, "arm": arm}
            row.update({key: value if _numeric(sweeps[key]) else json.dumps(value) for key, value in point.items()})
            for column in SWEEP_COLUMNS[1:]:
                value = stats[column]
                row[column] = math.nan if value is None else value
            rows.append(row)
    write_parquet(rundir.table_path(out, "sweep"), pandas.DataFrame(rows, columns=["point", *sweeps, *SWEEP_COLUMNS]))
    result = {"keys": list(sweeps), "patients": patients, "replicates": replicates, "first_seed": first_seed,
              "points": [{"point": index, "values": point, "directory": str(sweep_point_path(out, index).relative_to(out)),
                          "reference_arm": result["reference_arm"], "failed_runs": result["failed_runs"]}
                         for index, (point, result) in enumerate(zip(points, results))]}
    write_json(out / SWEEP_RESULT, result)
    return result
