"""The 3-D therapy-failure presets show what their headers say, over seeds 1-3 at their CPU size.

configs/resistance_second_line_3d.yaml: a 1 % resistant subclone makes drug A
fail, and drug B at the progression controls it (arms ``drug_a_only`` and
``drug_a_then_drug_b``, 20 days). configs/poor_perfusion_3d.yaml: one dose of
a drug that the tumor's cells take up reaches the centre of a core without
perfused vessels at a fraction of its rim level, so the core's cells survive
where the rim's die, and the tumor regrows (arms ``untreated`` and ``drug``,
7 days). Each arm x seed runs once (module fixtures); the tests check the
headers' claims with margins that fail when a claim stops holding. Run with
``-s`` to print the figures the headers quote. docs/therapy_scenarios.md, "3-D".
"""
from __future__ import annotations

import numpy as np
import pytest

from abm.comparison import arm_configs
from abm.config import load_config
from abm.model import TumorModel
from kernels.backend import get_backend
from tests.presets import CONFIGS, run_preset, shrunk
from tests.test_therapy_scenarios import assessments, founding_share, line_starts, live_at, series, share_at

SEEDS = (1, 2, 3)

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- resistance, then a second line

SECOND_LINE = "resistance_second_line_3d"
END_DAY = 20  # the preset's duration


@pytest.fixture(scope="module")
def second_line():
    """arm -> seed -> the model of that arm of configs/resistance_second_line_3d.yaml, run for its 20 days."""
    runs = {arm: {seed: run_preset(SECOND_LINE, f"seed={seed}", arm=arm) for seed in SEEDS}
            for arm in ("drug_a_only", "drug_a_then_drug_b")}
    for arm, models in runs.items():
        for seed, model in models.items():
            days, live = series(model)
            print(f"{arm} seed {seed}: live {live[days == 0][0]} at day 0, {live_at(model, 2)} at day 2, "
                  f"{live.min()} lowest (day {days[np.argmin(live)]:g}), {live[-1]} at day {days[-1]:g}; resistant "
                  f"share {share_at(model, 'resistant_a', 0):.4f} at day 0, {share_at(model, 'resistant_a', 6):.3f} "
                  f"at day 6, {share_at(model, 'resistant_a', first_progression(model)):.3f} at the first PD; "
                  f"lines {line_starts(model)}; assessments {list(zip(assessments(model)['time_days'], assessments(model)['category']))}")
    return runs


def first_progression(model):
    """Day of the first assessment that finds PD (the first line's progression)."""
    found = assessments(model)
    return found[found["category"] == "PD"]["time_days"].iloc[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_3d_drug_a_selects_the_rare_resistant_subclone(second_line, seed):
    """Exactly 1 % resistant cells at the start; drug A leaves under a tenth of the tumor, then the resistant clone
    regrows it to progression (the same in both arms up to then)."""
    model = second_line["drug_a_only"][seed]
    days, live = series(model)
    _, resistant, _ = founding_share(model, "resistant_a")
    assert resistant[0] == round(0.01 * live[0])
    progression = first_progression(model)
    assert progression == first_progression(second_line["drug_a_then_drug_b"][seed])
    treated = (days >= 2) & (days <= progression)
    nadir = live[treated].min()
    assert nadir < 0.1 * live_at(model, 2), "no response to drug A"
    assert live_at(model, progression) > 5 * nadir, "no regrowth on drug A"
    assert share_at(model, "resistant_a", progression) > 0.95, "progression not driven by the resistant clone"
    assert "PR" in set(assessments(model)["category"]), "no partial response before the progression"


@pytest.mark.parametrize("seed", SEEDS)
def test_3d_second_line_at_progression_controls_the_resistant_tumor(second_line, seed):
    """Drug B starts at the first PD; by the end (day 20) the tumor is under a fifth of its cells at the switch and
    under a twentieth of the tumor kept on drug A, which has grown more than 3-fold since."""
    switched, continued = second_line["drug_a_then_drug_b"][seed], second_line["drug_a_only"][seed]
    (first, _), (second, switch) = line_starts(switched)[:2]
    assert (first, second) == ("drug_a", "drug_b") and switch == first_progression(switched)
    assert line_starts(continued) == [("drug_a", 2.0)]
    at_switch = live_at(switched, switch)
    assert live_at(switched, END_DAY) < 0.2 * at_switch, "drug B does not shrink the resistant tumor"
    assert assessments(switched)["category"].iloc[-1] in ("PR", "CR")
    assert live_at(continued, END_DAY) > 3 * at_switch, "the resistant tumor does not grow on drug A"
    assert live_at(switched, END_DAY) < 0.05 * live_at(continued, END_DAY)


# --------------------------------------------------------------------------- poor perfusion

PERFUSION = "poor_perfusion_3d"
CORE_UM = 100.0   # the core: within this distance of the tumor's initial centre (the lattice's centre)
RIM_UM = 140.0    # the rim: at least this far from it (the initial ball's outer 60 um and what grows beyond)
DOSE_DAY = 1.0    # the arms' start_day: the one dose
CAPTURE_DAYS = (DOSE_DAY, DOSE_DAY + 0.5, DOSE_DAY + 1.0)


def regions(model):
    """Live tumor cells and their mean drug level (uM) in the core and the rim: {region: (cells, drug)}."""
    state = model.lattice
    live = state.tumor.live()
    centre = [extent * state.dx_um / 2 for extent in state.shape]
    radius = np.sqrt(sum((axis - c) ** 2 for axis, c in zip(state.coordinates_um(), centre)))
    drug = state.fields["drug"]
    found = {}
    for name, mask in (("core", radius < CORE_UM), ("rim", radius >= RIM_UM)):
        cells = live & mask
        found[name] = (int(cells.sum()), float(drug[cells].mean()) if cells.any() else float("nan"))
    return found


def run_capturing(arm, seed):
    """The model of ``arm`` of configs/poor_perfusion_3d.yaml, run to its end, and {day: regions} at CAPTURE_DAYS."""
    config = load_config(CONFIGS / f"{PERFUSION}.yaml", [*shrunk(PERFUSION), f"seed={seed}"])
    config = arm_configs(config, [arm])[arm]
    model = TumorModel(config, get_backend("numpy"))
    steps = {round(day * 24 / config.time.dt_cell_h): day for day in CAPTURE_DAYS}
    captured = {}
    for step in range(1, config.time.total_steps + 1):
        model.step()
        if step in steps:
            captured[steps[step]] = regions(model)
    return model, captured


@pytest.fixture(scope="module")
def perfusion():
    """arm -> seed -> (model, {day: regions}) of configs/poor_perfusion_3d.yaml."""
    runs = {arm: {seed: run_capturing(arm, seed) for seed in SEEDS} for arm in ("untreated", "drug")}
    for seed in SEEDS:
        (untreated, plain), (treated, dosed) = runs["untreated"][seed], runs["drug"][seed]
        after = DOSE_DAY + 1.0
        survival = {name: dosed[after][name][0] / plain[after][name][0] for name in ("core", "rim")}
        days, live = series(treated)
        print(f"seed {seed}: at the dose core {dosed[DOSE_DAY]['core'][0]} rim {dosed[DOSE_DAY]['rim'][0]} live cells; "
              f"12 h later drug core {dosed[DOSE_DAY + 0.5]['core'][1]:.4f} rim {dosed[DOSE_DAY + 0.5]['rim'][1]:.4f} uM; "
              f"a day later live core {dosed[after]['core'][0]} rim {dosed[after]['rim'][0]} "
              f"(untreated {plain[after]['core'][0]}, {plain[after]['rim'][0]}): survival core {survival['core']:.2f} "
              f"rim {survival['rim']:.2f}; live {live_at(treated, DOSE_DAY)} at the dose, lowest {live.min()} "
              f"(day {days[np.argmin(live)]:g}), {live[-1]} at day {days[-1]:g} (untreated {series(untreated)[1][-1]})")
    return runs


@pytest.mark.parametrize("seed", SEEDS)
def test_3d_drug_reaches_the_poorly_perfused_centre_at_a_fraction_of_its_rim_level(perfusion, seed):
    """12 h after the dose, the drug at the core's live cells is under 40 % of its level at the rim's."""
    _, captured = perfusion["drug"][seed]
    (_, core), (_, rim) = captured[DOSE_DAY + 0.5]["core"], captured[DOSE_DAY + 0.5]["rim"]
    assert rim > 0 and core < 0.4 * rim, f"drug core {core:.4f} rim {rim:.4f} uM"
    model, _ = perfusion["drug"][seed]
    frame = model.timeseries()
    dosed = frame[frame["time_days"] == DOSE_DAY + 0.5]
    assert (dosed["drug_tumor_min"] < 0.35 * dosed["drug_tumor_mean"]).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_3d_the_core_survives_the_dose_that_kills_the_rim(perfusion, seed):
    """A day after the dose, against the untreated arm at the same time: the core keeps more than 55 % of its live
    cells, the rim fewer than 35 % (and under half the core's share)."""
    _, plain = perfusion["untreated"][seed]
    _, dosed = perfusion["drug"][seed]
    after = DOSE_DAY + 1.0
    core = dosed[after]["core"][0] / plain[after]["core"][0]
    rim = dosed[after]["rim"][0] / plain[after]["rim"][0]
    assert core > 0.55 and rim < 0.35 and core > 2 * rim, f"survival core {core:.2f} rim {rim:.2f}"
    # the two arms are the same run up to the dose
    assert dosed[DOSE_DAY] == plain[DOSE_DAY]


@pytest.mark.parametrize("seed", SEEDS)
def test_3d_the_tumor_regrows_from_the_survivors(perfusion, seed):
    """The dose halves the tumor at least, but it is not cleared: by day 7 it has regrown more than 2.5-fold from its
    lowest point, and stays below the untreated tumor."""
    treated, _ = perfusion["drug"][seed]
    untreated, _ = perfusion["untreated"][seed]
    days, live = series(treated)
    nadir = live[days >= DOSE_DAY].min()
    assert nadir < 0.5 * live_at(treated, DOSE_DAY)
    assert live[-1] > 2.5 * nadir
    assert live[-1] < series(untreated)[1][-1]


# --------------------------------------------------------------------------- GPU sizes

@pytest.mark.parametrize("name", [SECOND_LINE, PERFUSION])
def test_3d_gpu_sizes_are_the_cpu_presets_scaled(name):
    """Each ``_3d_gpu`` file extends its CPU size and changes only the lattice and the tumor's (and core's) radius,
    which tests/presets.py SHRINK sets back: the GPU size shrunk for the suite is the CPU preset, whose claims the
    tests above check."""
    gpu = load_config(CONFIGS / f"{name}_gpu.yaml")
    cpu = load_config(CONFIGS / f"{name}.yaml")
    assert gpu.lattice.shape[0] >= 4 * cpu.lattice.shape[0] and gpu.tumor.initial.radius_um > 4 * cpu.tumor.initial.radius_um
    assert load_config(CONFIGS / f"{name}_gpu.yaml", shrunk(f"{name}_gpu")).model_dump() == cpu.model_dump()
