"""Writing figure, movie and VTK files atomically.

Like the run directory's own files (:mod:`abm.io`), every output is written
under a hidden temporary name in its final folder and renamed into place,
so an interrupted command leaves no half-written file. Writers here often
want a file name rather than a handle (ffmpeg, VTK), hence a path-based
context manager.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from viz.rundir import VizError

IMAGE_SUFFIXES = (".png",)
MOVIE_SUFFIXES = (".gif", ".mp4")
FIGURE_FORMATS = ("png", "pdf", "svg")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) to write; rename it to ``path`` on success.

    The writer creates the temporary file itself (so it gets the umask's
    permissions). On any exception, KeyboardInterrupt included, the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VizError(f"{path.parent}: cannot create the folder ({exc.strerror or exc})") from None
    temporary = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.part{path.suffix}"
    try:
        yield temporary
        if not temporary.is_file():
            raise VizError(f"{path}: the writer produced no file")
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
