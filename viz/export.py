"""Export of a run's snapshots to VTK files that ParaView opens.

``tme export RUN_DIR --format vtk`` writes, into ``RUN_DIR/vtk/`` by default:

* ``step_NNNNNNNN.vti``: one VTK XML image per snapshot. Its cells are the
  voxels: spacing ``dx_um`` on every axis, origin 0, coordinates in um (x
  along the last array axis, then y, then z). Every per-voxel array of the
  snapshot is a cell array named with its units: ``clone`` (``int32``, -1 for
  none), ``cell_state`` (``int8``, codes in the field data
  ``cell_state_names``), ``vessel`` (``uint8``, 0 or 1), ``perfusion``
  (``float32``, 0 to 1), and each field as
  ``<name>_<units>`` (e.g. ``oxygen_mmHg``). Field data also holds
  ``time_h``, ``dx_um`` and ``clone_names``; a run with immune cells adds
  ``immune_names``, the name of each immune agent by the index its cell
  array ``immune`` holds (T-cell clones, then the suppressor types; ``agents.parquet``).
* ``run.pvd``: the time series (time in hours), written last, listing every ``.vti``.

Every file is written atomically. Arrays that later model issues add to the
snapshots are exported as they appear, under their snapshot names.
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from tqdm import tqdm

from abm.io import write_text
from abm.rundir import FIELD_PREFIX
from kernels.tumor import STATE_NAMES
from viz import optional
from viz.rundir import RunData, Snapshot, VizError

FORMATS = ("vtk",)
PVD_NAME = "run.pvd"
_PURPOSE = "tme export"


def array_name(run: RunData, name: str) -> str:
    """The exported name of snapshot array ``name``: fields get their units appended."""
    if name.startswith(FIELD_PREFIX):
        field = name[len(FIELD_PREFIX):]
        units = run.field_units(field)
        return f"{field}_{units}" if units else field
    return name


def _vtk_array(name: str, values: np.ndarray):
    from vtkmodules.util.numpy_support import numpy_to_vtk

    flat = np.ascontiguousarray(values.astype(np.uint8) if values.dtype == bool else values).ravel()
    array = numpy_to_vtk(flat, deep=True)
    array.SetName(name)
    return array


def _string_array(name: str, values: list[str]):
    from vtkmodules.vtkCommonCore import vtkStringArray

    array = vtkStringArray()
    array.SetName(name)
    for value in values:
        array.InsertNextValue(value)
    return array


def snapshot_image(run: RunData, snapshot: Snapshot):
    """A ``vtkImageData`` of ``snapshot``: voxels as cells, arrays named as the module says."""
    from vtkmodules.vtkCommonDataModel import vtkImageData

    shape = snapshot.shape
    extent = list(reversed(shape)) + [0] * (3 - len(shape))  # (nx, ny[, nz]) cells
    image = vtkImageData()
    image.SetDimensions(*(cells + 1 if cells else 1 for cells in extent))
    image.SetSpacing(snapshot.dx_um, snapshot.dx_um, snapshot.dx_um)
    image.SetOrigin(0.0, 0.0, 0.0)
    for name, values in snapshot.voxel_arrays().items():
        image.GetCellData().AddArray(_vtk_array(array_name(run, name), values))
    n_clones = int(snapshot.clone.max()) + 1 if snapshot.clone.size else 0
    field_data = image.GetFieldData()
    field_data.AddArray(_vtk_array("time_h", np.array([snapshot.time_h])))
    field_data.AddArray(_vtk_array("dx_um", np.array([snapshot.dx_um])))
    field_data.AddArray(_string_array("cell_state_names", list(STATE_NAMES)))
    field_data.AddArray(_string_array("clone_names", [run.clone_name(index) for index in range(n_clones)]))
    if snapshot.has_immune:
        field_data.AddArray(_string_array("immune_names", [agent.name for agent in run.immune_agents]))
    return image


def _vti_text(image) -> str:
    """The VTK XML text of an image: zlib-compressed, base64-encoded inline (ASCII only)."""
    from vtkmodules.vtkIOXML import vtkXMLImageDataWriter

    writer = vtkXMLImageDataWriter()
    writer.SetInputData(image)
    writer.SetDataModeToBinary()
    writer.SetCompressorTypeToZLib()
    writer.SetWriteToOutputString(True)
    if not writer.Write():
        raise VizError("VTK could not write the image")
    return writer.GetOutputString()


def pvd_text(entries: list[tuple[float, str]]) -> str:
    """A ParaView collection file listing ``(time_h, file name)`` entries."""
    lines = ['<?xml version="1.0"?>', '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">', "  <Collection>"]
    lines += [f'    <DataSet timestep="{time_h:.17g}" group="" part="0" file={quoteattr(name)}/>' for time_h, name in entries]
    lines += ["  </Collection>", "</VTKFile>", ""]
    return "\n".join(lines)


def export(run: RunData, out: Path | None = None, fmt: str = "vtk", progress: bool = True) -> list[Path]:
    """Export every snapshot of ``run``.

    Args:
        run: the opened run directory.
        out: output folder (default ``RUN_DIR/vtk``).
        fmt: one of :data:`FORMATS`.
        progress: show a progress bar.

    Returns:
        The files written, the ``.pvd`` last.
    """
    if fmt not in FORMATS:
        raise VizError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    optional.require_vtk(_PURPOSE)
    if not run.snapshots:
        run.last_snapshot()  # raises the no-snapshot message
    out = Path(out) if out is not None else run.path / "vtk"
    written, entries = [], []
    for snapshot in tqdm(run.snapshots, desc="exporting", unit="snapshot", disable=not progress):
        path = out / snapshot.path.with_suffix(".vti").name
        write_text(path, _vti_text(snapshot_image(run, snapshot)))
        written.append(path)
        entries.append((snapshot.time_h, path.name))
    pvd = out / PVD_NAME
    write_text(pvd, pvd_text(entries))
    written.append(pvd)
    return written
