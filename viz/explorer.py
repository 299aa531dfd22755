"""``tme explore``: a browser page (Solara) to scrub through a run's snapshots, or to step a live model.

``tme explore RUN_DIR`` shows one snapshot at a time, chosen with a time
slider: a section plane (2-D runs: the lattice; 3-D runs: a plane across z, y
or x at a chosen position, through the tumor centre by default) coloured by
clone, cell state, immune cells or any field, or a 3-D render (the views of
``tme render``), beside the burden time series and the Muller plot with a line
at the slider's time. ``tme explore CONFIG`` steps a model live
(:class:`abm.live.LiveRun`, into a temporary run directory removed when the
server stops), with play/pause, one step, reset, and fields for the seed, the first clone's cycle
time and, for configs with T cells, the T-cell kill rate and priming expansion
rate (changing one rebuilds the model); the same pictures follow it as it grows.

The pictures are functions of a run (:class:`viz.rundir.RunData`) and are
drawn with the figure functions of :mod:`viz.figures` and :func:`viz.render.render_snapshot`;
the page (:mod:`viz.explorer_page`) only arranges them. :func:`serve` runs the Solara
server in this process on ``127.0.0.1`` and the given port; the page learns
what to show from :class:`Source`, passed in the environment variable
:data:`SOURCE_VARIABLE` (the way Solara's own server learns its app, from
``SOLARA_APP``). Everything runs on the CPU, offline.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tempfile
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from viz import figures, legend, optional, palette
from viz.rundir import RunData, Snapshot, VizError

#: The environment variable that carries the :class:`Source` (JSON) to the page.
SOURCE_VARIABLE = "TME_EXPLORE_SOURCE"
_PURPOSE = "tme explore"
AXES = ("z", "y", "x")  #: the axis a 3-D section plane is normal to
VIEWS = ("section", "iso", "cutaway")  #: section: a plane, drawn with matplotlib; iso, cutaway: 3-D renders (pyvista)
RENDER_SIZE = (720, 540)  #: pixels of a 3-D render in the page
FIGURE_DPI = 90  #: pixels per inch of the matplotlib pictures in the page


@dataclass(frozen=True)
class Source:
    """What the page shows.

    Attributes:
        run_dir: a run directory to scrub through; or None for a live model.
        config: the YAML config of a live model (with ``overrides``, ``--set KEY=VALUE`` strings); None for a run.
        scratch: the folder (the server's temporary one) live models write their run directories into.
    """

    run_dir: str | None = None
    config: str | None = None
    overrides: tuple[str, ...] = ()
    scratch: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_environment(cls) -> "Source":
        """The source :func:`serve` put in :data:`SOURCE_VARIABLE`."""
        text = os.environ.get(SOURCE_VARIABLE)
        if not text:
            raise VizError(f"no {SOURCE_VARIABLE} in the environment: start the explorer with `tme explore RUN_DIR|CONFIG`")
        data = json.loads(text)
        return cls(data["run_dir"], data["config"], tuple(data["overrides"]), data["scratch"])


# ---------------------------------------------------------------------------------------------- pictures


def colorings(run: RunData, snapshot: Snapshot) -> list[str]:
    """What a section can be coloured by: ``clone``, ``state``, ``immune`` (runs with immune cells), ``field:NAME``."""
    immune = ["immune"] if run.has_immune and snapshot.has_immune else []
    return ["clone", "state", *immune, *(f"field:{name}" for name in snapshot.field_names)]


def plane_index(snapshot: Snapshot, axis: str, position: int | None) -> tuple:
    """The index of a section of ``snapshot``: ``()`` for a 2-D lattice; for 3-D the plane normal to ``axis``
    (one of :data:`AXES`) at voxel ``position`` (None: through the tumor centroid)."""
    if len(snapshot.shape) == 2:
        return ()
    if axis not in AXES:
        raise VizError(f"plane normal to {axis!r}: choose one of {', '.join(AXES)}")
    dimension = AXES.index(axis)
    if position is None:
        position = snapshot.tumor_center_index()[dimension]
    if not 0 <= position < snapshot.shape[dimension]:
        raise VizError(f"plane {axis} = {position}: outside the lattice (0 to {snapshot.shape[dimension] - 1})")
    return (slice(None),) * dimension + (position,)


def section_figure(run: RunData, snapshot: Snapshot, color: str = "clone", axis: str = "z", position: int | None = None):
    """One section of ``snapshot`` as a matplotlib Figure.

    Args:
        color: one of :func:`colorings`: tumor cells by clone or state (:func:`viz.palette.voxel_colors`, vessels
            included); ``immune``: the clones faded with the immune cells as glyphs over them; ``field:NAME``: the
            field (viridis, colour bar in its units) with the tumor's outline.
        axis, position: the plane (:func:`plane_index`); ignored for a 2-D run.
    """
    if color not in colorings(run, snapshot):
        raise VizError(f"colour {color!r}: choose one of {', '.join(colorings(run, snapshot))}")
    index = plane_index(snapshot, axis, position)
    clone, state, vessel = (array[index] for array in (snapshot.clone, snapshot.cell_state, snapshot.vessel))
    dx = snapshot.dx_um
    rows, cols = clone.shape
    extent = (0.0, cols * dx, 0.0, rows * dx)
    figure = optional.matplotlib_figure_class(_PURPOSE)(figsize=(6.0, 4.6), layout="constrained")
    ax = figure.subplots()
    handles: list = []
    if color.startswith("field:"):
        name = color[len("field:"):]
        image = ax.imshow(snapshot.field(name)[index], origin="lower", extent=extent, cmap="viridis", interpolation="nearest")
        units = run.field_units(name)
        figure.colorbar(image, ax=ax, label=f"{name} ({units})" if units else name)
        if (clone >= 0).any():
            ax.contour((clone >= 0).astype(np.float32), levels=[0.5], colors="white", linewidths=1.0, extent=extent,
                       origin="lower")
    else:
        by = "state" if color == "state" else "clone"
        ax.imshow(palette.voxel_colors(clone, state, vessel, by), origin="lower", extent=extent,
                  interpolation="nearest", alpha=0.4 if color == "immune" else 1.0)
        rows_shown = legend.entries(clone, state, vessel, by, run.clone_name)
        if color == "immune":
            classes = run.immune_glyph_classes(snapshot)[index]
            figures._immune_markers(ax, classes, extent, dx, figures._section_marker_pt(1, max(rows, cols)))
            rows_shown = legend.immune_entries(classes, run.immune_glyphs) or [("no immune cells", palette.TISSUE_COLOR)]
        handles = legend.handles(rows_shown)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    vertical, horizontal = (name for name in AXES if name != (axis if index else "z"))  # the plane's rows, columns
    ax.set_xlabel(f"{horizontal} (µm)")
    ax.set_ylabel(f"{vertical} (µm)")
    plane = ""
    if index:
        where = index[AXES.index(axis)]
        plane = f", plane {axis} = {(where + 0.5) * dx:g} µm"
    ax.set_title(f"day {snapshot.time_h / 24:.2f}{plane}, by {color.replace('field:', 'field ')}")
    return figure


def marked(figure, day: float):
    """``figure`` (a time-series figure of :mod:`viz.figures`) with a line at ``day`` on every panel."""
    for ax in figure.axes:
        ax.axvline(day, color="#d62728", linewidth=1.2, zorder=5)
    return figure


def series_figures(run: RunData, time_h: float) -> list:
    """The burden figure and, where the run has clone tables, the Muller figure, each marked at ``time_h``."""
    matplotlib = optional.matplotlib(_PURPOSE)
    with matplotlib.rc_context(figures.STYLE):
        drawn = [figures.burden_figure(run)]
        if figures._has_clone_files(run):
            drawn.append(figures.muller_figure(run))
    return [marked(figure, time_h / 24.0) for figure in drawn]


def png(figure) -> bytes:
    """A matplotlib figure as PNG bytes at :data:`FIGURE_DPI`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def render_png(run: RunData, snapshot: Snapshot, color: str, view: str) -> bytes:
    """A 3-D render (:func:`viz.render.render_snapshot`, ``view`` iso or cutaway) as PNG bytes; ``immune`` colours
    by clone (the renders always draw the immune cells)."""
    from PIL import Image

    from viz.render import RenderOptions, render_snapshot

    options = RenderOptions(view=view, color="clone" if color == "immune" else color, size=RENDER_SIZE)
    buffer = io.BytesIO()
    Image.fromarray(render_snapshot(run, snapshot, options)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- the server


def check_port(host: str, port: int) -> None:
    """VizError naming ``--port`` unless ``host:port`` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise VizError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); give a free port "
                           f"from 1024 to 65535") from None


def serve(source: Source, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the explorer page of ``source`` at ``http://host:port/`` until Ctrl-C.

    A live model's run directories are written in a temporary folder that is removed when the server stops; nothing
    else is written.

    Raises:
        VizError: solara is not installed, or the port cannot be listened on.
    """
    try:
        import solara  # noqa: F401 - the page's, checked before anything starts
    except ImportError:
        raise VizError(f"{_PURPOSE} needs solara, which is not installed; install the explore extra: "
                       f"pip install -e \".[viz,explore]\"") from None
    check_port(host, port)
    scratch = tempfile.mkdtemp(prefix="tme-explore-")
    try:
        os.environ[SOURCE_VARIABLE] = Source(source.run_dir, source.config, source.overrides, scratch).to_json()
        os.environ["SOLARA_APP"] = "viz.explorer_page:Page"
        os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")  # offline: no usage reports
        # on 127.0.0.1 solara warns at every page load that a cookie cannot be cross-site without https: none is
        warnings.filterwarnings("ignore", message="Cookies with samesite=none require https")
        import uvicorn
        from solara.server import settings

        settings.main.mode = "production"  # no reloading of changed source files
        server = uvicorn.Server(uvicorn.Config("solara.server.starlette:app", host=host, port=port, log_level="warning"))
        print(f"tme explore: http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn stops on Ctrl-C, then raises the signal again
            pass
        print("tme explore: stopped", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
