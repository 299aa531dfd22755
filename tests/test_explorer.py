"""``tme explore``: its pictures, the live model's run directory, its bad input, and the page in a real browser.

The browser tests start ``tme explore`` as a subprocess and drive headless Chromium (the distribution's
``/usr/bin/chromium``) with Playwright's Python API; they skip, saying why, where Chromium, Playwright or Solara is
absent. Their screenshots are written under pytest's ``tmp_path`` and their paths printed (``pytest -s`` shows them).
"""
from __future__ import annotations

import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from abm import live as live_model, rundir
from abm.cli import main
from abm.config import load_config
from abm.live import LiveRun
from abm.runner import run as run_model
from kernels import diffusion
from tests.test_viz import IMMUNE, REPO, assert_not_blank, run2d, run3d, run_immune  # noqa: F401 - fixtures
from viz.explorer import AXES, colorings, png, section_figure, series_figures
from viz.rundir import VizError, open_run

CHROMIUM = "/usr/bin/chromium"
TINY = REPO / "configs" / "tiny.yaml"


def pixels(image: bytes) -> np.ndarray:
    """RGB pixels of PNG bytes, ``uint8 (height, width, 3)``."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
        return np.asarray(opened.convert("RGB"))


# ---------------------------------------------------------------------------------------------- pictures


def test_every_colouring_of_a_section_draws_its_data(run_immune):
    run = open_run(run_immune)
    snapshot = run.snapshots[-1]
    choices = colorings(run, snapshot)
    assert choices[:3] == ["clone", "state", "immune"] and "field:oxygen" in choices
    images = {}
    for color in choices:
        figure = section_figure(run, snapshot, color)
        images[color] = pixels(png(figure))
        assert_not_blank(images[color])
        if color == "immune":  # the immune cells of the snapshot are drawn as markers
            drawn = sum(len(line.get_xdata()) for line in figure.axes[0].get_lines())
            assert drawn == int((snapshot.immune >= 0).sum()) > 0
        if color.startswith("field:"):
            assert len(figure.axes) == 2  # the section and its colour bar
    assert not np.array_equal(images["clone"], images["state"])
    with pytest.raises(VizError, match="colour 'field:nothing'"):
        section_figure(run, snapshot, "field:nothing")


def test_planes_of_a_3d_run(run3d):
    run = open_run(run3d)
    snapshot = run.snapshots[-1]
    centre = snapshot.tumor_center_index()
    for axis in AXES:
        figure = section_figure(run, snapshot, "clone", axis)
        ax = figure.axes[0]
        vertical, horizontal = (name for name in AXES if name != axis)
        assert (ax.get_xlabel(), ax.get_ylabel()) == (f"{horizontal} (µm)", f"{vertical} (µm)")
        where = (centre[AXES.index(axis)] + 0.5) * snapshot.dx_um
        assert f"plane {axis} = {where:g} µm" in ax.get_title()
    corner, middle = (pixels(png(section_figure(run, snapshot, "clone", "z", position))) for position in (0, centre[0]))
    assert not np.array_equal(corner, middle)
    with pytest.raises(VizError, match="plane x = 18: outside the lattice"):
        section_figure(run, snapshot, "clone", "x", 18)
    with pytest.raises(VizError, match="plane normal to 'w': choose one of z, y, x"):
        section_figure(run, snapshot, "clone", "w")


def test_time_series_are_marked_at_the_snapshot(run3d):
    run = open_run(run3d)
    time_h = run.snapshots[1].time_h
    drawn = series_figures(run, time_h)
    assert [figure.get_suptitle().split(" (")[0] for figure in drawn] == ["Tumor burden", "Clonal composition"]
    for figure in drawn:
        for ax in figure.axes:
            marks = [line for line in ax.get_lines() if list(line.get_xdata()) == [time_h / 24] * 2]
            assert len(marks) == 1


# ---------------------------------------------------------------------------------------------- live model


def test_a_live_model_writes_the_records_of_tme_run(tmp_path):
    """Stepped record by record, the live model's folder reads as a run directory with the same records as `tme run`
    of the config, and a snapshot at each record."""
    config = load_config(TINY, [*IMMUNE, "time.duration_days=1"])
    folder = tmp_path / "live"
    folder.mkdir()
    live = LiveRun(config, folder)
    advances = 0
    while not live.done:
        live.advance()
        advances += 1
    live.close()
    assert advances == 4  # 24 h at a record every 6 h
    reference = tmp_path / "run"
    run_model(config, reference, progress=False)
    replayed, batch = open_run(folder), open_run(reference)
    assert replayed.status == "unfinished"
    assert [snapshot.step for snapshot in replayed.snapshots] == [0, 6, 12, 18, 24]
    assert replayed.timeseries.equals(batch.timeseries)
    assert replayed.clone_series.reset_index(drop=True).equals(batch.clone_series.reset_index(drop=True))
    assert replayed.immune_series.equals(batch.immune_series)
    last, other = replayed.snapshots[-1], batch.snapshots[-1]
    assert last.step == other.step and all(np.array_equal(last.arrays[name], other.arrays[name]) for name in other.arrays)
    written = rundir.open_run(folder).config["time"]
    assert written["snapshot_every_h"] == written["record_every_h"] == 6 != config.time.snapshot_every_h  # as taken


def test_a_live_model_that_fails_keeps_its_records_and_says_when(tmp_path, monkeypatch):
    """A split-step field that turns NaN after the first cell step: advancing raises one of ``abm.live.FAILED`` at
    the next record (the runner's failure, described as ``tme run`` describes it), and the folder keeps the records
    and snapshots before it."""
    config = load_config(TINY, ["fields.chemokine={preset: chemokine, solver: transient_lod}"])
    folder = tmp_path / "live"
    folder.mkdir()
    live = LiveRun(config, folder)
    step = diffusion.implicit_step

    def poisoned(xp, u, *args, **kwargs):
        out = step(xp, u, *args, **kwargs)
        out[...] = np.nan
        return out

    monkeypatch.setattr(diffusion, "implicit_step", poisoned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the NaN field's reductions, on purpose
        with pytest.raises(live_model.FAILED) as failure:
            live.advance()
    live.close()
    assert live.model.steps == 6 and not live.done
    assert live_model.describe(live.model, failure.value).startswith(
        "day 0.25: field chemokine: non-finite values (nan in 2304 of 2304 voxels) at day 0.25")
    kept = open_run(folder)
    assert list(kept.timeseries["time_h"]) == [0.0] and [snapshot.step for snapshot in kept.snapshots] == [0]


def test_live_controls_hold_the_configs_values():
    pytest.importorskip("solara")
    from viz.explorer_page import _controls

    assert _controls(load_config(TINY)) == {"tumor.clones.0.cycle_time_h": ("cycle time of the first clone (h)", 23.1)}
    immune = _controls(load_config(TINY, [*IMMUNE, "immune.t_cells.kill_rate_per_h=2.5"]))
    assert {key: value for key, (_, value) in immune.items()} == {
        "tumor.clones.0.cycle_time_h": 23.1, "immune.t_cells.kill_rate_per_h": 2.5,
        "immune.t_cells.priming.expansion_per_h": 0.5}


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("arguments, message", [
    (["/nonexistent/run"], "/nonexistent/run: no such run directory or config file"),
    (["{run}", "--set", "seed=3"], "--set seed=3: --set changes a config"),
    ([str(TINY), "--set", "lattice.dx_um=-1"], "lattice.dx_um: Input should be greater than or equal to 1"),
    (["{empty}"], "not a run directory"),
])
def test_bad_input_is_one_error_line(run2d, tmp_path, capsys, arguments, message):
    (tmp_path / "empty").mkdir()
    arguments = [argument.format(run=run2d, empty=tmp_path / "empty") for argument in arguments]
    assert main(["explore", *arguments, "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err  # one error (a config's lists each invalid key below it)


def test_a_busy_port_or_no_port_is_refused(run2d, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["explore", str(run2d), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}")
    with pytest.raises(SystemExit) as exit_info:
        main(["explore", str(run2d), "--port", "70000"])
    assert exit_info.value.code == 2 and "expected a port number from 1 to 65535" in capsys.readouterr().err


def test_without_solara_the_explorer_says_what_to_install(run2d, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "solara", None)  # import solara raises ImportError
    assert main(["explore", str(run2d), "--port", str(_free_port())]) == 2
    assert capsys.readouterr().err == ('error: tme explore needs solara, which is not installed; install the explore '
                                       'extra: pip install -e ".[viz,explore]"\n')


# ---------------------------------------------------------------------------------------------- in a browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _browser_or_skip():
    """Playwright's sync API, or a skip naming what is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no {CHROMIUM}: install the distribution's Chromium (Debian: apt-get install -y chromium)")
    for package, hint in (("playwright", "pip install playwright"), ("solara", 'pip install -e ".[explore]"')):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed ({hint})")
    from playwright.sync_api import sync_playwright

    return sync_playwright


class Explorer:
    """``tme explore TARGET`` in a subprocess, its temporary files in ``tmp`` (TMPDIR); stopped with Ctrl-C (SIGINT)."""

    def __init__(self, target: str, tmp: Path) -> None:
        self.port = _free_port()
        self.tmp = tmp
        tmp.mkdir()
        environment = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "abm.cli", "explore", target, "--port", str(self.port)],
                                        cwd=tmp, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.first_line = self.process.stdout.readline().strip()
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the URL is printed as the server starts; wait until it listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"tme explore did not listen on {self.port}: {self.first_line}")

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit status and the rest of the output."""
        self.process.send_signal(signal.SIGINT)
        try:
            rest, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        return self.process.returncode, rest


def _image_sources(page) -> list[str]:
    return page.locator("img").evaluate_all("images => images.map(image => image.src)")


def _wait_for_new_image(page, before: list[str], timeout_s: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = _image_sources(page)
        if len(now) == len(before) and now[0] != before[0]:
            return now
        page.wait_for_timeout(200)
    raise AssertionError("the picture did not change")


def _screenshot(page, path: Path, index: int = 0) -> np.ndarray:
    """Screenshot of the page to ``path`` (printed); the pixels of its ``index``-th image."""
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return pixels(page.locator("img").nth(index).screenshot())


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("img", timeout=90_000)
    page.wait_for_function("document.querySelectorAll('img').length >= 3", timeout=90_000)
    return page


def test_the_page_scrubs_a_run_with_the_time_slider(run3d, tmp_path):
    """The page loads, shows a section that is not blank, and moving the time slider changes it (and the label, and
    the time series' marks); the cutaway view shows a 3-D render."""
    sync_playwright = _browser_or_skip()
    explorer = Explorer(str(run3d), tmp_path / "tmp")
    try:
        assert explorer.first_line == f"tme explore: {explorer.url} (Ctrl-C stops)"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = _open(browser, explorer.url)
            first = _screenshot(page, tmp_path / "explore-first.png")
            assert_not_blank(first)
            assert page.get_by_text("snapshot 1 of 3").count() == 1
            before = _image_sources(page)
            slider = page.locator("[role=slider]").first
            slider.focus()
            slider.press("End")
            after = _wait_for_new_image(page, before)
            last = _screenshot(page, tmp_path / "explore-last.png")
            assert_not_blank(last)
            assert page.get_by_text("snapshot 3 of 3").count() == 1
            assert after[1:] != before[1:]  # the time series' marks moved too
            assert first.shape != last.shape or not np.array_equal(first, last)
            page.locator(".v-select").nth(1).click()  # view: a 3-D render
            page.locator(".v-list-item", has_text="cutaway").click()
            _wait_for_new_image(page, after)
            render = _screenshot(page, tmp_path / "explore-cutaway.png")
            assert_not_blank(render)
            assert render.shape != last.shape or not np.array_equal(render, last)
            browser.close()
    finally:
        status, output = explorer.stop()
    assert status == 0, output
    assert "tme explore: stopped" in output
    assert list(explorer.tmp.iterdir()) == []  # nothing left in the temporary folder


def test_the_page_steps_a_live_model(tmp_path):
    """``tme explore CONFIG``: one step shows a later section; play runs the model to its end; a control builds a
    new model (the old one's files go); the files are removed when the server stops."""
    sync_playwright = _browser_or_skip()
    explorer = Explorer(str(TINY), tmp_path / "tmp")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = _open(browser, explorer.url)
            assert_not_blank(_screenshot(page, tmp_path / "live-start.png"))
            assert page.get_by_text("live: day 0.00 of 2").count() == 1
            before = _image_sources(page)
            page.get_by_role("button", name="step").click()
            _wait_for_new_image(page, before)
            assert page.get_by_text("live: day 0.25 of 2").count() == 1
            page.get_by_role("button", name="play").click()
            page.get_by_text("live: day 2.00 of 2").wait_for(timeout=120_000)
            page.get_by_text("snapshot 9 of 9").wait_for(timeout=60_000)
            assert_not_blank(_screenshot(page, tmp_path / "live-end.png"))
            assert len(list(explorer.tmp.glob("tme-explore-*/live-*/snapshots/*.npz"))) == 9
            cycle_time = page.get_by_label("cycle time of the first clone (h)")  # a control: a new model from day 0
            assert cycle_time.input_value() == "23.1"
            cycle_time.fill("-1")  # rejected by the config: its error, no model
            cycle_time.press("Enter")
            page.get_by_text("tumor.clones.0.cycle_time_h").first.wait_for(timeout=60_000)
            assert page.get_by_text("live: no model").count() == 1
            cycle_time.fill("12")
            cycle_time.press("Enter")
            page.get_by_text("live: day 0.00 of 2").wait_for(timeout=60_000)
            page.wait_for_function("document.querySelectorAll('img').length >= 3", timeout=60_000)
            assert len(list(explorer.tmp.glob("tme-explore-*/live-*"))) == 1  # the old model's folder is gone
            browser.close()
    finally:
        status, output = explorer.stop()
    assert status == 0, output
    assert list(explorer.tmp.iterdir()) == []


def screenshot(target: Path, out: Path) -> None:
    """``tme explore TARGET`` in headless Chromium with the time slider at the last snapshot, the page saved as the
    PNG ``out`` (the image of docs/visualization.md)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="tme-explore-shot-") as folder:
        explorer = Explorer(str(Path(target).resolve()), Path(folder) / "tmp")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = _open(browser, explorer.url)
                before = _image_sources(page)
                page.locator("[role=slider]").first.focus()
                page.locator("[role=slider]").first.press("End")
                _wait_for_new_image(page, before)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            explorer.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="screenshot of tme explore RUN_DIR at its last snapshot")
    parser.add_argument("run_dir")
    parser.add_argument("out", help="PNG file")
    arguments = parser.parse_args()
    screenshot(Path(arguments.run_dir), Path(arguments.out))
