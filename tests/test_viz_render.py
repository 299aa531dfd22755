"""Off-screen pyvista renders: every view and colouring, immune glyphs, animations, the report, and one palette across figures.

Rendering needs an OpenGL library of the system (EGL or OSMesa; VTK's wheel
brings none). Where neither is installed, these tests are skipped with the
apt package to install; where one is installed but rendering still fails,
they fail.
"""
from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys

import numpy as np
import pytest

from abm.cli import main
from kernels.tumor import CYCLING, NECROTIC, QUIESCENT
from tests.test_viz import (IMMUNE_TIME_H, REPO, assert_not_blank, png_pixels, run2d, run3d,  # noqa: F401 - fixtures
                            run_immune)
from viz import legend, palette
from viz.render import MAX_IMMUNE, RenderOptions, render, render_snapshot, thin_immune
from viz.rundir import Snapshot, VizError, open_run

SIZE = (400, 300)
_PROBE = """
from viz import optional
pv = optional.pyvista("probe")
plotter = pv.Plotter(off_screen=True, window_size=[64, 64])
plotter.add_mesh(pv.Sphere(), color="red")
print(plotter.screenshot(return_img=True).std())
"""


@pytest.fixture(scope="module", autouse=True)
def opengl():
    """Skip where the system has no OpenGL library for VTK; fail where it has one and rendering breaks."""
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=REPO, timeout=120)
    if result.returncode == 0 and float(result.stdout.split()[-1]) > 0:
        return
    if not (ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa") or ctypes.util.find_library("GL")):
        pytest.skip("no system OpenGL library for VTK: apt-get install libegl1 (or libosmesa6)")
    pytest.fail(f"an OpenGL library is installed but VTK cannot render off-screen:\n{result.stdout}\n{result.stderr}")


@pytest.mark.parametrize("view, color", [("iso", "clone"), ("cutaway", "state"), ("cutaway", "field:oxygen"),
                                         ("slice", "clone"), ("iso", "field:oxygen")])
def test_render_3d_views(run3d, tmp_path, view, color):
    out = tmp_path / "render.png"
    rendered = render(open_run(run3d), out, RenderOptions(view=view, color=color, size=SIZE), time_h=12)
    assert [snapshot.step for snapshot in rendered] == [12]
    pixels = png_pixels(out)
    assert pixels.shape == (SIZE[1], SIZE[0], 3)
    assert_not_blank(pixels)


def test_render_2d_run_is_flat(run2d, tmp_path):
    out = tmp_path / "flat.png"
    render(open_run(run2d), out, RenderOptions(view="iso", color="state", size=SIZE))
    pixels = png_pixels(out)
    assert pixels.shape == (SIZE[1], SIZE[0], 3)
    assert_not_blank(pixels)
    assert (pixels == palette.STATE_COLORS[CYCLING]).all(axis=-1).sum() > 100, "flat, unlit cells keep their exact colour"


def test_cutaway_shows_the_necrotic_core(run3d, tmp_path):
    """A synthetic necrotic core: hidden in the iso view, in view in the cutaway."""
    run = open_run(run3d)
    snapshot = run.last_snapshot()
    arrays = snapshot.arrays
    z, y, x = np.ogrid[:18, :18, :18]
    radius = np.sqrt((z - 9) ** 2 + (y - 9) ** 2 + (x - 9) ** 2)
    arrays["clone"] = np.where(radius < 7, 0, -1).astype(np.int32)
    arrays["cell_state"] = np.where(radius < 4, NECROTIC, QUIESCENT).astype(np.int8)
    arrays["vessel"] = np.zeros_like(arrays["vessel"])
    necrotic = palette.STATE_COLORS[NECROTIC]

    def necrotic_share(view: str) -> float:
        image = render_snapshot(run, snapshot, RenderOptions(view=view, color="state", size=SIZE))
        tumor = image[:, : int(SIZE[0] * 0.7)]  # left of the legend
        distance = np.abs(tumor.astype(int) - necrotic).sum(axis=-1)
        return float((distance < 40).mean())

    hidden, shown = necrotic_share("iso"), necrotic_share("cutaway")
    assert shown > 0.01 and shown > 5 * hidden, (hidden, shown)


def test_palette_is_the_same_in_renders_and_figures(run3d, tmp_path):
    """Clones 0-3 in quadrants of the mid-plane: each clone's palette colour is in both images, exactly."""
    from viz.figures import slices_figure

    run = open_run(run3d)
    run.snapshots[:] = [run.last_snapshot()]
    arrays = run.snapshots[0].arrays
    clone = np.full((18, 18, 18), -1, dtype=np.int32)
    clone[:, 3:9, 3:9], clone[:, 3:9, 9:15], clone[:, 9:15, 3:9], clone[:, 9:15, 9:15] = 0, 1, 2, 3
    arrays["clone"] = clone
    arrays["cell_state"] = np.zeros_like(arrays["cell_state"])
    arrays["vessel"] = np.zeros_like(arrays["vessel"])

    render(run, tmp_path / "render.png", RenderOptions(view="slice", color="clone", size=(600, 450)))
    figure = slices_figure(run)
    figure.savefig(tmp_path / "figure.png", dpi=100)
    for image in (png_pixels(tmp_path / "render.png"), png_pixels(tmp_path / "figure.png")):
        for index in range(4):
            exact = (image == palette.clone_color(index)).all(axis=-1).sum()
            assert exact > 200, f"clone {index} colour {palette.clone_color(index)} missing"
        assert (image == palette.clone_color(4)).all(axis=-1).sum() == 0


def test_field_render_colour_range_colormap_ticks_and_isoline_labels(run3d, monkeypatch):
    """A flat oxygen render: --clim and --cmap set the colours, the colour bar is labelled at round values only, and
    each isoline carries its level."""
    import pyvista
    from matplotlib import colormaps

    from viz import render as render_module

    bars, point_labels = [], []
    real_label, real_points = render_module.label_scalar_bar, pyvista.Plotter.add_point_labels

    def label(bar, ticks):
        real_label(bar, ticks)
        custom = bar.GetCustomLabels()
        bars.append((bool(bar.GetUseCustomLabels()), [custom.GetValue(i) for i in range(custom.GetNumberOfTuples())]))

    def points(self, where, labels, **options):
        point_labels.append(list(labels))
        return real_points(self, where, labels, **options)

    monkeypatch.setattr(render_module, "label_scalar_bar", label)
    monkeypatch.setattr(pyvista.Plotter, "add_point_labels", points)
    run = open_run(run3d)
    snapshot = run.last_snapshot()
    oxygen = snapshot.field("oxygen")[snapshot.tumor_center_index()[0]]

    image = render_snapshot(run, snapshot, RenderOptions(view="slice", color="field:oxygen", size=(600, 450)))
    low, high = float(snapshot.field("oxygen").min()), float(snapshot.field("oxygen").max())
    assert bars[-1] == (True, list(render_module.round_ticks(low, high)))
    levels = [f"{level:g}" for level in render_module.contour_levels(low, high)
              if oxygen.min() < level < oxygen.max()]  # the levels this plane crosses
    assert levels and point_labels[0] == levels, (point_labels, levels)  # then the scale bar
    assert_not_blank(image)

    below = render_snapshot(run, snapshot, RenderOptions(view="slice", color="field:oxygen", size=(600, 450),
                                                         clim=(1000.0, 2000.0)))
    assert bars[-1] == (True, [1000, 1200, 1400, 1600, 1800, 2000])
    lowest = np.round(np.array(colormaps["viridis"](0.0)[:3]) * 255).astype(np.uint8)
    plane_pixels = (450 / 1.1) ** 2  # the plane fills the height, less the camera's margin
    assert (below == lowest).all(axis=-1).sum() > 0.6 * plane_pixels, "below the range: the colormap's lowest colour"
    assert (image == lowest).all(axis=-1).sum() < 0.01 * plane_pixels
    gray = render_snapshot(run, snapshot, RenderOptions(view="slice", color="field:oxygen", size=(600, 450), cmap="gray"))
    tinted = (gray.max(axis=-1).astype(int) - gray.min(axis=-1)) > 30
    assert tinted.sum() < 0.01 * tinted.size, "a grey colormap leaves no coloured pixel but the legend's and markers'"
    assert tinted.sum() * 20 < ((image.max(axis=-1).astype(int) - image.min(axis=-1)) > 30).sum()


# immune cells ---------------------------------------------------------------

@pytest.fixture
def legend_rows(monkeypatch):
    """The rows of every legend a render pastes, in order (a list that fills as renders run)."""
    seen: list[list[str]] = []
    real = legend.legend_rgba

    def capture(rows, *args, **kwargs):
        seen.append([row[0] for row in rows])
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(legend, "legend_rgba", capture)
    return seen


def _without_immune(snapshot: Snapshot) -> Snapshot:
    """A fresh copy of ``snapshot`` whose arrays lack the immune ones, as a run without immune cells has."""
    copy = Snapshot(snapshot.path, snapshot.step)
    copy.__dict__["arrays"] = {name: values for name, values in snapshot.arrays.items()
                               if name not in ("immune", "immune_state", "exhaustion")}
    return copy


def _exact(image: np.ndarray, color) -> int:
    return int((image == color).all(axis=-1).sum())


def test_flat_render_of_an_immune_run_draws_glyphs_and_lists_the_kinds(run_immune, tmp_path, legend_rows):
    run = open_run(run_immune)
    snapshot = run.snapshot_at(IMMUNE_TIME_H)
    classes = run.immune_glyph_classes(snapshot)
    present = sorted(set(np.unique(classes[classes >= 0]).tolist()))
    assert {palette.GLYPH_T_EFFECTOR, palette.GLYPH_SUPPRESSOR_FIRST, (palette.GLYPH_SUPPRESSOR_FIRST + 1)} <= set(present)

    out = tmp_path / "immune.png"
    render(run, out, RenderOptions(view="iso", color="clone", size=(800, 600)), time_h=IMMUNE_TIME_H)
    image = png_pixels(out)
    assert image.shape == (600, 800, 3)
    assert_not_blank(image)
    plain = render_snapshot(run, _without_immune(snapshot), RenderOptions(view="iso", color="clone", size=(800, 600)))
    rows_with, rows_without = legend_rows
    immune_labels = [palette.IMMUNE_GLYPHS[code].label for code in present]
    assert rows_with == rows_without + immune_labels, "the legend adds the kinds present, after the tumor rows"
    for code in present:  # flat views are unlit: fills and edges keep their exact colours
        glyph = palette.IMMUNE_GLYPHS[code]
        assert _exact(image, glyph.color) > _exact(plain, glyph.color) + 15, glyph.label


def test_field_render_of_an_immune_run_shows_markers_over_the_field(run_immune, tmp_path, legend_rows):
    run = open_run(run_immune)
    image = render_snapshot(run, run.snapshot_at(IMMUNE_TIME_H), RenderOptions(color="field:chemokine", size=SIZE))
    assert_not_blank(image)
    assert _exact(image, palette.IMMUNE_GLYPHS[palette.GLYPH_SUPPRESSOR_FIRST].color) > 5
    assert "Treg" in legend_rows[-1] and "MDSC" in legend_rows[-1]


def _synthetic_immune_run(run3d):
    """run3d's last snapshot made a tumor ball (radius 7 voxels at the centre, no vessels) with four immune cells.

    T cell, effector at (z, y, x) = (8, 9, 9): deep in the tumor, but just
    behind the cutaway's cut (its +z neighbour is cut away); T cell,
    exhausted at (16, 1, 9) and Treg at (1, 1, 16): in tissue, in view; MDSC at
    (16, 16, 16): in tissue inside the cut-away octant.
    """
    run = open_run(run3d)
    run.config["immune"] = {"t_cells": {"clones": [{"name": "a", "antigen": 0}]}, "tregs": {}, "mdscs": {}}
    snapshot = run.last_snapshot()
    arrays = snapshot.arrays
    z, y, x = np.ogrid[:18, :18, :18]
    radius = np.sqrt((z - 9) ** 2 + (y - 9) ** 2 + (x - 9) ** 2)
    arrays["clone"] = np.where(radius < 7, 0, -1).astype(np.int32)
    arrays["cell_state"] = np.zeros((18, 18, 18), dtype=np.int8)
    arrays["vessel"] = np.zeros_like(arrays["vessel"])
    immune = np.full((18, 18, 18), -1, dtype=np.int32)
    state = np.zeros((18, 18, 18), dtype=np.int8)
    immune[8, 9, 9] = 0
    immune[16, 1, 9], state[16, 1, 9] = 0, 1
    immune[1, 1, 16] = 1
    immune[16, 16, 16] = 2
    arrays["immune"], arrays["immune_state"], arrays["exhaustion"] = immune, state, state.astype(np.float32)
    return run, snapshot


def _lit_share(image: np.ndarray, color) -> int:
    """Pixels of the hue of ``color``, whatever the lighting: RGB direction within about 11 degrees, not near black."""
    pixels = image.reshape(-1, 3).astype(float)
    target = np.array(color, dtype=float) / np.linalg.norm(color)
    norms = np.linalg.norm(pixels, axis=1)
    cosine = pixels @ target / np.maximum(norms, 1e-9)
    return int(((cosine > 0.98) & (norms > 80)).sum())


def test_3d_glyphs_respect_occlusion_and_the_cutaway(run3d, legend_rows):
    run, snapshot = _synthetic_immune_run(run3d)
    size = (640, 480)
    plot = {view: render_snapshot(run, snapshot, RenderOptions(view=view, color="clone", size=size))
            for view in ("iso", "cutaway")}
    iso_rows, cutaway_rows = legend_rows
    assert iso_rows == ["founder", "T cell, exhausted", "Treg", "MDSC"], "the effector deep in the tumor is hidden"
    assert cutaway_rows == ["founder", "T cell, effector", "T cell, exhausted", "Treg"], "the MDSC is cut away"
    scene = {view: image[:, : int(size[0] * 0.7)] for view, image in plot.items()}  # left of the legend
    treg, mdsc = (palette.IMMUNE_GLYPHS[code].color for code in (palette.GLYPH_SUPPRESSOR_FIRST, (palette.GLYPH_SUPPRESSOR_FIRST + 1)))
    assert _lit_share(scene["iso"], treg) > 20 and _lit_share(scene["cutaway"], treg) > 20
    assert _lit_share(scene["iso"], mdsc) > 20 and _lit_share(scene["cutaway"], mdsc) == 0
    plain = render_snapshot(run, _without_immune(snapshot), RenderOptions(view="cutaway", color="clone", size=size))
    dark = [int((image[:, : int(size[0] * 0.7)].max(axis=-1) < 40).sum()) for image in (plot["cutaway"], plain)]
    assert dark[0] > dark[1] + 30, "the effector's cap shows on the cut face"


def test_runs_without_immune_cells_render_as_before(run3d, legend_rows):
    """Immune arrays with no cell in them change no pixel and no legend row, in every view."""
    run = open_run(run3d)
    snapshot = run.last_snapshot()
    bare = _without_immune(snapshot)
    empty = Snapshot(snapshot.path, snapshot.step)
    empty.arrays.update(immune=np.full(empty.shape, -1, dtype=np.int32), immune_state=np.zeros(empty.shape, dtype=np.int8),
                        exhaustion=np.zeros(empty.shape, dtype=np.float32))
    run.config["immune"] = {"t_cells": {"clones": [{"name": "a", "antigen": 0}]}, "tregs": {}, "mdscs": None}
    for view, color in (("iso", "clone"), ("cutaway", "state"), ("slice", "clone"), ("slice", "field:oxygen")):
        options = RenderOptions(view=view, color=color, size=SIZE)
        assert np.array_equal(render_snapshot(run, bare, options), render_snapshot(run, empty, options)), (view, color)
    assert all(not set(rows) & {glyph.label for glyph in palette.IMMUNE_GLYPHS} for rows in legend_rows)


def test_thin_immune_keeps_a_seeded_1_in_k_above_the_limit():
    rng = np.random.default_rng(3)
    classes = np.where(rng.random((30, 40)) < 0.5, rng.integers(0, 4, (30, 40)), -1).astype(np.int8)
    n = int((classes >= 0).sum())
    assert thin_immune(classes, n) == (classes, 1) and thin_immune(classes, 0) == (classes, 1)
    kept, k = thin_immune(classes, n // 3)
    assert k == -(-n // (n // 3)) and int((kept >= 0).sum()) == n // k <= n // 3
    assert np.all((kept == classes) | (kept == -1)), "kept cells keep their kind; the rest are left out"
    again, _ = thin_immune(classes.copy(), n // 3)
    assert np.array_equal(kept, again), "the subset is seeded: the same in every render"
    assert set(np.unique(kept[kept >= 0])) == set(np.unique(classes[classes >= 0])), "every kind still shows"


def _crowded(run, snapshot) -> int:
    """Put a Treg (agent 1) in every tissue voxel of ``snapshot``; returns how many immune cells it then has."""
    immune = snapshot.arrays["immune"]
    immune[(immune < 0) & (snapshot.arrays["clone"] < 0)] = 1
    return int((run.immune_glyph_classes(snapshot) >= 0).sum())


@pytest.mark.parametrize("view", ["slice", "iso", "cutaway"])
def test_renders_of_many_immune_cells_draw_1_in_k_and_say_so(run_immune, run3d, monkeypatch, view):
    titles = []
    real = legend.legend_rgba
    monkeypatch.setattr(legend, "legend_rgba", lambda rows, *args, title=None, **kwargs:
                        titles.append(title) or real(rows, *args, title=title, **kwargs))
    if view == "slice":  # the 2-D run: every cell of the lattice is in view
        run = open_run(run_immune)
        snapshot = run.snapshot_at(IMMUNE_TIME_H)
        n = _crowded(run, snapshot)
        limit, k = n // 4, -(-n // (n // 4))
    else:  # in 3-D only the cells in view count (not those in the cut-away octant or hidden inside the tumor)
        run, snapshot = _synthetic_immune_run(run3d)
        _crowded(run, snapshot)
        limit, k = 500, None
    every, thinned = (render_snapshot(run, snapshot, RenderOptions(view=view, color="clone", size=(800, 600), max_immune=cap))
                      for cap in (0, limit))
    assert titles[0] is None and titles[1] == f"1 in {k or titles[1].split()[2]} immune cells shown"
    assert int(titles[1].split()[2]) >= 2
    treg = palette.IMMUNE_GLYPHS[palette.GLYPH_SUPPRESSOR_FIRST].color
    share = _exact if view == "slice" else _lit_share  # flat markers are unlit: their exact colour counts them
    assert 0 < share(thinned, treg) < 0.7 * share(every, treg)


def test_max_immune_is_checked_and_the_cli_default_is_the_renders():
    from abm.cli import build_parser

    with pytest.raises(VizError, match="--max-immune -1: give 0"):
        RenderOptions(max_immune=-1)
    assert build_parser().parse_args(["render", "run", "--out", "x.png"]).max_immune == MAX_IMMUNE


def test_report_of_an_immune_run(run_immune, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_immune, copy)
    assert main(["report", str(copy), "--quiet"]) == 0
    report = (copy / "report.md").read_text(encoding="utf-8")
    for link in ("figures/render_state.png", "figures/immune.png", "figures/immune.pdf", "figures/immune.svg"):
        assert f"({link})" in report and (copy / link).is_file()
    assert "### immune" in report and "| immune kills (per h) |" in report
    assert_not_blank(png_pixels(copy / "figures" / "render_state.png"))


def test_animations(run3d, tmp_path):
    from PIL import Image

    run = open_run(run3d)
    gif = tmp_path / "growth.gif"
    render(run, gif, RenderOptions(view="cutaway", size=SIZE), all_snapshots=True, progress=False)
    with Image.open(gif) as image:
        assert image.n_frames == len(run.snapshots) and image.size == SIZE
    mp4 = tmp_path / "growth.mp4"
    render(run, mp4, RenderOptions(size=(390, 290)), progress=False)
    assert mp4.read_bytes()[4:8] == b"ftyp"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["growth.gif", "growth.mp4"]


def test_render_option_errors(run3d, tmp_path):
    run = open_run(run3d)
    with pytest.raises(VizError, match="--view"):
        RenderOptions(view="top")
    with pytest.raises(VizError, match="--color"):
        RenderOptions(color="field:")
    with pytest.raises(VizError, match="give --out a .gif or .mp4"):
        render(run, tmp_path / "a.png", RenderOptions(), all_snapshots=True)
    with pytest.raises(VizError, match="fields: oxygen"):
        render(run, tmp_path / "a.png", RenderOptions(color="field:drug"))
    assert not list(tmp_path.iterdir())


def test_tme_render_and_report_commands(run3d, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run3d, copy)
    assert main(["render", str(copy), "--view", "cutaway", "--color", "state", "--time", "0",
                 "--size", "320x240", "--out", str(tmp_path / "a.png")]) == 0
    assert png_pixels(tmp_path / "a.png").shape == (240, 320, 3)
    assert main(["render", str(copy), "--time", "0", "--out", str(tmp_path / "a.gif")]) == 2
    assert "--time picks one snapshot" in capsys.readouterr().err
    assert main(["report", str(copy), "--quiet"]) == 0
    report = (copy / "report.md").read_text(encoding="utf-8")
    for link in ("figures/render_state.png", "figures/burden.png", "figures/slices.svg", "figures/muller.png",
                 "figures/heterogeneity.pdf"):
        assert f"({link})" in report and (copy / link).is_file()
    assert "| tumor volume (mm³) |" in report


def test_report_keeps_the_figures_tme_plot_drew(run2d, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run2d, copy)
    assert main(["plot", str(copy)]) == 0
    figures = {path.name: path.stat().st_mtime_ns for path in (copy / "figures").iterdir()
               if not path.name.startswith(".")}  # the record gains the report's render
    capsys.readouterr()
    assert main(["report", str(copy)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith("figure ")] == [
        f"figure {number}/5: {name} (up to date, kept)"
        for number, name in enumerate(("burden", "oxygen", "muller", "heterogeneity", "slices"), 1)]
    assert {name: (copy / "figures" / name).stat().st_mtime_ns for name in figures} == figures
    assert "(figures/burden.png)" in (copy / "report.md").read_text(encoding="utf-8")


def test_report_keeps_its_render_while_up_to_date(run2d, tmp_path, capsys):
    """A second report renders nothing while the run is unchanged; a newer data file, or a render recorded by
    another version, renders it again."""
    import json
    import os

    from viz import figurecache

    copy = tmp_path / "run"
    shutil.copytree(run2d, copy)
    image = copy / "figures" / "render_state.png"

    def report() -> tuple[bool, list[str]]:
        """Whether the report rendered the image again, and its stderr lines about the render."""
        before = image.stat().st_mtime_ns if image.exists() else None
        assert main(["report", str(copy)]) == 0
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("render")]
        return image.stat().st_mtime_ns != before, lines

    assert report()[0]
    assert report() == (False, ["render: render_state (up to date, kept)"])
    assert "(figures/render_state.png)" in (copy / "report.md").read_text(encoding="utf-8")

    newer = image.stat().st_mtime_ns + 10**9
    os.utime(copy / "summary.json", ns=(newer, newer))  # the run changed after the render
    assert report()[0]
    assert not report()[0]

    record = figurecache.read(copy / "figures")
    record["render_state"]["options"]["tme_abm_version"] = "0.0.1"
    (copy / "figures" / figurecache.MANIFEST).write_text(json.dumps(record), encoding="utf-8")
    assert report()[0]


@pytest.mark.parametrize("size", [(600, 600), (400, 300), (960, 720)])
@pytest.mark.parametrize("view", ["iso", "cutaway", "flat"])
def test_the_legend_covers_nothing_and_the_scene_stays_left_of_it(run3d, run2d, monkeypatch, view, size):
    """The scene is framed left of the key column (:data:`viz.render.KEY_COLUMN`): the legend is pasted on white only
    (it used to cover the domain's corner in a square render), and nothing of the scene is in that column."""
    from viz import render as render_module

    pasted = []
    real_paste = legend.paste

    def paste(image, overlay, top, right):
        pasted.append((image.copy(), overlay.shape, top, right))
        return real_paste(image, overlay, top, right)

    monkeypatch.setattr(render_module.legend, "paste", paste)
    run = open_run(run2d if view == "flat" else run3d)
    render_snapshot(run, run.last_snapshot(), RenderOptions(view="iso" if view == "flat" else view, color="state", size=size))
    ((scene, (height, width, _), top, right),) = pasted
    covered = scene[top:top + height, size[0] - right - width:size[0] - right]
    assert (covered == 255).all(), "the legend covers part of the scene"
    column = scene[: int(0.94 * size[1]), int(np.ceil((1 - render_module.KEY_COLUMN) * size[0])):]  # above the caption
    assert (column == 255).all(), "the scene reaches into the key column"
    assert (scene[:, : int((1 - render_module.KEY_COLUMN) * size[0])] != 255).any(axis=-1).sum() > 1000
