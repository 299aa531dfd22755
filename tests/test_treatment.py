"""Treatment: plasma pharmacokinetics, lines and cycles, end rules, assessments, events, lymphodepletion, PD-1 occupancy."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from abm.config import PharmacokineticsConfig, load_config
from abm.model import TumorModel
from abm.rules import ImmunePriming, SolveFields, Therapy as TherapyRule
from abm.therapy import Dose, Pharmacokinetics, Therapy
from kernels.backend import get_backend

NUMPY = get_backend("numpy")


# --------------------------------------------------------------------------- pharmacokinetics

def test_bolus_plasma_level_follows_the_half_life():
    kinetics = Pharmacokinetics(PharmacokineticsConfig(half_life_h=30.0))
    doses = [Dose(10.0, 2.0, 0.0)]
    assert kinetics.level(doses, 9.99) == 0.0
    assert kinetics.level(doses, 10.0) == pytest.approx(2.0)
    for hours in (30.0, 60.0, 90.0):
        assert kinetics.level(doses, 10.0 + hours) == pytest.approx(2.0 * 0.5 ** (hours / 30.0), rel=1e-12)


def test_two_compartment_bolus_falls_fast_then_slow():
    kinetics = Pharmacokinetics(PharmacokineticsConfig(half_life_h=30.0, distribution_half_life_h=5 / 60, distribution_fraction=0.7))
    doses = [Dose(0.0, 1.0, 0.0)]
    assert kinetics.level(doses, 5 / 60) == pytest.approx(0.7 * 0.5 + 0.3 * 0.5 ** (5 / 60 / 30))
    late = [kinetics.level(doses, t) for t in (10.0, 40.0)]
    assert late[1] / late[0] == pytest.approx(0.5, rel=1e-6)  # the terminal phase alone


def test_infusion_delivers_the_amount_over_its_duration_and_doses_add():
    kinetics = Pharmacokinetics(PharmacokineticsConfig(half_life_h=2.0))
    rate = math.log(2) / 2.0
    infusion = [Dose(0.0, 3.0, 3.0)]
    assert kinetics.level(infusion, 3.0) == pytest.approx(3.0 / 3.0 / rate * (1 - math.exp(-rate * 3.0)))
    both = infusion + [Dose(1.0, 1.0, 0.0)]
    assert kinetics.level(both, 5.0) == pytest.approx(kinetics.level(infusion, 5.0) + kinetics.level([Dose(1.0, 1.0, 0.0)], 5.0))


@pytest.mark.parametrize("doses", [[Dose(1.0, 2.0, 0.0)], [Dose(0.5, 2.0, 4.0), Dose(6.0, 1.0, 0.0)]])
def test_exposure_is_the_integral_of_the_level(doses):
    kinetics = Pharmacokinetics(PharmacokineticsConfig(half_life_h=3.0, distribution_half_life_h=0.5, distribution_fraction=0.4))
    numeric = 0.0
    for dose in doses:  # each dose from its start, where its level is continuous
        times = np.linspace(dose.start_h, 20.0, 200001)
        levels = np.array([kinetics.level([dose], t) for t in times])
        numeric += float(np.sum((levels[1:] + levels[:-1]) / 2 * np.diff(times)))
    assert kinetics.exposure(doses, 0.0, 20.0) == pytest.approx(numeric, rel=1e-7)
    assert kinetics.exposure(doses, 0.0, 5.0) + kinetics.exposure(doses, 5.0, 20.0) == pytest.approx(kinetics.exposure(doses, 0.0, 20.0))


# --------------------------------------------------------------------------- lines and assessments

class ScriptedModel:
    """A stand-in for TumorModel whose burden follows a script of diameters (um) by time (h).

    The therapy measures at the start of a step (a line's baseline) and at its end (assessments), as the model does.
    """

    def __init__(self, burden_at):
        self.time_h = 0.0
        self.at_end = False
        self.burden_at = burden_at

    def burden(self, assessment):
        return self.burden_at(self.time_h + (1.0 if self.at_end else 0.0)), 100


def drive(treatment_yaml, burden_at, days, drugs=None):
    """Run a Therapy over ``days`` of 1-h steps against a scripted burden; returns it and its events."""
    config = load_config("configs/tiny.yaml", [
        f"time.duration_days={days}",
        "fields={oxygen: {preset: oxygen}, cis: {preset: chemo_drug}, pd1: {preset: anti_pd1}}",
        "drugs={cis: {pk: {half_life_h: 0.5}}, pd1: {kind: anti_pd1, pk: {half_life_h: 528}}}",
        f"treatment={treatment_yaml}"])
    therapy = Therapy(config.treatment, config.drugs, 1.0)
    model = ScriptedModel(burden_at)
    for step in range(round(days * 24)):
        model.time_h = float(step)
        model.at_end = False
        therapy.begin_step(model.time_h, model.burden)
        model.at_end = True
        therapy.end_step(model.time_h, model.burden)
    return therapy, pd.DataFrame(therapy.events)


def test_a_line_of_cycles_gives_its_doses_then_the_next_line_starts():
    therapy, events = drive("{start_day: 2, lines: [{name: chemo, doses: [{drug: cis, amount: 1, days: [0, 7]}], cycle_days: 21,"
                            " end: {cycles: 2}, next: io}, {name: io, doses: [{drug: pd1, amount: 5, infusion_h: 1}], cycle_days: 21}]}",
                            lambda t: 1000.0, 60)
    doses = events[events["event"] == "dose"]
    chemo = doses[doses["drug"] == "cis"]
    assert list(chemo["time_days"]) == [2, 9, 23, 30] and list(chemo["cycle"]) == [1, 1, 2, 2]
    starts = events[events["event"] == "line_start"]
    assert list(starts["line"]) == ["chemo", "io"] and list(starts["time_days"]) == [2, 44]
    assert list(doses[doses["drug"] == "pd1"]["time_days"]) == [44]  # day 65 is past the 60 simulated
    assert therapy.line == 1


def test_progression_switches_line_at_the_first_assessment_that_meets_the_rule_and_not_before():
    # assessments every 42 days from day 0: baseline 1000; day 42: 700 (PR, nadir); day 84: 800 (+14 %: SD);
    # day 126: 900 (+29 % over the nadir and +200 um: PD) -> second line from day 126
    script = {0: 1000.0, 42: 700.0, 84: 800.0, 126: 900.0, 168: 950.0}
    therapy, events = drive("{lines: [{name: first, doses: [{drug: cis, amount: 1}], cycle_days: 21, end: {progression: true},"
                            " next: second}, {name: second, doses: [{drug: pd1, amount: 5}], cycle_days: 21}]}",
                            lambda t: script[max(day for day in script if day <= t / 24 + 1e-9)], 130)
    assessments = events[events["event"] == "assessment"]
    assert list(assessments["category"]) == ["PR", "SD", "PD"]
    assert list(assessments["time_days"]) == [42, 84, 126]
    switch = events[events["event"] == "line_start"]
    assert list(switch["line"]) == ["first", "second"] and list(switch["time_days"]) == [0, 126]
    assert "progression (PD)" in list(events[events["event"] == "line_end"]["detail"])
    summary = therapy.summary(130 * 24.0)
    assert summary["time_to_progression_days"] == 126 and not summary["progression_censored"]
    assert summary["best_overall_response"] == "PR"
    assert [line["line"] for line in summary["lines"]] == ["first", "second"]
    assert summary["lines"][0]["days"] == 126 and summary["lines"][0]["ended_by"] == "progression (PD)"


def test_endpoints_count_from_the_start_of_treatment_across_lines_and_stop_at_progression():
    # chemo for two 21-day cycles, then io (re-baselined at 800 on day 42). Day 84: 600 is SD for the io line
    # (-25 %) but PR for the arm (-40 % from 1000); day 126: PD; day 168's shrinkage comes after progression.
    script = {0: 1000.0, 42: 800.0, 84: 600.0, 126: 1000.0, 168: 100.0}
    therapy, events = drive("{lines: [{name: chemo, doses: [{drug: cis, amount: 1}], cycle_days: 21, end: {cycles: 2},"
                            " next: io}, {name: io, doses: [{drug: pd1, amount: 5}], cycle_days: 21}]}",
                            lambda t: script[max(day for day in script if day <= t / 24 + 1e-9)], 170)
    assert list(events[events["event"] == "assessment"]["category"]) == ["SD", "SD", "PD", "PR"]  # the lines' own
    # the same assessments from the start of treatment: the endpoints' answer, recorded beside the line's
    assessed = events[events["event"] == "assessment"]
    assert list(assessed["treatment_category"]) == ["SD", "PR", "PD", "PR"]
    assert list(assessed["treatment_change_from_baseline"]) == pytest.approx([-0.2, -0.4, 0.0, -0.9])
    summary = therapy.summary(170 * 24.0)
    assert summary["best_overall_response"] == "PR" and summary["time_to_progression_days"] == 126
    assert summary["best_change_from_baseline"] == pytest.approx(-0.4)


def test_adaptive_dosing_pauses_below_and_resumes_above_burden_thresholds():
    # dose while the burden is above half its line baseline, pause until it regrows past the holiday's baseline x 1.6
    script = {0: 1000.0, 14: 800.0, 28: 450.0, 42: 500.0, 56: 900.0, 70: 600.0}
    therapy, events = drive("{assessment: {every_days: 14}, lines: ["
                            "{name: treat, doses: [{drug: cis, amount: 1}], cycle_days: 7, end: {burden_below: 0.5}, next: holiday},"
                            "{name: holiday, end: {burden_above: 1.6}, next: treat}]}",
                            lambda t: script[max(day for day in script if day <= t / 24 + 1e-9)], 71)
    starts = events[events["event"] == "line_start"]
    assert list(zip(starts["line"], starts["time_days"])) == [("treat", 0), ("holiday", 28), ("treat", 56)]
    doses = events[events["event"] == "dose"]["time_days"]
    assert list(doses) == [0, 7, 14, 21, 56, 63, 70]


def test_progression_from_the_start_of_treatment_counts_a_holidays_regrowth():
    """IMWG-like (confirmed) progression. The holiday starts at 450 (day 28); 900 on day 42 is a first PD over its
    nadir and ends the holiday, so the next line starts afresh at 900 and, judged per line, nothing ever
    progresses. Judged from the start of treatment, 900 and then 850 rise over the nadir of 450 since day 0: PD
    confirmed on day 56."""
    script = {0: 1000.0, 14: 800.0, 28: 450.0, 42: 900.0, 56: 850.0, 70: 880.0}
    lines = ("lines: [{name: treat, doses: [{drug: cis, amount: 1}], cycle_days: 7, end: {burden_below: 0.5}, next: holiday},"
             " {name: holiday, end: {burden_above: 1.6}, next: treat}]}")
    summaries = {}
    for endpoint in ("line", "treatment"):
        therapy, events = drive(f"{{assessment: {{every_days: 14, criteria: myeloma, progression_from: {endpoint}}}, {lines}",
                                lambda t: script[max(day for day in script if day <= t / 24 + 1e-9)], 71)
        starts = events[events["event"] == "line_start"]
        assert list(zip(starts["line"], starts["time_days"])) == [("treat", 0), ("holiday", 28), ("treat", 42)]
        summaries[endpoint] = therapy.summary(71 * 24.0)
    assert summaries["line"]["progression_censored"] and summaries["line"]["time_to_progression_days"] == 71
    assert not summaries["treatment"]["progression_censored"] and summaries["treatment"]["time_to_progression_days"] == 56
    assert summaries["treatment"]["progression_from"] == "treatment"


def test_adaptive_thresholds_relative_to_the_burden_when_treatment_started():
    # Zhang et al.'s rule: pause below half the pre-treatment burden, resume once it is back above it. The holiday
    # starts at 450; 900 on day 56 is twice that but below the pre-treatment 1000, so dosing resumes only on day 70.
    script = {0: 1000.0, 14: 800.0, 28: 450.0, 42: 500.0, 56: 900.0, 70: 1050.0}
    therapy, events = drive("{assessment: {every_days: 14}, lines: ["
                            "{name: treat, doses: [{drug: cis, amount: 1}], cycle_days: 7,"
                            " end: {burden_below: 0.5, burden_baseline: treatment}, next: holiday},"
                            "{name: holiday, end: {burden_above: 1.0, burden_baseline: treatment}, next: treat}]}",
                            lambda t: script[max(day for day in script if day <= t / 24 + 1e-9)], 71)
    starts = events[events["event"] == "line_start"]
    assert list(zip(starts["line"], starts["time_days"])) == [("treat", 0), ("holiday", 28), ("treat", 70)]
    assert "burden above 1 of the treatment's baseline" in list(events[events["event"] == "line_end"]["detail"])


def test_response_end_rule_ends_induction_at_the_response():
    script = {0: 1000.0, 42: 800.0, 84: 650.0}
    therapy, events = drive("{lines: [{name: induction, doses: [{drug: cis, amount: 1}], cycle_days: 21, end: {response: PR},"
                            " next: maintenance}, {name: maintenance, doses: [{drug: cis, amount: 0.3}], cycle_days: 28}]}",
                            lambda t: script[max(day for day in script if day <= t / 24 + 1e-9)], 90)
    switch = events[events["event"] == "line_start"]
    assert list(zip(switch["line"], switch["time_days"])) == [("induction", 0), ("maintenance", 84)]


def test_untreated_runs_have_no_therapy():
    therapy = Therapy(None, {}, 1.0)
    assert therapy.summary(10.0) == {"treated": False} and therapy.events == []


# --------------------------------------------------------------------------- in the model

TREATED = ["fields={oxygen: {preset: oxygen}, cis: {preset: chemo_drug}, chemokine: {preset: chemokine},"
           " danger_signal: {preset: danger_signal}, pd1: {preset: anti_pd1}}",
           "drugs={cis: {pk: {half_life_h: 6}, emax_per_h: 0.2}, pd1: {kind: anti_pd1, kd: 1.0, pk: {half_life_h: 528}}}"]


def test_a_dose_reaches_tissue_near_vessels_before_the_core():
    config = load_config("configs/tiny.yaml", [
        "lattice.shape=[32, 32, 32]", "time.dt_cell_h=0.25", "tumor.initial.radius_um=200", "vessels.pattern=sparse_core",
        "vessels.density=0.05", "vessels.core_radius_um=200",
        "fields={oxygen: {preset: oxygen}, cis: {preset: chemo_drug, D_um2_per_min: 200.0, uptake_per_min: {}}}",
        "drugs={cis: {pk: {half_life_h: 2}, emax_per_h: 0.0}}",
        "treatment={start_day: 0.0416666666666667, lines: [{name: one, doses: [{drug: cis, amount: 1}]}]}"])  # 1 h
    model = TumorModel(config, NUMPY, rules=(TherapyRule, SolveFields))
    state = model.lattice
    centre = [extent * state.dx_um / 2 for extent in state.shape]
    radius = np.broadcast_to(np.sqrt(sum((axis - c) ** 2 for axis, c in zip(state.coordinates_um(), centre))), state.shape)
    near = np.zeros(state.shape, dtype=bool)
    for axis in range(3):
        near |= np.roll(state.vessels.present, 1, axis) | np.roll(state.vessels.present, -1, axis)
    near &= ~state.vessels.present
    core = radius < 60
    levels = []
    for _ in range(24):
        model.step()
        levels.append((float(state.fields["cis"][near].mean()), float(state.fields["cis"][core].mean())))
    levels = np.array(levels)
    first = 4  # the step that starts at 1 h, with the dose
    assert (levels[:first] == 0).all()  # before the dose
    assert levels[first, 0] > 3 * levels[first, 1]  # near vessels first
    assert np.argmax(levels[:, 1]) > np.argmax(levels[:, 0])  # the core peaks later


def test_pd1_occupancy_follows_the_antibody_level():
    model = TumorModel(load_config("configs/tiny.yaml", TREATED + [
        "immune.t_cells.clones=[{name: a, antigen: 0}]", "fields.pd1.initial=3.0"]), NUMPY, rules=())
    every_voxel = np.arange(model.lattice.voxel_index.size)
    occupancy = model.immune.occupancy(model.context, every_voxel)
    np.testing.assert_allclose(occupancy, 3.0 / (3.0 + 1.0), rtol=1e-6)
    model.lattice.fields["pd1"][:] = 0.5
    np.testing.assert_allclose(model.immune.occupancy(model.context, every_voxel), 0.5 / 1.5, rtol=1e-6)


def test_chemo_depletes_the_t_cell_pool_while_it_is_in_plasma():
    """The pool falls by exp(-sum of emax x sensitivity x hill(plasma) x dt) over the exposure, then recovers toward its precursors."""
    overrides = TREATED + ["immune.t_cells.clones=[{name: a, antigen: 0}]", "immune.t_cells.priming.contraction_per_h=0.05",
                           "treatment={start_day: 1, lines: [{name: one, doses: [{drug: cis, amount: 4}]}]}"]
    model = TumorModel(load_config("configs/tiny.yaml", overrides), NUMPY,
                       rules=(TherapyRule, ImmunePriming))
    model.immune.pool[:] = 1000.0
    pools, expected = [], 1000.0
    sensitivity = 0.6 / 0.9
    for _ in range(96):
        before = float(model.immune.pool[0])
        model.step()
        plasma = model.therapy.plasma["cis"]
        survival = math.exp(-0.2 * sensitivity * plasma / (plasma + 1.0))
        relax = math.exp(-0.05)
        expected = 10.0 + (before * survival - 10.0) * relax
        pools.append(float(model.immune.pool[0]))
        assert pools[-1] == pytest.approx(expected, rel=1e-9)
    untreated = [10.0 + 990.0 * math.exp(-0.05 * (step + 1)) for step in range(96)]
    assert pools[23] == pytest.approx(untreated[23])  # before the dose on day 1
    assert pools[40] < 0.85 * untreated[40]  # during the exposure


def test_treated_run_writes_events_and_endpoints(tmp_path):
    from abm.cli import main
    import json

    out = tmp_path / "run"
    args = ["run", "configs/tiny.yaml", "--out", str(out), "--quiet", "--set", "time.duration_days=4"]
    for override in TREATED + ["treatment={lines: [{name: chemo, doses: [{drug: cis, amount: 4}], cycle_days: 2}],"
                               " assessment: {every_days: 1}}"]:
        args += ["--set", override]
    assert main(args) == 0
    events = pd.read_parquet(out / "events.parquet")
    assert list(events[events["event"] == "dose"]["time_days"]) == [0, 2]
    assert list(events[events["event"] == "assessment"]["time_days"]) == [1, 2, 3, 4]
    frame = pd.read_parquet(out / "timeseries.parquet")
    assert {"line", "plasma_cis", "plasma_pd1"} <= set(frame.columns)
    assert frame["line"].iloc[0] == -1 and (frame["line"].iloc[1:] == 0).all()  # the first record precedes the start
    summary = json.loads((out / "summary.json").read_text())
    treatment = summary["treatment"]
    assert treatment["treated"] and treatment["exposure"]["cis"]["doses"] == 2
    mean_life = 6 / math.log(2)  # doses of 4 at 0 h and 48 h, counted to 96 h
    expected_auc = 4 * mean_life * (1 - 0.5 ** (96 / 6)) + 4 * mean_life * (1 - 0.5 ** (48 / 6))
    assert treatment["exposure"]["cis"]["plasma_auc_unit_h"] == pytest.approx(expected_auc, rel=1e-9)
    assert treatment["best_overall_response"] in ("CR", "PR", "SD", "PD")


def test_arm_selection_and_unknown_arm(tmp_path, capsys):
    from abm.cli import main

    arms = "arms={a: {lines: [{name: x, doses: [{drug: cis, amount: 1}]}]}}"
    base = ["run", "configs/tiny.yaml", "--quiet", "--set", "time.duration_days=0.25", "--set", TREATED[0], "--set", TREATED[1],
            "--set", arms]
    assert main(base + ["--out", str(tmp_path / "a"), "--arm", "a"]) == 0
    assert pd.read_parquet(tmp_path / "a" / "events.parquet")["event"].iloc[0] == "line_start"
    assert main(base + ["--out", str(tmp_path / "b"), "--arm", "zzz"]) == 2
    assert "--arm zzz: no arm of that name; arms: a" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
