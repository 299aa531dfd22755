"""Bad input to ``tme run``: one readable message naming the key, status 2, nothing on disk.

Each case is a user error (a config, an override, a path). The command must
exit with status 2 and print exactly one ``error:`` message on stderr that
names the offending key or option, print no traceback, and leave no run
directory behind.
"""
from __future__ import annotations

import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from abm.cli import main
from abm.config import load_config
from abm.model import TumorModel
from abm.runner import estimated_bytes
from kernels.backend import get_backend

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
SMALL = "lattice: {shape: [20, 20]}\ntime: {duration_days: 1}\n"
TREATED = SMALL + ("fields: {oxygen: {preset: oxygen}, dox: {preset: chemo_drug}}\n"
                   "drugs: {dox: {pk: {half_life_h: 30}}}\n")


@dataclass(frozen=True)
class Case:
    """One bad input: the config text (None: configs/tiny.yaml), extra arguments, and what stderr must say.

    ``says[0]`` is the key at fault; a config-validation message starts its line with it.
    """

    config: str | None
    arguments: tuple[str, ...]
    says: tuple[str, ...]


CASES = {
    "unknown key": Case(
        "lattice: {shape: [20, 20], dxx_um: 20}\ntime: {duration_days: 1}\n", (),
        ("lattice.dxx_um: unknown key", "allowed keys: shape, dx_um, field_coarsening")),
    "unknown top-level key": Case(
        SMALL + "tumour: {}\n", (),
        ("tumour: unknown key", "allowed keys: seed, backend, lattice, time, fields, vessels, tumor, drugs, immune, treatment, arms, cohort")),
    "negative rate": Case(
        None, ("--set", "tumor.clones.0.apoptosis_per_h=-0.1"),
        ("tumor.clones.0.apoptosis_per_h", "greater than or equal to 0", "-0.1")),
    "negative rate in a file": Case(
        SMALL + "tumor: {necrotic_clearance_per_h: -1}\n", (),
        ("tumor.necrotic_clearance_per_h", "greater than or equal to 0")),
    "wrong type": Case(
        "lattice: {shape: [20, 20]}\ntime: {duration_days: two}\n", (),
        ("time.duration_days", "valid number", "'two'")),
    "wrong type of section": Case(None, ("--set", "lattice=3"), ("lattice", "dictionary")),
    "angiogenesis without its field": Case(None, ("--set", "vessels.angiogenesis={field: vegf}"),
                                           ("vessels.angiogenesis.field", "no field named 'vegf'", "preset: vegf")),
    "infinite value": Case(None, ("--set", "time.duration_days=.inf"), ("time.duration_days", "finite")),
    "lattice too large for memory": Case(
        None, ("--set", "lattice.shape=[4096, 4096, 4096]"), ("lattice.shape", "GiB", "smaller lattice")),
    "lattice axis too long": Case(None, ("--set", "lattice.shape=[8192, 16]"), ("lattice.shape.0", "4096")),
    "lattice of one axis": Case(None, ("--set", "lattice.shape=[16]"), ("lattice.shape", "2 (2-D) or 3 (3-D)")),
    "field coarsening not allowed": Case(None, ("--set", "lattice.field_coarsening=3"), ("lattice.field_coarsening", "1, 2 or 4")),
    "field coarsening that does not divide the lattice": Case(
        None, ("--set", "lattice.shape=[20, 18]", "--set", "lattice.field_coarsening=4"),
        ("lattice.field_coarsening", "[20, 18]", "1, 2 or 4, dividing every extent")),
    "YAML that does not parse": Case("lattice: {shape: [20, 20]\ntime: {duration_days: 1}\n", (),
                                     ("YAML does not parse", "line 2")),
    "top level not a mapping": Case("- lattice\n- time\n", (), ("top level must be a mapping", "list")),
    "empty file": Case("", (), ("lattice: Field required", "time: Field required")),
    "bad --set without '='": Case(None, ("--set", "time.duration_days"), ("--set 'time.duration_days'", "key=value")),
    "--set past the end of a list": Case(None, ("--set", "tumor.clones.3.fraction=1"),
                                         ("tumor.clones.3", "not an index of a list of 1")),
    "duration not a whole number of steps": Case(
        None, ("--set", "time.duration_days=0.01"), ("time.duration_days", "whole number", "dt_cell_h")),
    "record cadence not a whole number of steps": Case(
        None, ("--set", "time.record_every_h=2.5"), ("time.record_every_h", "whole number")),
    "clone fractions not adding to 1": Case(
        SMALL + "tumor:\n  clones:\n    - {name: a, fraction: 0.5}\n    - {name: b, fraction: 0.4}\n", (),
        ("tumor.clones", "fractions must add up to 1", "0.9")),
    "z face on a 2-D lattice": Case(
        None, ("--set", "fields.oxygen.boundary.faces.z_min=3"), ("fields.oxygen.boundary.faces.z_min", "x_min")),
    "seed cluster centre of the wrong length": Case(
        None, ("--set", "tumor.initial.center_um=[1, 2, 3]"), ("tumor.initial.center_um", "needs 2 values")),
    "negative seed": Case(None, ("--seed", "-1"), ("seed", "greater than or equal to 0")),
    "sensitivity to an undeclared drug": Case(
        None, ("--set", "tumor.clones.0.drug_sensitivity={cisplatin: 0.1}"),
        ("tumor.clones.0.drug_sensitivity.cisplatin", "no drug of that name with a sensitivity", "declare the drug under drugs")),
    "resistance rule for an undeclared drug": Case(
        None, ("--set", "tumor.mutation.resistance={cisplatin: {probability: 0.1, sensitivity_factor: 0.1}}"),
        ("tumor.mutation.resistance.cisplatin", "no drug of that name with a sensitivity")),
    "drug without a field": Case(None, ("--set", "drugs={cisplatin: {}}"), ("drugs.cisplatin", "declare it under fields")),
    "oxygen as a drug": Case(None, ("--set", "drugs={oxygen: {}}"), ("drugs.oxygen", "oxygen is no drug")),
    "negative drug kill rate": Case(
        None, ("--set", "fields={oxygen: {preset: oxygen}, cis: {preset: chemo_drug}}", "--set", "drugs={cis: {emax_per_h: -1}}"),
        ("drugs.cis.emax_per_h", "greater than or equal to 0")),
    "unknown drug kind": Case(
        None, ("--set", "fields={oxygen: {preset: oxygen}, cis: {preset: chemo_drug}}", "--set", "drugs={cis: {kind: radiation}}"),
        ("drugs.cis.kind", "cytotoxic")),
    "anti-VEGF drug without angiogenesis or a normalisation window": Case(
        None, ("--set", "fields={oxygen: {preset: oxygen}, avegf: {preset: anti_vegf}}", "--set", "drugs={avegf: {kind: anti_vegf}}"),
        ("drugs.avegf.normalisation", "null", "without vessels.angiogenesis", "'avegf' would do nothing",
         "allowed: a window (perfusion_factor above 1), or set vessels.angiogenesis")),
    "normalisation window shorter than a cell step": Case(
        None, ("--set", "fields={oxygen: {preset: oxygen}, avegf: {preset: anti_vegf}}",
               "--set", "drugs={avegf: {kind: anti_vegf, normalisation: {duration_h: 0.25}}}"),
        ("drugs.avegf.normalisation.duration_h", "0.25 h is shorter than one cell step", "time.dt_cell_h = 1 h")),
    "mutation rate above 1": Case(
        None, ("--set", "tumor.clones.0.mutation_rate=2"), ("tumor.clones.0.mutation_rate", "less than or equal to 1")),
    "antigen out of range": Case(
        None, ("--set", "tumor.clones.0.antigens=[3, 64]"), ("tumor.clones.0.antigens.1", "less than 64")),
    "antigen repeated": Case(None, ("--set", "tumor.clones.0.antigens=[3, 3]"), ("tumor.clones.0.antigens", "repeat")),
    "cycle shorter than the cell step allows": Case(
        None, ("--set", "tumor.clones.0.cycle_time_h=1"), ("time.dt_cell_h", "ln 2")),
    "scattered cells without a count": Case(
        None, ("--set", "tumor.initial.geometry=scattered"), ("tumor.initial.cells", "Field required")),
    "more scattered cells than voxels": Case(
        None, ("--set", "tumor.initial={geometry: scattered, cells: 100000}"), ("tumor.initial.cells", "do not fit")),
    "vessel file missing": Case(
        None, ("--set", "vessels.pattern=file", "--set", "vessels.file=/nonexistent/vessels.npy"),
        ("vessels.file", "no such file")),
    "perfusion range reversed": Case(
        None, ("--set", "vessels.perfusion_min=0.8", "--set", "vessels.perfusion_max=0.2"),
        ("vessels", "perfusion_min (0.8) must not exceed perfusion_max (0.2)")),
    "dose of an undeclared drug": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: cisplatin, amount: 1}]}]}\n", (),
        ("treatment.lines.0.doses.0.drug", "no drug named 'cisplatin'", "drugs: dox")),
    "dose of a drug without pharmacokinetics": Case(
        TREATED.replace("pk: {half_life_h: 30}", "") + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1}]}]}\n", (),
        ("treatment.lines.0.doses.0.drug", "has no pk")),
    "line refers to a missing line": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1}], cycle_days: 21, end: {cycles: 2}, next: b}]}\n", (),
        ("treatment.lines.0.next", "no line named 'b'", "lines: a")),
    "cycle of zero days": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1}], cycle_days: 0}]}\n", (),
        ("treatment.lines.0.cycle_days", "greater than 0")),
    "overlapping infusions of one drug": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1, days: [0, 1], infusion_h: 30}], cycle_days: 7}]}\n", (),
        ("treatment.lines.0.doses.0", "overlap", "30 h")),
    "infusion longer than its cycle": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1, infusion_h: 200}], cycle_days: 7}]}\n", (),
        ("treatment.lines.0.doses.0", "overlap")),
    "end rule that can never trigger": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1}], next: b}, {name: b}]}\n", (),
        ("treatment.lines.0.end", "never triggers")),
    "cycles without a cycle length": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1}], end: {cycles: 3}}]}\n", (),
        ("treatment.lines.0.end.cycles", "no cycle_days")),
    "response the criteria do not have": Case(
        TREATED + "treatment: {lines: [{name: a, end: {response: VGPR}, next: a}]}\n", (),
        ("treatment.lines.0.end.response", "'VGPR' is no response of recist", "CR, PR, SD")),
    "dose day outside its cycle": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1, days: [0, 21]}], cycle_days: 21}]}\n", (),
        ("treatment.lines.0.doses.0.days", "not within the cycle")),
    "a key of another vessel pattern": Case(
        None, ("--set", "vessels={pattern: none, density: 0.01}"), ("vessels.density", "unknown key", "pattern, collapse")),
    "a key of another initial geometry": Case(
        None, ("--set", "tumor.initial={geometry: scattered, cells: 10, radius_um: 50}"),
        ("tumor.initial.radius_um", "unknown key")),
    "unknown vessel pattern": Case(
        None, ("--set", "vessels.pattern=radial"), ("vessels.pattern", "uniform", "sparse_core", "file")),
    "boolean for a number": Case(None, ("--set", "time.duration_days=true"), ("time.duration_days", "valid number", "True")),
    "number for a boolean": Case(
        TREATED.replace("pk: {half_life_h: 30}", "pk: {half_life_h: 30}, cycle_specific: 1"), (),
        ("drugs.dox.cycle_specific", "valid boolean")),
    "number beyond its range": Case(None, ("--set", "fields.oxygen.initial=1e308"), ("fields.oxygen.initial", "less than or equal to")),
    "voxel edge beyond its range": Case(None, ("--set", "lattice.dx_um=1e308"), ("lattice.dx_um", "1000")),
    "unsafe arm name": Case(
        SMALL + "arms: {../../victim: {lines: [{name: a}]}}\n", (), ("arms: key '../../victim'", "not a valid name", "starts with a letter")),
    "unsafe field name": Case(
        None, ("--set", "fields={oxygen: {preset: oxygen}, chemo/x: {preset: chemo_drug}}"), ("fields: key 'chemo/x'", "not a valid name")),
    "empty clone name": Case(None, ("--set", "tumor.clones.0.name=''"), ("tumor.clones.0.name", "not a valid name")),
    "arm names differing only in case": Case(
        SMALL + "arms: {Chemo: {lines: [{name: a}]}, chemo: {lines: [{name: a}]}}\n", (), ("arms", "differ only in case")),
    "key written twice": Case(
        "lattice: {shape: [20, 20], dx_um: 20, dx_um: 10}\ntime: {duration_days: 1}\n", (), ("lattice.dx_um", "appears twice", "line 1")),
    "alias bomb": Case(
        SMALL + "x-a: &a [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\nx-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nx-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "tumor: {clones: [{name: p, antigens: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]}]}\n", (),
        ("tumor.clones.0.antigens", "more than 100,000 values")),
    "lists nested too deep": Case(
        SMALL + "tumor: {clones: [{name: p, antigens: " + "[" * 150 + "]" * 150 + "}]}\n", (),
        ("tumor.clones.0.antigens", "more than 100 levels")),
    "alias bomb in --set": Case(
        None, ("--set", "tumor.clones.0.antigens=[&a [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
                        "&c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], "
                        "[*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]]"),
        ("--set tumor.clones.0.antigens", "more than 100,000 values")),
    "too many cell steps": Case(None, ("--set", "time.duration_days=1000", "--set", "time.dt_cell_h=0.001"),
                                ("time.duration_days", "at most 1,000,000 cell steps")),
    "cell step too short": Case(None, ("--set", "time.dt_cell_h=1e-9"), ("time.dt_cell_h", "greater than or equal to 0.001")),
    "field steps too short": Case(
        None, ("--set", "fields={oxygen: {preset: oxygen}, drug: {preset: chemo_drug, dt_min: 1e-6}}"),
        ("fields.drug.dt_min", "at most 1,000")),
    "T cells moving too many voxels per step": Case(
        SMALL + "immune: {t_cells: {clones: [{name: t, antigen: 0}], motility: {speed_um_per_min: 999, chemotaxis_field: null}, "
        "recruitment: {field: null}}}\nfields: {oxygen: {preset: oxygen}, danger_signal: {preset: danger_signal}}\n", (),
        ("immune.t_cells.motility.speed_um_per_min", "at most 1,000")),
    "margin wider than the lattice": Case(
        SMALL + "immune: {margin_um: 10000, tregs: {recruitment: {field: null}, motility: {chemotaxis_field: null}}}\n", (),
        ("immune.margin_um", "longest lattice axis")),
    "treatment starting after the run": Case(
        TREATED + "treatment: {start_day: 1000, lines: [{name: a, doses: [{drug: dox, amount: 1}]}]}\n", (),
        ("treatment.start_day", "not before the end of the run")),
    "contradictory end rule": Case(
        TREATED + "treatment: {lines: [{name: a, end: {burden_below: 0.5, burden_above: 0.4, burden_baseline: treatment}, next: a}]}\n", (),
        ("treatment.lines.0.end.burden_below", "not below burden_above")),
    "cycle shorter than a cell step": Case(
        TREATED + "treatment: {lines: [{name: a, doses: [{drug: dox, amount: 1}], cycle_days: 0.01}]}\n", (),
        ("treatment.lines.0.cycle_days", "shorter than one cell step")),
    "seed cluster centre outside the domain": Case(
        None, ("--set", "tumor.initial.center_um=[5000, 10]"), ("tumor.initial.center_um.0", "outside the domain")),
    "seed cluster holding no voxel centre": Case(
        None, ("--set", "tumor.initial.radius_um=1e-9"), ("tumor.initial.radius_um", "no voxel centre")),
    "a billion scattered cells": Case(
        None, ("--set", "tumor.initial={geometry: scattered, cells: 1000000000}"), ("tumor.initial.cells", "do not fit")),
    "seed above the limit": Case(None, ("--seed", str(2**63)), ("seed", "less than 9223372036854775808")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_message_naming_the_key(name, tmp_path, capsys):
    """Every case: status 2, one ``error:`` message that says what is wrong, no run directory."""
    case = CASES[name]
    if case.config is None:
        config = TINY
    else:
        config = tmp_path / "config.yaml"
        config.write_text(case.config, encoding="utf-8")
    out = tmp_path / "run"
    status = main(["run", str(config), "--out", str(out), "--quiet", *case.arguments])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert captured.err.count("error:") == 1
    assert "Traceback" not in captured.err
    for text in case.says:
        assert text in captured.err
    if "invalid config:" in captured.err:  # then every following line starts with the key it is about
        details = captured.err.splitlines()[1:]
        assert details and all(line.startswith("  ") for line in details)
        assert details[0].strip().startswith(case.says[0])
    assert not out.exists()


def test_config_file_too_large(tmp_path, capsys):
    """A config file over 1 MiB is refused before it is read."""
    config = tmp_path / "huge.yaml"
    config.write_text(SMALL + "#" * (1 << 20) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {config}: 1,048,6")
    assert not out.exists()


def test_missing_config_file(tmp_path, capsys):
    """A config path that does not exist is named in the message."""
    missing = tmp_path / "nowhere.yaml"
    out = tmp_path / "run"
    assert main(["run", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: config file not found: {missing}\n"
    assert not out.exists()


def test_output_directory_that_holds_files_is_left_alone(tmp_path, capsys):
    """An --out that exists and is not empty is refused, and what it holds is untouched."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    assert main(["run", str(TINY), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: directory exists and is not empty")
    assert [path.name for path in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_output_directory_that_cannot_be_created(tmp_path, capsys):
    """An --out below a regular file cannot be created: a message naming --out, not an OSError traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("", encoding="utf-8")
    out = blocker / "run"
    assert main(["run", str(TINY), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: cannot create the directory")
    assert blocker.is_file()


def test_empty_output_directory_is_used(tmp_path, capsys):
    """An --out that exists but is empty is a valid run directory."""
    out = tmp_path / "run"
    out.mkdir()
    assert main(["run", str(TINY), "--out", str(out), "--quiet", "--set", "time.duration_days=0.25"]) == 0
    assert (out / "summary.json").is_file()


def test_installed_script_prints_no_traceback(tmp_path):
    """The console script itself turns a user error into one line on stderr and status 2."""
    config = tmp_path / "broken.yaml"
    config.write_text("lattice: [\n", encoding="utf-8")
    out = tmp_path / "run"
    result = subprocess.run([str(Path(sys.executable).with_name("tme")), "run", str(config), "--out", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {config}: YAML does not parse")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_memory_estimate_covers_the_measured_peak():
    """The estimate that refuses large lattices is above the NumPy peak of a small run, and not far above.

    benchmarks/memory.py measures the constants behind the estimate; a kernel
    change that moves the peak outside these bounds needs them measured again.
    The constants are the larger of the NumPy and CuPy measurements: since the
    compiled CPU loops NumPy's base is about 85 bytes per voxel below CuPy's,
    which puts the estimate of this one-field run at about 1.53 times its
    NumPy peak (abm.runner), hence the bound of 1.6.
    """
    config = load_config(REPO / "configs" / "default.yaml", ["lattice.shape=[32, 32, 32]"])
    tracemalloc.start()
    try:
        model = TumorModel(config, get_backend("numpy"))
        for _ in range(2):
            model.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= estimated_bytes(config) <= 1.6 * peak


def test_a_seed_cluster_filled_by_vessels_is_refused_before_anything_is_written(tmp_path, capsys):
    """The ball holds voxel centres (the load-time check passes) but a vessel file covers them all: no initial cell."""
    vessels = tmp_path / "vessels.npy"
    np.save(vessels, np.ones((20, 20), dtype=bool))
    out = tmp_path / "run"
    status = main(["run", str(TINY), "--out", str(out), "--quiet", "--set", "lattice.shape=[20, 20]",
                   "--set", "vessels.pattern=file", "--set", f"vessels.file={vessels}"])
    assert status == 2
    assert capsys.readouterr().err.startswith("error: tumor.initial: no initial tumor cell")
    assert not out.exists()


def test_compare_refuses_replicates_past_the_largest_seed(tmp_path, capsys):
    out = tmp_path / "cmp"
    status = main(["compare", str(REPO / "configs" / "sequencing.yaml"), "--out", str(out), "--seed", str(2**63 - 2),
                   "--replicates", "3"])
    assert status == 2
    assert "--replicates: 3 runs from seed" in capsys.readouterr().err
    assert not out.exists()
