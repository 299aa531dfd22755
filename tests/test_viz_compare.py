"""Figures and reports of treated runs and of ``tme compare`` outputs.

The fixture is a real comparison made by ``tme compare`` (a 32 x 32 lattice,
10 days, a sensitive and a cisplatin-resistant clone, two drugs with
pharmacokinetics) with four arms of three runs: observation; cisplatin
until progression, then doxorubicin (line changes at different times in
different runs); both drugs each cycle; adaptive dosing (treat, holiday,
treat ...). It takes about ten seconds.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from abm.cli import main
from tests.test_viz import assert_figure_files, assert_legends_cover_no_data, assert_not_blank, png_pixels, styled
from viz import palette
from viz.comparedir import CompareData, open_comparison, open_target
from viz.rundir import VizError, open_run

ARMS = ("observation", "sequential", "concurrent", "adaptive")
CONFIG = """
seed: 7
lattice: {shape: [32, 32], dx_um: 20.0}
time: {dt_cell_h: 2.0, duration_days: 10, record_every_h: 12, snapshot_every_h: null}
tumor:
  initial: {radius_um: 60.0}
  clones:
    - {name: sensitive, fraction: 0.85}
    - {name: resistant, fraction: 0.15, drug_sensitivity: {cis: 0.1}}
fields:
  oxygen: {preset: oxygen}
  cis: {preset: chemo_drug, vessel: {supply_per_min: 1.0, blood_level: 0.0}}
  dox: {preset: chemo_drug, vessel: {supply_per_min: 1.0, blood_level: 0.0}}
drugs:
  cis: {pk: {half_life_h: 6}, emax_per_h: 0.2, cycle_specific: false}
  dox: {pk: {half_life_h: 12, distribution_half_life_h: 1, distribution_fraction: 0.5}, emax_per_h: 0.12}
arms:
  observation:
    start_day: 1
    lines: [{name: watch}]
    assessment: {every_days: 1, progression_absolute_um: 20}
  sequential:
    start_day: 1
    lines:
      - {name: cisplatin, doses: [{drug: cis, amount: 3}], cycle_days: 1.5, end: {progression: true}, next: doxorubicin}
      - {name: doxorubicin, doses: [{drug: dox, amount: 3, infusion_h: 6}], cycle_days: 2, end: {progression: true}}
    assessment: {every_days: 1, progression_absolute_um: 20}
  concurrent:
    start_day: 1
    lines:
      - {name: both, doses: [{drug: cis, amount: 3}, {drug: dox, amount: 3, days: [0.5], infusion_h: 6}], cycle_days: 2}
    assessment: {every_days: 1, progression_absolute_um: 20}
  adaptive:
    start_day: 1
    lines:
      - {name: treat, doses: [{drug: cis, amount: 3}, {drug: dox, amount: 2, days: [0.5]}], cycle_days: 1,
         end: {burden_below: 0.8}, next: holiday}
      - {name: holiday, end: {burden_above: 1.1}, next: treat}
    assessment: {every_days: 1, progression_absolute_um: 20}
"""


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """``tme compare`` of the four arms, three runs each (seeds 7-9)."""
    folder = tmp_path_factory.mktemp("compare")
    config = folder / "arms.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    out = folder / "cmp"
    assert main(["compare", str(config), "--out", str(out), "--replicates", "3", "--workers", "1", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def figures(comparison, tmp_path_factory):
    """Every comparison figure drawn once as PNG, PDF and SVG, with the figure objects kept for inspection."""
    from viz.comparison import COMPARE_FIGURES
    from viz.figures import STYLE, save_figure

    import matplotlib

    data = open_comparison(comparison)
    out = tmp_path_factory.mktemp("figures")
    with matplotlib.rc_context(STYLE):
        drawn = {spec.name: spec.make(data) for spec in COMPARE_FIGURES if spec.applies(data)}
        written = {name: save_figure(figure, out / name) for name, figure in drawn.items()}
    return data, written, drawn


def _rgb(color) -> tuple[int, int, int]:
    return tuple(int(round(channel * 255)) for channel in np.asarray(color, dtype=float).ravel()[:3])


# palette ------------------------------------------------------------------

def test_arm_drug_line_and_response_colours_are_stable_and_apart():
    def distance(a, b):
        return int(np.abs(np.subtract(a, b)).sum())

    arms = [palette.arm_color(index) for index in range(24)]
    assert arms == [palette.arm_color(index) for index in range(24)] and len(set(arms)) == 24
    clones = [palette.clone_color(index) for index in range(8)]
    drugs = [palette.drug_color(index) for index in range(6)]
    for index, arm in enumerate(arms[:9]):
        assert min(distance(arm, other) for other in arms[:9] if other != arm) >= 100, arm
        assert min(distance(arm, clone) for clone in clones) >= 60, ("arm colour too close to a clone colour", arm)
        assert min(distance(arm, drug) for drug in drugs) >= 100, ("arm colour too close to a drug colour", arm)
    assert palette.line_color(0, doses=False) == palette.NO_DOSE_LINE_COLOR
    assert palette.response_color("CR") == palette.response_color("iCR") != palette.response_color("PD")
    assert palette.response_color(None) == palette.response_color("unknown") == palette.UNKNOWN_RESPONSE_COLOR
    with pytest.raises(ValueError):
        palette.arm_color(-1)


def test_treatment_colours_follow_the_config():
    from viz.treatment import treatment_colors

    config = {"drugs": {"a": {}, "b": {}},
              "arms": {"x": {"lines": [{"name": "one", "doses": [{"drug": "a"}]}, {"name": "rest", "doses": []}]},
                       "y": {"lines": [{"name": "two", "doses": [{"drug": "b"}]}]}},
              "treatment": {"lines": [{"name": "two", "doses": [{"drug": "b"}]}]}}
    colors = treatment_colors(config, extra_drugs=["c", "a"], extra_lines=["new"])
    assert colors.drugs == ("a", "b", "c") and colors.lines == ("one", "rest", "two", "new")
    assert colors.drug("b") == palette.drug_color(1) and colors.drug("zzz") == palette.drug_color(3)
    assert colors.line("rest") == palette.NO_DOSE_LINE_COLOR
    assert [colors.line(name) for name in ("one", "two", "new")] == [palette.line_color(index) for index in range(3)]


def test_response_mode_and_numbers_at_risk_by_hand():
    from viz.treatment import at_risk, response_mode

    frame = lambda pairs: pd.DataFrame({"time_days": [time for time, _ in pairs], "category": [c for _, c in pairs]})  # noqa: E731
    runs = [frame([(1, "SD"), (2, "PR")]), frame([(1, "SD"), (2, "PD")]), frame([(1, "PD"), (2.0000001, "PR")])]
    assert response_mode(runs, ("CR", "PR", "SD", "PD")) == [(1.0, "SD", 2, 3), (2.0, "PR", 2, 3)]
    assert response_mode([frame([(1, "PR")]), frame([(1, "PD")])], ("CR", "PR", "SD", "PD")) == [(1.0, "PD", 1, 2)]
    km = pd.DataFrame({"time": [0.0, 1.0, 2.0, 3.0, 4.0], "at_risk": [5.0, 5.0, 4.0, 2.0, 1.0]})
    assert at_risk(km, [0, 0.5, 1, 2.5, 4, 6]) == [5, 5, 5, 2, 1, 0]


# opening directories --------------------------------------------------------

def test_open_comparison_and_bad_directories(comparison, tmp_path):
    data = open_target(comparison)
    assert isinstance(data, CompareData) and data.arms == list(ARMS)
    assert len(data.runs) == 12 and len(data.run_data) == 12
    assert data.dosed_drugs == ["cis", "dox"] and data.duration_days == 10
    assert not isinstance(open_target(comparison / "runs" / "adaptive" / "seed_7"), CompareData)

    with pytest.raises(VizError, match="no config.yaml.*no compare.json"):
        open_target(tmp_path)
    with pytest.raises(VizError, match="no such run or comparison directory"):
        open_target(tmp_path / "missing")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(comparison / "compare.json", partial)
    shutil.copy(comparison / "runs.parquet", partial)
    with pytest.raises(VizError, match="no km.parquet, burden.parquet"):
        open_target(partial)
    (tmp_path / "bad").mkdir()
    for name in ("runs.parquet", "km.parquet", "burden.parquet"):
        shutil.copy(comparison / name, tmp_path / "bad")
    (tmp_path / "bad" / "compare.json").write_text("{}", encoding="utf-8")
    with pytest.raises(VizError, match="no arms"):
        open_target(tmp_path / "bad")
    with pytest.raises(VizError, match="a tme compare directory, not a run directory"):
        open_run(comparison)


def test_comparison_tables_have_the_columns_of_abm_rundir(comparison):
    """compare writes each table with the columns abm.rundir defines; viz reads some of them."""
    from abm import rundir
    from viz.comparedir import COMPARE_TABLE_COLUMNS

    assert tuple(COMPARE_TABLE_COLUMNS) == rundir.COMPARE_TABLES
    for table, columns in rundir.COMPARE_COLUMNS.items():
        assert tuple(pd.read_parquet(rundir.table_path(comparison, table)).columns) == columns, table
        assert set(COMPARE_TABLE_COLUMNS[table]) <= set(columns), table
    assert sorted(path.name for path in comparison.iterdir() if path.is_file() and path.name != rundir.LOCK) == \
        sorted(rundir.COMPARE_FILES + (rundir.table_path(comparison, rundir.PAIRED).name,))  # two or more arms: paired
    assert rundir.compare_run_path(comparison, "adaptive", 7).is_dir()


# comparison figures -------------------------------------------------------

def test_every_comparison_figure_as_png_pdf_svg(figures):
    _, written, _ = figures
    assert list(written) == ["timeline", "kaplan_meier", "waterfall", "swimmer"]
    assert_figure_files(written)


def test_arm_colours_are_the_same_in_every_figure(figures, comparison):
    from matplotlib.collections import PolyCollection

    data, _, drawn = figures
    expected = {arm: data.arm_color(arm) for arm in ARMS}
    assert len(set(expected.values())) == len(ARMS)

    timeline = drawn["timeline"]
    titles = {ax.get_title(loc="left").split(" (")[0]: ax for ax in timeline.axes if ax.get_title(loc="left")}
    assert list(titles) == list(ARMS)
    for arm, ax in titles.items():
        assert _rgb(ax._left_title.get_color()) == expected[arm], "title"
        assert _rgb(ax.get_lines()[0].get_color()) == expected[arm], "median line"
        bands = [artist for artist in ax.collections if isinstance(artist, PolyCollection)]
        assert _rgb(bands[0].get_facecolor()[0]) == expected[arm], "interquartile band"

    km_axes = drawn["kaplan_meier"].axes[0]
    steps = [line for line in km_axes.get_lines() if line.get_drawstyle() == "steps-post"]
    assert [_rgb(line.get_color()) for line in steps] == [expected[arm] for arm in ARMS]
    km_bands = [artist for artist in km_axes.collections if isinstance(artist, PolyCollection)]
    assert [_rgb(band.get_facecolor()[0]) for band in km_bands] == [expected[arm] for arm in ARMS], "95 % bands"

    bars = [patch for patch in drawn["waterfall"].axes[0].patches if (patch.get_gid() or "").startswith("waterfall-bars")]
    for patch in bars:
        assert _rgb(patch.get_facecolor()) == expected[patch.get_gid().split()[1]]

    swimmer = drawn["swimmer"].axes[0]
    for label in swimmer.get_yticklabels():
        if label.get_text():
            seed = int(label.get_text().split()[1])
            arms = {arm for arm in ARMS if ((data.runs["arm"] == arm) & (data.runs["seed"] == seed)).any()}
            assert _rgb(label.get_color()) in {expected[arm] for arm in arms}

    reordered = CompareData(comparison, {**data.result, "arms": dict(reversed(list(data.result["arms"].items())))})
    assert {arm: reordered.arm_color(arm) for arm in ARMS} == expected, "an arm's colour follows the config, not the order"


def test_numbers_at_risk_match_km_parquet(figures):
    data, _, drawn = figures
    risk_ax = drawn["kaplan_meier"].axes[1]
    shown = {}
    for text in risk_ax.texts:
        gid = text.get_gid() or ""
        if gid.startswith("at-risk "):
            _, arm, time = gid.split()
            shown[(arm, float(time))] = int(text.get_text())
    km = pd.read_parquet(data.path / "km.parquet")
    runs = pd.read_parquet(data.path / "runs.parquet")
    times = sorted({time for _, time in shown})
    assert times[0] == 0.0 and len(times) >= 3 and set(arm for arm, _ in shown) == set(ARMS)
    for (arm, time), count in shown.items():
        table = km[km["arm"] == arm]
        later = table[table["time"] >= time - 1e-9]
        assert count == (int(later["at_risk"].iloc[0]) if len(later) else 0), (arm, time)
        assert count == int((runs.loc[runs["arm"] == arm, "time_to_progression_days"] >= time - 1e-9).sum())
    assert shown[("observation", 0.0)] == 3


def test_kaplan_meier_legend_has_medians_and_log_rank(figures):
    data, _, drawn = figures
    (legend,) = drawn["kaplan_meier"].legends
    texts = [text.get_text() for text in legend.get_texts()]
    assert texts[0].startswith("observation: ") and "p =" not in texts[0]
    for arm, text in zip(ARMS[1:], texts[1:]):
        assert text.startswith(f"{arm}: ") and "p" in text
    median = data.arm_stats("observation")["median_time_to_progression_days"]
    assert texts[0].startswith(f"observation: {median:g} d")


def test_kaplan_meier_legend_lies_below_the_table_and_leaves_the_width_to_the_curves(figures):
    """The legend sits below the numbers at risk, not in a column of its own beside the curves (which left the
    width below it empty): the curves and the table span most of the figure's width, and no legend covers data."""
    _, _, drawn = figures
    figure = drawn["kaplan_meier"]
    figure.draw_without_rendering()
    curve_ax, risk_ax = figure.axes
    (legend,) = figure.legends
    width = figure.bbox.width
    assert curve_ax.get_window_extent().width > 0.8 * width
    assert legend.get_window_extent().y1 <= risk_ax.get_tightbbox().y0 + 1
    assert_legends_cover_no_data(figure)


def _longest(name: str) -> str:
    """``name`` lengthened to the longest a name may be (64 characters)."""
    return f"{name}_{'_'.join(['continued'] * 10)}"[:64]


#: The comparison's config with every arm and line named as long as a name may be.
LONG_NAMES = re.sub(r"\b(observation|sequential|concurrent|adaptive|watch|cisplatin|doxorubicin|both|treat|holiday)\b",
                    lambda match: _longest(match.group(1)), CONFIG)


@pytest.mark.parametrize("style", ["paper", "talk"])
def test_legends_with_the_longest_arm_and_line_names_lie_inside_the_figure(tmp_path_factory, style):
    """Every comparison figure drawn as tme plot draws it: its legends lie inside the figure (wrapped where needed),
    and its panels are laid out (no axes squeezed to nothing)."""
    import warnings

    from viz.comparison import COMPARE_FIGURES

    folder = tmp_path_factory.mktemp("long")
    (folder / "arms.yaml").write_text(LONG_NAMES, encoding="utf-8")
    assert main(["compare", str(folder / "arms.yaml"), "--out", str(folder / "cmp"), "--replicates", "1",
                 "--workers", "1", "--quiet"]) == 0
    data = open_comparison(folder / "cmp")
    assert max(len(arm) for arm in data.arms) == 64
    for spec in COMPARE_FIGURES:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # matplotlib warns where the constrained layout collapses
            figure = styled(spec.make, data, style)
            figure.draw_without_rendering()
        page = figure.bbox
        for made in figure.legends:
            box = made.get_window_extent()
            assert page.x0 - 0.5 <= box.x0 and box.x1 <= page.x1 + 0.5 and page.y0 - 0.5 <= box.y0 and \
                box.y1 <= page.y1 + 0.5, f"{spec.name} ({style}): legend {box.extents} outside {page.extents}"
        assert_legends_cover_no_data(figure)


def test_waterfall_has_one_bar_per_run_sorted(figures):
    data, _, drawn = figures
    bars = [patch for patch in drawn["waterfall"].axes[0].patches if (patch.get_gid() or "").startswith("waterfall-bars")]
    assert len(bars) == len(data.runs) == 12
    assert {tuple(patch.get_gid().split()[1:]) for patch in bars} == {(arm, str(seed)) for arm, seed in zip(data.runs["arm"], data.runs["seed"])}
    heights = [patch.get_height() for patch in sorted(bars, key=lambda patch: patch.get_x())]
    assert heights == sorted(heights, reverse=True)
    assert sorted(heights) == pytest.approx(sorted(data.runs["best_change_from_baseline"]))
    labels = [text.get_text() for text in drawn["waterfall"].axes[0].texts]
    assert any(label.startswith("PR −30") for label in labels) and any(label.startswith("PD +20") for label in labels)


def test_swimmer_has_one_row_per_run(figures):
    from viz.comparison import SWIMMER_GID, swimmer_rows

    data, _, drawn = figures
    rows = swimmer_rows(data)
    runs = [(arm, seed) for arm, seed in rows if seed is not None]
    assert sorted(runs) == sorted(zip(data.runs["arm"], data.runs["seed"].astype(int)))
    assert [arm for arm, seed in rows if seed is None] == list(ARMS)
    ax = drawn["swimmer"].axes[0]
    assert len([label for label in ax.get_yticklabels() if label.get_text()]) == 12
    segments = {}
    for collection in ax.collections:
        gid = collection.get_gid() or ""
        if gid.startswith(SWIMMER_GID):
            _, arm, seed = gid.split()
            segments[(arm, int(seed))] = segments.get((arm, int(seed)), 0) + 1
    assert set(segments) == set(runs)
    for (arm, seed), count in segments.items():
        assert count == len(data.run_data[(arm, seed)].treatment["lines"]), (arm, seed)


def test_timeline_dose_bars_are_the_doses_of_the_runs(figures):
    from matplotlib.collections import PolyCollection

    data, _, drawn = figures
    axes = drawn["timeline"].axes
    assert len(axes) == 2 * len(ARMS)
    for number, arm in enumerate(ARMS):
        track = axes[2 * number + 1]
        assert [label.get_text() for label in track.get_yticklabels()] == ["response", "line", "cis", "dox"]
        for drug in ("cis", "dox"):
            color = data.colors.drug(drug)
            drawn_bars = sum(len(collection.get_paths()) for collection in track.collections
                             if isinstance(collection, PolyCollection) and len(collection.get_facecolor())
                             and _rgb(collection.get_facecolor()[0]) == color)
            given = sum(int(((run.events["event"] == "dose") & (run.events["drug"] == drug)).sum())
                        for run in data.arm_run_data(arm))
            assert drawn_bars == given, (arm, drug)
    assert sum(len(run.events[run.events["event"] == "dose"]) for run in data.arm_run_data("observation")) == 0


def test_report_of_a_comparison(comparison, tmp_path, capsys):
    assert main(["report", str(comparison), "--out", str(tmp_path / "report.md")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'report.md'}"
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    result = json.loads((comparison / "compare.json").read_text(encoding="utf-8"))
    table = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip() in ARMS]
    assert [line.split("|")[1].strip() for line in table] == list(ARMS)
    for line, arm in zip(table, ARMS):
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        stats = result["arms"][arm]
        assert cells[2] == str(stats["runs"]) and cells[3] == str(stats["progressions"])
        assert cells[5] == f"{stats['objective_response_rate']:.0%}"
        assert cells[7] == "reference" if arm == "observation" else cells[7].startswith(f"{stats['log_rank_vs_observation']['p']:.3g}")
    for name in ("timeline", "kaplan_meier", "waterfall", "swimmer"):
        assert f"![{name}](" in text and (comparison / "figures" / f"{name}.png").is_file()


def test_plot_command_on_a_comparison_and_its_errors(comparison, tmp_path, capsys):
    assert main(["plot", str(comparison), "--out", str(tmp_path / "f"), "--formats", "png", "--only", "kaplan_meier,swimmer"]) == 0
    assert sorted(path.name for path in (tmp_path / "f").iterdir()) == [".figures.json", "kaplan_meier.png", "swimmer.png"]
    capsys.readouterr()
    assert main(["plot", str(comparison), "--only", "slices"]) == 2
    assert "--only slices: a comparison's figures are kaplan_meier, swimmer, timeline, waterfall" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "f")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "no config.yaml" in error and "no compare.json" in error
    assert main(["render", str(comparison), "--out", str(tmp_path / "a.png")]) == 2
    assert "runs/ARM/seed_N" in capsys.readouterr().err


def test_comparison_without_its_run_directories(comparison, tmp_path):
    from viz.comparison import plot_comparison

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("compare.json", "runs.parquet", "km.parquet", "burden.parquet"):
        shutil.copy(comparison / name, bare)
    written = plot_comparison(open_comparison(bare), tmp_path / "figures", formats=("png",))
    assert list(written) == ["timeline", "kaplan_meier", "waterfall"], "the swimmer needs the runs' lines"
    for paths in written.values():
        assert_not_blank(png_pixels(paths[0]))


# a treated run --------------------------------------------------------------

def test_treatment_figure_of_a_treated_run(comparison, tmp_path):
    from viz.figures import plot_run, treatment_figure
    from viz.treatment import doses

    run = open_run(comparison / "runs" / "sequential" / "seed_8")
    written = plot_run(run, tmp_path, names=("treatment",))
    assert list(written) == ["treatment"]
    assert_figure_files({"treatment": written["treatment"]})

    import matplotlib

    from viz.figures import STYLE

    with matplotlib.rc_context(STYLE):
        figure = treatment_figure(run)
    burden, assessed, plasma, track = figure.axes[:4]
    assert [label.get_text() for label in track.get_yticklabels()] == ["line", "cis", "dox"]
    given = doses(run.events)
    plasma_lines = {line.get_label().split()[0]: line for line in plasma.get_lines() if not line.get_label().startswith("_")}
    assert set(plasma_lines) == set(given["drug"]) == {"cis", "dox"}
    cis = plasma_lines["cis"]
    first = float(given.loc[given["drug"] == "cis", "time_days"].iloc[0])
    at_dose = np.flatnonzero(np.isclose(cis.get_xdata(), first))
    assert cis.get_ydata()[at_dose].max() == pytest.approx(3.0), "a bolus of 3 raises the plasma level by 3"
    lines = [text.get_text() for text in track.get_legend().get_texts()]
    assert lines == [line["line"] for line in run.treatment["lines"]]
    categories = {text.get_text() for text in assessed.get_legend().get_texts()}
    assert set(run.events.loc[run.events["event"] == "assessment", "category"]) <= categories

    untreated = open_run(comparison / "runs" / "observation" / "seed_7")
    assert "treatment" in plot_run(untreated, tmp_path / "observation", formats=("png",), names=("treatment",)), \
        "an observation arm is a treatment too"


def test_swimmer_marks_responses_from_the_start_of_treatment_as_the_endpoints_count_them(figures):
    """One run, one answer: the swimmer's first-response markers come from the assessments' treatment_category
    (the response measured from the start of treatment, as the best overall response and the waterfall are),
    and its legend says so; a run directory without that column falls back to the lines' own, and says that."""
    from viz import treatment

    data, _, drawn = figures
    texts = [text.get_text() for legend_ in drawn["swimmer"].legends for text in legend_.texts]
    titles = [legend_.get_title().get_text() for legend_ in drawn["swimmer"].legends]
    assert any("responses from the start of treatment" in text for text in texts + titles)
    run = next(run for run in data.run_data.values() if run.events is not None and not run.events.empty)
    rows, from_start = treatment.treatment_responses(run.events)
    assessed = run.events[run.events["event"] == "assessment"]
    assert from_start and list(rows["category"]) == list(assessed["treatment_category"])
    _, fallback = treatment.treatment_responses(run.events.drop(columns=["treatment_category"]))
    assert not fallback
