"""Legends shared by renders and figures: which entries, and a legend image for renders.

The entries come from the voxels a figure shows, so a render and a slice of
the same snapshot list the same clones in the same colours. Voxel colours
get square patches; immune cells (:func:`immune_entries`) get their glyph's
marker, fill and edge. Renders paste a legend drawn by matplotlib onto the
pyvista image, so both kinds of figure have the same legend style.
"""
from __future__ import annotations

import io
import re
from typing import Callable

import numpy as np

from kernels.tumor import NECROTIC, STATE_NAMES
from viz import optional, palette

MAX_LEGEND_CLONES = 10
#: Where a label may break between lines: after a space, an underscore, a hyphen, a slash, a comma or a semicolon.
_BREAKABLE = re.compile(r"[^\s_\-/,;]*[\s_\-/,;]*")
#: A legend row: ``(label, colour)`` for a square patch, or ``(label, colour, glyph)`` for an immune cell's marker.
Entry = tuple


def entries(clone: np.ndarray, cell_state: np.ndarray, vessel: np.ndarray, by: str,
            clone_name: Callable[[int], str], max_clones: int = MAX_LEGEND_CLONES) -> list[Entry]:
    """Legend rows ``(label, colour)`` for voxels coloured as :func:`viz.palette.voxel_colors` does.

    Args:
        clone, cell_state, vessel: the shown voxels' arrays (any equal shapes;
            dtypes as in :func:`viz.palette.voxel_colors`).
        by: ``"clone"``, ``"state"``, or anything else for vessels only (field colouring).
        clone_name: clone index -> name.
        max_clones: at most this many clones get a row of their own.

    Returns:
        Clones present (the ``max_clones`` largest, by index, then a count of
        the rest) and ``necrotic`` when colouring by clone; the states
        present when colouring by state; then ``vessel`` if any.
    """
    occupied = clone >= 0
    rows: list[Entry] = []
    if by == "clone":
        live = clone[occupied & (cell_state != NECROTIC)]
        counts = np.bincount(live) if live.size else np.zeros(0, dtype=np.int64)
        present = [int(index) for index in np.argsort(-counts, kind="stable") if counts[index] > 0]
        rows += [(clone_name(index), palette.clone_color(index)) for index in sorted(present[:max_clones])]
        if len(present) > max_clones:
            rows.append((f"+{len(present) - max_clones} smaller clones", palette.OUTLINE_COLOR))
        if np.any(occupied & (cell_state == NECROTIC)):
            rows.append(("necrotic", palette.STATE_COLORS[NECROTIC]))
    elif by == "state":
        rows += [(name, palette.STATE_COLORS[code]) for code, name in enumerate(STATE_NAMES)
                 if np.any(occupied & (cell_state == code))]
    if np.any(vessel):
        rows.append(("vessel", palette.VESSEL_COLOR))
    return rows


def immune_entries(glyph_classes: np.ndarray | None, glyphs: tuple[palette.ImmuneGlyph, ...] = palette.IMMUNE_GLYPHS) -> list[Entry]:
    """Legend rows ``(label, colour, glyph)`` for the immune glyph classes present, in :data:`viz.palette.IMMUNE_GLYPHS` order.

    Args:
        glyph_classes: ``int8`` glyph classes of the shown voxels (-1 for no
            immune cell; :func:`viz.palette.immune_glyph_classes`), or None.
        glyphs: the glyphs by class, labelled (a run's: :meth:`viz.rundir.RunData.immune_glyphs`).
    """
    if glyph_classes is None:
        return []
    present = set(np.unique(glyph_classes[glyph_classes >= 0]).tolist())
    return [(glyph.label, glyph.color, glyph) for code, glyph in enumerate(palette.glyphs_covering(glyph_classes, glyphs)) if code in present]


def marker_size(glyph: palette.ImmuneGlyph, size: float) -> float:
    """matplotlib marker size of ``glyph`` for a circle of ``size`` points: triangles larger, diamonds smaller, about equal areas."""
    return size * {"^": 1.15, "D": 0.85}.get(glyph.marker, 1.0)


def handles(rows: list[Entry], marker_size_pt: float = 6.0) -> list:
    """matplotlib legend handles for ``rows``: square patches, and markers (``marker_size_pt`` points) for immune glyphs."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    out = []
    for label, color, *glyph in rows:
        if glyph:
            (style,) = glyph
            edge = style.edge if style.edge != palette.TISSUE_COLOR else style.color  # a white edge would vanish on white
            out.append(Line2D([], [], linestyle="none", marker=style.marker, markersize=marker_size(style, marker_size_pt),
                              markeredgewidth=0.8,
                              markerfacecolor=palette.to_float(color), markeredgecolor=palette.to_float(edge), label=label))
        else:
            out.append(Patch(facecolor=palette.to_float(color), edgecolor="none", label=label))
    return out


def legend_rgba(rows: list[Entry], font_px: int, title: str | None = None) -> np.ndarray:
    """A legend drawn by matplotlib, for pasting onto a render.

    Args:
        rows: entries from :func:`entries`.
        font_px: text height in pixels.
        title: optional title line.

    Returns:
        ``uint8`` RGBA image of shape ``(height, width, 4)``, white box, opaque.
    """
    from PIL import Image

    figure_class = optional.matplotlib_figure_class("tme render")
    dpi = 100
    figure = figure_class(figsize=(4, 4), dpi=dpi)
    figure.legend(handles=handles(rows, 0.8 * font_px * 72 / dpi), loc="center", frameon=True, fontsize=font_px * 72 / dpi,
                  title=title, title_fontsize=font_px * 72 / dpi, handlelength=1.0, handleheight=1.0,
                  edgecolor="#999999", fancybox=False, framealpha=1.0)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.02, transparent=True)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGBA"))


def paste(image: np.ndarray, overlay: np.ndarray, top: int, right: int) -> np.ndarray:
    """Alpha-blend ``overlay`` (RGBA ``uint8``) onto ``image`` (RGB ``uint8``, ``(h, w, 3)``) at the top right.

    The overlay is cropped if it does not fit. Returns a new image.
    """
    out = image.copy()
    height = min(overlay.shape[0], image.shape[0] - top)
    width = min(overlay.shape[1], image.shape[1] - right)
    if height <= 0 or width <= 0:
        return out
    patch = overlay[:height, :width].astype(np.float32)
    alpha = patch[..., 3:4] / 255.0
    region = out[top:top + height, image.shape[1] - right - width:image.shape[1] - right].astype(np.float32)
    blended = alpha * patch[..., :3] + (1.0 - alpha) * region
    out[top:top + height, image.shape[1] - right - width:image.shape[1] - right] = np.round(blended).astype(np.uint8)
    return out


def wrapped(text: str, width: int) -> str:
    """``text`` with each of its lines broken into lines of at most ``width`` characters (``width`` >= 1), after a
    space, underscore, hyphen, slash, comma or semicolon where one falls in the line (arm and line names are
    identifiers, ``chemo_then_checkpoint``), else inside a word; spaces at a break are dropped."""
    out = []
    for paragraph in text.split("\n"):
        line = ""
        for piece in _BREAKABLE.findall(paragraph):
            while piece:
                if line and len(line + piece.rstrip()) > width:
                    out.append(line.rstrip())
                    line = ""
                    piece = piece.lstrip(" ")
                take = piece if len(line + piece.rstrip()) <= width else piece[:width - len(line)]
                line, piece = line + take, piece[len(take):]
        out.append(line.rstrip())
    return "\n".join(out)
