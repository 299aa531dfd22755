"""Vessel normalisation by anti-VEGF drugs (drugs.NAME.normalisation; docs/model.md, Angiogenesis): for a window
after each dose, perfused vessels exchange more, so oxygen delivery rises in the window and returns after it."""
from __future__ import annotations

import numpy as np
import pytest

from abm.config import ConfigError, load_config
from abm.config.drugs import AntiVEGFDrug
from abm.model import TumorModel
from tests.presets import CONFIGS

DOSE_H = 3  # the dose is given at the start of the step that starts at hour 3
WINDOW = {"start_h": 4.0, "duration_h": 6.0, "perfusion_factor": 2.0}


def test_the_window_opens_after_each_dose_and_closes():
    drug = AntiVEGFDrug(kind="anti_vegf", normalisation=WINDOW)
    assert [drug.perfusion_factor([hours]) for hours in (0.0, 3.9, 4.0, 9.9, 10.0, 30.0)] == [1, 1, 2, 2, 1, 1]
    assert drug.perfusion_factor([30.0, 5.0]) == 2.0  # a later dose opens it again; doses do not compound
    assert drug.perfusion_factor([]) == 1.0
    assert AntiVEGFDrug(kind="anti_vegf").perfusion_factor([5.0]) == 1.0  # no normalisation: off


def oxygen_by_hour(normalisation: str | None) -> list[float]:
    """Mean oxygen (mmHg) over the lattice after each of 16 one-hour steps of configs/tiny.yaml, its oxygen supplied
    by the vessels only, with an anti-VEGF antibody dosed at hour 3 (``normalisation``: its normalisation section,
    YAML; None: no drug, nor dose, only its field: without vessels.angiogenesis the window is all the drug does)."""
    treated = [] if normalisation is None else [
        f"drugs.avegf={{kind: anti_vegf, pk: {{half_life_h: 100}}, normalisation: {normalisation}}}",
        f"treatment={{start_day: {DOSE_H / 24}, lines: [{{name: avegf, doses: [{{drug: avegf, amount: 5.0}}]}}]}}"]
    config = load_config(CONFIGS / "tiny.yaml", ["fields.oxygen.boundary={default: no_flux}", "fields.avegf={preset: anti_vegf}",
                                                 *treated])
    model = TumorModel(config)
    oxygen = []
    for _ in range(16):
        model.step()
        oxygen.append(float(model.lattice.fields["oxygen"].mean()))
    return oxygen


def test_oxygen_rises_in_the_window_and_returns():
    plain = oxygen_by_hour(None)
    window = "{" + ", ".join(f"{key}: {value}" for key, value in WINDOW.items()) + "}"
    normalised = oxygen_by_hour(window)
    # Step k (0-based) solves the fields at hour k: in the window from hour 3 + 4 = 7 to hour 13.
    inside = [hour for hour in range(16) if DOSE_H + 4 <= hour < DOSE_H + 10]
    assert normalised[:DOSE_H + 4] == plain[:DOSE_H + 4], "the same run before the window"
    for hour in inside:
        assert normalised[hour] > 1.3 * plain[hour], (hour, normalised[hour], plain[hour])  # measured: 10.7 vs 6.4
    for hour in range(DOSE_H + 10, 16):  # back: only what the extra oxygen did to the cells in the window remains
        assert abs(normalised[hour] - plain[hour]) < 0.1 * (normalised[inside[0]] - plain[inside[0]]), hour


def test_normalisation_keys_are_checked():
    base = ["fields.avegf={preset: anti_vegf}"]
    for bad, key in (("{perfusion_factor: 0.5}", "perfusion_factor"), ("{duration_h: 0}", "duration_h"),
                     ("{start_h: -1}", "start_h"), ("{window: 3}", "window")):
        with pytest.raises(ConfigError, match=f"normalisation.{key}"):
            load_config(CONFIGS / "tiny.yaml", [*base, f"drugs.avegf={{kind: anti_vegf, normalisation: {bad}}}"])


DOSED = ["fields.avegf={preset: anti_vegf}", "drugs.avegf={kind: anti_vegf, pk: {half_life_h: 100}, normalisation: {start_h: 4}}",
         "treatment={lines: [{name: avegf, doses: [{drug: avegf, amount: 5.0}]}]}"]


@pytest.mark.parametrize("overrides, says", [
    (["drugs.avegf.normalisation=null"], r"drugs\.avegf\.normalisation: null; without vessels\.angiogenesis"),
    (["drugs.avegf.normalisation.perfusion_factor=1"], r"drugs\.avegf\.normalisation\.perfusion_factor: 1 leaves .*allowed: above 1"),
    (["drugs.avegf.normalisation.start_h=48"], r"drugs\.avegf\.normalisation\.start_h: 48 h .* not before the end of the run \(48 h\)"),
    (["treatment=null"], r"drugs\.avegf: no line of treatment or arms doses it"),
])
def test_an_anti_vegf_drug_that_would_do_nothing_is_refused(overrides, says):
    """Without vessels.angiogenesis (configs/tiny.yaml has none, and runs 48 h) the window after a dose is all the drug
    does: no window, a factor of 1, a window after the run or no dose leave it without effect."""
    with pytest.raises(ConfigError, match=says) as refused:
        load_config(CONFIGS / "tiny.yaml", [*DOSED, *overrides])
    assert "'avegf' would do nothing" in str(refused.value) and "or set vessels.angiogenesis" in str(refused.value)


def test_an_anti_vegf_drug_acts_through_angiogenesis_or_its_window():
    load_config(CONFIGS / "tiny.yaml", DOSED)  # the window alone, opened by a dose
    arms = load_config(CONFIGS / "tiny.yaml", [*DOSED[:2], "arms={avegf: {lines: [{name: avegf, doses: [{drug: avegf, amount: 5.0}]}]}}"])
    assert arms.treatment is None  # a dose in an arm opens it too; `tme run` without --arm is that arm's untreated control
    angiogenesis = ["fields.vegf={preset: vegf}", "vessels.angiogenesis={field: vegf}"]
    for drug in ("{kind: anti_vegf}", "{kind: anti_vegf, normalisation: {perfusion_factor: 1, start_h: 1000}}"):
        load_config(CONFIGS / "tiny.yaml", [*angiogenesis, "fields.avegf={preset: anti_vegf}", f"drugs.avegf={drug}"])


def test_a_window_lasts_at_least_one_cell_step():
    """The fields rule looks at the window once per cell step (1 h in configs/tiny.yaml): a shorter one may fall between."""
    with pytest.raises(ConfigError, match=r"drugs\.avegf\.normalisation\.duration_h: 0\.5 h is shorter than one cell step"):
        load_config(CONFIGS / "tiny.yaml", [*DOSED, "drugs.avegf.normalisation.duration_h=0.5"])
    load_config(CONFIGS / "tiny.yaml", [*DOSED, "drugs.avegf.normalisation.duration_h=1"])


def test_the_windows_of_several_drugs_stay_within_the_largest_factor_together():
    """Windows multiply where they overlap: 64 drugs at 10 each would raise exchange 1e64-fold (float32 perfusion
    overflows and the field solve fails); together they may reach MAX_PERFUSION_FACTOR (10), no more."""
    def two(first: float, second: float) -> list[str]:
        return [*DOSED, f"drugs.avegf.normalisation.perfusion_factor={first}", "fields.bvegf={preset: anti_vegf}",
                f"drugs.bvegf={{kind: anti_vegf, pk: {{half_life_h: 100}}, normalisation: {{start_h: 4, perfusion_factor: {second}}}}}",
                "treatment.lines.0.doses=[{drug: avegf, amount: 5.0}, {drug: bvegf, amount: 5.0}]"]
    load_config(CONFIGS / "tiny.yaml", two(2.0, 5.0))
    with pytest.raises(ConfigError, match=r"drugs\.bvegf\.normalisation\.perfusion_factor: .* 2 \(avegf\) x 5\.5 \(bvegf\) = 11; "
                                          r"allowed: at most 10 together"):
        load_config(CONFIGS / "tiny.yaml", two(2.0, 5.5))
