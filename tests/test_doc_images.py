"""The documentation images: each is made by the commands printed beside it (docs/make_images.py).

Checks that every image referenced in README.md and docs/*.md has its block
of ``tme`` commands (or names what makes it), that no image under docs/ is
referenced nowhere, that the images in the repository are the script's
output for the commands as printed now (docs/images/manifest.json), and runs
the script on reduced settings: every image is made, not blank, and of the
committed image's size.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("make_images", ROOT / "docs" / "make_images.py")
make_images = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = make_images  # its dataclasses look their module up
_SPEC.loader.exec_module(make_images)


def _image_files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in (root / "docs").rglob("*")
            if path.suffix.lower() in make_images.IMAGE_SUFFIXES}


def test_every_image_has_its_commands_and_exists():
    images = make_images.find_images()
    assert {image.path for image in images} >= {"docs/images/necrotic_core_cutaway.png", "docs/images/burden.png",
                                                "docs/images/timeline.png"}
    for image in images:
        assert (ROOT / image.path).is_file(), f"{image.document}:{image.line}: {image.path} is missing"
        assert image.made_by is not None or image.commands, image


def test_no_orphan_images():
    referenced = {image.path for image in make_images.find_images()}
    orphans = _image_files(ROOT) - referenced
    assert not orphans, f"images under docs/ that no README.md or docs/*.md shows: {sorted(orphans)}"
    extra = {path.name for path in (ROOT / "docs" / "images").iterdir()} - {Path(path).name for path in referenced}
    assert extra <= {make_images.MANIFEST.name}, f"files in docs/images that are neither an image shown nor the manifest: {extra}"


def test_committed_images_are_the_scripts_output_for_the_printed_commands():
    record = json.loads((ROOT / make_images.MANIFEST).read_text(encoding="utf-8"))
    made = {image.path: image for image in make_images.find_images() if image.made_by is None}
    assert set(record) == set(made), "docs/images/manifest.json lists other images than the docs: rerun docs/make_images.py"
    for path, entry in record.items():
        printed = [make_images.shlex.join(command) for command in made[path].commands]
        assert entry["commands"] == printed, f"{path}: the commands beside it changed since docs/make_images.py made it"
        assert entry["sha256"] == make_images.sha256(ROOT / path), f"{path} is not the file docs/make_images.py made"


def _write_docs(root: Path, readme: str) -> None:
    (root / "docs" / "images").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "README.md").write_text(readme, encoding="utf-8")


def test_image_without_commands_or_marker_is_an_error(tmp_path):
    _write_docs(tmp_path, "# Title\n\n```\ntme plot runs/x --out docs/images\n```\n\n## Other\n\n![a](docs/images/a.png)\n")
    with pytest.raises(make_images.DocImageError, match=r"README.md:9: image docs/images/a.png has no block"):
        make_images.find_images(tmp_path)


def test_marker_names_what_makes_an_image_and_other_blocks_are_ignored(tmp_path):
    _write_docs(tmp_path, "```python\nimport abm\n```\n\n<!-- image made by: tme explore runs/x -->\n"
                          "![shot](docs/images/shot.png)\n\n```\ntme plot runs/x \\\n  --out docs/images  # figures\n```\n"
                          "Text.\n\n![b](docs/images/b.png)\n")
    first, second = make_images.find_images(tmp_path)
    assert (first.path, first.commands, first.made_by) == ("docs/images/shot.png", (), "tme explore runs/x")
    assert (second.path, second.made_by) == ("docs/images/b.png", None)
    assert second.commands == (("tme", "plot", "runs/x", "--out", "docs/images"),)


def test_commands_that_do_not_write_their_image_are_an_error(tmp_path):
    _write_docs(tmp_path, "```\ntme --version\n```\n\n![a](docs/images/a.png)\n")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(make_images.DocImageError, match="do not write docs/images/a.png"):
        make_images.make_images(tmp_path / "out", work, root=tmp_path)
    assert not (tmp_path / "out").exists()


def test_reduced_images_go_outside_the_repository():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_images.py"), "--reduced", "--out", str(ROOT / "docs")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: --out"), done.stderr


def test_reduced_run_makes_every_image(tmp_path):
    pytest.importorskip("pyvista")
    from PIL import Image

    before = {path: path.stat().st_mtime_ns for path in (ROOT / "docs" / "images").iterdir()}
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_images.py"), "--reduced", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in (ROOT / "docs" / "images").iterdir()} == before
    images = [image for image in make_images.find_images() if image.made_by is None]
    assert _image_files(tmp_path) == {image.path for image in images}
    for image in images:
        made, committed = (np.asarray(Image.open(folder / image.path).convert("RGB")) for folder in (tmp_path, ROOT))
        assert made.shape[1] == committed.shape[1], image.path  # widths are fixed: --size, or the figure width
        if "--size" not in image.commands[-1]:  # a figure's height follows its data (lines of therapy, legend rows)
            assert abs(made.shape[0] - committed.shape[0]) <= 0.05 * committed.shape[0], image.path
        else:
            assert made.shape == committed.shape, image.path
        drawn, full = (np.any(pixels != pixels[0, 0], axis=-1).mean() for pixels in (made, committed))
        assert drawn > 0.02 and drawn > 0.5 * full, f"{image.path} is nearly blank: {drawn:.1%} drawn, {full:.1%} at full settings"
