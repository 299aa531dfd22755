"""The colours of every figure: subclones, tumor cell states, vessels, tissue, immune cells; arms, drugs, lines, responses.

One palette serves pyvista renders and matplotlib figures alike, so clone 3
is the same colour in a 3-D render, a mid-plane slice and (later) a Muller
plot. Colours are 8-bit sRGB triples; :func:`to_float` gives the 0-1 floats
that matplotlib and pyvista also accept.

Clone colours are stable: clone ``i`` always gets ``clone_color(i)``,
whatever other clones a run holds. The first eight follow the Okabe-Ito
colour-blind-safe set (without its black and grey, which the necrotic
state and tissue use); past those, hues step by the golden angle at fixed
saturation and value, so neighbouring indices stay far apart in hue.

Immune cells are glyphs drawn over the voxels (:data:`IMMUNE_GLYPHS`):
effector T cells black, exhausted T cells light grey, Tregs magenta, MDSCs
lime, each with a contrasting edge and its own shape. Black and light grey
differ in lightness, magenta and lime in hue and lightness, so the four
stay apart in every common colour-vision deficiency; none is an Okabe-Ito
clone colour, a cell state colour or the vessel red, and the shape tells
them from any later clone colour.

Treatment figures have four more sets, each stable by position and apart
from the others where they meet in one figure: treatment arms
(:func:`arm_color`, by the arm's place in the comparison; dark and
saturated, for lines on white, and away from the Okabe-Ito clone colours),
drugs (:func:`drug_color`, by the drug's place in the config's ``drugs``;
away from the arm colours, since dosing bars sit in an arm's panel),
lines of therapy (:func:`line_color`, by the line's place among the
config's lines; light, so markers read on top of them; a line without
doses is pale grey) and response categories (:data:`RESPONSE_COLORS`:
red-yellow-green from progression to complete response, the same for the
RECIST, iRECIST and myeloma categories of equal rank).

This module needs only NumPy.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from abm.rundir import SUPPRESSOR_LABELS, SUPPRESSOR_PRESETS
from kernels.immune import T_CELL
from kernels.layers import EXHAUSTED
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


@dataclass(frozen=True)
class ImmuneGlyph:
    """How one kind of immune cell is drawn.

    Attributes:
        label: legend text.
        color: fill colour.
        edge: edge colour in flat views and figures (in 3-D lighting shades the solid).
        marker: matplotlib marker of flat views, figures and legends:
            ``o`` circle, ``^`` triangle, ``D`` diamond.
        solid: the 3-D glyph, the marker's solid: ``sphere``, ``tetrahedron``, ``octahedron``.
        line: line colour in time-series figures (darker where the fill would be faint on white).
        line_style: matplotlib line style there.
    """

    label: str
    color: RGB
    edge: RGB
    marker: str
    solid: str
    line: RGB
    line_style: str = "-"


#: Glyphs of the role ``t_cell``: effector and exhausted T cells (glyph classes 0 and 1).
T_CELL_GLYPHS: tuple[ImmuneGlyph, ...] = (
    ImmuneGlyph("T cell, effector", (0, 0, 0), (255, 255, 255), "o", "sphere", (0, 0, 0)),
    ImmuneGlyph("T cell, exhausted", (200, 200, 200), (0, 0, 0), "o", "sphere", (120, 120, 120), "--"),
)
#: Styles of the role ``suppressor`` by slot (the config's ``suppressor_slots``; kind code = slot + 1), cycled past the
#: last: (fill, marker, solid, line). The first two are the preset types' slots.
SUPPRESSOR_STYLES: tuple[tuple[RGB, str, str, RGB], ...] = (
    ((204, 0, 204), "^", "tetrahedron", (204, 0, 204)),   # magenta
    ((175, 220, 0), "D", "octahedron", (110, 150, 0)),    # lime
    ((0, 200, 200), "^", "tetrahedron", (0, 140, 140)),   # cyan
    ((140, 70, 0), "D", "octahedron", (140, 70, 0)),      # brown
)
#: First glyph class of the suppressors: class ``GLYPH_SUPPRESSOR_FIRST + slot``.
GLYPH_SUPPRESSOR_FIRST = len(T_CELL_GLYPHS)
GLYPH_T_EFFECTOR, GLYPH_T_EXHAUSTED = range(GLYPH_SUPPRESSOR_FIRST)


def suppressor_label(name: str) -> str:
    """Legend text of suppressor type ``name``: a preset's label (:data:`abm.config.SUPPRESSOR_LABELS`), else the name."""
    return SUPPRESSOR_LABELS.get(name, name)


def suppressor_glyph(slot: int, label: str) -> ImmuneGlyph:
    """The glyph of the suppressor type in ``slot``, labelled ``label``."""
    fill, marker, solid, line = SUPPRESSOR_STYLES[slot % len(SUPPRESSOR_STYLES)]
    return ImmuneGlyph(label, fill, (0, 0, 0), marker, solid, line)


def immune_glyphs(slot_names: list[str] | tuple[str, ...] = tuple(SUPPRESSOR_PRESETS.values())) -> tuple[ImmuneGlyph, ...]:
    """Glyphs by glyph class: the T cells', then one per suppressor slot named ``slot_names`` (default: the preset types)."""
    return T_CELL_GLYPHS + tuple(suppressor_glyph(slot, suppressor_label(name)) for slot, name in enumerate(slot_names))


#: Glyph classes of immune cells, by code (the index), for the preset suppressor slots: see :func:`immune_glyph_classes`
#: (a run's own, with every slot it has: :func:`immune_glyphs`).
IMMUNE_GLYPHS: tuple[ImmuneGlyph, ...] = immune_glyphs()


def glyphs_covering(classes: np.ndarray | None, glyphs: tuple[ImmuneGlyph, ...] = IMMUNE_GLYPHS) -> tuple[ImmuneGlyph, ...]:
    """``glyphs``, extended by suppressor glyphs (labelled by slot) to cover every glyph class in ``classes``."""
    highest = int(classes.max()) if classes is not None and np.size(classes) else -1
    return glyphs + tuple(suppressor_glyph(code - GLYPH_SUPPRESSOR_FIRST, f"suppressor {code - GLYPH_SUPPRESSOR_FIRST}")
                          for code in range(len(glyphs), highest + 1))


def immune_glyph_classes(immune: np.ndarray, immune_state: np.ndarray, agent_kinds: np.ndarray) -> np.ndarray:
    """The glyph class (an index of :data:`IMMUNE_GLYPHS`) of every voxel's immune cell.

    Args:
        immune: ``int32``: immune agent index, -1 where no immune cell.
        immune_state: ``int8``, same shape: ``EFFECTOR`` or ``EXHAUSTED`` (:mod:`kernels.immune`).
        agent_kinds: ``int8 (n_agents,)``: each agent's kind code (``T_CELL``, or a suppressor type's: slot + 1).

    Returns:
        ``int8``, the shape of ``immune``: -1 where no immune cell (or an
        agent index the table lacks), else the glyph class.
    """
    kinds = np.asarray(agent_kinds, dtype=np.int8)
    known = (immune >= 0) & (immune < kinds.size)
    kind = np.full(immune.shape, -1, dtype=np.int8)
    kind[known] = kinds[immune[known]]
    out = np.full(immune.shape, -1, dtype=np.int8)
    t_cell = kind == T_CELL
    out[t_cell & (immune_state != EXHAUSTED)] = GLYPH_T_EFFECTOR
    out[t_cell & (immune_state == EXHAUSTED)] = GLYPH_T_EXHAUSTED
    suppressor = kind > T_CELL
    out[suppressor] = GLYPH_SUPPRESSOR_FIRST + kind[suppressor] - 1
    return out


_ARM_COLORS: tuple[RGB, ...] = (  # Paul Tol's "muted" set, reordered: dark colours first
    (51, 34, 136),    # indigo
    (68, 170, 153),   # teal
    (204, 102, 119),  # rose
    (153, 153, 51),   # olive
    (136, 34, 85),    # wine
    (17, 119, 51),    # green
    (170, 68, 153),   # purple
    (136, 204, 238),  # cyan
    (221, 204, 119),  # sand
)
_DRUG_COLORS: tuple[RGB, ...] = (
    (33, 102, 172),   # blue
    (191, 91, 23),    # burnt orange
    (240, 2, 127),    # magenta
    (102, 37, 6),     # dark brown
    (0, 0, 0),        # black
    (120, 120, 120),  # grey
)
_LINE_COLORS: tuple[RGB, ...] = (  # light: bars under markers
    (119, 170, 221),  # light blue
    (187, 153, 221),  # lilac
    (153, 221, 255),  # light cyan
    (255, 170, 187),  # pink
    (204, 187, 153),  # tan
    (170, 170, 204),  # lavender grey
)
#: A line of therapy without doses (observation, a treatment holiday).
NO_DOSE_LINE_COLOR: RGB = (221, 221, 221)
#: Response categories (abm.rundir.RESPONSE_CATEGORIES), ordinal: green for complete response to red for progression.
RESPONSE_COLORS: dict[str, RGB] = {
    "CR": (26, 152, 80), "iCR": (26, 152, 80),
    "VGPR": (102, 189, 99),
    "PR": (166, 217, 106), "iPR": (166, 217, 106),
    "MR": (217, 239, 139),
    "SD": (254, 224, 139), "iSD": (254, 224, 139),
    "iUPD": (253, 174, 97),
    "PD": (215, 48, 39), "iCPD": (215, 48, 39),
}
UNKNOWN_RESPONSE_COLOR: RGB = (200, 200, 200)


def _extended(base: tuple[RGB, ...], index: int, saturation: float, value: float, what: str) -> RGB:
    """``base[index]``, and past it golden-angle hues at fixed saturation and value."""
    if index < 0:
        raise ValueError(f"{what} index must be >= 0, got {index}")
    if index < len(base):
        return base[index]
    hue = ((index - len(base)) * _GOLDEN_ANGLE + 0.12) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def arm_color(index: int) -> RGB:
    """The colour of the ``index``-th treatment arm of a comparison (``index >= 0``), the same in every figure."""
    return _extended(_ARM_COLORS, index, 0.7, 0.6, "arm")


def drug_color(index: int) -> RGB:
    """The colour of the ``index``-th drug of a config's ``drugs`` (``index >= 0``): dosing bars, plasma levels."""
    return _extended(_DRUG_COLORS, index, 0.9, 0.5, "drug")


def line_color(index: int, doses: bool = True) -> RGB:
    """The colour of the ``index``-th line of therapy (``index >= 0``); :data:`NO_DOSE_LINE_COLOR` for a line without doses."""
    if not doses:
        return NO_DOSE_LINE_COLOR
    return _extended(_LINE_COLORS, index, 0.3, 0.95, "line")


def response_color(category: str | None) -> RGB:
    """The colour of a response category (:data:`RESPONSE_COLORS`; light grey for None or an unknown one)."""
    return RESPONSE_COLORS.get(category, UNKNOWN_RESPONSE_COLOR) if category else UNKNOWN_RESPONSE_COLOR


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
