"""The colours of every figure: subclones, tumor cell states, vessels, tissue.

One palette serves pyvista renders and matplotlib figures alike, so clone 3
is the same colour in a 3-D render, a mid-plane slice and (later) a Muller
plot. Colours are 8-bit sRGB triples; :func:`to_float` gives the 0-1 floats
that matplotlib and pyvista also accept.

Clone colours are stable: clone ``i`` always gets ``clone_color(i)``,
whatever other clones a run holds. The first eight follow the Okabe-Ito
colour-blind-safe set (without its black and grey, which the necrotic
state and tissue use); past those, hues step by the golden angle at fixed
saturation and value, so neighbouring indices stay far apart in hue.

This module needs only NumPy.
"""
from __future__ import annotations

import colorsys

import numpy as np

from kernels.tumor import APOPTOTIC, CYCLING, NECROTIC, QUIESCENT, STATE_NAMES

RGB = tuple[int, int, int]

_BASE_CLONE_COLORS: tuple[RGB, ...] = (
    (0, 114, 178),    # blue
    (230, 159, 0),    # orange
    (0, 158, 115),    # bluish green
    (204, 121, 167),  # reddish purple
    (86, 180, 233),   # sky blue
    (213, 94, 0),     # vermillion
    (240, 228, 66),   # yellow
    (117, 112, 179),  # slate violet
)
_GOLDEN_ANGLE = 0.381966  # fraction of a turn

STATE_COLORS: dict[int, RGB] = {
    CYCLING: (44, 162, 95),     # green
    QUIESCENT: (49, 130, 189),  # blue
    APOPTOTIC: (240, 163, 10),  # amber
    NECROTIC: (64, 64, 64),     # dark grey
}
VESSEL_COLOR: RGB = (165, 15, 21)     # dark red
TISSUE_COLOR: RGB = (255, 255, 255)   # empty voxels in flat images
OUTLINE_COLOR: RGB = (150, 150, 150)  # domain box, scale bar in 3-D
#: Lines of whole-tumor measures in time-series figures (no clone is meant by them).
MEASURE_COLORS: dict[str, RGB] = {
    "primary": (0, 0, 0),           # the main line of a panel
    "reference": (120, 120, 120),   # what it is compared with (a random expectation, a second index)
    "resistance": (178, 24, 43),    # resistant fractions
    "division": (33, 102, 172),     # division rate
    "pdl1": (118, 42, 131),         # PD-L1
    "efflux": (140, 81, 10),        # drug efflux
}


def clone_color(index: int) -> RGB:
    """The colour of clone ``index`` (``index >= 0``), the same in every figure."""
    if index < 0:
        raise ValueError(f"clone index must be >= 0, got {index}")
    if index < len(_BASE_CLONE_COLORS):
        return _BASE_CLONE_COLORS[index]
    hue = ((index - len(_BASE_CLONE_COLORS)) * _GOLDEN_ANGLE + 0.05) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.85)
    return (round(r * 255), round(g * 255), round(b * 255))


def clone_table(n_clones: int) -> np.ndarray:
    """Colours of clones ``0 .. n_clones-1``: ``uint8`` array of shape ``(n_clones, 3)``."""
    return np.array([clone_color(index) for index in range(n_clones)], dtype=np.uint8).reshape(n_clones, 3)


def to_float(color: RGB) -> tuple[float, float, float]:
    """An 8-bit colour as 0-1 floats (matplotlib and pyvista colour)."""
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def to_hex(color: RGB) -> str:
    """An 8-bit colour as ``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*color)


def voxel_colors(clone: np.ndarray, cell_state: np.ndarray, vessel: np.ndarray, by: str) -> np.ndarray:
    """Colour of every voxel of a lattice, for flat images and voxel meshes.

    Args:
        clone: ``int32``, lattice shape: clone index, -1 where no tumor cell.
        cell_state: ``int8``, lattice shape: state code of the tumor cell.
        vessel: ``bool``, lattice shape: vessel voxels.
        by: ``"clone"``: tumor cells by clone, necrotic cells in the
            necrotic colour (dead cells have no clone behaviour left to show);
            ``"state"``: tumor cells by state.

    Returns:
        ``uint8`` array of shape ``lattice shape + (3,)``: tissue colour where
        empty, vessel colour at vessels, else the tumor cell's colour.
    """
    if by not in ("clone", "state"):
        raise ValueError(f"by must be 'clone' or 'state', got {by!r}")
    occupied = clone >= 0
    out = np.empty(clone.shape + (3,), dtype=np.uint8)
    out[...] = TISSUE_COLOR
    out[vessel] = VESSEL_COLOR
    states = np.array([STATE_COLORS[code] for code in range(len(STATE_NAMES))], dtype=np.uint8)
    if by == "clone":
        table = clone_table(int(clone.max()) + 1 if occupied.any() else 0)
        out[occupied] = table[clone[occupied]]
        necrotic = occupied & (cell_state == NECROTIC)
        out[necrotic] = states[NECROTIC]
    else:
        out[occupied] = states[cell_state[occupied]]
    return out
