"""The optional rendering packages, imported only when a figure is asked for.

The simulator runs without them; a viz command that needs one says in one
line how to install it (:data:`INSTALL_HINT`).
"""
from __future__ import annotations

import ctypes.util
import os
from types import ModuleType

from viz.rundir import VizError

INSTALL_HINT = 'pip install -e ".[viz]"'


def _missing(package: str, purpose: str) -> VizError:
    return VizError(f"{purpose} needs {package}, which is not installed; install the viz extra: {INSTALL_HINT}")


def matplotlib(purpose: str) -> ModuleType:
    """The matplotlib package."""
    try:
        import matplotlib
    except ImportError:
        raise _missing("matplotlib", purpose) from None
    return matplotlib


def matplotlib_figure_class(purpose: str) -> type:
    """``matplotlib.figure.Figure`` (figures drawn without pyplot, so no display or global state)."""
    matplotlib(purpose)
    from matplotlib.figure import Figure

    return Figure


def pyvista(purpose: str) -> ModuleType:
    """pyvista set up for off-screen rendering.

    With no X display, VTK is pointed at its EGL render window when libEGL is
    present, which renders headless without first trying (and warning about)
    an X server; otherwise VTK's own choice stands (it falls back to OSMesa).
    """
    if not os.environ.get("DISPLAY") and "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ and ctypes.util.find_library("EGL"):
        os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
    try:
        import pyvista as pv
    except ImportError:
        raise _missing("pyvista", purpose) from None
    pv.OFF_SCREEN = True
    return pv


def require_vtk(purpose: str) -> None:
    """Check that VTK (which pyvista brings) imports; VizError with the install hint if not."""
    try:
        import vtkmodules.vtkIOXML  # noqa: F401
    except ImportError:
        raise _missing("VTK (installed with pyvista)", purpose) from None
