"""The 3-D checkpoint-failure presets show what their headers say, over seeds 1-3 at the CPU size.

configs/therapy_immune_evasion_3d.yaml, therapy_immune_suppression_3d.yaml and therapy_macrophages_3d.yaml
share one responsive tumor (a 40^3 cube, every cell presenting antigen 0, PD-L1 high) and add one mechanism each:
an antigen-negative variant, Tregs and MDSCs, M2-like macrophages. Each anti-PD-1 arm is checked against the
responsive control (the evasion preset with its variant presenting the antigen, which anti-PD-1 clears) and the
macrophages' anti-PD-1 arm against its CSF1R-inhibitor rescue. One module-scoped fixture runs the five
arm x config cases for seeds 1-3, 28 days each (the full presets run 35), two at a time;
docs/therapy_scenarios.md ("3-D") gives the figures of the full runs.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from abm.config import load_config
from tests.presets import CONFIGS, antigen_negative_share, run_preset

pytestmark = pytest.mark.slow

SEEDS = (1, 2, 3)
DAYS = 28
START_DAY = 7  # treatment starts at day 7 in every arm
RESPONSIVE = "tumor.clones.1.antigens=[0]"  # the evasion preset's variant presents the antigen: the responsive control
#: case -> (preset, arm, overrides)
CASES = {
    "evasion": ("therapy_immune_evasion_3d", "anti_pd1", ()),
    "responsive": ("therapy_immune_evasion_3d", "anti_pd1", (RESPONSIVE,)),
    "suppression": ("therapy_immune_suppression_3d", "anti_pd1", ()),
    "tams": ("therapy_macrophages_3d", "anti_pd1", ()),
    "rescue": ("therapy_macrophages_3d", "anti_pd1_csf1r", ()),
}


def outcome(case: str, seed: int) -> dict:
    """What the tests read from one run of ``case`` (run in a worker process): per record (float64 arrays) ``days``,
    ``live`` tumor cells and the ``negative`` (antigen-negative) share; at the end ``kills`` (T-cell kills),
    ``tregs``, ``mdscs``, ``tams`` and ``polarisation`` (mean over TAMs, nan without); ``categories``, the set of
    RECIST assessment categories."""
    name, arm, overrides = CASES[case]
    model = run_preset(name, f"time.duration_days={DAYS}", f"seed={seed}", *overrides, arm=arm)
    frame = model.timeseries()
    events = model.events()
    tam_kind = model.immune.suppressors.get("tam")
    tams = model.lattice.immune.agent == tam_kind.index if tam_kind is not None else None
    return {
        "days": frame["time_days"].to_numpy(), "live": frame["tumor_cells_live"].to_numpy(np.float64),
        "negative": antigen_negative_share(model),
        "kills": float(model.latest["immune_kills_total"]), "tregs": int(model.latest["tregs"]),
        "mdscs": int(model.latest["mdscs"]), "tams": int(model.latest.get("tams", 0)),
        "polarisation": float(model.lattice.immune.exhaustion[tams].mean()) if tams is not None and tams.any() else float("nan"),
        "categories": set(events.loc[events["event"] == "assessment", "category"]),
    }


@pytest.fixture(scope="module")
def runs():
    """(case, seed) -> :func:`outcome`, for every case of :data:`CASES` and seeds 1-3."""
    jobs = [(case, seed) for case in CASES for seed in SEEDS]
    with ProcessPoolExecutor(2) as pool:
        return dict(zip(jobs, pool.map(outcome, *zip(*jobs))))


def live_at(result, day):
    return result["live"][int(np.argmin(np.abs(result["days"] - day)))]


def treated(result):
    """Live tumor cells from the start of treatment on."""
    return result["live"][result["days"] >= START_DAY]


def test_the_3d_checkpoint_presets_differ_only_by_their_mechanism():
    evasion = load_config(CONFIGS / "therapy_immune_evasion_3d.yaml", [RESPONSIVE])
    suppression = load_config(CONFIGS / "therapy_immune_suppression_3d.yaml", [
        "immune.tregs.recruitment.rate_per_h=0", "immune.mdscs.recruitment.rate_per_h=0"])
    assert evasion.model_dump() == suppression.model_dump()
    assert list(evasion.lattice.shape) == [40, 40, 40]


@pytest.mark.parametrize("seed", SEEDS)
def test_responsive_control_anti_pd1_clears_the_3d_tumor(seed, runs):
    result = runs["responsive", seed]
    assert live_at(result, START_DAY) > 700, "the tumor has grown by the start of treatment"
    assert result["live"][-1] == 0, "anti-PD-1 clears the responsive tumor"
    assert result["tregs"] == result["mdscs"] == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_evasion_antigen_negative_variant_regrows_on_anti_pd1_3d(seed, runs):
    result = runs["evasion", seed]
    live, share = result["live"], result["negative"]
    nadir = int(np.argmin(live))
    assert share[0] == pytest.approx(0.02, abs=0.005) and share[-1] > 0.95, f"antigen-negative share {share[-1]:.2f}"
    assert live[nadir] < 0.3 * live_at(result, START_DAY), "no response"
    assert nadir < len(live) - 1 and live[-1] > 3 * live[nadir], "no regrowth"
    assert live[-1] > 100 * max(runs["responsive", seed]["live"][-1], 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_suppression_tregs_and_mdscs_abolish_the_anti_pd1_response_3d(seed, runs):
    result = runs["suppression", seed]
    assert result["tregs"] > 200 and result["mdscs"] > 200
    assert treated(result).min() > 0.9 * live_at(result, START_DAY), "the tumor still responds"
    assert result["categories"] <= {"SD", "PD"}
    assert result["kills"] < 0.25 * runs["responsive", seed]["kills"]


@pytest.mark.parametrize("seed", SEEDS)
def test_m2_macrophages_defeat_anti_pd1_and_a_csf1r_inhibitor_rescues_it_3d(seed, runs):
    alone, rescued = runs["tams", seed], runs["rescue", seed]
    assert alone["tams"] > 1000 and alone["polarisation"] > 0.8, "many M2-like TAMs"
    assert treated(alone).min() > 0.8 * live_at(alone, START_DAY), "anti-PD-1 alone: no response"
    assert alone["categories"] <= {"SD", "PD"}
    assert rescued["tams"] < 0.05 * alone["tams"], "the CSF1R inhibitor depletes the TAMs"
    assert rescued["live"][-1] == 0, "anti-PD-1 with the CSF1R inhibitor clears the tumor"
    assert rescued["kills"] > alone["kills"]
