"""Fuzzing the config: every preset mutated into many bad configs, each refused cleanly; extreme valid configs run cleanly.

Bad configs are made from the resolved presets of configs/
(``load_config(path).model_dump(mode="json")``) by families of mutations:
numbers out of range (NaN, infinities, 1e308, negatives, and 0 where the
schema says "> 0"), wrong types (booleans and strings for numbers, numbers
for booleans and strings, strings for lists and sections), unknown keys at
every depth, unsafe names in every name kind, YAML structure bombs (alias
expansion, deep nesting, cycles, repeated keys), cross-checks against the
run (schedule, end rules, initial tumor, seed, costs of a cell step) and
``--set`` values. Each must be refused by ``tme run`` as a user error: status
2, one ``error:`` message (its further lines indented) naming the key,
nothing written, within :data:`TIME_LIMIT_S`.

Extreme but valid configs (every limit at its edge, on a small lattice)
must finish with finite records, or fail cleanly (status 1, one ``error:``
message, the run directory marked failed).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas
import pytest
import yaml

from abm import config as schema
from abm.cli import main
from abm.config import Config, load_config
from abm.config.drugs import MAX_PERFUSION_FACTOR

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = {path.stem: load_config(path).model_dump(mode="json") for path in sorted(CONFIGS.glob("*.yaml"))}
JSON_SCHEMA = Config.model_json_schema()
#: Seconds one case may take; a case past it fails as a hang.
TIME_LIMIT_S = 10.0
#: Fewest bad configs the generator must make (all presets together), and per preset.
MIN_CASES, MIN_CASES_PER_PRESET = 200, 40
#: Values no number in a config may take (every number has a stated finite range; see docs/config-reference.md).
BAD_NUMBERS: tuple[Any, ...] = (math.nan, math.inf, -math.inf, 1e308, -1e308, -1, True, "text", [1])
#: How many of BAD_NUMBERS each numeric leaf gets (in turn, so that every value reaches many keys).
NUMBERS_PER_LEAF = 3
BAD_NAMES = ("../x", "a/b", "", ".", "..", "a\\b", "x" * 65, "a b", "a.b", "1abc", "-a")
NAMES_PER_KIND = 4
PLACEHOLDER = "FUZZ_PLACEHOLDER"


@dataclass(frozen=True)
class Bad:
    """One bad input: the config (data dumped to YAML, with ``text`` put in place of PLACEHOLDER), extra arguments, and the keys the message must name."""

    data: Any
    says: tuple[str, ...]
    arguments: tuple[str, ...] = ()
    text: str | None = None


# --------------------------------------------------------------------------- walking the resolved configs


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every node under ``node``, parents before children (the root excluded)."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        yield path + (str(key),), value
        yield from _leaves(value, path + (str(key),))


def _pattern(path: tuple[str, ...]) -> str:
    """The path with list indices and arm names made generic, so one preset's leaf stands for the same leaf elsewhere."""
    parts = ["N" if part.isdigit() else part for part in path]
    if parts[:1] == ["arms"] and len(parts) > 1:
        parts[1] = "ARM"
    return ".".join(parts)


def _set(data: Any, path: tuple[str, ...], value: Any) -> Any:
    """A deep copy of ``data`` with the node at ``path`` replaced by ``value``."""
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value
    return data


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A JSON-schema node with its reference followed and a nullable union reduced to its non-null member."""
    while True:
        if "$ref" in node:
            node = JSON_SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in node:
            members = [member for member in node["anyOf"] if member.get("type") != "null"]
            numeric = [member for member in members if member.get("type") in ("number", "integer")]
            node = (numeric or members)[0]
        else:
            return node


def _schema_at(path: tuple[str, ...]) -> dict[str, Any]:
    """The JSON schema of the value at ``path`` (the schema's stated bounds are read from it)."""
    node = _resolve(JSON_SCHEMA)
    for part in path:
        if "oneOf" in node:  # a section chosen by its `kind` (a drug): the member that has this key
            members = [_resolve(member) for member in node["oneOf"]]
            node = next((member for member in members if part in member.get("properties", {})), members[0])
        if part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif "items" in node:
            node = node["items"]
        else:
            return {}
        node = _resolve(node)
    return node


def _zero_is_below_range(path: tuple[str, ...]) -> bool:
    """Whether the schema's lower bound excludes 0 for the number at ``path``."""
    node = _schema_at(path)
    return node.get("exclusiveMinimum", -1) >= 0 or node.get("minimum", 0) > 0


# --------------------------------------------------------------------------- the bad configs


def _numbers(name: str, data: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, Bad]]:
    """Numbers out of range, booleans, strings and lists in every numeric leaf (each leaf pattern once over the presets)."""
    turn = len(seen)
    for path, value in _leaves(data):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or _pattern(path) in seen:
            continue
        seen.add(_pattern(path))
        key = ".".join(path)
        values = [BAD_NUMBERS[(turn * NUMBERS_PER_LEAF + k) % len(BAD_NUMBERS)] for k in range(NUMBERS_PER_LEAF)]
        turn += 1
        if _zero_is_below_range(path):
            values.append(0)
        for bad in values:
            yield f"{key}={bad!r}", Bad(_set(data, path, bad), (key,))


def _types(name: str, data: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, Bad]]:
    """Numbers for booleans and strings, a string for every list and section, an unknown key in every section."""
    for path, value in [((), data), *_leaves(data)]:
        pattern = _pattern(path)
        if pattern in seen:
            continue
        seen.add(pattern)
        key = ".".join(path)
        if isinstance(value, bool):
            yield f"{key}=1", Bad(_set(data, path, 1), (key,))
            yield f"{key}='yes'", Bad(_set(data, path, "yes"), (key,))
        elif isinstance(value, str):  # a number, unless the key also takes numbers (then a list)
            bad = [7] if _schema_at(path).get("type") == "number" else 7
            yield f"{key}={bad}", Bad(_set(data, path, bad), (key,))
        elif isinstance(value, (dict, list)) and path:
            yield f"{key}='text'", Bad(_set(data, path, "text"), (key,))
        if isinstance(value, dict):
            grown = copy.deepcopy(value)
            grown["bogus_key"] = 1
            yield f"{key or 'top'}+bogus_key", Bad(_set(data, path, grown) if path else grown, (key, "bogus_key"))


def _name_kinds(data: dict[str, Any]) -> Iterator[tuple[str, tuple[str, ...], bool]]:
    """(kind, path, is a mapping key) of one name of each kind the config has."""
    for section in ("fields", "drugs", "arms"):
        if data.get(section):
            yield section, (section, next(iter(data[section]))), True
    yield "clone", ("tumor", "clones", "0", "name"), False
    if data["immune"]["t_cells"]["clones"]:
        yield "T-cell clone", ("immune", "t_cells", "clones", "0", "name"), False
    for arm in data["arms"]:
        yield "line", ("arms", arm, "lines", "0", "name"), False
        break


def _names(name: str, data: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, Bad]]:
    """Unsafe names in every name kind: path parts, separators, empty, too long, not starting with a letter."""
    for turn, (kind, path, is_key) in enumerate(_name_kinds(data)):
        for k in range(NAMES_PER_KIND):
            bad = BAD_NAMES[(turn * NAMES_PER_KIND + k + len(name)) % len(BAD_NAMES)]
            if is_key:
                section = path[0]
                renamed = copy.deepcopy(data)
                renamed[section] = {(bad if key == path[1] else key): value for key, value in data[section].items()}
                yield f"{kind} {bad!r}", Bad(renamed, (f"{section}: key {bad!r}", "not a valid name"))
            else:
                yield f"{kind} {bad!r}", Bad(_set(data, path, bad), (".".join(path), "not a valid name"))


def _inline_bomb(levels: int = 6, width: int = 10) -> str:
    """A billion-laughs list: each level lists the previous one ``width`` times (width ** levels values)."""
    parts = [f"&b0 [{', '.join(['0'] * width)}]"]
    parts += [f"&b{level} [{', '.join([f'*b{level - 1}'] * width)}]" for level in range(1, levels)]
    return f"[{', '.join(parts)}]"


def _structures(name: str, data: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, Bad]]:
    """YAML structure bombs at the first clone's antigens (and a repeated key): each refused while the text is read."""
    antigens = ("tumor", "clones", "0", "antigens")
    key = ".".join(antigens)
    with_placeholder = _set(data, antigens, PLACEHOLDER)
    chain = "".join(f"&c{level} [{f'*c{level - 1}' if level else 0}], " for level in range(150))
    texts = {
        "alias bomb": _inline_bomb(),
        "list nested 5000 deep": "[" * 5000 + "]" * 5000,
        "mapping nested 3000 deep": "{a: " * 3000 + "1" + "}" * 3000,
        "alias chain 150 deep": f"[{chain}*c149]",
        "cyclic alias": "&loop [*loop]",
    }
    for what, text in texts.items():
        yield what, Bad(with_placeholder, (key,), text=text)
    yield "alias bomb in --set", Bad(data, (key,), ("--set", f"{key}={_inline_bomb()}"))
    yield "nested list in --set", Bad(data, (key,), ("--set", f"{key}={'[' * 5000}{']' * 5000}"))
    lattice = _set(data, ("lattice",), PLACEHOLDER)
    yield "key written twice", Bad(lattice, ("lattice.dx_um", "appears twice"),
                                   text=f"{{shape: {data['lattice']['shape']}, dx_um: 20, dx_um: 10}}")


def _cross_checks(name: str, data: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, Bad]]:
    """Values each in range that contradict the run: schedule, end rules, initial tumor, seed, costs of a cell step."""
    duration = data["time"]["duration_days"]
    shape, dx = data["lattice"]["shape"], data["lattice"]["dx_um"]
    line = {"name": "only"}
    for start in (duration, duration + 1000):
        yield f"treatment from day {start}", Bad(_set(data, ("treatment",), {"start_day": start, "lines": [line]}),
                                                ("treatment.start_day",))
    rule = {"burden_below": 0.5, "burden_above": 0.4, "burden_baseline": "treatment"}
    yield "contradictory end rule", Bad(
        _set(data, ("treatment",), {"lines": [{**line, "end": rule, "next": "only"}]}), ("treatment.lines.0.end.burden_below",))
    yield "cycle shorter than a cell step", Bad(
        _set(data, ("treatment",), {"lines": [{**line, "cycle_days": data["time"]["dt_cell_h"] / 48.0}]}),
        ("treatment.lines.0.cycle_days",))
    ball = {"geometry": "ball", "radius_um": 60.0}
    for where in ([-1.0] * len(shape), [extent * dx + 1.0 for extent in shape]):
        yield f"centre {where}", Bad(_set(data, ("tumor", "initial"), {**ball, "center_um": where}), ("tumor.initial.center_um.0",))
    yield "ball without a voxel centre", Bad(
        _set(data, ("tumor", "initial"), {**ball, "radius_um": 1e-9, "center_um": [0.0] * len(shape)}), ("tumor.initial.radius_um",))
    for cells in (math.prod(shape) + 1, 10**9):
        yield f"{cells} scattered cells", Bad(_set(data, ("tumor", "initial"), {"geometry": "scattered", "cells": cells}),
                                             ("tumor.initial.cells",))
    for seed in (2**63, 2**64 + 1, -1):
        yield f"seed {seed}", Bad(_set(data, ("seed",), seed), ("seed",))
    yield "1e9 days", Bad(_set(data, ("time", "duration_days"), 1e9), ("time.duration_days",))
    yield "too many cell steps", Bad(_set(data, ("time",), {**data["time"], "dt_cell_h": 0.001, "duration_days": 1000,
                                                            "record_every_h": 1, "snapshot_every_h": None}),
                                     ("time.duration_days", "1,000,000"))
    yield "cell step of 1e-9 h", Bad(_set(data, ("time", "dt_cell_h"), 1e-9), ("time.dt_cell_h",))
    for bad_dx in (1e308, 1e-6):
        yield f"dx {bad_dx}", Bad(_set(data, ("lattice", "dx_um"), bad_dx), ("lattice.dx_um",))
    yield "priming delay of too many steps", Bad(
        _set(_set(data, ("time", "dt_cell_h"), 0.5), ("immune", "t_cells", "priming", "delay_h"), schema.MAX_SPAN_H),
        ("immune.t_cells.priming.delay_h",))
    yield "arm names differing in case", Bad(_set(data, ("arms",), {"Chemo": {"lines": [line]}, "chemo": {"lines": [line]}}),
                                            ("arms", "differ only in case"))
    for field, section in data["fields"].items():
        if section["solver"] != "steady":
            yield f"field {field} dt_min 1e-6", Bad(_set(data, ("fields", field, "dt_min"), 1e-6), (f"fields.{field}.dt_min",))
            break
    kinds = ["t_cells"] if data["immune"]["t_cells"]["clones"] else []
    kinds += [f"suppressors.{name}" for name in data["immune"]["suppressors"]]
    for kind in kinds:
        key = f"immune.{kind}.motility.speed_um_per_min"
        yield f"{kind} speed 1e6", Bad(_set(data, tuple(key.split(".")), 1e6), (key,))
        fast = schema.MAX_SPEED_UM_PER_MIN * 0.999  # in range, but more substeps than allowed at this dx and cell step
        yield f"{kind} substeps", Bad(_set(data, tuple(key.split(".")), fast), (key, "substep"))
    if kinds:
        yield "margin wider than the lattice", Bad(_set(data, ("immune", "margin_um"), 1e6), ("immune.margin_um",))
    for drug, section in data["drugs"].items():
        if section["kind"] == "anti_vegf":
            yield f"anti-VEGF {drug} without angiogenesis or a window", Bad(
                _set(data, ("vessels", "angiogenesis"), None), (f"drugs.{drug}.normalisation", "would do nothing"))
            yield f"{drug} window shorter than a cell step", Bad(
                _set(data, ("drugs", drug, "normalisation"), {"duration_h": data["time"]["dt_cell_h"] / 2.0}),
                (f"drugs.{drug}.normalisation.duration_h", "shorter than one cell step"))
            break
    for assignment, key in (("time.duration_days=true", "time.duration_days"), ("fields.oxygen.initial=1e308", "fields.oxygen.initial"),
                            ("lattice.dx_um=1e308", "lattice.dx_um"), ("tumor.clones.0.name=../x", "tumor.clones.0.name"),
                            ("time.dt_cell_h=1e-9", "time.dt_cell_h"), ("seed=9223372036854775808", "seed")):
        yield f"--set {assignment}", Bad(data, (key,), ("--set", assignment))


FAMILIES = (_numbers, _types, _names, _structures, _cross_checks)


def _bad_configs() -> dict[str, tuple[str, Bad]]:
    """Every bad config, by test id: (preset, case)."""
    cases: dict[str, tuple[str, Bad]] = {}
    for family in FAMILIES:
        seen: set[str] = set()
        for name, data in PRESETS.items():
            for what, case in family(name, data, seen):
                cases.setdefault(f"{name}:{family.__name__[1:]}:{what}", (name, case))
    return cases


BAD = _bad_configs()


class Hang(BaseException):
    """A case ran past its time limit (a BaseException, so that no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the body after ``seconds`` (SIGALRM; the main thread only)."""
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no result within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _write(folder: Path, case: Bad) -> Path:
    text = yaml.safe_dump(case.data, sort_keys=False)
    if case.text is not None:
        assert PLACEHOLDER in text
        text = text.replace(PLACEHOLDER, case.text)
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _tme_run(config: Path, out: Path, arguments: tuple[str, ...], capsys: Any) -> tuple[int, str, float]:
    """``tme run`` in this process under the time limit: status, stderr, seconds."""
    started = time.perf_counter()
    with time_limit(TIME_LIMIT_S):
        status = main(["run", str(config), "--out", str(out), "--quiet", *arguments])
    return status, capsys.readouterr().err, time.perf_counter() - started


def assert_one_error(err: str) -> None:
    """One ``error:`` message: its first line starts with ``error: ``, any further line is indented; no traceback."""
    lines = err.splitlines()
    assert lines and lines[0].startswith("error: "), err
    assert all(line.startswith("  ") for line in lines[1:]), err
    assert err.count("error:") == 1, err
    assert "Traceback" not in err, err


def test_enough_bad_configs_from_every_preset():
    """The generator makes at least MIN_CASES bad configs, and MIN_CASES_PER_PRESET from each preset."""
    assert len(BAD) >= MIN_CASES
    per_preset = {name: sum(preset == name for preset, _ in BAD.values()) for name in PRESETS}
    assert min(per_preset.values()) >= MIN_CASES_PER_PRESET, per_preset


@pytest.mark.parametrize("case_id", list(BAD))
def test_bad_config_is_refused_cleanly(case_id, tmp_path, capsys):
    """Status 2, one error message naming the key, nothing written, within the time limit."""
    _, case = BAD[case_id]
    config = _write(tmp_path, case)
    out = tmp_path / "run"
    status, err, seconds = _tme_run(config, out, case.arguments, capsys)
    assert seconds < TIME_LIMIT_S
    assert status == 2, err
    assert_one_error(err)
    for text in case.says:
        assert text in err, f"{text!r} not in {err!r}"
    assert not out.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["config.yaml"]


# --------------------------------------------------------------------------- extreme valid configs

SMALL = {"lattice": {"shape": [20, 20]}, "time": {"duration_days": 1, "snapshot_every_h": None}}
TREATED = {"fields": {"oxygen": {"preset": "oxygen"}, "dox": {"preset": "chemo_drug"}},
           "drugs": {"dox": {"pk": {"half_life_h": 30}}},
           "treatment": {"lines": [{"name": "chemo", "doses": [{"drug": "dox", "amount": 1.0}]}]}}
#: T cells that enter from the first cell step: antigen released from the start, primed at once, recruited at full rate.
T_CELLS = {"fields": {"oxygen": {"preset": "oxygen"}, "chemokine": {"preset": "chemokine"},
                      "danger_signal": {"preset": "danger_signal", "initial": 1.0}},
           "tumor": {"clones": [{"name": "p", "antigens": [0]}]},
           "immune": {"t_cells": {"clones": [{"name": "t0", "antigen": 0}], "pool_reference": 1.0,
                                  "recruitment": {"rate_per_h": 1.0, "field": None},
                                  "priming": {"delay_h": 0, "expansion_per_h": 1.0, "half_saturation": 1.0}}}}
MAX_RATES = {"uptake_per_min": {"tumor": schema.MAX_RATE}, "secretion_per_min": {"tumor_dying": schema.MAX_RATE},
             "decay_per_min": schema.MAX_RATE, "vessel": {"supply_per_min": schema.MAX_RATE, "blood_level": schema.MAX_LEVEL}}


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    """Mappings merged key by key, later parts winning (sections merged, other values replaced)."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _field(solver: str, **values: Any) -> dict[str, Any]:
    return {"fields": {"oxygen": {"preset": "oxygen", "solver": solver, **values}}}


def _anti_vegf(normalisation: dict[str, Any]) -> dict[str, Any]:
    """An anti-VEGF antibody dosed at hour 0 with this normalisation window (without angiogenesis, all it does)."""
    return {"fields": {"oxygen": {"preset": "oxygen"}, "avegf": {"preset": "anti_vegf"}},
            "drugs": {"avegf": {"kind": "anti_vegf", "pk": {"half_life_h": 100}, "normalisation": normalisation}},
            "treatment": {"lines": [{"name": "avegf", "doses": [{"drug": "avegf", "amount": 5.0}]}]}}


EXTREME = {
    "one cell step": {"time": {"duration_days": 1 / 24, "record_every_h": 1}},
    "shortest cell step": {"time": {"dt_cell_h": schema.MIN_DT_CELL_H, "duration_days": 0.001, "record_every_h": 0.012}},
    "smallest voxels": {"lattice": {"dx_um": schema.MIN_DX_UM}, "tumor": {"initial": {"radius_um": 3.0}}},
    "largest voxels": {"lattice": {"dx_um": schema.MAX_DX_UM}, "tumor": {"initial": {"radius_um": 2000.0}}},
    "no vessels": {"vessels": {"pattern": "none"}},
    "densest vessels": {"vessels": {"density": 0.5}},
    "every voxel a scattered cell": {"vessels": {"pattern": "none"}, "tumor": {"initial": {"geometry": "scattered", "cells": 400}}},
    "ball of one voxel in a corner": {"tumor": {"initial": {"center_um": [0.0, 0.0], "radius_um": 15.0}}},
    "largest seed": {"seed": 2**63 - 1},
    "steady field at the largest rates and levels": _merge(_field("steady", **MAX_RATES, initial=schema.MAX_LEVEL),
                                                           {"fields": {"oxygen": {"boundary": {"default": schema.MAX_LEVEL}}}}),
    "transient field at the largest rates and levels": _field("transient", **MAX_RATES, initial=schema.MAX_LEVEL),
    "split-step field at the largest rates and levels": _field("transient_lod", **MAX_RATES, initial=schema.MAX_LEVEL),
    "fastest diffusion on the finest voxels": _merge(_field("transient_lod", D_um2_per_min=schema.MAX_DIFFUSION_UM2_PER_MIN),
                                                     {"lattice": {"dx_um": schema.MIN_DX_UM}, "tumor": {"initial": {"radius_um": 3.0}}}),
    "most field substeps": _merge(_field("transient_lod", dt_min=60.0 / schema.MAX_SUBSTEPS), {"time": {"duration_days": 2 / 24, "record_every_h": 1}}),
    "longest pushes in 3-D": {"lattice": {"shape": [12, 12, 12]}, "tumor": {"max_push_distance": schema.MAX_PUSH_DISTANCE,
                                                                          "initial": {"radius_um": 100.0}}},
    "many founding clones": {"tumor": {"clones": [{"name": f"c{k}", "fraction": 0.02} for k in range(50)]}},
    "every division mutates, one clone allowed": {"tumor": {"clones": [{"name": "p", "mutation_rate": 1.0}],
                                                           "mutation": {"max_clones": 1, "division_rate_sd": schema.MAX_DIVISION_RATE_SD}}},
    "every division mutates widely": {"tumor": {"clones": [{"name": "p", "mutation_rate": 1.0}],
                                                "mutation": {"division_rate_sd": schema.MAX_DIVISION_RATE_SD}}},
    "largest dose, steepest kill": _merge(TREATED, {"drugs": {"dox": {"emax_per_h": schema.MAX_RATE, "hill": schema.MAX_HILL,
                                                                      "ec50": schema.MIN_LEVEL}},
                                                    "treatment": {"lines": [{"name": "chemo", "doses": [{"drug": "dox", "amount": schema.MAX_LEVEL}]}]}}),
    "shortest infusion of the largest dose": _merge(TREATED, {"treatment": {"lines": [
        {"name": "chemo", "doses": [{"drug": "dox", "amount": schema.MAX_LEVEL, "infusion_h": 1e-6}]}]}}),
    "T cells at the most substeps": _merge(T_CELLS, {"immune": {"t_cells": {"motility": {
        "speed_um_per_min": schema.MAX_SUBSTEPS * 20.0 / 60.0}}}}, {"time": {"duration_days": 2 / 24, "record_every_h": 1}}),
    "T cells with the widest margin": _merge(T_CELLS, {"immune": {"margin_um": 20.0 * 20}}),
    "T cells with the largest pools": _merge(T_CELLS, {"immune": {"t_cells": {
        "pool_reference": schema.MAX_CELLS, "priming": {"max_pool": schema.MAX_CELLS, "expansion_per_h": schema.MAX_RATE},
        "kill_rate_per_h": schema.MAX_RATE, "recruitment": {"rate_per_h": schema.MAX_RATE}}}}),
    "anti-VEGF window of one cell step": _anti_vegf({"start_h": 0.0, "duration_h": 1.0}),
    "anti-VEGF window from the last cell step on": _anti_vegf({"start_h": 23.0, "duration_h": schema.MAX_SPAN_H}),
    "anti-VEGF window at the largest factor on the largest exchange": _merge(
        _anti_vegf({"start_h": 0.0, "perfusion_factor": MAX_PERFUSION_FACTOR}), _field("steady", **MAX_RATES, initial=schema.MAX_LEVEL)),
    "anti-VEGF window that never opens, under angiogenesis": _merge(
        _anti_vegf({"start_h": schema.MAX_SPAN_H, "duration_h": schema.MAX_SPAN_H}),
        {"fields": {"vegf": {"preset": "vegf"}}, "vessels": {"angiogenesis": {"field": "vegf"}}}),
}


def _final_values_finite(summary: dict[str, Any]) -> None:
    for key, value in summary["final"].items():
        assert not (isinstance(value, float) and not math.isfinite(value)), f"final {key} = {value}"


@pytest.mark.parametrize("name", list(EXTREME))
def test_extreme_valid_config_finishes_or_fails_cleanly(name, tmp_path, capsys):
    """Status 0 with finite records, or status 1 with one error message and the run marked failed."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_merge(SMALL, EXTREME[name]), sort_keys=False), encoding="utf-8")
    out = tmp_path / "run"
    status, err, _ = _tme_run(config, out, (), capsys)
    assert status in (0, 1), err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    if status == 1:
        assert_one_error(err)
        assert summary["status"] == "failed"
        return
    assert summary["status"] == "complete"
    _final_values_finite(summary)
    series = pandas.read_parquet(out / "timeseries.parquet").select_dtypes("number")
    assert not np.isinf(series.to_numpy(dtype=np.float64)).any(), "an infinite value in the time series"


def test_merge_keys_and_extension_keys_are_read(tmp_path):
    """YAML merge keys (``<<: *base``) work, with anchors under an ``x-`` top-level key, and explicit keys win."""
    config = tmp_path / "merged.yaml"
    config.write_text("x-base: &base {shape: [20, 20], dx_um: 10}\n"
                      "x-arm: &arm {lines: [{name: only}]}\n"
                      "lattice: {<<: *base, dx_um: 20}\n"
                      "time: {duration_days: 1}\n"
                      "arms: {a: *arm, b: {<<: *arm, start_day: 0.5}}\n", encoding="utf-8")
    loaded = load_config(config)
    assert loaded.lattice.shape == [20, 20] and loaded.lattice.dx_um == 20
    assert loaded.arms["b"].start_day == 0.5 and loaded.arms["b"].lines == loaded.arms["a"].lines


def test_exponent_without_dot_or_sign_is_a_number(tmp_path):
    """``1e-3`` and ``1.0e5`` (strings to YAML 1.1) are floats, in files and in --set."""
    config = tmp_path / "exponents.yaml"
    config.write_text("lattice: {shape: [20, 20]}\ntime: {duration_days: 1}\ntumor: {necrotic_clearance_per_h: 1e-3}\n",
                      encoding="utf-8")
    assert load_config(config).tumor.necrotic_clearance_per_h == 1e-3
    assert load_config(config, ["tumor.necrotic_clearance_per_h=2E-2"]).tumor.necrotic_clearance_per_h == 0.02


def test_every_number_has_an_upper_bound():
    """Every number of every preset has a finite upper bound in the schema (so 1e308 is refused everywhere)."""
    for data in PRESETS.values():
        for path, value in _leaves(data):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                node = _schema_at(path)
                assert "maximum" in node or "exclusiveMaximum" in node or "enum" in node, ".".join(path)  # enum: a few values
