"""The registry of accelerated operations: one ``xp`` reference and an optional CUDA implementation per name.

An accelerated operation is a piece of a rule or a solver that a GPU runs
faster as a CUDA kernel (or a CUDA graph) of its own than as the ``xp``
array calls. Each has

* its ``xp`` reference: a function in :mod:`kernels`, written once against
  ``xp`` like every rule, the NumPy path and the definition of the result;
* optionally a CUDA implementation under :mod:`kernels.cuda`, with the
  reference's signature and its bits (no fused multiply-adds, the same
  operations in the same order; a GPU test compares the two bit for bit and
  tests/test_cuda_sources.py compiles every CUDA source with nvcc).

The backend picks (:meth:`kernels.backend.Backend.operation`): the CUDA
implementation on CuPy unless fast paths are off (``get_backend(...,
fast_paths=False)`` or ``TME_FAST_PATHS=0``), else the reference. Callers ask
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
  CUDA graph captured and replayed, :func:`kernels.cuda.graphs.replayable`).

A new operation is its reference in a kernels module, its CUDA
implementation in a module of :mod:`kernels.cuda` (source compiled in
tests/test_cuda_sources.py, a GPU test against the reference), and one
:class:`Operation` in :data:`OPERATIONS`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kernels import diffusion, immune, tumor
from kernels.cuda import division, graphs, lines, movement


@dataclass(frozen=True)
class Operation:
    """One accelerated operation.

    Attributes:
        name: the name callers ask the backend for.
        reference: the ``xp`` implementation (first argument ``xp``), the definition of the result.
        cuda: the CUDA implementation (same signature, same bits; ``xp`` is CuPy), or None.
    """

    name: str
    reference: Callable[..., Any]
    cuda: Callable[..., Any] | None = None


#: Every accelerated operation, by name.
OPERATIONS: Mapping[str, Operation] = MappingProxyType({operation.name: operation for operation in (
    Operation("field_line_sweep", diffusion.solve_lines, lines.solve_lines),
    Operation("immune_movement_substep", immune.movement_substep, movement.substep),
    Operation("place_daughters", tumor.place_daughters, division.place_daughters),
    Operation("enclosed", tumor.enclosed, division.enclosed),
    Operation("replayable", diffusion.uncaptured, graphs.replayable),
)})


def implementation(name: str, cuda: bool) -> Callable[..., Any]:
    """Operation ``name``'s CUDA implementation if ``cuda`` and it has one, else its ``xp`` reference.

    Callers go through :meth:`kernels.backend.Backend.operation`, which sets ``cuda``.

    Raises:
        KeyError: no operation is registered under ``name`` (the message lists those that are).
    """
    try:
        operation = OPERATIONS[name]
    except KeyError:
        raise KeyError(f"no accelerated operation {name!r}; registered: {', '.join(OPERATIONS)}") from None
    return operation.cuda if cuda and operation.cuda is not None else operation.reference
