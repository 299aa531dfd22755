"""Visualization without OpenGL: palette, scales, run reading, figures, VTK export, CLI wiring.

Fixtures are real run directories made by :func:`abm.run.run` on small
lattices (2-D and 3-D, two clones, vessels), so the files read here are the
ones ``tme run`` writes. Renders, which need OpenGL, are in test_viz_render.py.
"""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from abm.cli import main
from abm.config import load_config
from abm.run import run as run_model
from kernels.tumor import NECROTIC, STATE_NAMES
from viz import palette
from viz.rundir import VizError, open_run
from viz.scales import contour_levels, nice_number, scale_bar_length_um

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


def png_pixels(path: Path) -> np.ndarray:
    """RGB pixels of a PNG, ``uint8 (height, width, 3)``."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def assert_not_blank(pixels: np.ndarray) -> None:
    """Many distinct colours and real contrast, not a flat or nearly flat image."""
    assert pixels.std() > 10, "image is (nearly) blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8


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


def test_round_numbers():
    assert [nice_number(value) for value in (7, 0.3, 2, 999)] == [5, 0.2, 2, 500]
    assert [nice_number(value, up=True) for value in (7, 0.3, 2, 999)] == [10, 0.5, 2, 1000]
    assert scale_bar_length_um(960) == 100 and scale_bar_length_um(2560) == 500
    assert list(contour_levels(9.15, 38.0)) == [10, 20, 30]
    assert contour_levels(3.0, 3.0).size == 0


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


def test_open_run_errors(tmp_path):
    with pytest.raises(VizError, match="no such run directory"):
        open_run(tmp_path / "missing")
    with pytest.raises(VizError, match="no config.yaml"):
        open_run(tmp_path)


# figures ------------------------------------------------------------------

def test_plot_writes_every_figure_as_png_pdf_svg(run3d, tmp_path):
    from viz.figures import PNG_DPI, RUN_FIGURES, WIDTH_IN, plot_run

    written = plot_run(open_run(run3d), tmp_path)
    assert set(written) == {figure.name for figure in RUN_FIGURES}
    for name, paths in written.items():
        assert [path.suffix for path in paths] == [".png", ".pdf", ".svg"]
        pixels = png_pixels(paths[0])
        assert pixels.shape[1] == round(WIDTH_IN * PNG_DPI), name
        assert_not_blank(pixels)
        assert paths[1].read_bytes().startswith(b"%PDF")
        assert ElementTree.parse(paths[2]).getroot().tag.endswith("svg")
    assert not list(tmp_path.glob(".*part*")), "temporary files left behind"


def test_slices_figure_of_a_2d_run(run2d, tmp_path):
    from viz.figures import plot_run

    written = plot_run(open_run(run2d), tmp_path, formats=("png",), names=("slices",))
    assert_not_blank(png_pixels(written["slices"][0]))


def test_plot_rejects_unknown_format_and_figure(run3d, tmp_path):
    from viz.figures import plot_run

    with pytest.raises(VizError, match="--formats jpg"):
        plot_run(open_run(run3d), tmp_path, formats=("jpg",))
    with pytest.raises(VizError, match="--only muller"):
        plot_run(open_run(run3d), tmp_path, names=("muller",))


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
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nothing'}: no such run directory"


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
