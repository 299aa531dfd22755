"""``extends: NAME.yaml``: a config file built on another in the same directory, its values set over the base's as
``--set`` sets them; names that leave the directory, loops and long chains refused with one ``error:`` line."""
from __future__ import annotations

from pathlib import Path

import pytest

from abm.cli import main
from abm.config import ConfigError, load_config
from abm.config.loading import MAX_EXTENDS_DEPTH

REPO = Path(__file__).resolve().parents[1]
BASE = """seed: 3
lattice: {shape: [40, 40], dx_um: 20.0}
time: {dt_cell_h: 2.0, duration_days: 2, record_every_h: 24}
vessels: {pattern: uniform, density: 0.01}
tumor:
  clones:
    - {name: a, cycle_time_h: 18.0, fraction: 0.5}
    - {name: b, cycle_time_h: 30.0, fraction: 0.5}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_sets_its_values_over_the_base(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nlattice: {shape: [30, 30, 30]}\nseed: 9\n"
                                           "tumor: {clones: {1: {cycle_time_h: 40.0}}}\n")
    config = load_config(child)
    assert config.lattice.shape == [30, 30, 30]
    assert config.lattice.dx_um == 20.0  # kept from the base
    assert config.seed == 9
    assert [clone.cycle_time_h for clone in config.tumor.clones] == [18.0, 40.0]
    assert (config.vessels.pattern, config.vessels.density) == ("uniform", 0.01)


def test_extending_is_the_same_as_writing_the_merged_file_out(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\ntime: {duration_days: 4}\n")
    whole = _write(tmp_path, "whole.yaml", BASE.replace("duration_days: 2", "duration_days: 4"))
    assert load_config(child) == load_config(whole)


def test_a_list_replaces_the_base_list_and_a_tag_drops_the_other_variants_keys(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nvessels: {pattern: none}\n"
                                           "tumor: {clones: [{name: only, cycle_time_h: 22.0, fraction: 1.0}]}\n")
    config = load_config(child)
    assert config.vessels.pattern == "none"  # density, a uniform key, would be an error if it had been kept
    assert [clone.name for clone in config.tumor.clones] == ["only"]


def test_a_chain_of_files_and_set_over_it(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    _write(tmp_path, "middle.yaml", "extends: base.yaml\nseed: 5\ntime: {duration_days: 6}\n")
    top = _write(tmp_path, "top.yaml", "extends: middle.yaml\nseed: 7\n")
    config = load_config(top, ["time.duration_days=8"])
    assert (config.seed, config.time.duration_days, config.lattice.shape) == (7, 8, [40, 40])


@pytest.mark.parametrize("name, says", [
    ("../base.yaml", "is not allowed"),
    ("/etc/passwd", "is not allowed"),
    ("sub/base.yaml", "is not allowed"),
    (".hidden.yaml", "is not allowed"),
    ("base.txt", "is not allowed"),
    ("[base.yaml]", "is not allowed"),
    ("3", "is not allowed"),
    ("absent.yaml", "is not a file"),
    ("child.yaml", "leads back to itself"),
])
def test_bad_extends_is_one_error_naming_the_key(tmp_path, capsys, name, says):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "base.yaml", BASE)
    _write(tmp_path, ".hidden.yaml", BASE)
    child = _write(tmp_path / "sub", "child.yaml", f"extends: {name}\n")
    out = tmp_path / "out"
    assert main(["run", str(child), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "extends:" in err and says in err and "Traceback" not in err
    assert not out.exists()


def test_a_loop_through_two_files_and_a_long_chain_are_refused(tmp_path):
    _write(tmp_path, "one.yaml", "extends: two.yaml\n")
    _write(tmp_path, "two.yaml", "extends: one.yaml\n")
    with pytest.raises(ConfigError, match="one.yaml -> two.yaml -> one.yaml"):
        load_config(tmp_path / "one.yaml")
    _write(tmp_path, "f0.yaml", BASE)
    for index in range(1, MAX_EXTENDS_DEPTH + 1):
        _write(tmp_path, f"f{index}.yaml", f"extends: f{index - 1}.yaml\n")
    load_config(tmp_path / f"f{MAX_EXTENDS_DEPTH - 1}.yaml")
    with pytest.raises(ConfigError, match=f"at most {MAX_EXTENDS_DEPTH} files"):
        load_config(tmp_path / f"f{MAX_EXTENDS_DEPTH}.yaml")


def test_a_base_that_is_no_mapping_or_sets_a_value_as_a_section(tmp_path):
    _write(tmp_path, "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        load_config(_write(tmp_path, "a.yaml", "extends: list.yaml\n"))
    _write(tmp_path, "base.yaml", BASE)
    with pytest.raises(ConfigError, match="seed is a value, not a section"):
        load_config(_write(tmp_path, "b.yaml", "extends: base.yaml\nseed: {x: 1}\n"))


def test_a_run_records_the_merged_config_not_the_extends_key(tmp_path, capsys):
    _write(tmp_path, "base.yaml", BASE.replace("duration_days: 2", "duration_days: 0.25")
           .replace("record_every_h: 24", "record_every_h: 6"))
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nlattice: {shape: [24, 24]}\n")
    out = tmp_path / "out"
    assert main(["run", str(child), "--out", str(out), "--quiet"]) == 0
    written = (out / "config.yaml").read_text(encoding="utf-8")
    assert "extends" not in written and "- 24\n- 24\n" in written.replace("  ", "")
