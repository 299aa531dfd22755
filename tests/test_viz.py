"""Visualization without OpenGL: palette, scales, run reading, figures, VTK export, CLI wiring.

Fixtures are real run directories made by :func:`abm.runner.run` on small
lattices (2-D and 3-D, two clones, vessels), by ``tme run`` with mutation
(many nested subclones, a drug) and by ``tme run`` with immune cells (a
T-cell clone, Tregs, MDSCs), so the files read here are the ones
``tme run`` writes. Renders, which need OpenGL, are in test_viz_render.py.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from abm.cli import main
from abm.config import load_config
from abm.runner import run as run_model
from kernels.tumor import NECROTIC, STATE_NAMES
from viz import palette
from viz.rundir import VizError, open_run
from viz.scales import contour_levels, nice_number, round_ticks, scale_bar_length_um

REPO = Path(__file__).resolve().parents[1]
TWO_CLONES = ("tumor.clones=[{name: founder, fraction: 0.5, cycle_time_h: 8.0},"
              " {name: resistant, fraction: 0.5, cycle_time_h: 12.0}]")


def make_run(out: Path, shape: list[int], days: float = 1.0) -> Path:
    """Run configs/necrotic_core.yaml on a small lattice with two clones and vessels into ``out``."""
    config = load_config(REPO / "configs" / "necrotic_core.yaml", [
        f"lattice.shape={shape}", f"time.duration_days={days}", "time.record_every_h=6", "time.snapshot_every_h=12",
        "vessels.pattern=sparse_core", "vessels.density=0.02", "vessels.core_radius_um=60", TWO_CLONES,
    ])
    run_model(config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def run3d(tmp_path_factory) -> Path:
    """A 3-D run directory (18^3 voxels, 1 day, 3 snapshots)."""
    return make_run(tmp_path_factory.mktemp("viz") / "run3d", [18, 18, 18])


@pytest.fixture(scope="session")
def run2d(tmp_path_factory) -> Path:
    """A 2-D run directory (40^2 voxels, 1 day, 3 snapshots)."""
    return make_run(tmp_path_factory.mktemp("viz") / "run2d", [40, 40])


def run_tiny(tmp_path_factory, name: str, settings: tuple[str, ...]) -> Path:
    """The run directory of ``tme run configs/tiny.yaml`` with ``--set`` of each of ``settings``."""
    out = tmp_path_factory.mktemp("viz") / name
    arguments = [argument for setting in settings for argument in ("--set", setting)]
    assert main(["run", str(REPO / "configs" / "tiny.yaml"), "--out", str(out), "--quiet", *arguments]) == 0
    return out


MUTATING = ("tumor.clones.0.mutation_rate=0.3", "time.duration_days=3", "tumor.mutation.division_rate_sd=0.3",
            "tumor.mutation.pdl1={probability: 0.5, max_change: 0.3}", "fields.chemo={preset: chemo_drug}",
            "drugs.chemo={}", "tumor.mutation.resistance.chemo={probability: 0.3, sensitivity_factor: 0.3, cost: 0.1}")


@pytest.fixture(scope="session")
def run_mutating(tmp_path_factory) -> Path:
    """``tme run configs/tiny.yaml`` with mutation for 3 days: one founding clone, dozens of nested subclones."""
    return run_tiny(tmp_path_factory, "mutating", MUTATING)


IMMUNE = ("tumor.clones=[{name: presenting, antigens: [0]}]",
          "fields={oxygen: {preset: oxygen}, chemokine: {preset: chemokine}, danger_signal: {preset: danger_signal}}",
          "vessels.density=0.02", "time.snapshot_every_h=12",
          "immune.t_cells.clones=[{name: anti0, antigen: 0}]",
          "immune.t_cells.priming={delay_h: 6, expansion_per_h: 0.5, half_saturation: 0.001}",
          "immune.t_cells.recruitment.rate_per_h=0.2", "immune.tregs={}", "immune.mdscs={}")
IMMUNE_TIME_H = 24.0  # a snapshot of the immune fixture with tumor cells, effector T cells, Tregs and MDSCs


@pytest.fixture(scope="session")
def run_immune(tmp_path_factory) -> Path:
    """``tme run configs/tiny.yaml`` for 2 days with immune cells: a T-cell clone against the tumor's antigen 0, Tregs, MDSCs."""
    return run_tiny(tmp_path_factory, "immune", IMMUNE)


def png_pixels(path: Path) -> np.ndarray:
    """RGB pixels of a PNG, ``uint8 (height, width, 3)``."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def assert_not_blank(pixels: np.ndarray) -> None:
    """Many distinct colours and real contrast, not a flat or nearly flat image."""
    assert pixels.std() > 10, "image is (nearly) blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8


def assert_saves_with_layout(figure, stem: Path) -> None:
    """``figure`` saves as a PNG that is not blank, with matplotlib's constrained layout applied (its warning an error)."""
    from viz.figures import save_figure

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="constrained_layout not applied")
        (path,) = save_figure(figure, stem, ("png",))
    assert_not_blank(png_pixels(path))


def data_points_px(figure, per_segment: int = 40) -> np.ndarray:
    """Display coordinates (pixels) of the data a figure draws: every line (its segments sampled ``per_segment``
    times) and every collection's path vertices, over all its axes."""
    points = []
    for ax in figure.axes:
        for line in ax.get_lines():
            xy = np.asarray(line.get_xydata(), dtype=float)
            xy = xy[np.isfinite(xy).all(axis=1)]
            if len(xy) > 1:
                steps = np.linspace(0.0, 1.0, per_segment)[:, None, None]
                xy = (xy[:-1] + steps * (xy[1:] - xy[:-1])).reshape(-1, 2)
            if len(xy):
                points.append(line.get_transform().transform(xy))
        for collection in ax.collections:
            for path in collection.get_paths():
                vertices = path.vertices[np.isfinite(path.vertices).all(axis=1)]
                if len(vertices):
                    points.append(collection.get_transform().transform(vertices))
    return np.concatenate(points) if points else np.empty((0, 2))


def assert_legends_cover_no_data(figure) -> None:
    """No data point of ``figure`` (:func:`data_points_px`) lies inside any of its legends (axes' or the figure's),
    laid out as saved."""
    figure.draw_without_rendering()
    points = data_points_px(figure)
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    assert legends
    for legend_artist in legends:
        box = legend_artist.get_window_extent()
        inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
        assert not inside.any(), f"legend {[text.get_text() for text in legend_artist.get_texts()]} covers data"


def styled(make, data, style: str = "paper"):
    """The figure ``make(data)`` as tme plot draws it in ``style`` (its settings, then its font scale applied)."""
    import matplotlib

    from viz.figures import STYLE, STYLES, FigureStyle

    with matplotlib.rc_context({**STYLE, **STYLES[style][1]}):
        figure = make(data)
        FigureStyle(style).apply(figure)
    return figure


# palette and scales -------------------------------------------------------

def test_clone_colors_are_stable_distinct_and_apart_from_fixed_colors():
    first = [palette.clone_color(index) for index in range(64)]
    assert first == [palette.clone_color(index) for index in range(64)]
    assert len(set(first)) == 64
    reserved = {palette.VESSEL_COLOR, palette.TISSUE_COLOR, palette.STATE_COLORS[NECROTIC]}
    assert not reserved & set(first)
    assert np.array_equal(palette.clone_table(5), np.array(first[:5], dtype=np.uint8))
    with pytest.raises(ValueError):
        palette.clone_color(-1)


def test_voxel_colors_by_clone_and_state():
    clone = np.array([[-1, 0, 1], [2, 0, -1]], dtype=np.int32)
    state = np.array([[0, 0, 1], [NECROTIC, 2, 0]], dtype=np.int8)
    vessel = np.array([[True, False, False], [False, False, False]])
    by_clone = palette.voxel_colors(clone, state, vessel, "clone")
    assert by_clone.shape == (2, 3, 3) and by_clone.dtype == np.uint8
    assert tuple(by_clone[0, 0]) == palette.VESSEL_COLOR
    assert tuple(by_clone[0, 1]) == palette.clone_color(0) == tuple(by_clone[1, 1])
    assert tuple(by_clone[0, 2]) == palette.clone_color(1)
    assert tuple(by_clone[1, 0]) == palette.STATE_COLORS[NECROTIC]
    assert tuple(by_clone[1, 2]) == palette.TISSUE_COLOR
    by_state = palette.voxel_colors(clone, state, vessel, "state")
    assert [tuple(by_state[1, code]) for code in (1, 0)] == [palette.STATE_COLORS[2], palette.STATE_COLORS[NECROTIC]]
    assert palette.to_hex((0, 114, 178)) == "#0072b2"


def test_immune_glyphs_are_apart_from_every_fixed_colour():
    """Immune fills differ from each other, the Okabe-Ito clones, the states, vessels and tissue; shapes and edges too."""
    fills = [glyph.color for glyph in palette.IMMUNE_GLYPHS]
    others = [palette.clone_color(index) for index in range(8)] + list(palette.STATE_COLORS.values()) + [
        palette.VESSEL_COLOR, palette.TISSUE_COLOR]
    for index, fill in enumerate(fills):
        for other in fills[index + 1:] + others:
            assert np.abs(np.subtract(fill, other)).sum() >= 90, (palette.IMMUNE_GLYPHS[index].label, other)
    assert [glyph.marker for glyph in palette.IMMUNE_GLYPHS] == ["o", "o", "^", "D"]
    assert all(glyph.edge != glyph.color for glyph in palette.IMMUNE_GLYPHS)
    assert all(sum(glyph.line) < 3 * 200 for glyph in palette.IMMUNE_GLYPHS), "every line shows on white"


def test_immune_glyph_classes_by_kind_and_state():
    from kernels.immune import T_CELL

    immune = np.array([[-1, 0, 0], [1, 2, 3], [7, 1, -1]], dtype=np.int32)
    state = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0]], dtype=np.int8)
    kinds = np.array([T_CELL, T_CELL, 1, 2], dtype=np.int8)  # the suppressor types of slots 0 and 1
    classes = palette.immune_glyph_classes(immune, state, kinds)
    assert classes.dtype == np.int8
    effector, exhausted = palette.GLYPH_T_EFFECTOR, palette.GLYPH_T_EXHAUSTED
    treg, mdsc = palette.GLYPH_SUPPRESSOR_FIRST, palette.GLYPH_SUPPRESSOR_FIRST + 1
    assert classes.tolist() == [[-1, effector, exhausted], [effector, treg, mdsc], [-1, exhausted, -1]]  # agent 7 is unknown


def test_immune_legend_rows_list_the_kinds_present():
    from viz import legend

    classes = np.array([-1, (palette.GLYPH_SUPPRESSOR_FIRST + 1), palette.GLYPH_T_EFFECTOR, (palette.GLYPH_SUPPRESSOR_FIRST + 1)], dtype=np.int8)
    rows = legend.immune_entries(classes)
    assert [row[0] for row in rows] == ["T cell, effector", "MDSC"]
    assert legend.immune_entries(None) == [] and legend.immune_entries(np.full(3, -1, dtype=np.int8)) == []
    handles = legend.handles([("clone a", palette.clone_color(0))] + rows)
    assert handles[0].get_label() == "clone a" and not hasattr(handles[0], "get_marker")
    assert [(handle.get_marker(), handle.get_label()) for handle in handles[1:]] == [("o", "T cell, effector"), ("D", "MDSC")]
    assert np.allclose(handles[2].get_markerfacecolor()[:3], palette.to_float(palette.IMMUNE_GLYPHS[(palette.GLYPH_SUPPRESSOR_FIRST + 1)].color))


def test_round_numbers():
    assert [nice_number(value) for value in (7, 0.3, 2, 999)] == [5, 0.2, 2, 500]
    assert [nice_number(value, up=True) for value in (7, 0.3, 2, 999)] == [10, 0.5, 2, 1000]
    assert scale_bar_length_um(960) == 100 and scale_bar_length_um(2560) == 500
    assert list(contour_levels(9.15, 38.0)) == [10, 20, 30]
    assert contour_levels(3.0, 3.0).size == 0


def test_round_ticks_are_round_and_within_the_range():
    assert list(round_ticks(0.0, 40.0)) == [0, 10, 20, 30, 40]
    assert list(round_ticks(2.5, 30.9)) == [10, 20, 30]  # not 9.6, 16.7, 23.8 (VTK's even spacing)
    assert np.allclose(round_ticks(0.1, 0.95), [0.2, 0.4, 0.6, 0.8])
    assert list(round_ticks(-1.0, 1.0)) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    for low, high in ((0.013, 0.0141), (5.1, 5.2), (1e-3, 7e4)):
        ticks = round_ticks(low, high)
        assert 2 <= len(ticks) <= 6 and ticks[0] >= low and ticks[-1] <= high, (low, high, ticks)
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0]) and nice_number(steps[0]) == pytest.approx(steps[0])
    assert round_ticks(3.0, 3.0).size == 0


# reading run directories --------------------------------------------------

def test_open_run_reads_what_tme_run_wrote(run3d):
    run = open_run(run3d)
    assert run.ndim == 3 and [snapshot.step for snapshot in run.snapshots] == [0, 12, 24]
    assert run.clone_name(1) == "resistant" and run.clone_name(7) == "clone 7"
    assert run.field_units("oxygen") == "mmHg"
    assert run.snapshot_at(14).step == 12
    last = run.last_snapshot()
    assert last.shape == (18, 18, 18) and last.field_names == ["oxygen"]
    assert set(last.voxel_arrays()) == {"clone", "cell_state", "vessel", "perfusion", "field_oxygen"}
    assert len(run.timeseries) == 5


def test_open_run_reads_immune_cells(run_immune, run3d):
    from abm.immunity import IMMUNE_SERIES_COLUMNS

    run = open_run(run_immune)
    assert run.has_immune
    assert [(agent.index, agent.name, agent.kind, agent.antigen) for agent in run.immune_agents] == [
        (0, "anti0", "t_cell", 0), (1, "treg", "treg", -1), (2, "mdsc", "mdsc", -1)]
    assert [agent.label for agent in run.immune_agents] == ["anti0 (antigen 0)", "Treg", "MDSC"]
    assert run.immune_agent_kinds().tolist() == [0, 1, 2]
    assert tuple(run.immune_series.columns) == IMMUNE_SERIES_COLUMNS
    snapshot = run.snapshot_at(IMMUNE_TIME_H)
    assert snapshot.has_immune
    assert (snapshot.immune.dtype, snapshot.immune_state.dtype, snapshot.exhaustion.dtype) == (np.int32, np.int8, np.float32)
    assert snapshot.immune.shape == snapshot.shape == snapshot.exhaustion.shape
    classes = run.immune_glyph_classes(snapshot)
    counts = np.bincount(classes[classes >= 0], minlength=4)
    record = run.timeseries.set_index("time_h").loc[snapshot.time_h]
    assert counts.tolist() == [record["t_cells_effector"], record["t_cells_exhausted"], record["tregs"], record["mdscs"]]
    assert counts[palette.GLYPH_T_EFFECTOR] > 0 and counts[palette.GLYPH_SUPPRESSOR_FIRST] > 0 and counts[(palette.GLYPH_SUPPRESSOR_FIRST + 1)] > 0

    plain = open_run(run3d)
    assert not plain.has_immune and plain.immune_agents == [] and plain.immune_series is None
    last = plain.last_snapshot()
    assert last.immune is None and last.immune_state is None and last.exhaustion is None and not last.has_immune
    assert plain.immune_glyph_classes(last) is None


def test_immune_agents_of_configs_with_and_without_immune_cells():
    """The numbering of a run directory without agents.parquet, from its config: legacy keys, then the table."""
    from viz.rundir import immune_agents_of

    assert immune_agents_of({}) == [] and immune_agents_of({"immune": {"t_cells": {"clones": []}, "tregs": None}}) == []
    agents = immune_agents_of({"immune": {"t_cells": {"clones": [{"name": "a", "antigen": 3}, {"name": "b", "antigen": 5}]},
                                          "tregs": None, "mdscs": {}}})
    assert [(agent.index, agent.name, agent.kind, agent.antigen) for agent in agents] == [
        (0, "a", "t_cell", 3), (1, "b", "t_cell", 5), (2, "mdsc", "mdsc", -1)]
    assert [agent.kind_code for agent in agents] == [0, 0, 2]  # the preset slot's code
    agents = immune_agents_of({"immune": {"t_cells": {"clones": []}, "suppressors": {"tam": {}, "mdsc": {}}}})
    assert [(agent.index, agent.name, agent.kind_code, agent.role) for agent in agents] == [
        (0, "tam", 3, "suppressor"), (1, "mdsc", 2, "suppressor")]


def test_open_run_errors(tmp_path):
    with pytest.raises(VizError, match="no such run directory"):
        open_run(tmp_path / "missing")
    with pytest.raises(VizError, match="no config.yaml"):
        open_run(tmp_path)


# figures ------------------------------------------------------------------

def assert_figure_files(written):
    """Each figure as PNG (full width, not blank), PDF and SVG."""
    from viz.figures import PNG_DPI, WIDTH_IN

    for name, paths in written.items():
        assert [path.suffix for path in paths] == [".png", ".pdf", ".svg"]
        pixels = png_pixels(paths[0])
        assert pixels.shape[1] == round(WIDTH_IN * PNG_DPI), name
        assert_not_blank(pixels)
        assert paths[1].read_bytes().startswith(b"%PDF")
        assert ElementTree.parse(paths[2]).getroot().tag.endswith("svg")


def test_plot_writes_every_figure_as_png_pdf_svg(run3d, tmp_path):
    from viz.figures import RUN_FIGURES, plot_run

    written = plot_run(open_run(run3d), tmp_path)
    assert set(written) == {figure.name for figure in RUN_FIGURES} - {"immune", "treatment"}, \
        "immune only for runs with immune cells, treatment for treated runs"
    assert_figure_files(written)
    assert not list(tmp_path.glob(".*part*")), "temporary files left behind"


def test_plot_prints_a_line_per_figure(run2d, tmp_path, capsys):
    assert main(["plot", str(run2d), "--out", str(tmp_path / "a"), "--formats", "png"]) == 0
    captured = capsys.readouterr()
    drawn = [line.split(" ", 1)[1] for line in captured.out.splitlines()]
    assert len(drawn) == 5 and captured.err.splitlines() == [
        f"figure {number}/5: {Path(files).stem}" for number, files in enumerate(drawn, 1)]
    assert main(["plot", str(run2d), "--out", str(tmp_path / "b"), "--formats", "png", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_report_figures_are_kept_only_while_up_to_date(run2d, tmp_path, monkeypatch, capsys):
    """plot_run(reuse=True), as tme report calls it: a figure is kept when tme plot drew it with the same options into
    the folder, in each format asked for, no earlier than the run's newest file; otherwise it is drawn again."""
    import os

    from viz import figurecache, figures

    run_dir = tmp_path / "run"
    shutil.copytree(run2d, run_dir)
    folder = run_dir / "figures"

    def files() -> dict[str, int]:  # file -> modification time, ns
        return {path.name: path.stat().st_mtime_ns for path in folder.iterdir() if path.suffix in (".png", ".pdf", ".svg")}

    def report_figures(formats=("png", "pdf")) -> set[str]:
        """The files drawn again by a report's plot_run."""
        before = files()
        figures.plot_run(open_run(run_dir), folder, formats, reuse=True, progress=True)
        return {name for name, mtime in files().items() if before.get(name) != mtime}

    assert main(["plot", str(run_dir), "--formats", "png,pdf", "--quiet"]) == 0
    assert len(files()) == 10
    capsys.readouterr()
    assert report_figures() == set()
    assert capsys.readouterr().err.splitlines()[0] == "figure 1/5: burden (up to date, kept)"
    everything = set(files())

    assert len(report_figures(("png", "pdf", "svg"))) == 15, "no SVG yet: each figure is drawn again, in every format"

    older = (run_dir / "summary.json").stat().st_mtime_ns - 10**9
    for name in files():  # the run changed after the figures were drawn
        os.utime(folder / name, ns=(older, older))
    assert report_figures() == everything

    record = figurecache.read(folder)
    record["muller"]["options"]["tme_abm_version"] = "0.0.1"  # drawn by another version
    (folder / figurecache.MANIFEST).write_text(json.dumps(record), encoding="utf-8")
    assert report_figures() == {"muller.png", "muller.pdf"}

    def interrupted(figure, stem, formats):  # a redraw stopped halfway: the record no longer vouches for the files
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "save_figure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        figures.plot_run(open_run(run_dir), folder, ("png",), names=("oxygen",))
    monkeypatch.undo()
    assert report_figures() == {"oxygen.png", "oxygen.pdf"}

    (folder / figurecache.MANIFEST).write_text("not json", encoding="utf-8")  # a damaged record: redraw everything
    assert report_figures() == everything


def test_data_stamp_is_the_newest_data_file(run2d, tmp_path):
    import os

    from viz.figurecache import data_stamp

    run_dir = tmp_path / "run"
    shutil.copytree(run2d, run_dir)
    for path in run_dir.rglob("*"):
        os.utime(path, ns=(10**18, 10**18))
    for output in ("figures/burden.png", "vtk/run.pvd", "report.md"):
        (run_dir / output).parent.mkdir(exist_ok=True)
        (run_dir / output).write_text("output", encoding="utf-8")
    assert data_stamp(run_dir) == 10**18, "outputs are not data"
    newest = sorted(run_dir.glob("snapshots/*.npz"))[-1]
    os.utime(newest, ns=(10**18 + 5, 10**18 + 5))
    assert data_stamp(run_dir) == 10**18 + 5


@pytest.mark.parametrize("style, font_scale", [("paper", 3.0), ("talk", 3.0)])
def test_every_run_figure_lays_out_at_the_largest_fonts(run_immune, style, font_scale):
    """At --font-scale 3 (and with --style talk, 4.5 times the fonts) every figure is laid out, drawn twice as a save
    after a look would, its panels keep most of their width (the figure widens instead) and no legend covers data."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from viz.figures import MIN_PANEL_SHARE, RUN_FIGURES, STYLE, STYLES, FigureStyle, _panel_widths_in

    run = open_run(run_immune)
    drawn = [spec for spec in RUN_FIGURES if spec.applies(run)]
    assert {"heterogeneity", "immune"} <= {spec.name for spec in drawn}
    for spec in drawn:
        with matplotlib.rc_context({**STYLE, **STYLES[style][1]}):
            unscaled = _panel_widths_in(spec.make(run))
            figure = spec.make(run)
            FigureStyle(style, font_scale).apply(figure)
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message="constrained_layout not applied")
                FigureCanvasAgg(figure).draw()
                FigureCanvasAgg(figure).draw()
            widths = np.array([ax.get_position().width for ax in figure.axes]) * figure.get_size_inches()[0]
            assert np.all(widths >= MIN_PANEL_SHARE * unscaled), (spec.name, widths, unscaled)
            assert_legends_cover_no_data(figure)


def test_titles_name_no_run_directory_and_take_title_style_and_font_scale(run2d, tmp_path, capsys):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from viz.figures import RUN_FIGURES, STYLE, STYLES, FigureStyle, plot_run

    copy = tmp_path / "run-directory-name"
    shutil.copytree(run2d, copy)
    run = open_run(copy)
    with matplotlib.rc_context(STYLE):
        for spec in RUN_FIGURES:
            if spec.applies(run):
                title = spec.make(run).get_suptitle()
                assert title and "run-directory-name" not in title, (spec.name, title)

        def sizes(style: FigureStyle) -> tuple[float, set[float], set[float]]:
            """The title's size, the tick labels' sizes and the axis labels' sizes of the burden figure, drawn."""
            figure = RUN_FIGURES[0].make(run)
            width, height = figure.get_size_inches()
            style.apply(figure)
            factor = STYLES[style.style][0] * style.font_scale
            size = tuple(figure.get_size_inches())
            assert size[1] == pytest.approx(height * max(1.0, factor)), "taller by the factor"
            assert size[0] == pytest.approx(width) if factor <= 2.0 else size[0] > width, \
                "as wide while its two panels keep their room (to factor 2), wider beyond"
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message="constrained_layout not applied")
                FigureCanvasAgg(figure).draw()
            ticks = {label.get_fontsize() for ax in figure.axes for label in ax.get_xticklabels() + ax.get_yticklabels()}
            axis_labels = {ax.xaxis.label.get_fontsize() for ax in figure.axes if ax.get_xlabel()}
            assert figure.get_suptitle() == ("Tumor burden — day 1" if style.title else "Tumor burden")
            return figure._suptitle.get_fontsize(), ticks, axis_labels

        paper = sizes(FigureStyle())
        assert sizes(FigureStyle("paper", 1.0, "day 1")) == paper
        for style, factor in ((FigureStyle("talk"), 1.5), (FigureStyle("paper", 1.25), 1.25), (FigureStyle("talk", 2.0), 3.0)):
            title, ticks, axis_labels = sizes(style)
            assert title == pytest.approx(paper[0] * factor)
            assert sorted(ticks) == pytest.approx(sorted(size * factor for size in paper[1])) and len(ticks) == 1
            assert sorted(axis_labels) == pytest.approx(sorted(size * factor for size in paper[2]))

    assert main(["plot", str(copy), "--formats", "png", "--only", "burden", "--quiet", "--title", "day 1",
                 "--style", "talk", "--font-scale", "0.8"]) == 0
    capsys.readouterr()
    written = plot_run(open_run(copy), copy / "figures", ("png",), names=("burden",), reuse=True, progress=True)
    assert written and capsys.readouterr().err == "figure 1/1: burden\n", "drawn in another style: a report redraws it"


@pytest.mark.parametrize("arguments, message", [
    (["--style", "poster"], "error: --style 'poster': choose one of paper, talk"),
    (["--font-scale", "4"], "error: --font-scale 4: give a factor from 0.5 to 3"),
    (["--font-scale", "big"], "error: --font-scale 'big': give a factor from 0.5 to 3"),
])
def test_plot_style_option_errors(run2d, tmp_path, capsys, arguments, message):
    assert main(["plot", str(run2d), "--out", str(tmp_path / "figures"), *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(message), error
    assert not list(tmp_path.iterdir())


def test_slices_figure_of_a_2d_run(run2d, tmp_path):
    from viz.figures import plot_run

    written = plot_run(open_run(run2d), tmp_path, formats=("png",), names=("slices",))
    assert_not_blank(png_pixels(written["slices"][0]))


def test_plot_rejects_unknown_format_and_figure(run3d, tmp_path):
    from viz.figures import plot_run

    with pytest.raises(VizError, match="--formats jpg"):
        plot_run(open_run(run3d), tmp_path, formats=("jpg",))
    with pytest.raises(VizError, match="--only kaplan_meier"):
        plot_run(open_run(run3d), tmp_path, names=("kaplan_meier",))


def test_figures_that_need_clone_files_are_skipped_without_them(run2d, tmp_path):
    from viz.figures import RUN_FIGURES, plot_run

    copy = tmp_path / "run"
    shutil.copytree(run2d, copy, ignore=shutil.ignore_patterns("clones.parquet", "snapshots"))
    written = plot_run(open_run(copy), tmp_path / "figures", formats=("png",))
    assert set(written) == {figure.name for figure in RUN_FIGURES} - {"muller", "slices", "immune", "treatment"}


# immune cells ---------------------------------------------------------------

def test_immune_figure_of_an_immune_run(run_immune, tmp_path):
    from viz.figures import plot_run

    run = open_run(run_immune)
    written = plot_run(run, tmp_path)
    assert {"immune", "burden", "slices"} <= set(written)
    assert_figure_files(written)
    assert main(["plot", str(run_immune), "--out", str(tmp_path / "cli"), "--formats", "svg", "--only", "immune"]) == 0
    assert sorted(path.name for path in (tmp_path / "cli").iterdir()) == [".figures.json", "immune.svg"]


def test_immune_figure_lines_and_legends(run_immune):
    from viz.figures import immune_figure

    run = open_run(run_immune)
    figure = immune_figure(run)
    cells, density, killing, clones = figure.axes[:4]
    labels = [text.get_text() for text in cells.get_legend().get_texts()]
    assert labels == ["effector T cells", "exhausted T cells", "T cells in tumor", "Tregs", "MDSCs"]
    colors = {line.get_label(): line.get_color() for line in cells.get_lines()}
    for label, code in (("effector T cells", palette.GLYPH_T_EFFECTOR), ("Tregs", palette.GLYPH_SUPPRESSOR_FIRST),
                        ("MDSCs", (palette.GLYPH_SUPPRESSOR_FIRST + 1))):
        assert np.allclose(colors[label], palette.to_float(palette.IMMUNE_GLYPHS[code].line))
    assert cells.get_yscale() == "log"
    effector = next(line for line in cells.get_lines() if line.get_label() == "effector T cells")
    expected = run.timeseries["t_cells_effector"].to_numpy(dtype=float)
    assert np.allclose(effector.get_ydata(), np.where(expected > 0, expected, np.nan), equal_nan=True)
    assert [text.get_text() for text in density.get_legend().get_texts()][1] == "invasive margin"
    assert [text.get_text() for text in killing.get_legend().get_texts()] == ["tumor cells killed by T cells",
                                                                             "primed T cells (systemic pool)"]
    assert [text.get_text() for text in clones.get_legend().get_texts()] == ["anti0 (antigen 0)"]
    series = run.immune_series
    t_rows = series[series["kind"] == "t_cell"]
    assert np.allclose(clones.get_lines()[0].get_ydata(), (t_rows["cells_effector"] + t_rows["cells_exhausted"]).to_numpy())


@pytest.mark.parametrize("style", ["paper", "talk"])
def test_run_figure_legends_cover_no_data(run_immune, run_mutating, run2d, style):
    """The time-series figures (their legends above the panels), in each style: no legend over a line or area (in
    talk, burden's panel (b) legend lay over its lines; in paper, oxygen's over the minimum in tumor)."""
    from viz.figures import burden_figure, heterogeneity_figure, immune_figure, oxygen_figure

    for make, run_dir in ((burden_figure, run2d), (oxygen_figure, run2d), (heterogeneity_figure, run_mutating),
                          (immune_figure, run_immune)):
        assert_legends_cover_no_data(styled(make, open_run(run_dir), style))


def test_immune_log_axes_take_their_limits_from_the_data(run_immune):
    """The log axes of the immune figure (cells on the lattice, primed pool) end a factor 1.5 beyond their data, not
    decades above it to make room for a legend."""
    from viz.figures import immune_figure

    run = open_run(run_immune)
    frame = run.timeseries
    figure = immune_figure(run)
    cells, pool = figure.axes[0], figure.axes[-1]
    assert pool.get_yscale() == "log" and pool.get_ylabel() == "primed T cells"
    counts = frame[["t_cells_effector", "t_cells_exhausted", "t_cells_in_tumor", "tregs", "mdscs"]].to_numpy(dtype=float)
    primed = frame["primed_pool_total"].to_numpy(dtype=float)
    for ax, values in ((cells, counts), (pool, primed)):
        positive = values[values > 0]
        low, high = ax.get_ylim()
        assert low == pytest.approx(positive.min() / 1.5) and high == pytest.approx(positive.max() * 1.5)
    assert cells.get_ylim()[1] < 1e3, "data below 1e3 on an axis below 1e3"


def test_immune_figure_without_suppressors_or_immune_parquet(run_immune, tmp_path):
    from viz.figures import immune_figure, save_figure

    copy = tmp_path / "run"
    shutil.copytree(run_immune, copy, ignore=shutil.ignore_patterns("immune.parquet", "agents.parquet", "snapshots"))
    run = open_run(copy)
    run.config["immune"]["suppressors"] = {}  # no agents.parquet: the numbering comes from the config
    figure = immune_figure(run)
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["effector T cells", "exhausted T cells", "T cells in tumor"]
    assert figure.axes[3].get_legend() is None
    assert any("no immune.parquet" in text.get_text() for text in figure.axes[3].texts)
    (path,) = save_figure(figure, tmp_path / "immune", ("png",))
    assert_not_blank(png_pixels(path))


def test_immune_figure_of_many_t_cell_clones_names_the_largest(run_immune, tmp_path):
    """Eleven T-cell clones: the eight largest by peak get a line and a name, the rest one summed line."""
    import pandas

    from viz.figures import IMMUNE_CLONE_LINES, immune_figure

    run = open_run(run_immune)
    count = 11
    run.config["immune"]["t_cells"]["clones"] = [{"name": f"t{index}", "antigen": index} for index in range(count)]
    run.__dict__["agents"] = None  # as a run without agents.parquet: the numbering comes from the config
    times_h = run.timeseries["time_h"].to_numpy()
    rows = [(time_h, time_h / 24, agent, f"t{agent}", "t_cell", agent, int(time_h * (agent + 1)), agent % 2, 10.0, 0.5)
            for time_h in times_h for agent in range(count)]
    run.__dict__["immune_series"] = pandas.DataFrame(rows, columns=list(run.immune_series.columns))
    figure = immune_figure(run)
    labels = [text.get_text() for text in figure.axes[3].get_legend().get_texts()]
    largest = range(count - IMMUNE_CLONE_LINES, count)
    assert labels == [f"t{agent} (antigen {agent})" for agent in largest] + ["3 smaller clones, summed"]
    summed = figure.axes[3].get_lines()[-1].get_ydata()
    assert np.allclose(summed, [sum(int(time_h * (agent + 1)) + agent % 2 for agent in range(3)) for time_h in times_h])
    assert_saves_with_layout(figure, tmp_path / "immune")


def test_section_figure_marks_immune_cells(run_immune, run3d):
    from viz.figures import slices_figure

    run = open_run(run_immune)
    figure = slices_figure(run)
    fills = [palette.to_float(glyph.color) for glyph in palette.IMMUNE_GLYPHS]
    drawn = set()
    for line in (line for ax in figure.axes for line in ax.get_lines() if line.get_linestyle() == "None"):
        (code,) = [code for code, fill in enumerate(fills) if np.allclose(line.get_markerfacecolor()[:3], fill)]
        assert line.get_marker() == palette.IMMUNE_GLYPHS[code].marker
        drawn.add(code)
    assert {palette.GLYPH_T_EFFECTOR, palette.GLYPH_SUPPRESSOR_FIRST} <= drawn
    (immune_legend,) = figure.legends  # one row below the panels, the kinds drawn
    labels = [text.get_text() for text in immune_legend.get_texts()]
    assert labels == [palette.IMMUNE_GLYPHS[code].label for code in sorted(drawn)]
    assert slices_figure(open_run(run3d)).legends == []


def test_section_immune_markers_are_legible_and_scale_with_the_style(run_immune):
    """Immune markers in sections are at least half the style's marker size (3 pt in paper, not the 1.8 pt they
    shrank to over a wide section), grow with --style talk, and their legend shows them at the style's size."""
    import matplotlib

    from viz.figures import SLICE_MARKER_RANGE, STYLE, STYLES, _section_marker_pt, slices_figure

    sizes = {}
    for style in STYLES:
        with matplotlib.rc_context({**STYLE, **STYLES[style][1]}):
            base = matplotlib.rcParams["lines.markersize"]
            wide, narrow = _section_marker_pt(4, 300), _section_marker_pt(1, 5)
            assert wide == pytest.approx(SLICE_MARKER_RANGE[0] * base) and narrow == pytest.approx(SLICE_MARKER_RANGE[1] * base)
            figure = slices_figure(open_run(run_immune))
            markers = [line for ax in figure.axes for line in ax.get_lines() if line.get_linestyle() == "None"]
            assert markers and min(line.get_markersize() for line in markers) >= 0.85 * wide  # diamonds at 0.85
            (immune_legend,) = figure.legends
            assert max(handle.get_markersize() for handle in immune_legend.legend_handles) >= base
            sizes[style] = wide
    assert sizes["paper"] >= 3.0 and sizes["talk"] > sizes["paper"]


# clonal composition and heterogeneity ------------------------------------

def lineage_frame(parents: dict[int, int], births_h: dict[int, float]):
    """A lineage table like ``lineage.parquet`` (clone, name, parent, birth_time_h) for a hand-made tree."""
    import pandas

    clones = sorted(parents)
    return pandas.DataFrame({"clone": clones, "name": [f"clone {clone}" for clone in clones],
                             "parent": [parents[clone] for clone in clones],
                             "birth_time_h": [births_h.get(clone, 0.0) for clone in clones]})


def series_frame(cells: dict[int, list[int]], times_h: list[float]):
    """A clone series like ``clones.parquet``: one row per clone and time where the clone has cells."""
    import pandas

    rows = [(time_h, time_h / 24.0, clone, count, count) for clone, counts in cells.items()
            for time_h, count in zip(times_h, counts) if count > 0]
    frame = pandas.DataFrame(rows, columns=["time_h", "time_days", "clone", "cells", "cells_live"])
    return frame.sort_values(["time_h", "clone"]).reset_index(drop=True)


def assert_nested(bands) -> None:
    """Every child's envelope inside its parent's inner part; siblings apart; heights = own share + children."""
    tolerance = 1e-12
    for k, clone in enumerate(bands.clones):
        assert np.all(bands.upper[k] - bands.lower[k] >= -tolerance)
        children = [j for j in range(len(bands.clones)) if bands.parents[j] == clone]
        (bottom, inner_low), (inner_high, top) = bands.own_band(int(clone))
        assert np.allclose(bottom, bands.lower[k]) and np.allclose(top, bands.upper[k])
        assert np.allclose(inner_low - bottom, bands.share[k] / 2) and np.allclose(top - inner_high, bands.share[k] / 2)
        for j in children:
            assert np.all(bands.lower[j] >= inner_low - tolerance), (clone, bands.clones[j])
            assert np.all(bands.upper[j] <= inner_high + tolerance), (clone, bands.clones[j])
        for first, second in zip(children, children[1:]):  # siblings in drawing order, stacked upwards
            assert np.all(bands.upper[first] <= bands.lower[second] + tolerance)
        descendants = sum((bands.upper[j] - bands.lower[j] for j in children), np.zeros(bands.time_h.size))
        assert np.allclose(bands.upper[k] - bands.lower[k], bands.share[k] + descendants)


def test_muller_layout_of_a_hand_made_lineage():
    from viz.muller import muller_bands

    # founding clones 0 and 4; 0 -> 1 (born 5 h), 0 -> 2 (8 h), 1 -> 3 (14 h); 2 dies out and is back at 24 h
    times_h = [0.0, 6.0, 12.0, 18.0, 24.0]
    cells = {0: [10, 10, 8, 6, 4], 1: [0, 2, 4, 4, 2], 2: [0, 0, 1, 0, 1], 3: [0, 0, 0, 3, 6], 4: [5, 4, 4, 3, 3]}
    lineage = lineage_frame({0: -1, 1: 0, 2: 0, 3: 1, 4: -1}, {1: 5.0, 2: 8.0, 3: 14.0})
    bands = muller_bands(lineage, series_frame(cells, times_h), record_times_h=times_h)

    assert list(bands.clones) == [0, 1, 3, 2, 4] and list(bands.parents) == [-1, 0, 1, 0, -1]
    assert list(bands.time_h) == [0.0, 5.0, 6.0, 8.0, 12.0, 14.0, 18.0, 24.0]
    assert bands.colors == tuple(palette.clone_color(clone) for clone in (0, 1, 3, 2, 4))
    record = np.isin(bands.time_h, times_h)
    counts = np.array([cells[int(clone)] for clone in bands.clones], dtype=float)
    assert np.allclose(bands.share[:, record], counts / counts.sum(axis=0))
    assert np.allclose(bands.total[record], counts.sum(axis=0))
    for clone, born in ((1, 5.0), (2, 8.0), (3, 14.0)):  # each subclone starts from zero at its birth
        k = bands.row(clone)
        assert np.all(bands.cells[k, bands.time_h <= born] == 0) and bands.cells[k, -1] > 0
    assert np.isclose(bands.cells[bands.row(3), bands.time_h == 18.0][0], 3.0)
    assert np.isclose(bands.cells[bands.row(2), bands.time_h == 18.0][0], 0.0)  # a missing row is no cells

    assert_nested(bands)
    assert np.allclose(bands.lower[0], 0.0) and np.allclose(bands.upper[-1], 1.0)  # founders fill 0-1
    assert np.allclose(bands.upper[0], bands.lower[-1])
    assert bands.largest(2) == [0, 3]  # peak shares 0.67 (day 0) and 0.375 (day 1), in drawing order
    drawn = [clone for clone, _ in bands.polygons()]
    assert drawn == [0, 1, 3, 2, 4]
    _, vertices = bands.polygons()[2]  # clone 3: from its birth (no cells yet) to the end, along both edges
    assert vertices.shape == (2 * 3, 2) and np.allclose(vertices[:3, 0], np.array([14.0, 18.0, 24.0]) / 24.0)
    assert np.isclose(vertices[0, 1], vertices[-1, 1])  # zero width at birth


def test_muller_layout_of_a_single_clone_and_of_no_lineage():
    from viz.muller import muller_bands

    times_h = [0.0, 12.0, 24.0]
    series = series_frame({0: [5, 9, 20]}, times_h)
    for lineage in (lineage_frame({0: -1}, {}), None):
        bands = muller_bands(lineage, series)
        assert list(bands.clones) == [0] and list(bands.time_h) == times_h
        assert np.allclose(bands.lower, 0.0) and np.allclose(bands.upper, 1.0) and np.allclose(bands.share, 1.0)
        assert [clone for clone, _ in bands.polygons()] == [0]


def test_muller_and_heterogeneity_figures_of_a_mutating_run(run_mutating, tmp_path):
    from viz.figures import plot_run, run_muller_bands

    run = open_run(run_mutating)
    generations = run.lineage["generation"].to_numpy()
    assert (generations >= 2).sum() >= 2 and run.lineage["parent"].max() > 0, "the fixture should nest subclones"
    bands = run_muller_bands(run)
    assert_nested(bands)
    assert np.allclose(bands.upper[bands.parents < 0].max(axis=0), 1.0)

    written = plot_run(run, tmp_path, names=("muller", "heterogeneity"))
    assert set(written) == {"muller", "heterogeneity"}
    assert_figure_files(written)
    assert main(["plot", str(run_mutating), "--out", str(tmp_path / "cli"), "--formats", "svg"]) == 0
    assert {"muller.svg", "heterogeneity.svg"} <= {path.name for path in (tmp_path / "cli").iterdir()}


def test_muller_panels_share_their_time_ticks(run_mutating):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from viz.figures import STYLE, muller_figure

    with matplotlib.rc_context(STYLE):
        figure = muller_figure(open_run(run_mutating))
        left, right = figure.axes[:2]
        assert left.get_shared_x_axes().joined(left, right)
        for days in (3.0, 17.0, 60.0):  # the narrower panel alone would take fewer ticks at some of these
            left.set_xlim(0.0, days)
            FigureCanvasAgg(figure).draw()
            assert right.get_xlim() == (0.0, days)
            assert len(left.get_xticks()) > 2 and list(left.get_xticks()) == list(right.get_xticks())


def test_muller_bands_take_each_clones_palette_color(run_mutating):
    from viz.figures import MULLER_GID, MULLER_LABELS, muller_figure, run_muller_bands

    run = open_run(run_mutating)
    bands = run_muller_bands(run)
    figure = muller_figure(run)
    collections = [item for item in figure.axes[0].collections if item.get_gid() == MULLER_GID]
    assert len(collections) == 1
    drawn = [clone for clone, _ in bands.polygons()]
    assert len(drawn) == len(collections[0].get_paths()) > 3
    expected = np.array([palette.to_float(palette.clone_color(clone)) for clone in drawn])
    assert np.allclose(collections[0].get_facecolors()[:, :3], expected, atol=1e-6)

    named = bands.largest(MULLER_LABELS)
    (figure_legend,) = figure.legends
    labels = [text.get_text() for text in figure_legend.get_texts()]
    assert labels[:len(named)] == [run.clone_name(clone) for clone in named]
    present = int((bands.share.max(axis=1) > 0).sum())
    assert labels[-2:] == [f"+{present - len(named)} smaller clones", "all clones"]
    for clone, handle in zip(named, figure_legend.legend_handles):
        assert np.allclose(handle.get_facecolor()[:3], palette.to_float(palette.clone_color(clone)))
    line_colors = [line.get_color() for line in figure.axes[1].get_lines()]
    for clone in named:
        assert palette.to_float(palette.clone_color(clone)) in line_colors


def test_section_legend_of_many_clones_fits(run_mutating, tmp_path):
    from viz.figures import SLICE_LEGEND_CLONES, slices_figure

    figure = slices_figure(open_run(run_mutating))
    clone_labels = [text.get_text() for text in figure.axes[len(figure.axes) // 2 - 1].get_legend().get_texts()]
    smaller = [label for label in clone_labels if label.endswith("smaller clones")]
    assert len(smaller) == 1 and clone_labels.index(smaller[0]) == SLICE_LEGEND_CLONES
    assert_saves_with_layout(figure, tmp_path / "slices")


def test_heterogeneity_figure_with_no_live_cells_and_several_drugs(run_mutating, tmp_path):
    from viz.figures import heterogeneity_figure, save_figure

    run = open_run(run_mutating)
    frame = run.timeseries.copy()
    frame.loc[frame.index[-2:], ["shannon_diversity", "same_clone_neighbour_fraction", "fraction_resistant",
                                 "mean_division_rate_per_h", "mean_pdl1"]] = np.nan
    frame["fraction_resistant_other"] = frame["fraction_resistant_chemo"] / 2
    run.__dict__["timeseries"] = frame
    figure = heterogeneity_figure(run)
    labels = [text.get_text() for text in figure.axes[3].get_legend().get_texts()]  # (d), both of its axes
    assert labels[:3] == ["resistant (any drug)", "resistant to chemo", "resistant to other"]
    assert "mean PD-L1" in labels and "mean division rate" in labels
    (path,) = save_figure(figure, tmp_path / "heterogeneity", ("png",))
    assert_not_blank(png_pixels(path))


# VTK export ---------------------------------------------------------------

def test_export_writes_vti_per_snapshot_and_pvd(run3d, tmp_path):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    from viz.export import export

    run = open_run(run3d)
    files = export(run, tmp_path, progress=False)
    assert [path.name for path in files] == ["step_00000000.vti", "step_00000012.vti", "step_00000024.vti", "run.pvd"]
    collection = ElementTree.parse(files[-1]).getroot()
    entries = [(float(item.get("timestep")), item.get("file")) for item in collection.iter("DataSet")]
    assert entries == [(0.0, "step_00000000.vti"), (12.0, "step_00000012.vti"), (24.0, "step_00000024.vti")]

    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(files[2]))
    reader.Update()
    image = reader.GetOutput()
    snapshot = run.last_snapshot()
    assert image.GetSpacing() == (snapshot.dx_um,) * 3 and image.GetOrigin() == (0.0, 0.0, 0.0)
    assert image.GetDimensions() == (19, 19, 19)
    cells = image.GetCellData()
    names = {cells.GetArrayName(index) for index in range(cells.GetNumberOfArrays())}
    assert names == {"clone", "cell_state", "vessel", "perfusion", "oxygen_mmHg"}
    for name, expected in (("clone", snapshot.clone), ("oxygen_mmHg", snapshot.field("oxygen")),
                           ("vessel", snapshot.vessel.astype(np.uint8))):
        values = vtk_to_numpy(cells.GetArray(name)).reshape(snapshot.shape)  # x fastest = C order of [z, y, x]
        assert np.array_equal(values, expected), name
    fields = image.GetFieldData()
    assert vtk_to_numpy(fields.GetArray("time_h"))[0] == 24.0
    states = fields.GetAbstractArray("cell_state_names")
    assert [states.GetValue(index) for index in range(states.GetNumberOfValues())] == list(STATE_NAMES)


def test_export_names_the_immune_agents(run_immune, run3d, tmp_path):
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    from viz.export import export

    def field_names(path: Path) -> dict[str, list[str]]:
        reader = vtkXMLImageDataReader()
        reader.SetFileName(str(path))
        reader.Update()
        fields = reader.GetOutput().GetFieldData()
        out = {}
        for index in range(fields.GetNumberOfArrays()):
            array = fields.GetAbstractArray(index)
            if array.IsA("vtkStringArray"):
                out[array.GetName()] = [array.GetValue(value) for value in range(array.GetNumberOfValues())]
        return out

    files = export(open_run(run_immune), tmp_path / "immune", progress=False)
    for vti in files[:-1]:
        assert field_names(vti)["immune_names"] == ["anti0", "treg", "mdsc"]  # i names the agent the `immune` array holds as i
    plain = export(open_run(run3d), tmp_path / "plain", progress=False)
    assert "immune_names" not in field_names(plain[0])


def test_export_2d_run_is_one_cell_thick(run2d, tmp_path):
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    from viz.export import export

    files = export(open_run(run2d), tmp_path, progress=False)
    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(files[0]))
    reader.Update()
    assert reader.GetOutput().GetDimensions() == (41, 41, 1)
    assert reader.GetOutput().GetNumberOfCells() == 40 * 40


def test_interrupted_export_leaves_no_partial_file(run3d, tmp_path, monkeypatch):
    from viz import export as export_module

    real = export_module.snapshot_image
    calls = []

    def interrupt_on_second(run, snapshot):
        calls.append(snapshot.step)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(run, snapshot)

    monkeypatch.setattr(export_module, "snapshot_image", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        export_module.export(open_run(run3d), tmp_path, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step_00000000.vti"]


# command line -------------------------------------------------------------

def test_tme_plot_and_export_commands(run2d, tmp_path, capsys):
    assert main(["plot", str(run2d), "--out", str(tmp_path / "figures"), "--formats", "png", "--only", "burden"]) == 0
    assert (tmp_path / "figures" / "burden.png").is_file()
    assert main(["export", str(run2d), "--out", str(tmp_path / "vtk"), "--quiet"]) == 0
    assert (tmp_path / "vtk" / "run.pvd").is_file()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nothing'}: no such run or comparison directory"


@pytest.mark.parametrize("time", ["1000", "24.5", "-1", "nan"])
def test_render_time_outside_the_snapshots_is_an_error_naming_the_range(run3d, tmp_path, capsys, time):
    """run3d's snapshots are at 0, 12 and 24 h: a time outside them is refused before anything is drawn or written."""
    before = sorted(path.relative_to(run3d) for path in run3d.rglob("*"))
    assert main(["render", str(run3d), "--time", time, "--out", str(tmp_path / "a.png")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: --time {float(time):g}: ")
    assert "span 0 to 24 h (3 snapshot(s)" in error
    assert not list(tmp_path.iterdir())
    assert sorted(path.relative_to(run3d) for path in run3d.rglob("*")) == before


def test_snapshot_at_takes_the_nearest_snapshot_within_the_range(run3d):
    run = open_run(run3d)
    assert [run.snapshot_at(time).step for time in (0, 5.9, 6.1, 24)] == [0, 0, 12, 24]
    with pytest.raises(VizError, match=r"^time_h 24\.01: outside"):
        run.snapshot_at(24.01)


@pytest.mark.parametrize("arguments, message", [
    (["--color", "field:oxygen", "--clim", "5,1"], "error: --clim 5,1: give LOW,HIGH"),
    (["--color", "field:oxygen", "--clim", "0"], "error: --clim '0': give LOW,HIGH"),
    (["--color", "field:oxygen", "--clim", "0,inf"], "error: --clim 0,inf: give LOW,HIGH"),
    (["--color", "field:oxygen", "--cmap", "virdis"], "error: --cmap 'virdis': not a matplotlib colormap; did you mean viridis"),
    (["--color", "state", "--clim", "0,1"], "error: --clim sets a field's colours: use it with --color field:NAME"),
    (["--color", "clone", "--cmap", "magma"], "error: --cmap sets a field's colours: use it with --color field:NAME"),
])
def test_render_colour_option_errors(run3d, tmp_path, capsys, arguments, message):
    assert main(["render", str(run3d), *arguments, "--out", str(tmp_path / "a.gif")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(message), error
    assert not list(tmp_path.iterdir())


def test_animation_colours_one_range_over_every_frame(run3d, tmp_path, monkeypatch):
    """Every frame of a field animation gets the range over all snapshots (unless --clim); a .png its own."""
    from viz import render as render_module

    seen = []

    def fake_render(run, snapshot, options):
        seen.append((snapshot.step, options.clim, options.colormap))
        return np.zeros((64, 64, 3), dtype=np.uint8)

    monkeypatch.setattr(render_module, "render_snapshot", fake_render)
    run = open_run(run3d)
    oxygen = [snapshot.field("oxygen") for snapshot in run.snapshots]
    overall = (min(float(values.min()) for values in oxygen), max(float(values.max()) for values in oxygen))
    assert overall[0] < float(oxygen[0].min()), "the fixture's frames must differ in range"
    options = render_module.RenderOptions(color="field:oxygen", size=(64, 64))
    render_module.render(run, tmp_path / "a.gif", options, progress=False)
    assert seen == [(snapshot.step, overall, "viridis") for snapshot in run.snapshots]
    seen.clear()
    render_module.render(run, tmp_path / "b.mp4", render_module.RenderOptions(color="field:oxygen", clim=(0.0, 40.0),
                                                                              cmap="magma"), progress=False)
    assert seen == [(snapshot.step, (0.0, 40.0), "magma") for snapshot in run.snapshots]
    seen.clear()
    render_module.render(run, tmp_path / "c.png", options)
    assert seen == [(24, None, "viridis")]  # render_snapshot takes the snapshot's own range


def _cli_without(packages: tuple[str, ...], argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``tme argv`` in a fresh interpreter where ``packages`` cannot be imported."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in packages)
    code = f"import sys; {blocked}; from abm.cli import main; sys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_render_without_pyvista_says_how_to_install(run3d, tmp_path):
    result = _cli_without(("pyvista",), ["render", str(run3d), "--out", str(tmp_path / "a.png")])
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert 'pip install -e ".[viz]"' in result.stderr and "pyvista" in result.stderr
    assert not list(tmp_path.iterdir())


def test_plot_without_matplotlib_says_how_to_install(run3d, tmp_path):
    result = _cli_without(("matplotlib",), ["plot", str(run3d), "--out", str(tmp_path)])
    assert result.returncode == 2
    assert 'pip install -e ".[viz]"' in result.stderr and "matplotlib" in result.stderr


def test_simulator_runs_without_the_viz_packages(tmp_path):
    blocked = ("matplotlib", "pyvista", "vtk", "vtkmodules", "PIL", "imageio_ffmpeg")
    result = _cli_without(blocked, ["run", str(REPO / "configs" / "tiny.yaml"), "--out", str(tmp_path / "run"),
                                    "--quiet", "--set", "time.duration_days=0.25"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "summary.json").is_file()
