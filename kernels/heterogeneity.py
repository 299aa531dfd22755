"""Measures of clonal heterogeneity: diversity of clone sizes and spatial segregation.

Diversity takes per-clone cell counts (any array module, 1-D); segregation
takes the lattice's ``clone`` array and a live-cell mask.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

from kernels.lattice import shifted


def shannon_index(xp: ModuleType, counts: Any) -> float:
    """Shannon diversity ``H = -sum p ln p`` of clone shares ``p = counts / sum`` (0 for no cells), nats."""
    total = float(counts.sum())
    if total == 0:
        return 0.0
    shares = counts[counts > 0] / total
    return float(-(shares * xp.log(shares)).sum())


def simpson_index(xp: ModuleType, counts: Any) -> float:
    """Gini-Simpson diversity ``1 - sum p^2``: the chance that two random cells differ in clone (0 for no cells)."""
    total = float(counts.sum())
    if total == 0:
        return 0.0
    shares = counts / total
    return float(1.0 - (shares * shares).sum())


def same_clone_neighbour_fraction(xp: ModuleType, clone: Any, live: Any, offsets: list[tuple[int, ...]]) -> float:
    """Mean, over live tumor cells with at least one live tumor neighbour, of the share of those neighbours in the same clone.

    1 means clones sit in separate patches; under random mixing it equals
    ``sum p^2`` over the clone shares ``p``. NaN when no live cell has a
    live neighbour.

    Args:
        clone: ``int32``, lattice shape: clone index, -1 where no tumor cell.
        live: bool, lattice shape: voxels with a live (cycling or quiescent) tumor cell.
        offsets: the neighbourhood (:func:`kernels.lattice.moore_offsets`).
    """
    same = xp.zeros(clone.shape, dtype=xp.int32)
    neighbours = xp.zeros(clone.shape, dtype=xp.int32)
    for offset in offsets:
        neighbour_live = shifted(xp, live, offset, False)
        neighbours += neighbour_live
        same += neighbour_live & (shifted(xp, clone, offset, -1) == clone)
    counted = live & (neighbours > 0)
    cells = int(counted.sum())
    if cells == 0:
        return float("nan")
    return float((same[counted] / neighbours[counted]).mean())
