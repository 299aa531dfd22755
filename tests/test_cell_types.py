"""Cell types as data (issue 13, item 2): a suppressor type under a new name declared by config only, and run.

Immune cell types are the table ``immune.suppressors`` beside the T cells;
the legacy keys ``immune.tregs`` / ``immune.mdscs`` declare the preset types
of those names (abm.config.presets.SUPPRESSOR_PRESETS). Kind codes, entry
streams and count columns follow each type's slot (preset types first), the
run writes ``agents.parquet``, and viz reads the numbering from it.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abm import rundir, streams
from abm.config import MAX_SUPPRESSOR_TYPES, ConfigError, SUPPRESSOR_PRESETS, parse_config, read_yaml, to_yaml
from abm.runner import run
from viz import figures, palette
from viz.rundir import open_run

REPO = Path(__file__).resolve().parents[1]

BASE = """
seed: 3
lattice: {shape: [40, 40], dx_um: 20.0}
time: {dt_cell_h: 1.0, duration_days: 0.5, record_every_h: 3, snapshot_every_h: 6}
fields:
  oxygen: {preset: oxygen}
  chemokine: {preset: chemokine}
  danger_signal: {preset: danger_signal}
  tgf_beta:
    preset: tgf_beta
    secretion_per_min: {SECRETOR: 1.0}
tumor:
  initial: {radius_um: 120.0}
immune:
  t_cells:
    clones: [{name: anti0, antigen: 0, precursors: 100}]
    recruitment: {rate_per_h: 0.2}
"""
SUPPRESSOR = """
    recruitment: {rate_per_h: 3.0}
    motility: {speed_um_per_min: 2.0, chemotaxis_field: null}
    contact_inhibition: 0.9
"""


def _config(immune_tail: str, secretor: str):
    text = BASE.replace("SECRETOR", secretor) + immune_tail
    return parse_config(read_yaml(text), "test config")


def _indented(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line.lstrip() + "\n" if line.strip() else "" for line in text.splitlines())


NEW_TYPE = "  suppressors:\n    tam:\n      role: suppressor\n" + _indented(SUPPRESSOR, 6)


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(rundir.table_path(out, name)) for name in ("timeseries", "clones", "immune", "agents")}


def test_a_new_suppressor_type_is_declared_by_config_and_runs(tmp_path):
    config = _config(NEW_TYPE, "tam")
    assert list(config.immune.suppressors) == ["tam"]
    assert config.immune.kind_codes == {"t_cell": 0, "tam": len(SUPPRESSOR_PRESETS) + 1}
    out = tmp_path / "run"
    run(config, out, progress=False)
    tables = _tables(out)
    agents = tables["agents"]
    assert list(agents.columns[:5]) == list(rundir.AGENT_COLUMNS)
    assert agents[["index", "kind", "name", "role", "parent"]].values.tolist() == [
        [0, 0, "anti0", "t_cell", -1], [1, len(SUPPRESSOR_PRESETS) + 1, "tam", "suppressor", -1]]
    assert {"antigen", "speed_um_per_min", "death_per_h"} <= set(agents.columns)
    series = tables["timeseries"]
    assert series["tams"].iloc[-1] > 0, "the new type is recruited at vessels"
    for name in SUPPRESSOR_PRESETS.values():  # the preset types' counts stay, zero
        assert (series[rundir.suppressor_column(name)] == 0).all()
    immune = tables["immune"]
    tam = immune[immune["name"] == "tam"]
    assert (tam["kind"] == "tam").all() and (tam["agent"] == 1).all() and tam["cells_effector"].iloc[-1] > 0

    opened = open_run(out)
    assert [(agent.index, agent.name, agent.code, agent.role) for agent in opened.immune_agents] == [
        (0, "anti0", 0, "t_cell"), (1, "tam", len(SUPPRESSOR_PRESETS) + 1, "suppressor")]
    classes = opened.immune_glyph_classes(opened.last_snapshot())
    tam_class = palette.GLYPH_SUPPRESSOR_FIRST + len(SUPPRESSOR_PRESETS)
    assert (classes == tam_class).sum() == series["tams"].iloc[-1]
    assert opened.immune_glyphs[tam_class].label == "tam"
    import matplotlib.pyplot as plt

    figure = figures.immune_figure(opened)
    labels = [text.get_text() for axes in figure.axes if axes.get_legend() for text in axes.get_legend().get_texts()]
    assert "tams" in labels
    plt.close(figure)


def test_legacy_keys_and_the_table_give_the_same_run(tmp_path):
    legacy = _config("  tregs:\n" + _indented(SUPPRESSOR, 4) + "  mdscs:\n" + _indented(SUPPRESSOR, 4), "treg")
    table = _config("  suppressors:\n    treg:\n" + _indented(SUPPRESSOR, 6) + "    mdsc:\n" + _indented(SUPPRESSOR, 6), "treg")
    assert to_yaml(legacy) == to_yaml(table)
    assert legacy.immune.kind_codes == {"t_cell": 0, "treg": 1, "mdsc": 2}
    outs = []
    for name, config in (("legacy", legacy), ("table", table)):
        run(config, tmp_path / name, progress=False)
        outs.append(_tables(tmp_path / name))
    for name in outs[0]:
        pd.testing.assert_frame_equal(outs[0][name], outs[1][name])
    assert outs[0]["timeseries"]["tregs"].max() > 0 and outs[0]["timeseries"]["mdscs"].max() > 0
    snapshots = [np.load(tmp_path / name / rundir.SNAPSHOTS / rundir.snapshot_name(12)) for name in ("legacy", "table")]
    assert all(np.array_equal(snapshots[0][key], snapshots[1][key]) for key in snapshots[0].files)


def test_the_table_reloads_and_its_names_are_checked():
    config = _config(NEW_TYPE, "tam")
    assert parse_config(read_yaml(to_yaml(config)), "dumped") == config
    with pytest.raises(ConfigError, match="t_cell: a cell type of that name exists already"):
        _config(NEW_TYPE.replace("tam:", "t_cell:"), "tumor")
    with pytest.raises(ConfigError, match="declares the suppressor type 'treg', which suppressors also declares"):
        _config(NEW_TYPE.replace("tam:", "treg:") + "  tregs: {}\n", "tumor")
    with pytest.raises(ConfigError, match=r"fields\.tgf_beta\.secretion_per_min\.macrophage: no cell type of that name"):
        _config(NEW_TYPE, "macrophage")
    many = "  suppressors:\n" + "".join(f"    s{index}: {{}}\n" for index in range(MAX_SUPPRESSOR_TYPES + 1))
    with pytest.raises(ConfigError, match=f"at most {MAX_SUPPRESSOR_TYPES}"):
        _config(many, "tumor")


def test_every_suppressor_slot_has_its_own_entry_stream():
    slots = len(SUPPRESSOR_PRESETS) + MAX_SUPPRESSOR_TYPES
    ids = [streams.suppressor_enter_stream(slot) for slot in range(slots)]
    assert ids[:2] == [14, 15]  # the ids of the fixed kinds before the table: same bits
    assert len(set(ids)) == slots
    others = {value for name, value in vars(streams).items() if name.startswith("STREAM_") and "SUPPRESSOR" not in name}
    assert not set(ids) & others
    block = next(block for block in streams.RANGES if streams.STREAM_SUPPRESSOR_ENTER == block.first)
    assert all(stream in block for stream in ids[2:])


#: Files of abm/, kernels/ and viz/ that may name cell types: the presets (and their labels).
NAMING_ALLOWED = {"abm/config/presets.py"}


def _code_without_docstrings_and_comments(text: str) -> str:
    text = re.sub(r'"""(?:.|\n)*?"""', '""', text)
    return re.sub(r"#[^\n]*", "", text)


def test_no_cell_type_names_outside_presets():
    """The preset suppressor type names appear in code only in the presets; docstrings and comments may name them."""
    names = [name for name in SUPPRESSOR_PRESETS.values()]
    pattern = re.compile("|".join(rf"\b{name}s?\b|{name.upper()}" for name in names), re.I)
    found = []
    for folder in ("abm", "kernels", "viz"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative in NAMING_ALLOWED:
                continue
            for number, line in enumerate(_code_without_docstrings_and_comments(path.read_text(encoding="utf-8")).splitlines()):
                if pattern.search(line):
                    found.append(f"{relative}: {line.strip()}")
    assert found == []
