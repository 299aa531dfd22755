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


def oxygen_by_hour(normalisation: str) -> list[float]:
    """Mean oxygen (mmHg) over the lattice after each of 16 one-hour steps of configs/tiny.yaml, its oxygen supplied
    by the vessels only, with an anti-VEGF antibody dosed at hour 3 (``normalisation``: its normalisation section, YAML)."""
    config = load_config(CONFIGS / "tiny.yaml", [
        "fields.oxygen.boundary={default: no_flux}",
        "fields.avegf={preset: anti_vegf}",
        f"drugs.avegf={{kind: anti_vegf, pk: {{half_life_h: 100}}, normalisation: {normalisation}}}",
        f"treatment={{start_day: {DOSE_H / 24}, lines: [{{name: avegf, doses: [{{drug: avegf, amount: 5.0}}]}}]}}"])
    model = TumorModel(config)
    oxygen = []
    for _ in range(16):
        model.step()
        oxygen.append(float(model.lattice.fields["oxygen"].mean()))
    return oxygen


def test_oxygen_rises_in_the_window_and_returns():
    plain = oxygen_by_hour("null")
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
