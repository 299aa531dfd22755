"""Virtual-patient cohorts and sweeps of ``tme compare``: the draws, the paired design, the grid, and bad input."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from abm import cohort, rundir
from abm.cli import main
from abm.config import ConfigError, NormalDistribution, load_config, parse_config
from abm.sweep import grid, parse_sweeps
from tests.test_fuzz_config import BAD_NUMBERS, assert_one_error

REPO = Path(__file__).resolve().parents[1]
#: A small two-arm config (a 1-day run on a 24 x 24 lattice) with a cohort of two patients.
BASE = {
    "seed": 7,
    "lattice": {"shape": [24, 24], "dx_um": 20.0},
    "time": {"dt_cell_h": 1.0, "duration_days": 1, "record_every_h": 6, "snapshot_every_h": None},
    "tumor": {"initial": {"radius_um": 60.0}},
    "fields": {"oxygen": {"preset": "oxygen"},
               "cis": {"preset": "chemo_drug", "vessel": {"supply_per_min": 1.0, "blood_level": 0.0}}},
    "drugs": {"cis": {"pk": {"half_life_h": 6}, "emax_per_h": 0.3, "cycle_specific": False}},
    "arms": {"none": {"lines": [{"name": "watch"}], "assessment": {"every_days": 0.5}},
             "chemo": {"lines": [{"name": "chemo", "doses": [{"drug": "cis", "amount": 8}], "cycle_days": 1}],
                       "assessment": {"every_days": 0.5}}},
    "cohort": {"patients": 2, "parameters": {
        "tumor.clones.0.cycle_time_h": {"distribution": "lognormal", "median": 20, "sigma": 0.2},
        "drugs.cis.pk.half_life_h": {"distribution": "truncated_normal", "mean": 6, "sd": 2, "lower": 2, "upper": 12}}},
}
CYCLE, HALF_LIFE = "tumor.clones.0.cycle_time_h", "drugs.cis.pk.half_life_h"
HALF_LIFE_SPEC = ("cohort", "parameters", HALF_LIFE)


def _config(data: dict[str, Any] | None = None):
    return parse_config(copy.deepcopy(data or BASE))


def _write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _at(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


# --------------------------------------------------------------------------- the draws


def _no_constant(name: str):
    raise AssertionError(f"compare.json holds {name}, which is not JSON")


def test_draws_are_reproducible_per_key_and_apart_from_the_seed_of_the_runs():
    config = _config()
    first = cohort.patients(config)
    assert first == cohort.patients(_config()) and len(first) == 2
    alone = copy.deepcopy(BASE)
    del alone["cohort"]["parameters"][HALF_LIFE]
    assert [patient[CYCLE] for patient in cohort.patients(_config(alone))] == [patient[CYCLE] for patient in first]
    reseeded = copy.deepcopy(BASE)
    reseeded["seed"] = 8
    assert cohort.patients(_config(reseeded))[0][CYCLE] != first[0][CYCLE]
    # not the draws of numpy.random.default_rng(config.seed), whose stream seeds Mesa's model.rng
    assert first[0][CYCLE] != pytest.approx(20 * math.exp(0.2 * np.random.default_rng(7).standard_normal()))


def test_each_distribution_draws_what_it_declares():
    rng = np.random.default_rng(0)
    count = 4000
    spec = _config().cohort.parameters  # the variant classes, through the schema
    normal = cohort.draw(NormalDistribution(mean=3.0, sd=2.0), count, rng)
    assert abs(np.mean(normal) - 3.0) < 4 * 2.0 / math.sqrt(count) and abs(np.std(normal) - 2.0) < 0.1
    lognormal = np.log(cohort.draw(spec[CYCLE], count, rng))
    assert abs(np.median(lognormal) - math.log(20)) < 0.02 and abs(np.std(lognormal) - 0.2) < 0.01
    truncated = np.array(cohort.draw(spec[HALF_LIFE], count, rng))
    assert truncated.min() >= 2 and truncated.max() <= 12 and abs(truncated.mean() - 6.0) < 0.15
    data = copy.deepcopy(BASE)
    data["cohort"]["parameters"] = {
        "tumor.clones.0.apoptosis_per_h": {"distribution": "uniform", "lower": 0.001, "upper": 0.002},
        "tumor.clones.0.antigens": {"distribution": "categorical", "values": [[], [0], [0, 1]], "weights": [1, 0, 3]},
        # an interval far out in the upper tail: drawn as its mirror image, still inside it
        "tumor.clones.0.resistance_cost": {"distribution": "truncated_normal", "mean": 0.0, "sd": 0.01, "lower": 0.05,
                                           "upper": 0.06}}
    parameters = _config(data).cohort.parameters
    uniform = np.array(cohort.draw(parameters["tumor.clones.0.apoptosis_per_h"], count, rng))
    assert uniform.min() >= 0.001 and uniform.max() < 0.002 and abs(uniform.mean() - 0.0015) < 2e-5
    categories = cohort.draw(parameters["tumor.clones.0.antigens"], count, rng)
    assert [0] not in categories and abs(categories.count([0, 1]) / count - 0.75) < 0.03
    tail = np.array(cohort.draw(parameters["tumor.clones.0.resistance_cost"], count, rng))
    assert tail.min() >= 0.05 and tail.max() <= 0.06 and np.median(tail) < 0.052  # most mass near the lower bound


def test_patient_configs_hold_their_draws_and_no_cohort():
    config = _config()
    values = cohort.patients(config)
    configs = cohort.patient_configs(config, values)
    for patient, patient_config in zip(values, configs):
        data = patient_config.model_dump(mode="json")
        assert data["cohort"] is None
        assert _at(data, CYCLE) == patient[CYCLE] and _at(data, HALF_LIFE) == patient[HALF_LIFE]
    assert cohort.seeds(7, 3, 2) == [(0, 7), (0, 10), (1, 8), (1, 11), (2, 9), (2, 12)]


# --------------------------------------------------------------------------- the paired design


def test_paired_design_runs_every_arm_on_the_same_patients_and_seeds(tmp_path, capsys):
    out = tmp_path / "cmp"
    arguments = ["compare", str(_write(tmp_path, BASE)), "--out", str(out), "--replicates", "2", "--workers", "1", "--quiet"]
    assert main(arguments) == 0, capsys.readouterr().err
    patients = pd.read_parquet(out / "patients.parquet")
    assert list(patients.columns) == ["patient", CYCLE, HALF_LIFE] and list(patients["patient"]) == [0, 1]
    drawn = cohort.patients(_config())
    assert np.array_equal(patients[CYCLE].to_numpy(), [patient[CYCLE] for patient in drawn])
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 8
    by_arm = {arm: rows.sort_values("seed")[["patient", "seed"]].to_numpy().tolist() for arm, rows in runs.groupby("arm")}
    assert by_arm["none"] == by_arm["chemo"] == [[0, 7], [1, 8], [0, 9], [1, 10]]
    for arm in ("none", "chemo"):
        for patient, seed in by_arm[arm]:
            resolved = rundir.read_yaml(rundir.compare_run_path(out, arm, seed) / rundir.CONFIG)
            assert resolved["seed"] == seed and resolved["cohort"] is None
            assert _at(resolved, CYCLE) == patients[CYCLE][patient] and _at(resolved, HALF_LIFE) == patients[HALF_LIFE][patient]
    # the arms' run configs differ in their treatment only
    none, chemo = (rundir.read_yaml(rundir.compare_run_path(out, arm, 9) / rundir.CONFIG) for arm in ("none", "chemo"))
    assert {key for key in none if none[key] != chemo[key]} <= {"treatment", "run"}
    paired = pd.read_parquet(out / "paired.parquet")
    assert tuple(paired.columns) == rundir.PAIRED_COLUMNS and set(paired["arm"]) == {"chemo"}
    cells = paired[paired["endpoint"] == "final_tumor_cells_live"].sort_values("seed")
    final = runs.set_index(["arm", "seed"])["final_tumor_cells_live"]
    assert cells["difference"].tolist() == [final["chemo", seed] - final["none", seed] for seed in (7, 8, 9, 10)]
    result = json.loads((out / "compare.json").read_text(), parse_constant=_no_constant)
    assert result["patients"] == 2 and result["replicates"] == 2 and result["arms"]["none"]["runs"] == 4
    summary = result["arms"]["chemo"]["paired_vs_none"]["final_tumor_cells_live"]
    assert summary["pairs"] == 4 and summary["mean_difference"] == pytest.approx(cells["difference"].mean())
    assert summary["lower"] == 4  # the drug kills on every patient
    stamp = (rundir.compare_run_path(out, "none", 10) / rundir.SUMMARY).stat().st_mtime_ns
    assert main(arguments[:5] + ["3"] + arguments[6:]) == 0  # more replicates: the runs there keep their seeds
    assert (rundir.compare_run_path(out, "none", 10) / rundir.SUMMARY).stat().st_mtime_ns == stamp
    more = pd.read_parquet(out / "runs.parquet")
    assert sorted(zip(more.loc[more["arm"] == "chemo", "patient"], more.loc[more["arm"] == "chemo", "seed"])) == [
        (0, 7), (0, 9), (0, 11), (1, 8), (1, 10), (1, 12)]


SWEEP = ("--arms", "chemo", "--sweep", "arms.chemo.lines.0.doses.0.amount=1,8", "--sweep", "tumor.initial.radius_um=40,60")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A sweep of two doses x two radii, one patient, the chemo arm: (config file, sweep directory, what it printed)."""
    folder = tmp_path_factory.mktemp("sweep")
    data = copy.deepcopy(BASE)
    data["cohort"]["patients"] = 1
    config = _write(folder, data)
    out = folder / "sweep"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["compare", str(config), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet", *SWEEP]) == 0
    return config, out, printed.getvalue()


def test_sweep_runs_the_grid_each_point_a_comparison(swept, capsys):
    config, out, printed = swept
    assert "point 3 (arms.chemo.lines.0.doses.0.amount=8, tumor.initial.radius_um=60)" in printed
    result = json.loads((out / rundir.SWEEP_RESULT).read_text())
    assert [point["values"] for point in result["points"]] == [
        {"arms.chemo.lines.0.doses.0.amount": amount, "tumor.initial.radius_um": radius} for amount in (1, 8) for radius in (40, 60)]
    table = pd.read_parquet(out / "sweep.parquet")
    assert list(table.columns) == ["point", "arms.chemo.lines.0.doses.0.amount", "tumor.initial.radius_um",
                                   *rundir.SWEEP_COLUMNS]
    assert list(table["point"]) == [0, 1, 2, 3] and set(table["arm"]) == {"chemo"}
    for point in result["points"]:
        folder = out / point["directory"]
        assert folder == rundir.sweep_point_path(out, point["point"]) and rundir.is_comparison(folder)
        resolved = rundir.read_yaml(rundir.compare_run_path(folder, "chemo", 7) / rundir.CONFIG)
        assert resolved["tumor"]["initial"]["radius_um"] == point["values"]["tumor.initial.radius_um"]
        assert resolved["treatment"]["lines"][0]["doses"][0]["amount"] == point["values"]["arms.chemo.lines.0.doses.0.amount"]
        runs = pd.read_parquet(folder / "runs.parquet")
        assert table[table["point"] == point["point"]]["final_tumor_cells_live_mean"].item() == runs["final_tumor_cells_live"].mean()
    cells = table.set_index("point")["final_tumor_cells_live_mean"]
    assert cells[2] < cells[0] and cells[3] < cells[1]  # the larger dose kills more at either radius
    assert cells[1] > cells[0]  # a larger tumor, on the small dose, keeps more cells
    assert main(["compare", str(config), "--out", str(out), "--replicates", "1", "--workers", "1", "--quiet",
                 *SWEEP[:-3], "arms.chemo.lines.0.doses.0.amount=1,4", *SWEEP[-2:]]) == 2  # another grid, another config
    assert "was made by another config" in capsys.readouterr().err


def test_sweep_figure_draws_each_endpoint_per_arm(swept, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from viz.sweep import ENDPOINTS, open_sweep, sweep_figure

    _, out, _ = swept
    assert main(["plot", str(out), "--formats", "png", "--out", str(tmp_path / "figures"), "--quiet"]) == 0
    assert (tmp_path / "figures" / "sweep.png").is_file()
    data = open_sweep(out)
    lines = {line.get_gid(): line for ax in sweep_figure(data).axes for line in ax.get_lines()}
    assert set(lines) == {f"sweep chemo {endpoint}" for endpoint in ENDPOINTS}
    table = pd.read_parquet(out / "sweep.parquet")
    for endpoint in ENDPOINTS:
        assert np.array_equal(lines[f"sweep chemo {endpoint}"].get_ydata(), table[endpoint].to_numpy(float), equal_nan=True)
    assert main(["report", str(out)]) == 2
    assert "a sweep directory; report one of its points" in capsys.readouterr().err


def test_sweep_values_are_a_yaml_list():
    config = load_config(REPO / "configs" / "tiny.yaml")
    sweeps = parse_sweeps(["lattice.shape=[32, 32],[48,48]", "tumor.clones.0.cycle_time_h=16, 20.5"], config)
    assert sweeps == {"lattice.shape": [[32, 32], [48, 48]], "tumor.clones.0.cycle_time_h": [16, 20.5]}
    assert grid(sweeps)[1] == {"lattice.shape": [32, 32], "tumor.clones.0.cycle_time_h": 20.5}
    assert grid({}) == [{}]


# --------------------------------------------------------------------------- bad input


def _with(path: str | tuple[str, ...], value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``data`` (default BASE) with the value at ``path`` (dotted, or its parts) set (None removes it)."""
    changed = copy.deepcopy(data or BASE)
    parts = path.split(".") if isinstance(path, str) else path
    node = changed
    for part in parts[:-1]:
        node = node[part]
    if value is None:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return changed


COHORT_CASES = {
    "unknown cohort key": (_with("cohort.parameters", {"tumor.clones.0.cycle_time": {"median": 1, "sigma": 1,
                                                                                     "distribution": "lognormal"}}), (),
                           ("cohort.parameters.tumor.clones.0.cycle_time", "no config key", "cycle_time_h")),
    "cohort key past a list": (_with("cohort.parameters", {"tumor.clones.3.cycle_time_h": {"mean": 1, "sd": 1}}), (),
                               ("cohort.parameters.tumor.clones.3.cycle_time_h", "not an index")),
    "reserved cohort key": (_with("cohort.parameters", {"seed": {"mean": 1, "sd": 1}}), (), ("cohort.parameters.seed", "reserved")),
    "negative sd": (_with((*HALF_LIFE_SPEC, "sd"), -1), (), (f"cohort.parameters.{HALF_LIFE}", "sd", "greater than 0")),
    "lower above upper": (_with((*HALF_LIFE_SPEC, "lower"), 13), (),
                          (f"cohort.parameters.{HALF_LIFE}", "lower (13) must be less than upper (12)")),
    "interval out in the tail": (_with(HALF_LIFE_SPEC, {"distribution": "truncated_normal", "mean": 6,
                                                                           "sd": 0.01, "lower": 11, "upper": 12}), (),
                                 (f"cohort.parameters.{HALF_LIFE}", "too far in the tail")),
    "uniform lower above upper": (_with(HALF_LIFE_SPEC, {"distribution": "uniform", "lower": 5, "upper": 4}),
                                  (), (f"cohort.parameters.{HALF_LIFE}", "lower (5) must be less than upper (4)")),
    "unknown distribution": (_with(HALF_LIFE_SPEC, {"distribution": "gamma", "shape": 2}), (),
                             (f"cohort.parameters.{HALF_LIFE}.distribution", "unknown distribution", "lognormal")),
    "weights of another length": (_with(HALF_LIFE_SPEC, {"distribution": "categorical", "values": [4, 6],
                                                                            "weights": [1]}), (),
                                  (f"cohort.parameters.{HALF_LIFE}", "1 weights for 2 values")),
    "weights all zero": (_with(HALF_LIFE_SPEC, {"distribution": "categorical", "values": [4, 6],
                                                                   "weights": [0, 0]}), (),
                         (f"cohort.parameters.{HALF_LIFE}", "all 0")),
    "zero patients": (_with("cohort.patients", 0), (), ("cohort.patients", "greater than or equal to 1")),
    "a draw the config refuses": (_with(("cohort", "parameters", CYCLE), {"distribution": "normal", "mean": -10, "sd": 1}), (),
                                  ("cohort: patient", CYCLE, "truncated_normal")),
    "zero replicates": (BASE, ("--replicates", "0"), ("--replicates", "at least 1")),
    "unknown sweep key": (BASE, ("--sweep", "tumor.clones.0.cycle_time=16,20"), ("--sweep tumor.clones.0.cycle_time", "no config key")),
    "sweep key of the cohort": (BASE, ("--sweep", f"{CYCLE}=16,20"), (f"--sweep {CYCLE}", "cohort.parameters draws it")),
    "sweep of the treatment": (_with("treatment", BASE["arms"]["none"]), ("--sweep", "treatment.start_day=0,1"),
                               ("--sweep treatment.start_day", "by its arm", "arms.NAME.start_day")),
    "sweep of the seed": (BASE, ("--sweep", "seed=1,2"), ("--sweep seed", "reserved")),
    "sweep without values": (BASE, ("--sweep", "time.duration_days="), ("--sweep time.duration_days", "no values")),
    "sweep without =": (BASE, ("--sweep", "time.duration_days"), ("--sweep 'time.duration_days'", "expected")),
    "sweep value given twice": (BASE, ("--sweep", "time.duration_days=1,1"), ("--sweep time.duration_days", "given twice")),
    "sweep key given twice": (BASE, ("--sweep", "time.duration_days=1", "--sweep", "time.duration_days=2"),
                              ("--sweep time.duration_days", "given twice")),
    "sweep values that do not parse": (BASE, ("--sweep", "time.duration_days=[1,2"), ("--sweep time.duration_days", "YAML")),
    "sweep value the config refuses": (BASE, ("--sweep", "time.duration_days=1,0.01"),
                                       ("--sweep point 1 (time.duration_days=0.01)", "whole number")),
    "sweep grid too large": (BASE, ("--sweep", "time.duration_days=" + ",".join(str(n) for n in range(1, 41)),
                                    "--sweep", "tumor.initial.radius_um=" + ",".join(str(n) for n in range(20, 60))),
                             ("--sweep", "1,600 points", "at most 1,000")),
}


def _refused(tmp_path: Path, data: dict[str, Any], arguments: tuple[str, ...], says: tuple[str, ...], capsys) -> None:
    config = _write(tmp_path, data)
    out = tmp_path / "out"
    status = main(["compare", str(config), "--out", str(out), "--workers", "1", "--quiet", *arguments])
    err = capsys.readouterr().err
    assert status == 2, err
    assert_one_error(err)
    for text in says:
        assert text in err, f"{text!r} not in {err!r}"
    assert [path.name for path in tmp_path.iterdir()] == ["config.yaml"], "nothing written"


@pytest.mark.parametrize("name", list(COHORT_CASES))
def test_bad_cohort_or_sweep_is_refused_before_any_run(name, tmp_path, capsys):
    _refused(tmp_path, *COHORT_CASES[name], capsys)


#: Numeric parameters of each distribution, and a valid section to mutate.
DISTRIBUTIONS = {
    "normal": {"distribution": "normal", "mean": 6, "sd": 1},
    "lognormal": {"distribution": "lognormal", "median": 6, "sigma": 0.1},
    "truncated_normal": {"distribution": "truncated_normal", "mean": 6, "sd": 1, "lower": 4, "upper": 8},
    "uniform": {"distribution": "uniform", "lower": 4, "upper": 8},
    "categorical": {"distribution": "categorical", "values": [4, 8], "weights": [1, 1]},
}


def _fuzz_cases() -> dict[str, tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]]:
    """Bad cohorts and sweeps: every number of every distribution and of the cohort set to each bad number, an
    unknown key in every section, random keys that name nothing; each must name its key."""
    chooser = random.Random(15)
    cases = {}
    for kind, section in DISTRIBUTIONS.items():
        where = f"cohort.parameters.{HALF_LIFE}"
        for key, value in section.items():
            if key == "distribution":
                continue
            for bad in BAD_NUMBERS:
                if bad == -1 and (key == "lower" or kind == "truncated_normal"):
                    continue  # a valid distribution whose draws, on [lower, upper], stay positive
                if isinstance(value, list):
                    bad = [bad] * len(value)
                data = _with(HALF_LIFE_SPEC, {**section, key: bad})
                # refused by the schema (naming cohort.parameters.KEY), or valid (mean -1, values of any type) and its
                # draws refused on each patient's config (naming KEY)
                cases[f"{kind}.{key}={bad!r}"] = (data, (), (HALF_LIFE,))
        cases[f"{kind} unknown key"] = (_with(HALF_LIFE_SPEC, {**section, "spread": 1}), (), (f"{where}.spread", "unknown key"))
    for bad in BAD_NUMBERS:
        cases[f"patients={bad!r}"] = (_with("cohort.patients", bad), (), ("cohort.patients",))
    cases["cohort unknown key"] = (_with("cohort.size", 3), (), ("cohort.size", "unknown key", "patients, parameters"))
    cases["cohort without patients"] = (_with("cohort.patients", None), (), ("cohort.patients", "required"))
    paths = ["tumor.clones.0.nope", "lattice.shape.2", "lattice.dx_um.x", "drugs.nodrug.pk", "immune.t_cells.x",
             "arms.none.lines.9.name", "cohort.patients", "backend", "tumor..x", "fields.oxygen.nope"]
    for path in paths:
        garbled = "".join(chooser.choice("abcxyz_") for _ in range(6))
        for key in (path, f"{path}.{garbled}"):
            cases[f"cohort key {key}"] = (_with("cohort.parameters", {key: DISTRIBUTIONS["normal"]}), (),
                                          (f"cohort.parameters.{key}",))
            cases[f"sweep key {key}"] = (BASE, ("--sweep", f"{key}=1,2"), (f"--sweep {key}",))
    for bad in BAD_NUMBERS:
        shown = json.dumps(bad) if not (isinstance(bad, float) and not math.isfinite(bad)) else (".nan" if bad != bad else
                                                                                            ("-.inf" if bad < 0 else ".inf"))
        cases[f"sweep value {bad!r}"] = (BASE, ("--sweep", f"{HALF_LIFE}=6,{shown}"), ("--sweep point 1", HALF_LIFE))
    return cases


FUZZ = _fuzz_cases()


def test_enough_fuzz_cases():
    assert len(FUZZ) >= 100


@pytest.mark.parametrize("name", list(FUZZ))
def test_fuzzed_cohort_or_sweep_is_refused_cleanly(name, tmp_path, capsys):
    data, arguments, says = FUZZ[name]
    if says[0].startswith("--sweep point"):
        data = _with("cohort", None)  # the swept key is drawn by the cohort otherwise
    _refused(tmp_path, data, arguments, says, capsys)


def test_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="cohort.parameters.nope: no config key nope"):
        _config(_with("cohort.parameters", {"nope": DISTRIBUTIONS["normal"]}))


def test_the_cohort_of_docs_experiments_draws_valid_patients():
    """The cohort section shown in docs/experiments.md, added to configs/sequencing.yaml: every patient is valid."""
    text = (REPO / "docs" / "experiments.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    data = load_config(REPO / "configs" / "sequencing.yaml").model_dump(mode="json")
    data.update(yaml.safe_load(block))
    config = parse_config(data)
    values = cohort.patients(config)
    configs = cohort.patient_configs(config, values)
    assert len(configs) == 20 and len({patient["drugs.chemo.pk.half_life_h"] for patient in values}) == 20
    assert {tuple(patient["tumor.clones.0.antigens"]) for patient in values} == {(0,), (0, 1), (0, 1, 2)}


def test_validate_draws_and_checks_the_patients(tmp_path, capsys):
    assert main(["validate", str(_write(tmp_path, BASE))]) == 0
    assert "cohort: 2 valid patient(s)" in capsys.readouterr().out
    refused = _with(("cohort", "parameters", CYCLE), {"distribution": "normal", "mean": -10, "sd": 1})
    assert main(["validate", str(_write(tmp_path, refused))]) == 2
    err = capsys.readouterr().err
    assert_one_error(err)
    assert "cohort: patient 0" in err and CYCLE in err


def test_paired_summary_counts_only_pairs_where_both_runs_have_the_endpoint():
    """An untreated run has no best change (NaN in runs.parquet): its pairs are left out, and with none left the
    mean and median are None (null in compare.json), not NaN."""
    paired = pd.DataFrame({
        "arm": "chemo", "endpoint": "best_change_from_baseline", "censored": False,
        "difference": [math.nan, -0.25, math.nan, -0.75]})
    summary = cohort.paired_summary(paired, "chemo")["best_change_from_baseline"]
    assert summary["pairs"] == 2 and summary["mean_difference"] == -0.5 and summary["lower"] == 2
    paired["difference"] = math.nan
    summary = cohort.paired_summary(paired, "chemo")["best_change_from_baseline"]
    assert summary["pairs"] == 0 and summary["mean_difference"] is None and summary["median_difference"] is None
