"""The rules' declarations (abm.rules): reads come after writes, streams are owned once and reserved, and a run of
every preset touches only what each rule declares.

The declared compartments (clones, priming, plasma, treatment, totals) are
checked in order only; the lattice (layers and fields) is checked in order
and against what each rule really reads and writes, by a probe that stands
in for the lattice during the run and logs every array a rule gets or sets.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from abm import streams
from abm.config import load_config, select_arm
from abm.model import TumorModel
from abm.rules import DEFAULT_RULES, FIELDS, Rule
from abm.step import COMPARTMENTS, layer_names
from kernels.backend import get_backend
from kernels.layers import ImmuneLayer, TumorLayer, VesselLayer
from tests.presets import shrunk

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
LAYERS = {"tumor": TumorLayer, "immune": ImmuneLayer, "vessels": VesselLayer}


def covers(declared: frozenset[str], name: str) -> bool:
    """Whether ``declared`` names ``name`` (``fields.*`` names every field)."""
    return name in declared or (name.startswith("fields.") and "fields.*" in declared)


def test_every_rule_reads_only_what_the_set_up_or_an_earlier_rule_wrote():
    config = load_config(REPO / "configs" / "therapy_immune_suppression.yaml")
    written = set(layer_names(config)) | set(COMPARTMENTS)  # the set-up writes every layer and compartment
    for rule in DEFAULT_RULES:
        for name in rule.reads:
            assert name == "fields.*" or name in written, f"{rule.name} reads {name}, which nothing wrote before it"
        written |= {name for name in rule.writes if name != "fields.*"}


def test_declared_names_are_layer_arrays_fields_or_compartments():
    arrays = {f"{layer}.{name}" for layer, kind in LAYERS.items() for name in kind.__dataclass_fields__}
    for rule in DEFAULT_RULES:
        for name in rule.reads | rule.writes:
            assert name in arrays or name in COMPARTMENTS or name.startswith("fields."), (rule.name, name)
        assert rule.writes <= rule.reads | rule.writes and rule.name


def test_no_two_rules_share_a_stream_and_every_stream_is_reserved():
    owner: dict[int, str] = {}
    for rule in DEFAULT_RULES:
        for ids in rule.streams:
            block = [reserved for reserved in streams.RANGES if ids.start in reserved]
            assert len(block) == 1 and ids.stop - 1 in block[0], f"{rule.name}: streams {ids} outside one reserved range"
            for stream in (ids.start, ids.stop - 1) if len(ids) > 1000 else ids:
                assert stream not in owner, f"stream {stream}: {owner.get(stream)} and {rule.name}"
                owner[stream] = rule.name
    ranges = [(ids, rule.name) for rule in DEFAULT_RULES for ids in rule.streams]
    for index, (first, name) in enumerate(ranges):
        for second, other in ranges[index + 1:]:
            assert first.stop <= second.start or second.stop <= first.start or name == other, (name, other)


def test_every_stream_id_a_rule_draws_is_declared_by_it():
    """Each STREAM_* id of abm.streams used by a rule's module code is in that rule's declared streams (a grep of
    the class body, so a new draw without a declaration fails here)."""
    import inspect

    for rule in DEFAULT_RULES:
        source = inspect.getsource(rule)
        for name, value in vars(streams).items():
            if name.startswith("STREAM_") and re.search(rf"context\.draw\({name}[,)]", source):
                assert any(value in ids for ids in rule.streams), f"{rule.name} draws {name} without declaring it"


class Probe:
    """Stands in for the lattice: forwards everything, logs (rule, "get"/"set", name) for layer arrays and fields."""

    def __init__(self, lattice, log, current):
        object.__setattr__(self, "_lattice", lattice)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_current", current)

    def __getattr__(self, name):
        value = getattr(self._lattice, name)
        if name in LAYERS:
            return LayerProbe(value, name, self._log, self._current)
        if name == "fields":
            return FieldsProbe(value, self._log, self._current)
        return value

    def __setattr__(self, name, value):
        if name in LAYERS:
            old = getattr(self._lattice, name)
            for item in LAYERS[name].__dataclass_fields__:
                if getattr(value, item) is not getattr(old, item):
                    self._log.append((self._current[0], "set", f"{name}.{item}"))
        setattr(self._lattice, name, value)


class LayerProbe:
    """A layer whose array reads are logged; its methods run on the probe, so the arrays they read are logged too."""

    def __init__(self, layer, name, log, current):
        self._layer, self._name, self._log, self._current = layer, name, log, current

    def __getattr__(self, name):
        if name in type(self._layer).__dataclass_fields__:
            self._log.append((self._current[0], "get", f"{self._name}.{name}"))
            return getattr(self._layer, name)
        if name == "replace":
            return self._layer.replace
        return getattr(type(self._layer), name).__get__(self)


class FieldsProbe(dict):
    """The fields dict, its reads and writes logged."""

    def __init__(self, fields, log, current):
        super().__init__()
        self._fields, self._log, self._current = fields, log, current

    def __getitem__(self, name):
        self._log.append((self._current[0], "get", f"fields.{name}"))
        return self._fields[name]

    def __setitem__(self, name, value):
        self._log.append((self._current[0], "set", f"fields.{name}"))
        self._fields[name] = value

    def __contains__(self, name):
        return name in self._fields

    def items(self):
        return [(name, self[name]) for name in self._fields]

    def values(self):
        return [value for _, value in self.items()]


def probed_run(path: Path, steps: int, overrides: tuple[str, ...] = (), arm: str | None = None,
               seed_immune: bool = False) -> list[tuple[str, str, str]]:
    """Run ``path`` (shrunk by tests.presets.SHRINK, lattice capped at 64 per axis in 2-D, 24 in 3-D) for ``steps``
    steps with the lattice probed; the log of rule accesses. ``seed_immune``: immune cells of every agent on a third
    of the tumor from the start."""
    config = load_config(path, shrunk(path.stem))
    cap = 64 if config.lattice.ndim == 2 else 24
    shape = [min(extent, cap) for extent in config.lattice.shape]
    config = load_config(path, [*shrunk(path.stem), f"lattice.shape={shape}", "time.record_every_h=1000", *overrides])
    if arm is not None:
        config = select_arm(config, arm)
    model = TumorModel(config, get_backend("numpy"))
    if seed_immune:
        lattice, agents = model.lattice, len(model.immune.agents)
        place = (lattice.tumor.clone >= 0) & (lattice.voxel_index % 3 == 0)
        lattice.immune.agent[place] = (lattice.voxel_index[place] % agents).astype(lattice.immune.agent.dtype)
    log: list[tuple[str, str, str]] = []
    current = [None]
    model.context.lattice = Probe(model.context.lattice, log, current)
    for rule in model.rules:
        def apply(context, rule=rule, method=type(rule).apply):
            current[0] = rule.name
            try:
                method(rule, context)
            finally:
                current[0] = None
        rule.apply = apply
    for _ in range(steps):
        model.step()
    return [entry for entry in log if entry[0] is not None]


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_a_run_touches_only_what_each_rule_declares(path):
    declared = {rule.name: rule for rule in DEFAULT_RULES}
    log = probed_run(path, 6)
    assert log, "no rule touched the lattice"
    for name, access, array in set(log):
        rule = declared[name]
        if access == "get":
            assert covers(rule.reads | rule.writes, array), f"{name} reads {array} without declaring it"
        else:
            assert covers(rule.writes, array), f"{name} writes {array} without declaring it"


def test_the_probed_runs_use_every_rule_and_every_lattice_name_each_rule_declares():
    """Over runs that exercise every rule (collapsing vessels, mutation, chemotherapy and anti-PD-1 from hour 2 with
    immune cells present, T cells that divide after a kill, assessments every 12 h, pushing, angiogenesis, macrophages
    that eat dead cells and keep vessels, under a CSF1R inhibitor), every lattice array a rule declares is read or written by it: no stale declaration."""
    log = set(probed_run(REPO / "configs" / "poor_perfusion.yaml", 6))
    log |= set(probed_run(REPO / "configs" / "tiny.yaml", 3, ("tumor.max_push_distance=3",)))
    log |= set(probed_run(REPO / "configs" / "angiogenesis.yaml", 6))
    log |= set(probed_run(REPO / "configs" / "immune_escape.yaml", 6, seed_immune=True))
    log |= set(probed_run(REPO / "configs" / "sequencing.yaml", 12, ("arms.concurrent.start_day=0.08", "arms.concurrent.assessment.every_days=0.5",
                           "immune.t_cells.proliferation_after_kill=0.5"),
                          arm="concurrent", seed_immune=True))
    log |= set(probed_run(REPO / "configs" / "therapy_macrophages.yaml", 6, (
        "arms.anti_pd1_csf1r.start_day=0.08", "immune.suppressors.tam.phagocytosis={rate_per_h: 0.5, m1_below: 1.0}",
        "vessels.angiogenesis={field: csf1}", "immune.suppressors.tam.vessel_support=0.5"),
        arm="anti_pd1_csf1r", seed_immune=True))  # macrophages entering, polarised, killing, eating dead cells, keeping vessels, depleted
    touched = {(name, array) for name, _, array in log}
    for rule in DEFAULT_RULES:
        for array in (rule.reads | rule.writes) - COMPARTMENTS - FIELDS:
            assert (rule.name, array) in touched, f"{rule.name} declares {array} but never touched it"
        if FIELDS <= rule.reads | rule.writes:
            assert any(name == rule.name and array.startswith("fields.") for name, array in touched), rule.name


def test_the_probe_catches_an_undeclared_read():
    """A rule that reads vessels.perfusion without declaring it is caught (the check can fail)."""

    class Sneaky(Rule):
        name = "sneaky"
        reads = frozenset({"tumor.clone"})

        def apply(self, context):
            context.lattice.vessels.perfusion.sum()

    model = TumorModel(load_config(REPO / "configs" / "tiny.yaml"), get_backend("numpy"), rules=(Sneaky,))
    log: list = []
    current = ["sneaky"]
    model.context.lattice = Probe(model.context.lattice, log, current)
    model.rules[0].apply(model.context)
    assert ("sneaky", "get", "vessels.perfusion") in log
    assert not covers(Sneaky.reads, "vessels.perfusion")


def test_fields_wildcard_names_every_field():
    assert covers(FIELDS, "fields.oxygen") and not covers(frozenset({"fields.oxygen"}), "fields.drug")


def test_a_draw_at_listed_voxels_is_the_whole_lattice_draw_there():
    model = TumorModel(load_config(REPO / "configs" / "tiny.yaml"), get_backend("numpy"))
    listed = np.array([0, 17, 200, 2303])
    np.testing.assert_array_equal(model.context.draw(12, listed), model.context.draw(12).reshape(-1)[listed])
