"""3-D renders and animations of run snapshots with pyvista, off-screen.

A render shows one snapshot:

* views: ``iso`` (the whole tumor from the +x+y+z corner), ``cutaway`` (the
  same with the octant in front of the tumor's centroid removed, so its core
  shows), ``slice`` (the plane ``z`` through the centroid, seen flat). A 2-D
  run always renders flat.
* colours: ``clone`` (tumor cells by subclone, necrotic cells in the necrotic
  colour), ``state`` (by cell state), ``field:NAME`` (in 3-D the tumor voxels
  coloured by the field's local value with translucent isosurfaces of the
  field; flat, the field over the plane with labelled isolines and the
  tumor's outline). A field's colour range is :attr:`RenderOptions.clim`, by
  default the snapshot's range for one image and the range over every frame
  for an animation (so a colour means one value in every frame); its colour
  bar is labelled at round values (:func:`viz.scales.round_ticks`), and the
  isolines and isosurfaces are at round levels of that range.
* vessels as spheres (as voxels in flat clone and state views), the domain's
  outline, a scale bar in um, the time stamp, a legend or a colour bar. The
  legend and the colour bar are in a column of their own at the right
  (:data:`KEY_COLUMN`), the scene framed left of it, so they never cover it.
* immune cells (runs with them) as glyphs in every colouring: effector and
  exhausted T cells as spheres, Tregs as tetrahedra, MDSCs as octahedra in
  3-D; circles, triangles and diamonds with a contrasting edge, flat
  (:data:`viz.palette.IMMUNE_GLYPHS`). In 3-D only cells in the shown part
  are drawn (the cut-away octant's are not) and a cell inside the drawn tumor
  voxels stays hidden by them, as the tumor's own interior does; a cell on a
  vessel voxel (it has just entered) sits beside the vessel's sphere, towards
  the viewer. The legend lists the kinds drawn. Above
  :attr:`RenderOptions.max_immune` cells to draw, a seeded random 1 in k of
  them is drawn (the same subset every time) and the legend says so
  (:func:`thin_immune`), so a scene with thousands of T cells stays legible.

Camera placement depends on the domain only, so frames of an animation line up.
Colours come from :mod:`viz.palette`, so they match the matplotlib figures.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
from tqdm import tqdm

from viz import legend, optional, palette
from viz.output import IMAGE_SUFFIXES, MOVIE_SUFFIXES, atomic_output
from viz.rundir import RunData, Snapshot, VizError
from viz.scales import contour_levels, round_ticks, scale_bar_length_um

VIEWS = ("iso", "cutaway", "slice")
FIELD_COLORMAP = "viridis"  #: the default ``--cmap``
_PURPOSE = "tme render"
_MATERIAL = {"ambient": 0.3, "diffuse": 0.75, "specular": 0.0}  # voxel faces of every orientation stay readable
_GLYPH_MATERIAL = {"ambient": 0.35, "diffuse": 0.7, "specular": 0.35, "specular_power": 20.0}  # highlights give black spheres form
#: 3-D glyph size, voxel edges: the sphere's radius (other solids have about its volume). Up to 0.7 a glyph
#: stays within its voxel and the six face neighbours, so one inside the drawn tumor is hidden.
GLYPH_RADIUS = 0.7
#: Flat glyph size, voxel edges: the circle's radius with its edge (other markers have about its area); below 0.5, so
#: the voxel's own colour shows around it.
MARKER_RADIUS = 0.42
_MARKER_EDGE = 0.22  # of the marker's radius
_FINE_SPHERES = 5_000  # above this many immune cells drawn in 3-D, their spheres are coarser
#: The default :attr:`RenderOptions.max_immune` (``tme render --max-immune``).
MAX_IMMUNE = 2_000
_THINNING_SEED = 16  # the subset of immune cells drawn above max_immune: random, but the same in every render
_MARKER_SIDES = {"o": (24, 90.0), "^": (3, 90.0), "D": (4, 0.0)}  # polygon sides, first vertex's angle (degrees)
_MARKER_SCALE = {"o": 1.0, "^": 1.35, "D": 1.12}  # equal areas: triangle and square inscribed in larger circles
#: The column at the right of every render, a fraction of its width, that holds the legend and the colour bar: the
#: scene is framed left of it, so neither covers the domain; the same in every frame, so an animation's frames line up.
KEY_COLUMN = 0.25


@dataclass(frozen=True)
class RenderOptions:
    """What a render shows.

    Attributes:
        view: one of :data:`VIEWS`.
        color: ``"clone"``, ``"state"`` or ``"field:NAME"``.
        size: image ``(width, height)`` in pixels.
        clim: a field's colour range ``(low, high)`` in its units; None for the snapshot's own range (:func:`render`
            sets the range over every frame for an animation). Only with ``field:NAME``.
        cmap: a field's colormap, a matplotlib colormap name; None for :data:`FIELD_COLORMAP`. Only with
            ``field:NAME``.
        max_immune: the most immune cells drawn; above it a seeded random 1 in k of those in view
            (:func:`thin_immune`), noted in the legend. 0 draws every one.
    """

    view: str = "iso"
    color: str = "clone"
    size: tuple[int, int] = (1280, 960)
    clim: tuple[float, float] | None = None
    cmap: str | None = None
    max_immune: int = MAX_IMMUNE

    def __post_init__(self) -> None:
        if self.max_immune < 0:
            raise VizError(f"--max-immune {self.max_immune}: give 0 (draw every immune cell) or a positive count")
        if self.view not in VIEWS:
            raise VizError(f"--view {self.view!r}: choose one of {', '.join(VIEWS)}")
        if self.color not in ("clone", "state") and not (self.color.startswith("field:") and len(self.color) > 6):
            raise VizError(f"--color {self.color!r}: choose clone, state or field:NAME (e.g. field:oxygen)")
        if min(self.size) < 64:
            raise VizError(f"--size {self.size[0]}x{self.size[1]}: at least 64 pixels each way")
        if self.field is None and (self.clim is not None or self.cmap is not None):
            option = "--clim" if self.clim is not None else "--cmap"
            raise VizError(f"{option} sets a field's colours: use it with --color field:NAME, not --color {self.color}")
        if self.clim is not None and not (len(self.clim) == 2 and all(map(math.isfinite, self.clim))
                                          and self.clim[0] < self.clim[1]):
            raise VizError(f"--clim {','.join(f'{value:g}' for value in self.clim)}: give LOW,HIGH, two finite "
                           f"numbers with LOW < HIGH, e.g. --clim 0,40")
        colormaps = optional.matplotlib(_PURPOSE).colormaps if self.cmap is not None else ()
        if self.cmap is not None and self.cmap not in colormaps:
            close = difflib.get_close_matches(self.cmap, list(colormaps), n=3)
            raise VizError(f"--cmap {self.cmap!r}: not a matplotlib colormap; "
                           f"{'did you mean ' + ', '.join(close) if close else 'e.g. viridis, plasma, cividis, magma, gray'}")

    @property
    def field(self) -> str | None:
        """The field name of ``field:NAME``, else None."""
        return self.color[len("field:"):] if self.color.startswith("field:") else None

    @property
    def colormap(self) -> str:
        """The field's colormap: :attr:`cmap`, else :data:`FIELD_COLORMAP`."""
        return self.cmap or FIELD_COLORMAP

    def field_range(self, snapshot: Snapshot) -> tuple[float, float]:
        """The colour range of the field in ``snapshot``: :attr:`clim`, else the snapshot's own range."""
        return self.clim if self.clim is not None else _field_range([snapshot], self.field)


def parse_clim(text: str) -> tuple[float, float]:
    """``--clim LOW,HIGH`` as two floats (checked by :class:`RenderOptions`).

    Raises:
        VizError: not two comma-separated numbers.
    """
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise VizError(f"--clim {text!r}: give LOW,HIGH, two finite numbers with LOW < HIGH, e.g. --clim 0,40 "
                       f"(--clim=-1,1 for a negative LOW)") from None
    return low, high


def _image_grid(pv: ModuleType, shape: tuple[int, ...], dx_um: float):
    """An ImageData whose cells are the voxels of ``shape`` (``(ny, nx)`` or ``(nz, ny, nx)``), in um, origin 0."""
    cells = tuple(reversed(shape)) + (0,) * (3 - len(shape))
    return pv.ImageData(dimensions=tuple(extent + 1 if extent else 1 for extent in cells), spacing=(dx_um,) * 3)


def _add_vessels(pv: ModuleType, plotter, centres_um: np.ndarray, radius_um: float, lighting: bool) -> None:
    """Vessels as spheres at ``centres_um`` (``float (n, 3)``, um)."""
    if len(centres_um) == 0:
        return
    sphere = pv.Sphere(radius=radius_um, theta_resolution=10, phi_resolution=10)
    plotter.add_mesh(pv.PolyData(centres_um).glyph(geom=sphere, scale=False, orient=False),
                     color=palette.to_hex(palette.VESSEL_COLOR), lighting=lighting)


def _glyph_solid(pv: ModuleType, name: str, radius: float, count: int):
    """The 3-D glyph ``name`` (:attr:`viz.palette.ImmuneGlyph.solid`) at the origin, about as large as a sphere of ``radius``.

    Spheres are coarser when ``count`` (how many are drawn) is large: with
    tens of thousands of cells each is a few pixels wide, and software
    OpenGL's time goes with the triangles.
    """
    if name == "sphere":
        resolution = 10 if count <= _FINE_SPHERES else 6
        return pv.Sphere(radius=radius, theta_resolution=resolution, phi_resolution=resolution)
    if name == "tetrahedron":
        return pv.Tetrahedron(radius=1.45 * radius)
    if name == "octahedron":
        return pv.Octahedron(radius=1.3 * radius)
    raise ValueError(f"unknown glyph solid {name!r}")


def _marker_polygon(pv: ModuleType, marker: str, radius: float, z: float):
    """A filled flat marker (``o``, ``^``, ``D``) of about the area of a circle of ``radius``, at height ``z``."""
    sides, start = _MARKER_SIDES[marker]
    angles = np.deg2rad(start + 360.0 * np.arange(sides) / sides)
    outer = radius * _MARKER_SCALE[marker]
    points = np.column_stack([outer * np.cos(angles), outer * np.sin(angles), np.full(sides, z)])
    return pv.PolyData(points, faces=np.concatenate([[sides], np.arange(sides)]))


def _hidden_in_tumor(drawn: np.ndarray) -> np.ndarray:
    """``bool``, lattice shape: voxels whose six face neighbours are all drawn tumor voxels (a glyph there cannot show)."""
    padded = np.pad(drawn, 1, constant_values=False)
    inner = tuple(slice(1, -1) for _ in drawn.shape)
    hidden = np.ones(drawn.shape, dtype=bool)
    for axis in range(drawn.ndim):
        for step in (-1, 1):
            hidden &= np.roll(padded, step, axis=axis)[inner]
    return hidden


def thin_immune(classes: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """A seeded random 1 in k of the immune cells of ``classes`` when there are more than ``limit``.

    Args:
        classes: glyph classes (``int8``, any shape, -1 for none) of the cells that would be drawn.
        limit: the most cells to draw; 0 for no limit.

    Returns:
        ``(kept, k)``: ``classes`` with -1 except at the ``n // k`` cells kept (``n`` cells, ``k = ceil(n / limit)``,
        so at most ``limit``), chosen at random from a fixed seed; and ``k``, 1 where every cell is kept.
    """
    cells = np.flatnonzero(classes >= 0)
    if limit == 0 or cells.size <= limit:
        return classes, 1
    k = -(-cells.size // limit)
    keep = np.random.default_rng(_THINNING_SEED).choice(cells, size=cells.size // k, replace=False)
    kept = np.full_like(classes, -1)
    kept.flat[keep] = classes.flat[keep]
    return kept, k


def _add_immune_solids(pv: ModuleType, plotter, classes: np.ndarray, drawn: np.ndarray, vessel: np.ndarray,
                       dx: float, limit: int) -> tuple[np.ndarray, int]:
    """Immune cells of ``classes`` (glyph classes, -1 for none; only the shown part) as lit solids.

    Cells whose face neighbours are all in ``drawn`` (the tumor voxels drawn)
    are left out: the tumor's surface would hide them. A cell sharing a drawn
    tumor voxel is a sphere whatever its kind, so it shows through the
    voxel's exposed faces as a round cap of its colour (a tetrahedron's would
    be a sliver). A cell on a vessel voxel moves towards the viewer (+x+y+z)
    so the vessel's sphere does not swallow it. Of more than ``limit`` cells
    in view, 1 in k is drawn (:func:`thin_immune`).

    Returns:
        ``(drawn, k)``: the glyph classes of the cells drawn (``classes`` with -1 where left out), and the
        thinning's k.
    """
    classes, k = thin_immune(np.where(_hidden_in_tumor(drawn), -1, classes).astype(np.int8), limit)
    visible = classes >= 0
    toward_viewer = np.full(3, 0.5 / np.sqrt(3.0))
    for code, glyph in enumerate(palette.glyphs_covering(classes)):
        z, y, x = np.nonzero(visible & (classes == code))
        if z.size == 0:
            continue
        centres = np.column_stack([x + 0.5, y + 0.5, z + 0.5])
        centres[vessel[z, y, x]] += toward_viewer
        embedded = drawn[z, y, x]
        for solid, where in ((glyph.solid, ~embedded), ("sphere", embedded)):
            if where.any():
                geometry = _glyph_solid(pv, solid, GLYPH_RADIUS * dx, int(visible.sum()))
                plotter.add_mesh(pv.PolyData(centres[where] * dx).glyph(geom=geometry, scale=False, orient=False),
                                 color=palette.to_hex(glyph.color), lighting=True, **_GLYPH_MATERIAL)
    return classes, k


def _add_immune_markers(pv: ModuleType, plotter, classes: np.ndarray, dx: float, z: float) -> None:
    """Immune cells of the plane ``classes`` (glyph classes, ``(ny, nx)``) as flat markers with an edge, at height ``z``."""
    for code, glyph in enumerate(palette.glyphs_covering(classes)):
        rows, cols = np.nonzero(classes == code)
        if rows.size == 0:
            continue
        centres = pv.PolyData(np.column_stack([(cols + 0.5) * dx, (rows + 0.5) * dx, np.zeros(rows.size)]))
        radius = MARKER_RADIUS * dx
        for color, size, height in ((glyph.edge, radius, z), (glyph.color, radius * (1.0 - _MARKER_EDGE), z + 0.01 * dx)):
            plotter.add_mesh(centres.glyph(geom=_marker_polygon(pv, glyph.marker, size, height), scale=False, orient=False),
                             color=palette.to_hex(color), lighting=False)


def _label_isolines(plotter, lines, levels: np.ndarray, extent: tuple[float, float], z: float) -> None:
    """Label each level of the isolines ``lines`` (a contour with point data ``field``) with its value, once, at its
    point farthest inside the plane ``extent`` (width, height; away from the edges, the legend and the colour bar),
    at height ``z``."""
    points, values = lines.points, lines.point_data["field"]
    inside = np.minimum(points[:, :2], np.asarray(extent) - points[:, :2]).min(axis=1)
    tolerance = 1e-6 * max(1.0, float(np.abs(levels).max()))
    where, texts = [], []
    for level in levels:
        on_line = np.flatnonzero(np.abs(values - level) <= tolerance)
        if on_line.size:
            where.append(points[on_line[np.argmax(inside[on_line])]] * (1, 1, 0) + (0, 0, z))
            texts.append(f"{level:g}")
    if where:
        plotter.add_point_labels(np.array(where), texts, shape="rounded_rect", shape_color="white", shape_opacity=0.75,
                                 show_points=False, always_visible=True, font_size=max(10, plotter.window_size[1] // 50),
                                 text_color="black", justification_horizontal="center", justification_vertical="center")


def _field_label(run: RunData, name: str) -> str:
    units = run.field_units(name)
    return f"{name} ({units})" if units else name


def _add_scale_bar(pv: ModuleType, plotter, start: np.ndarray, length_um: float, thickness_um: float, below: np.ndarray) -> None:
    """A bar of ``length_um`` along x from ``start`` (um), labelled at ``below`` (um)."""
    bar = pv.Box(bounds=(start[0], start[0] + length_um, start[1] - thickness_um, start[1], start[2], start[2] + thickness_um))
    plotter.add_mesh(bar, color="black", lighting=False)
    plotter.add_point_labels(
        below[None, :], [f"{length_um:g} µm"], shape=None, show_points=False, always_visible=True,
        font_size=max(12, plotter.window_size[1] // 45), text_color="black", bold=False,
        justification_horizontal="center", justification_vertical="top")


def _add_colored_voxels(pv: ModuleType, plotter, run: RunData, snapshot: Snapshot, options: RenderOptions, grid, voxels: np.ndarray,
                        values: dict[str, np.ndarray], lighting: bool) -> None:
    """Add the cells ``voxels`` (flat indices) of ``grid``, coloured as ``options.color`` asks.

    ``values`` maps ``"rgb"`` to ``uint8 (n_cells, 3)`` colours, or the field
    label to ``float (n_cells,)`` values (then a colour bar is drawn).
    """
    if voxels.size == 0:
        return
    for name, array in values.items():
        grid.cell_data[name] = array
    mesh = grid if voxels.size == grid.n_cells else grid.extract_cells(voxels)
    material = _MATERIAL if lighting else {}
    if lighting:
        mesh = _surface(pv, mesh)
    if "rgb" in values:
        plotter.add_mesh(mesh, scalars="rgb", rgb=True, lighting=lighting, show_scalar_bar=False, **material)
    else:
        (label,) = values
        clim = options.field_range(snapshot)
        plotter.add_mesh(mesh, scalars=label, cmap=options.colormap, clim=clim,
                         lighting=lighting, scalar_bar_args=_scalar_bar_args(label, plotter), **material)
        label_scalar_bar(plotter.scalar_bars[label], round_ticks(*clim))


def _surface(pv: ModuleType, mesh):
    """The outer faces of a voxel mesh (VTK's dataset surface filter), as pyvista PolyData."""
    from vtkmodules.vtkFiltersGeometry import vtkDataSetSurfaceFilter

    surface_filter = vtkDataSetSurfaceFilter()
    surface_filter.SetInputData(mesh)
    surface_filter.Update()
    return pv.wrap(surface_filter.GetOutput())


def _field_range(snapshots: list[Snapshot], name: str) -> tuple[float, float]:
    """The lowest and highest value of field ``name`` over ``snapshots`` (``(low, low + 1)`` where it is uniform)."""
    low = min(float(snapshot.field(name).min()) for snapshot in snapshots)
    high = max(float(snapshot.field(name).max()) for snapshot in snapshots)
    return (low, high) if high > low else (low, low + 1.0)


def _scalar_bar_args(label: str, plotter) -> dict:
    height = plotter.window_size[1]
    return {"title": label, "vertical": True, "position_x": 1.0 - KEY_COLUMN + 0.06, "position_y": 0.12, "height": 0.5,
            "width": 0.06,
            "color": "black", "title_font_size": max(12, height // 40), "label_font_size": max(10, height // 50),
            "fmt": "%g"}


def label_scalar_bar(bar, ticks: np.ndarray) -> None:
    """Label the VTK scalar bar actor ``bar`` at ``ticks`` only (round values: VTK would space its labels evenly from
    the range's ends, at values such as 9.6, 16.7, 23.8)."""
    from vtkmodules.vtkCommonCore import vtkDoubleArray

    labels = vtkDoubleArray()
    for tick in ticks:
        labels.InsertNextValue(float(tick))
    bar.SetCustomLabels(labels)
    bar.SetUseCustomLabels(True)


def _leave_key_column(plotter) -> None:
    """Move the parallel-projection camera, framed on the scene, so that the scene lies left of :data:`KEY_COLUMN`:
    shifted left, and zoomed out where that part of the window is narrower than tall (a scene's framing keeps it
    within a square of the window's height, the camera's parallel scale either side of the centre)."""
    camera = plotter.camera
    width, height = plotter.window_size
    aspect = width / height
    scale = camera.parallel_scale
    if (1.0 - KEY_COLUMN) * aspect < 1.0:
        scale /= (1.0 - KEY_COLUMN) * aspect
        camera.parallel_scale = scale
    position, focus, up = (np.asarray(vector, dtype=float) for vector in (camera.position, camera.focal_point, camera.up))
    right = np.cross(focus - position, up)
    shift = right / np.linalg.norm(right) * KEY_COLUMN * scale * aspect  # the view's centre to the left part's centre
    camera.position, camera.focal_point = tuple(position + shift), tuple(focus + shift)


def _key(rows: list, height: int, width: int, title: str | None):
    """The legend image of ``rows`` (under ``title``, if any) for a render ``height`` pixels high, shrunk where it
    is wider than :data:`KEY_COLUMN` of ``width`` (less margins); and the margin, pixels."""
    from PIL import Image

    margin = height // 60
    overlay = legend.legend_rgba(rows, font_px=max(11, height // 40), title=title)
    room = int(KEY_COLUMN * width) - 2 * margin
    if overlay.shape[1] > room > 0:
        size = (room, max(1, round(overlay.shape[0] * room / overlay.shape[1])))
        overlay = np.asarray(Image.fromarray(overlay).resize(size, Image.Resampling.LANCZOS))
    return overlay, margin


def _voxel_values(run: RunData, snapshot: Snapshot, options: RenderOptions, section: tuple) -> dict[str, np.ndarray]:
    """Per-voxel colours or field values of ``snapshot`` restricted to ``section`` (an index tuple), flattened."""
    if options.field is None:
        rgb = palette.voxel_colors(snapshot.clone[section], snapshot.cell_state[section], snapshot.vessel[section], options.color)
        return {"rgb": rgb.reshape(-1, 3)}
    return {_field_label(run, options.field): snapshot.field(options.field)[section].ravel().astype(np.float32)}


#: Voxels shown, a caption note, glyph classes of the immune cells drawn, 1 in how many immune cells is drawn.
_Scene = tuple[np.ndarray, str, np.ndarray | None, int]


def _flat_scene(pv: ModuleType, plotter, run: RunData, snapshot: Snapshot, options: RenderOptions) -> _Scene:
    """The 2-D lattice, or the 3-D plane through the tumor centroid, seen from +z.

    Returns:
        ``(shown, where, immune, k)``: the voxels drawn (bool, lattice shape),
        a note on the plane, the glyph classes of the immune cells drawn
        (``int8``, lattice shape, -1 for none; None without immune arrays),
        and 1 in how many immune cells of the plane is drawn (:func:`thin_immune`).
    """
    dx = snapshot.dx_um
    shown = np.zeros(snapshot.shape, dtype=bool)
    if len(snapshot.shape) == 3:
        z_index = snapshot.tumor_center_index()[0]
        section: tuple = (z_index,)
        where = f"plane z = {(z_index + 0.5) * dx:g} µm"
    else:
        section, where = (), ""
    shown[section] = True
    plane_shape = snapshot.clone[section].shape
    ny, nx = plane_shape
    grid = _image_grid(pv, plane_shape, dx)
    _add_colored_voxels(pv, plotter, run, snapshot, options, grid, np.arange(nx * ny), _voxel_values(run, snapshot, options, section), False)
    if options.field is not None:
        centres = pv.ImageData(dimensions=(nx, ny, 1), spacing=(dx,) * 3, origin=(dx / 2, dx / 2, 0.0))
        values = snapshot.field(options.field)[section]
        centres.point_data["field"] = values.ravel()
        centres.point_data["tumor"] = (snapshot.clone[section] >= 0).ravel().astype(np.float32)
        levels = contour_levels(*options.field_range(snapshot))
        if levels.size:
            lines = centres.contour(list(levels), scalars="field")
            if lines.n_points:
                plotter.add_mesh(lines, color="white", line_width=1.5, lighting=False)
                _label_isolines(plotter, lines, levels, (nx * dx, ny * dx), 1.5 * dx)
        if np.any(centres.point_data["tumor"] > 0):
            plotter.add_mesh(centres.contour([0.5], scalars="tumor"), color="black", line_width=2.5, lighting=False)
        rows, cols = np.nonzero(snapshot.vessel[section])
        _add_vessels(pv, plotter, np.column_stack([(cols + 0.5) * dx, (rows + 0.5) * dx, np.full(rows.size, dx)]), 0.45 * dx, False)
    classes, thinned = run.immune_glyph_classes(snapshot), 1
    if classes is not None:
        plane, thinned = thin_immune(classes[section], options.max_immune)
        _add_immune_markers(pv, plotter, plane, dx, 2.0 * dx)  # above the field view's vessel spheres
        classes = np.full(snapshot.shape, -1, dtype=np.int8)
        classes[section] = plane
    plotter.add_mesh(grid.outline().translate((0.0, 0.0, 0.05 * dx)), color=palette.to_hex(palette.OUTLINE_COLOR), lighting=False)
    width, height = nx * dx, ny * dx
    length = scale_bar_length_um(width)
    gap = 0.04 * max(width, height)
    _add_scale_bar(pv, plotter, np.array([0.0, -gap, 0.0]), length, 0.012 * max(width, height),
                   np.array([length / 2, -1.6 * gap, 0.0]))
    plotter.view_xy()
    plotter.enable_parallel_projection()
    plotter.reset_camera()
    plotter.camera.zoom(1.1)
    return shown, where, classes, thinned


def _octant(snapshot: Snapshot) -> np.ndarray:
    """``bool``, lattice shape: the voxels in front of the tumor centroid (x, y and z all beyond it)."""
    cz, cy, cx = snapshot.tumor_center_index()
    nz, ny, nx = snapshot.shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    return (z >= cz) & (y >= cy) & (x >= cx)


def _volume_scene(pv: ModuleType, plotter, run: RunData, snapshot: Snapshot, options: RenderOptions) -> _Scene:
    """Tumor voxels as a lit surface, vessels as spheres, immune glyphs, field isosurfaces; iso or cutaway view.

    Returns ``(shown, where, immune, k)`` as :func:`_flat_scene` does.
    """
    dx = snapshot.dx_um
    nz, ny, nx = snapshot.shape
    shown = np.ones(snapshot.shape, dtype=bool)
    note = ""
    if options.view == "cutaway":
        shown &= ~_octant(snapshot)
    tumor = (snapshot.clone >= 0) & shown
    grid = _image_grid(pv, snapshot.shape, dx)
    _add_colored_voxels(pv, plotter, run, snapshot, options, grid, np.flatnonzero(tumor.ravel()),
                        _voxel_values(run, snapshot, options, ()), True)
    if options.field is not None:
        centres = pv.ImageData(dimensions=(nx, ny, nz), spacing=(dx,) * 3, origin=(dx / 2,) * 3)
        values = snapshot.field(options.field)
        centres.point_data["field"] = values.ravel()
        clim = options.field_range(snapshot)
        levels = contour_levels(*clim, count=3)
        if levels.size:
            note = f"isosurfaces at {', '.join(f'{level:g}' for level in levels)} {run.field_units(options.field)}".strip()
            surfaces = centres.contour(list(levels), scalars="field")
            if options.view == "cutaway" and surfaces.n_points:
                cz, cy, cx = snapshot.tumor_center_index()
                surfaces = surfaces.clip_box((cx * dx, nx * dx, cy * dx, ny * dx, cz * dx, nz * dx), invert=True)
            if surfaces.n_points:
                plotter.add_mesh(surfaces, scalars="field", cmap=options.colormap, clim=clim, opacity=0.25, show_scalar_bar=False)
    z, y, x = np.nonzero(snapshot.vessel & shown)
    _add_vessels(pv, plotter, np.column_stack([x + 0.5, y + 0.5, z + 0.5]) * dx, 0.7 * dx, True)
    classes, thinned = run.immune_glyph_classes(snapshot), 1
    if classes is not None:
        classes, thinned = _add_immune_solids(pv, plotter, np.where(shown, classes, -1), tumor, snapshot.vessel, dx,
                                              options.max_immune)
    plotter.add_mesh(grid.outline(), color=palette.to_hex(palette.OUTLINE_COLOR), lighting=False)
    extent = max(nx, ny, nz) * dx
    length = scale_bar_length_um(nx * dx)
    gap = 0.05 * extent
    start = np.array([0.0, ny * dx + gap, 0.0])
    _add_scale_bar(pv, plotter, start, length, 0.015 * extent, np.array([length / 2, ny * dx + 2.5 * gap, 0.0]))
    plotter.view_isometric()
    plotter.enable_parallel_projection()
    plotter.reset_camera()
    plotter.camera.zoom(1.05)
    return shown, note, classes, thinned


def render_snapshot(run: RunData, snapshot: Snapshot, options: RenderOptions) -> np.ndarray:
    """Render one snapshot off-screen.

    Returns:
        ``uint8`` image of shape ``(height, width, 3)``.

    Raises:
        VizError: pyvista missing, an unknown field, or a blank render (no working OpenGL).
    """
    pv = optional.pyvista(_PURPOSE)
    if options.field is not None:
        snapshot.field(options.field)  # fails early with the fields the snapshot has
    plotter = pv.Plotter(off_screen=True, window_size=list(options.size), theme=pv.themes.DocumentTheme())
    try:
        plotter.set_background("white")
        flat = len(snapshot.shape) == 2 or options.view == "slice"
        shown, where, immune, thinned = (_flat_scene if flat else _volume_scene)(pv, plotter, run, snapshot, options)
        _leave_key_column(plotter)
        width, height = options.size
        hours = snapshot.time_h
        plotter.add_text(f"day {hours / 24:.2f}  ({hours:g} h)", position="upper_left", font_size=max(10, height // 60), color="black")
        view = "flat" if len(snapshot.shape) == 2 else options.view
        colour = f"coloured by {options.color.replace('field:', 'field ')}"
        caption = ", ".join(part for part in (run.name, view, where, colour) if part)
        plotter.add_text(caption, position="lower_left", font_size=max(8, height // 90), color="black")
        image = plotter.screenshot(return_img=True)
    finally:
        plotter.close()
    image = np.asarray(image)[..., :3]
    if image.std() == 0:
        raise VizError("the render came out blank: VTK found no working OpenGL; install libegl1 (or libosmesa6) with apt-get")
    rows = legend.entries(snapshot.clone[shown], snapshot.cell_state[shown], snapshot.vessel[shown],
                          options.color, run.clone_name)
    rows += legend.immune_entries(immune, run.immune_glyphs)
    if rows:
        overlay, margin = _key(rows, height, width, f"1 in {thinned} immune cells shown" if thinned > 1 else None)
        image = legend.paste(image, overlay, margin, margin)
    return image


def _png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_output(path) as temporary:
        Image.fromarray(image).save(temporary, format="PNG", optimize=True)


def _frames(run: RunData, snapshots: list[Snapshot], options: RenderOptions, progress: bool) -> Iterator[np.ndarray]:
    for snapshot in tqdm(snapshots, desc="rendering", unit="frame", disable=not progress):
        yield render_snapshot(run, snapshot, options)


def _write_gif(frames: Iterator[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image

    images = (Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for frame in frames)
    first = next(images)
    with atomic_output(path) as temporary:
        first.save(temporary, format="GIF", save_all=True, append_images=images, duration=round(1000 / fps), loop=0)


def _write_mp4(frames: Iterator[np.ndarray], path: Path, fps: float) -> None:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VizError(f"an .mp4 needs imageio-ffmpeg, which is not installed; install the viz extra: {optional.INSTALL_HINT}") from None
    first = next(frames)
    height, width = first.shape[:2]
    with atomic_output(path) as temporary:
        writer = imageio_ffmpeg.write_frames(str(temporary), (width, height), fps=fps, macro_block_size=16, ffmpeg_log_level="error",
                                             output_params=["-movflags", "+faststart"])
        writer.send(None)
        try:
            writer.send(np.ascontiguousarray(first))
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()


def render(run: RunData, out: Path, options: RenderOptions, time_h: float | None = None, all_snapshots: bool = False,
           fps: float = 4.0, progress: bool = True) -> list[Snapshot]:
    """Render a run to ``out``: one snapshot to a ``.png``, or every snapshot to a ``.gif`` / ``.mp4``.

    Args:
        run: the opened run directory.
        out: output file; its suffix picks image or animation.
        options: view, colours and image size; a field colouring without ``options.clim`` takes the snapshot's range
            for a ``.png`` and the range over every snapshot for an animation (one colour, one value, in every frame).
        time_h: the snapshot nearest this time (hours) for a ``.png``; default the last. A time outside the first to
            the last snapshot's time is a VizError naming ``--time`` and the range.
        all_snapshots: animate every snapshot (the default for ``.gif`` / ``.mp4``).
        fps: frames per second of an animation.
        progress: show a progress bar over frames.

    Returns:
        The snapshots rendered.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in IMAGE_SUFFIXES + MOVIE_SUFFIXES:
        raise VizError(f"--out {out}: the file must end in {', '.join(IMAGE_SUFFIXES + MOVIE_SUFFIXES)}")
    if suffix in IMAGE_SUFFIXES:
        if all_snapshots:
            raise VizError(f"--all animates every snapshot: give --out a {' or '.join(MOVIE_SUFFIXES)} file")
        snapshot = run.last_snapshot() if time_h is None else run.snapshot_at(time_h, "--time")
        _png(render_snapshot(run, snapshot, options), out)
        return [snapshot]
    if time_h is not None:
        raise VizError(f"--time picks one snapshot: give --out a .png file, or use --all for {suffix}")
    if not fps > 0:
        raise VizError(f"--fps {fps}: must be > 0")
    snapshots = run.snapshots
    if not snapshots:
        run.last_snapshot()  # raises the no-snapshot message
    if suffix == ".mp4":
        options = replace(options, size=tuple(-(-side // 16) * 16 for side in options.size))
    if options.field is not None and options.clim is None:
        options = replace(options, clim=_field_range(snapshots, options.field))
    frames = _frames(run, snapshots, options, progress)
    (_write_gif if suffix == ".gif" else _write_mp4)(frames, out, fps)
    return snapshots
