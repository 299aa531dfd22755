"""The registry of accelerated operations: one ``xp`` reference and optional CUDA and CPU implementations per name.

An accelerated operation is a piece of a rule or a solver that a GPU runs
faster as a CUDA kernel (or a CUDA graph) of its own than as the ``xp``
array calls. Each has

* its ``xp`` reference: a function in :mod:`kernels`, written once against
  ``xp`` like every rule, the NumPy path and the definition of the result;
* optionally a CUDA implementation under :mod:`kernels.cuda`, with the
  reference's signature and its bits (no fused multiply-adds, the same
  operations in the same order; a GPU test compares the two bit for bit and
  tests/test_cuda_sources.py compiles every CUDA source with nvcc);
* optionally a compiled CPU implementation under :mod:`kernels.cpu` (Numba
  loops), with the same signature and bits, compared with the reference bit
  for bit by a test that needs no GPU.

The backend picks (:meth:`kernels.backend.Backend.operation`): the CUDA
implementation on CuPy and the CPU one on NumPy unless fast paths are off
(``get_backend(..., fast_paths=False)`` or ``TME_FAST_PATHS=0``), else the
reference. Callers ask
their backend for an operation and call what it gives; kernels that use one
take it as a keyword argument whose default is the reference.

Operations (:data:`OPERATIONS`):

* ``field_line_sweep``: the tridiagonal solves of the split (LOD) field step
  along one axis (:func:`kernels.diffusion.solve_lines`; CUDA: one thread per
  grid line, :func:`kernels.cuda.lines.solve_lines`);
* ``immune_movement_substep``: one substep of the immune cells' random walk
  (:func:`kernels.immune.movement_substep`; CUDA: three kernels,
  :func:`kernels.cuda.movement.substep`);
* ``place_daughters``: the tumor's daughter placement, a free neighbour chosen
  per listed dividing cell and the claims resolved (:func:`kernels.tumor.place_daughters`;
  CUDA: the list scattered onto the lattice and three kernels,
  :func:`kernels.cuda.division.place_daughters`);
* ``enclosed``: the voxels with no free neighbour, the cells that may push
  (:func:`kernels.tumor.enclosed`; CUDA: one kernel instead of a shifted copy
  per neighbour offset, :func:`kernels.cuda.division.enclosed`);
* ``replayable``: a fixed list of array calls made cheap to call again
  (:func:`kernels.diffusion.uncaptured`, the calls as they are; CUDA: one
  CUDA graph captured and replayed, :func:`kernels.cuda.graphs.replayable`);
* ``field_solver_kernels``: the builders of the field solve's call lists (its
  operator, Jacobi sweeps and grid transfers; :data:`kernels.diffusion.SOLVER_KERNELS`,
  a bundle of functions that each take ``xp`` first, rather than one
  function; CPU: one compiled loop per operation instead of a NumPy call per
  neighbour direction, :data:`kernels.cpu.stencils.SOLVER_KERNELS`; CUDA: the
  reference's calls with the scalar products as two kernels instead of
  about ``2 n1`` calls each, :data:`kernels.cuda.products.SOLVER_KERNELS`). A
  bundle's implementation may keep some of the reference's functions.

A new operation is its reference in a kernels module, its CUDA
implementation in a module of :mod:`kernels.cuda` (source compiled in
tests/test_cuda_sources.py, a GPU test against the reference) and/or its CPU
one in a module of :mod:`kernels.cpu` (a test against the reference), and
one :class:`Operation` in :data:`OPERATIONS`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kernels import diffusion, immune, tumor
from kernels.cpu import stencils
from kernels.cuda import division, graphs, lines, movement, products


@dataclass(frozen=True)
class Operation:
    """One accelerated operation.

    Attributes:
        name: the name callers ask the backend for.
        reference: the ``xp`` implementation (first argument ``xp``), the definition of the result.
        cuda: the CUDA implementation (same signature, same bits; ``xp`` is CuPy), or None.
        cpu: the compiled CPU implementation (same signature, same bits; ``xp`` is NumPy), or None.
    """

    name: str
    reference: Any
    cuda: Any = None
    cpu: Any = None


#: Every accelerated operation, by name.
OPERATIONS: Mapping[str, Operation] = MappingProxyType({operation.name: operation for operation in (
    Operation("field_line_sweep", diffusion.solve_lines, lines.solve_lines),
    Operation("immune_movement_substep", immune.movement_substep, movement.substep),
    Operation("place_daughters", tumor.place_daughters, division.place_daughters),
    Operation("enclosed", tumor.enclosed, division.enclosed),
    Operation("replayable", diffusion.uncaptured, graphs.replayable),
    Operation("field_solver_kernels", diffusion.SOLVER_KERNELS, products.SOLVER_KERNELS, stencils.SOLVER_KERNELS),
)})


def implementation(name: str, device: str | None) -> Any:
    """Operation ``name``'s implementation for ``device`` (``"cuda"`` or ``"cpu"``) if it has one, else (and for
    ``device=None``) its ``xp`` reference.

    Callers go through :meth:`kernels.backend.Backend.operation`, which picks ``device``.

    Raises:
        KeyError: no operation is registered under ``name`` (the message lists those that are).
    """
    try:
        operation = OPERATIONS[name]
    except KeyError:
        raise KeyError(f"no accelerated operation {name!r}; registered: {', '.join(OPERATIONS)}") from None
    chosen = {"cuda": operation.cuda, "cpu": operation.cpu}.get(device)
    return operation.reference if chosen is None else chosen
