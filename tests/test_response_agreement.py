"""One endpoint everywhere: for the sequencing preset, every figure, table and report gives each run the same best
overall response and best change as the run's events.

The endpoint is defined once, in the run directory: each assessment row of
events.parquet has the response measured from the start of treatment
(``treatment_category``, ``treatment_change_from_baseline``); the best
overall response and the best change count those up to and including the
first progression (abm/therapy.py). This module runs three arms of
configs/sequencing.yaml for 35 days (a progression, a complete response, and
a run whose second line re-baselines, so that its per-line category (PR)
differs from the endpoint's (SD)) and checks against the events: summary.json,
the comparison's runs.parquet and compare.json, the waterfall, the swimmer,
the timeline's response strip, the run's treatment figure and report, and
the comparison's report.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from abm.cli import main
from abm.response import best_response
from abm.rundir import RESPONDERS
from tests.test_viz import REPO
from viz import palette

pytestmark = pytest.mark.slow

ARMS = ("untreated", "concurrent", "chemo_then_checkpoint")
DAYS = 35  # untreated progresses at day 33 (28 days after the start of treatment)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequencing") / "cmp"
    assert main(["compare", str(REPO / "configs" / "sequencing.yaml"), "--out", str(out), "--replicates", "1",
                 "--arms", ",".join(ARMS), "--set", f"time.duration_days={DAYS}", "--quiet"]) == 0
    from viz.comparedir import open_comparison

    return open_comparison(out)


def endpoints_from_events(run) -> tuple[str | None, float | None, list[tuple[float, str]]]:
    """The run's best overall response and best change, recomputed from events.parquet: the responses from the start
    of treatment up to and including the first progression (the summary's time to progression); and every
    ``(time_days, treatment_category)`` assessment."""
    events, outcome = run.events, run.treatment
    start = float(events.loc[events["event"] == "line_start", "time_days"].min())
    assessed = events[events["event"] == "assessment"]
    counted = assessed
    if not outcome["progression_censored"]:
        counted = assessed[assessed["time_days"] <= start + outcome["time_to_progression_days"] + 1e-9]
    changes = counted["treatment_change_from_baseline"].astype(float)
    best = best_response(list(counted["treatment_category"]), outcome["criteria"])
    return best, (float(changes.min()) if len(changes) else None), list(zip(assessed["time_days"].astype(float),
                                                                                assessed["treatment_category"]))


@pytest.fixture(scope="module")
def endpoints(comparison):
    found = {key: endpoints_from_events(run) for key, run in comparison.run_data.items()}
    assert {key: best for key, (best, *_) in found.items()} == {
        ("untreated", 1): "SD", ("concurrent", 1): "CR", ("chemo_then_checkpoint", 1): "SD"}, "the runs this module needs"
    per_line = comparison.run_data[("chemo_then_checkpoint", 1)].events
    assert "PR" in set(per_line["category"]), "a per-line PR that is not the endpoint's: the case that tells them apart"
    return found


def test_summary_and_comparison_tables_agree_with_the_events(comparison, endpoints):
    runs = comparison.runs.set_index(["arm", "seed"])
    for (arm, seed), (best, change, _) in endpoints.items():
        outcome = comparison.run_data[(arm, seed)].treatment
        assert outcome["best_overall_response"] == best and outcome["best_change_from_baseline"] == pytest.approx(change)
        assert runs.loc[(arm, seed), "best_overall_response"] == best
        assert runs.loc[(arm, seed), "best_change_from_baseline"] == pytest.approx(change)
    result = json.loads((comparison.path / "compare.json").read_text(encoding="utf-8"))
    for arm in ARMS:
        counts = result["arms"][arm]["best_response_counts"]
        assert counts == {category: sum(best == category for (a, _), (best, *_) in endpoints.items() if a == arm)
                          for category in counts}


def _drawn(comparison):
    import matplotlib

    from viz.comparison import COMPARE_FIGURES
    from viz.figures import STYLE

    with matplotlib.rc_context(STYLE):
        return {spec.name: spec.make(comparison) for spec in COMPARE_FIGURES}


def test_figures_agree_with_the_events(comparison, endpoints):
    from viz.comparison import WATERFALL_GID, swimmer_rows

    drawn = _drawn(comparison)
    bars_ax, strip_ax = drawn["waterfall"].axes[:2]
    labels = {round(text.get_position()[0]): text.get_text() for text in strip_ax.texts}
    bars = {tuple(patch.get_gid().split()[1:]): patch for patch in bars_ax.patches
            if (patch.get_gid() or "").startswith(WATERFALL_GID)}
    assert len(bars) == len(endpoints)
    for (arm, seed), (best, change, _) in endpoints.items():
        patch = bars[(arm, str(seed))]
        assert patch.get_height() == pytest.approx(change), (arm, "waterfall bar")
        assert labels[round(patch.get_x() + patch.get_width() / 2)] == best, (arm, "waterfall strip")

    ax = drawn["swimmer"].axes[0]
    colours = {palette.to_float(palette.response_color(category)): category for category in ("CR", "PR")}
    for row, (arm, seed) in enumerate(swimmer_rows(comparison)):
        if seed is None:
            continue
        best, _, _ = endpoints[(arm, seed)]
        outcome = comparison.run_data[(arm, seed)].treatment
        horizon = np.inf if outcome["progression_censored"] else outcome["time_to_progression_days"] + 1e-9
        marked = [colours[tuple(line.get_markerfacecolor()[:3])] for line in ax.lines
                  if line.get_marker() == "^" and line.get_ydata()[0] == row and line.get_xdata()[0] <= horizon]
        responders = RESPONDERS[outcome["criteria"]]
        assert (best_response(marked, outcome["criteria"]) if marked else None) == (best if best in responders else None), \
            (arm, "swimmer")

    axes = drawn["timeline"].axes
    for number, arm in enumerate(comparison.arms):
        (best, _, assessed), = [value for (a, _), value in endpoints.items() if a == arm]  # one run per arm
        strip = sorted((text.get_position()[0], text.get_text()) for text in axes[2 * number + 1].texts)
        assert [category for _, category in strip] == [category for _, category in assessed], (arm, "timeline strip")
    assert any("response (most common)" == text.get_text() for legend_ in drawn["timeline"].legends
               for text in legend_.texts)


def test_reports_and_the_run_figure_agree_with_the_events(comparison, endpoints, tmp_path):
    from viz.figures import treatment_figure
    from viz.report import compare_report, run_report

    for (arm, seed), (best, change, _) in endpoints.items():
        run = comparison.run_data[(arm, seed)]
        assert treatment_figure(run)._suptitle.get_text().startswith(f"Treatment: best response {best},"), arm
        report = run_report(run, tmp_path / f"{arm}.md", progress=False).read_text(encoding="utf-8")
        assert f"| best overall response | {best} |" in report, arm
        assert f"| best change from start of treatment | {change:+.1%} |" in report, arm
    report = compare_report(comparison, tmp_path / "comparison.md", progress=False).read_text(encoding="utf-8")
    for arm in ARMS:
        (best, *_), = [value for (a, _), value in endpoints.items() if a == arm]
        row = next(line for line in report.splitlines() if line.startswith(f"| {arm} |"))
        assert f"| {best} 1 |" in row, row
