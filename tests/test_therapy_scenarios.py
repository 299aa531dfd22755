"""The therapy scenario presets in configs/ show what their header comments say, over two or three seeds.

Each scenario runs its treatment arm through the Python API (the arm's
``treatment`` set as ``tme run --arm`` does) and is checked against a control
that lacks the mechanism: the same drug given on past progression, observation
instead of maintenance, continuous instead of adaptive dosing, an
antigen-presenting tumor without suppressor cells. To keep the module under
three minutes on two CPU cores the runs stop early (the second line after one
assessment, maintenance at its relapse, adaptive dosing at day 40, the
checkpoint runs at day 26 or 30) and the immune scenarios use seeds 1-2;
docs/therapy_scenarios.md gives the figures of the full runs.
"""
from __future__ import annotations

import numpy as np
import pytest

from abm.config import load_config
from tests.presets import CONFIGS, antigen_negative_share, run_preset

SEEDS = (1, 2, 3)
IMMUNE_SEEDS = (1, 2)
RESPONSIVE = "tumor.clones.1.antigens=[0]"  # the evasion preset's variant presents the antigen: the responsive control

pytestmark = pytest.mark.slow


def run(name, arm, days, *overrides):
    """The model of ``configs/<name>.yaml`` treated by ``arm``, run for ``days``."""
    return run_preset(name, f"time.duration_days={days}", *overrides, arm=arm)


def series(model):
    """Record days and live tumor cells."""
    frame = model.timeseries()
    return frame["time_days"].to_numpy(), frame["tumor_cells_live"].to_numpy()


def live_at(model, day):
    days, live = series(model)
    return live[int(np.argmin(np.abs(days - day)))]


def founding_share(model, name):
    """Per record: (days, live cells of the founding clone ``name`` and its subclones, their share of live cells)."""
    clones = model.clone_series()
    mine = {clone.index for clone in model.subclones.agents if clone.root.name == name}
    by_time = clones.assign(mine=clones["clone"].isin(mine) * clones["cells_live"]).groupby("time_days")
    cells = by_time["mine"].sum()
    return cells.index.to_numpy(), cells.to_numpy(), (cells / by_time["cells_live"].sum()).to_numpy()


def share_at(model, name, day):
    days, _, share = founding_share(model, name)
    return share[int(np.argmin(np.abs(days - day)))]


def line_starts(model):
    """(line, day) of every line start, in order."""
    events = model.events()
    starts = events[events["event"] == "line_start"]
    return list(zip(starts["line"], starts["time_days"]))


def assessments(model):
    events = model.events()
    return events[events["event"] == "assessment"]


# --------------------------------------------------------------------------- resistance, then a second line

@pytest.fixture(scope="module")
def drug_a_continued():
    """Control of the switch: drug A given on past progression (seed 1)."""
    model = run("therapy_resistance_second_line", "drug_a_only", 30)
    assert line_starts(model) == [("drug_a", 2.0)]
    assert live_at(model, 30) > live_at(model, 23), "the resistant clone does not grow on drug A"
    return model


@pytest.mark.parametrize("seed", SEEDS)
def test_second_line_at_resistant_progression_shrinks_the_tumor(seed, drug_a_continued):
    model = run("therapy_resistance_second_line", "drug_a_then_drug_b", 30, f"seed={seed}")
    days, live = series(model)
    summary = model.therapy.summary(model.time_h)
    first, second = summary["lines"][:2]
    switch = second["start_day"]
    assert (first["line"], second["line"]) == ("drug_a", "drug_b") and first["ended_by"] == "progression (PD)"
    progression = assessments(model)
    progression = progression[progression["category"] == "PD"]["time_days"]
    assert switch == progression.iloc[0] == 2 + summary["time_to_progression_days"], "switch not at the first PD"
    _, resistant, share = founding_share(model, "resistant_a")
    assert resistant[0] == round(0.01 * live[0])  # exactly 1 % at the start
    assert live[days <= switch].min() < 0.2 * live[0], "no response to drug A"
    assert share_at(model, "resistant_a", switch) > 0.9, "progression not driven by the resistant clone"
    assert live_at(model, 30) < 0.25 * live_at(model, switch), "drug B does not shrink the tumor"
    assert assessments(model)["category"].iloc[-1] in ("PR", "CR")
    assert live_at(model, 30) < 0.25 * live_at(drug_a_continued, 30)


# --------------------------------------------------------------------------- myeloma: induction, maintenance, relapse

MYELOMA_DAYS = 46  # past the maintenance arm's relapse at day 44 (the observation arm's second line starts at day 23)


@pytest.mark.parametrize("seed", SEEDS)
def test_myeloma_maintenance_delays_relapse_that_the_resistant_clone_drives(seed):
    observed = run("therapy_myeloma_lines", "induction_observation", MYELOMA_DAYS, f"seed={seed}")
    maintained = run("therapy_myeloma_lines", "induction_maintenance", MYELOMA_DAYS, f"seed={seed}")
    (_, induction), (_, observation), (_, relapse_observed) = line_starts(observed)[:3]
    assert [line for line, _ in line_starts(observed)] == ["induction", "observation", "second_line"]
    assert [line for line, _ in line_starts(maintained)] == ["induction", "maintenance", "second_line"]
    assert line_starts(maintained)[1][1] == observation  # the arms are the same until induction ends
    ended = observed.events()
    ended = list(ended[ended["event"] == "line_end"]["detail"])
    assert ended[:2] == ["response VGPR", "progression (PD)"]
    relapse_maintained = line_starts(maintained)[2][1]
    assert relapse_maintained >= relapse_observed + 14, "maintenance does not delay relapse"
    assert share_at(maintained, "minor_resistant", relapse_maintained) > 0.5, "relapse on maintenance not resistant"
    assert share_at(observed, "minor_resistant", relapse_observed) < 0.5, "relapse off treatment not sensitive"
    assert live_at(observed, relapse_observed + 7) < 0.5 * live_at(observed, relapse_observed), "no second-line response"


# --------------------------------------------------------------------------- adaptive versus continuous dosing

ADAPTIVE_DAYS = 40  # the end of the third treatment phase


@pytest.mark.parametrize("seed", SEEDS)
def test_adaptive_dosing_keeps_sensitive_cells_that_hold_the_resistant_clone_back(seed):
    continuous = run("therapy_adaptive", "continuous", ADAPTIVE_DAYS, f"seed={seed}")
    adaptive = run("therapy_adaptive", "adaptive", ADAPTIVE_DAYS, f"seed={seed}")
    lines = [line for line, _ in line_starts(adaptive)]
    assert lines[:4] == ["treat", "holiday", "treat", "holiday"], f"no treatment holidays: {lines}"
    doses = {name: model.therapy.summary(model.time_h)["exposure"]["drug"]["doses"] for name, model in
             (("continuous", continuous), ("adaptive", adaptive))}
    assert doses["adaptive"] < 0.75 * doses["continuous"]
    _, resistant_continuous, share_continuous = founding_share(continuous, "resistant")
    _, resistant_adaptive, share_adaptive = founding_share(adaptive, "resistant")
    # the drug does not touch the resistant clone: fewer resistant cells means competition by the sensitive ones
    assert resistant_adaptive[-1] < 0.7 * resistant_continuous[-1], \
        f"resistant cells {resistant_adaptive[-1]} (adaptive) vs {resistant_continuous[-1]} (continuous)"
    assert share_continuous[-1] > share_adaptive[-1] + 0.2, \
        f"resistant share {share_adaptive[-1]:.2f} (adaptive) vs {share_continuous[-1]:.2f} (continuous)"


# --------------------------------------------------------------------------- checkpoint failure: evasion, suppression

CHECKPOINT_DAYS = 26
EVASION_DAYS = 30  # seed 2 reaches its nadir at day 27


@pytest.fixture(scope="module")
def responsive_on_anti_pd1():
    """Control: every cell presents the antigen, no suppressor cells; anti-PD-1 clears the tumor (seed 1)."""
    model = run("therapy_immune_evasion", "anti_pd1", CHECKPOINT_DAYS, RESPONSIVE)
    assert live_at(model, CHECKPOINT_DAYS) < 0.05 * live_at(model, 7), "anti-PD-1 does not clear the responsive tumor"
    assert model.latest["tregs"] == model.latest["mdscs"] == 0
    return model


def test_the_checkpoint_presets_differ_only_by_their_mechanism():
    evasion = load_config(CONFIGS / "therapy_immune_evasion.yaml", [RESPONSIVE])
    suppression = load_config(CONFIGS / "therapy_immune_suppression.yaml", [
        "immune.tregs.recruitment.rate_per_h=0", "immune.mdscs.recruitment.rate_per_h=0"])
    assert evasion.model_dump() == suppression.model_dump()


@pytest.mark.parametrize("seed", IMMUNE_SEEDS)
def test_evasion_antigen_negative_variant_regrows_on_anti_pd1(seed, responsive_on_anti_pd1):
    model = run("therapy_immune_evasion", "anti_pd1", EVASION_DAYS, f"seed={seed}")
    _, live = series(model)
    share = antigen_negative_share(model)
    nadir = int(np.argmin(live))
    assert share[0] == pytest.approx(0.02, abs=0.002) and share[-1] > 0.9, f"antigen-negative share {share[-1]:.2f}"
    assert live[nadir] < 0.5 * live_at(model, 7), "no initial response"
    assert nadir < len(live) - 1 and live[-1] > 1.5 * live[nadir], "no regrowth"
    assert live_at(model, CHECKPOINT_DAYS) > 10 * max(live_at(responsive_on_anti_pd1, CHECKPOINT_DAYS), 1)


@pytest.mark.parametrize("seed", IMMUNE_SEEDS)
def test_suppression_tregs_and_mdscs_abolish_the_anti_pd1_response(seed, responsive_on_anti_pd1):
    model = run("therapy_immune_suppression", "anti_pd1", CHECKPOINT_DAYS, f"seed={seed}")
    days, live = series(model)
    assert model.latest["tregs"] > 50 and model.latest["mdscs"] > 50
    assert live[days >= 7].min() > 0.8 * live_at(model, 7), "the tumor still responds"
    assert set(assessments(model)["category"]) <= {"SD", "PD"}
    assert model.latest["immune_kills_total"] < 0.25 * responsive_on_anti_pd1.latest["immune_kills_total"]
