"""Regenerate every image in README.md and docs/*.md from the commands printed beside it.

An image reference ``![alt](path)`` in README.md or docs/*.md is made by the
last fenced code block before it in the same section (no heading between)
whose lines are all ``tme`` commands (blank lines and ``#`` comments aside).
The script runs the blocks of every image, in the order of README.md and then
docs/*.md by name, in one scratch folder that stands for the repository root
(``configs`` is linked there), with this repository's ``tme``; a block that
appears twice (the same commands) runs once. Each image must be a file that
its block wrote; it is then copied to its path under ``--out``.

An image made by something this script does not run (a browser screenshot of
``tme explore``, say) carries the marker ``<!-- image made by: COMMAND -->`` on
the line right before its reference; the script leaves it alone, and the
checks only ask that the file exists.

``--reduced`` shrinks every run so that the whole script takes about half a
minute (tests/test_doc_images.py runs it): a ``tme run`` or ``tme compare``
longer than ``--days`` (default 8: past the day 5 start of
configs/sequencing.yaml's treatment) gets ``--set time.duration_days=DAYS``
appended, and ``tme compare`` also ``--replicates 1``. Reduced images only go to an ``--out``
outside the repository.

Without ``--reduced`` the images replace those in the repository (the default
``--out``), and :data:`MANIFEST` records, per image, the commands of its block
and the SHA-256 of the file written, so a test can tell that the images in the
repository are this script's output for the commands printed beside them.

Usage::

    python docs/make_images.py                       # every image, full settings, into the repository
    python docs/make_images.py --reduced --out DIR   # every image on reduced settings, into DIR/<its path>
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: abm is this repository's
    sys.path.insert(0, str(ROOT))
#: What the full run records: image path (from the root) -> its block's commands and the file's SHA-256.
MANIFEST = Path("docs/images/manifest.json")
#: File suffixes that count as images under docs/.
IMAGE_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".svg", ".mp4")
EXTERNAL_MARKER = re.compile(r"<!--\s*image made by:\s*(?P<command>.+?)\s*-->")
_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)\)")
_FENCE = re.compile(r"^\s*```")


@dataclass(frozen=True)
class DocImage:
    """One image reference in the documentation.

    Attributes:
        path: the image file, relative to the repository root (POSIX).
        document: the Markdown file that shows it, relative to the root.
        line: its 1-based line number there.
        commands: the ``tme`` commands of its block, each a tuple of arguments (``tme`` first); empty for an
            external image.
        made_by: for an image with the external marker, the command the marker names; else None.
    """

    path: str
    document: str
    line: int
    commands: tuple[tuple[str, ...], ...]
    made_by: str | None = None


class DocImageError(Exception):
    """A documentation image without its commands, or commands that do not make it."""


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and docs/*.md, in the order their images are made."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _commands(block: list[str]) -> tuple[tuple[str, ...], ...] | None:
    """The block's lines as ``tme`` commands (a trailing ``\\`` continues a line), or None when any line is not one."""
    text = "\n".join(block).replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not all(line.startswith("tme ") for line in lines):
        return None
    commands = [tuple(shlex.split(line, comments=True)) for line in lines]
    return tuple(commands) or None


def find_images(root: Path = ROOT) -> list[DocImage]:
    """Every image reference of :func:`documents` with the commands that make it.

    Raises:
        DocImageError: an image (not marked external) with no block of ``tme`` commands before it in its section.
    """
    images = []
    for document in documents(root):
        name = document.relative_to(root).as_posix()
        block: tuple[tuple[str, ...], ...] | None = None
        fenced: list[str] | None = None
        previous = ""
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), start=1):
            if _FENCE.match(line):
                if fenced is None:
                    fenced = []
                else:
                    block = _commands(fenced) or block
                    fenced = None
            elif fenced is not None:
                fenced.append(line)
            elif line.startswith("#"):
                block = None
            else:
                for match in _IMAGE.finditer(line):
                    target = match.group("path")
                    if "://" in target:
                        continue
                    path = (document.parent / target).resolve().relative_to(root.resolve()).as_posix()
                    marker = EXTERNAL_MARKER.search(previous)
                    if marker:
                        images.append(DocImage(path, name, number, (), marker.group("command")))
                    elif block is None:
                        raise DocImageError(f"{name}:{number}: image {target} has no block of tme commands before it "
                                            f"in its section, and no '<!-- image made by: COMMAND -->' marker")
                    else:
                        images.append(DocImage(path, name, number, block))
            if line.strip():
                previous = line
    return images


def reduced(command: tuple[str, ...], days: float, work: Path) -> tuple[str, ...]:
    """``command`` with the overrides of ``--reduced``: runs of at most ``days`` days, one replicate per arm.

    The run length of a ``tme run`` or ``tme compare`` is its config's (read from ``work`` with the command's
    ``--set`` overrides), cut to ``days``.
    """
    if command[1] in ("run", "compare"):
        from abm import load_config

        overrides = [value for option, value in zip(command, command[1:]) if option == "--set"]
        if load_config(work / command[2], overrides).time.duration_days > days:
            command += ("--set", f"time.duration_days={days:g}")
    if command[1] == "compare":
        command += ("--replicates", "1")
    return command


def _files(folder: Path) -> dict[str, int]:
    return {path.relative_to(folder).as_posix(): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def make_images(out: Path, work: Path, days: float | None = None, root: Path = ROOT) -> dict[str, Path]:
    """Run the blocks of every image in ``work``, then copy each image to ``out`` / its path (only once every block
    has made its images, so a failure replaces none).

    Args:
        out: the folder standing for the repository root that receives the images.
        work: an empty scratch folder; the commands run there (``configs`` linked to the repository's).
        days: run length for ``--reduced`` (None: the commands as printed).
        root: the folder whose README.md and docs/*.md are read and whose ``configs`` the commands use; the
            commands always run this repository's ``tme``.

    Returns:
        Image path (from the root) -> the file written under ``out``.

    Raises:
        DocImageError: a command fails, or a block does not write its image.
    """
    (work / "configs").symlink_to(root / "configs", target_is_directory=True)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    written: dict[tuple, set[str]] = {}  # block -> files it wrote
    made = []
    for image in find_images(root):
        if image.made_by is not None:
            continue
        if image.commands not in written:
            before = _files(work)
            for command in image.commands:
                command = reduced(command, days, work) if days is not None else command
                print("$ " + shlex.join(command), flush=True)
                for folder in (argument for argument in command if argument.startswith("docs/")):
                    (work / folder).parent.mkdir(parents=True, exist_ok=True)
                done = subprocess.run([sys.executable, "-m", "abm.cli", *command[1:]], cwd=work, env=environment)
                if done.returncode != 0:
                    raise DocImageError(f"{image.document}:{image.line}: {shlex.join(command)} exited {done.returncode}")
            after = _files(work)
            written[image.commands] = {name for name, stamp in after.items() if before.get(name) != stamp}
        if image.path not in written[image.commands]:
            raise DocImageError(f"{image.document}:{image.line}: the commands before it do not write {image.path}")
        made.append(image.path)
    for path in made:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes((work / path).read_bytes())
    return {path: out / path for path in made}


def sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(made: dict[str, Path], root: Path = ROOT) -> dict[str, dict]:
    """The :data:`MANIFEST` record of a full run: per image, its commands and the SHA-256 of the file written."""
    commands = {image.path: image.commands for image in find_images(root) if image.made_by is None}
    return {path: {"commands": [shlex.join(command) for command in commands[path]], "sha256": sha256(file)}
            for path, file in sorted(made.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="folder standing for the repository root (default: the repository)")
    parser.add_argument("--reduced", action="store_true", help="shorter runs, one replicate per arm (for tests)")
    parser.add_argument("--days", type=float, default=8.0, help="longest run with --reduced, days (default 8)")
    arguments = parser.parse_args(argv)
    out = arguments.out.resolve()
    if arguments.reduced and (out == ROOT or ROOT in out.parents):
        print(f"error: --out {arguments.out}: reduced images go outside the repository, not over its images", file=sys.stderr)
        return 2
    if not arguments.days > 0:
        print(f"error: --days {arguments.days:g}: must be > 0", file=sys.stderr)
        return 2
    try:
        find_images()
        with tempfile.TemporaryDirectory(prefix="make_images-") as work:
            made = make_images(out, Path(work), arguments.days if arguments.reduced else None)
    except DocImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not arguments.reduced and out == ROOT:
        (ROOT / MANIFEST).write_text(json.dumps(manifest(made), indent=2) + "\n", encoding="utf-8")
    for path, file in made.items():
        print(f"wrote {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
