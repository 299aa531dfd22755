"""Neighbourhoods and shifted views on the 2-D or 3-D lattice.

Arrays are indexed ``[y, x]`` in 2-D and ``[z, y, x]`` in 3-D. Shifts fill
cells that fall outside the domain with a given value, so no wrap-around
ever happens.
"""
from __future__ import annotations

import itertools
from types import ModuleType
from typing import Any


def moore_offsets(ndim: int) -> list[tuple[int, ...]]:
    """Offsets of the Moore neighbourhood: 8 in 2-D, 26 in 3-D, in a fixed order."""
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    return [offset for offset in itertools.product((-1, 0, 1), repeat=ndim) if any(offset)]


def shifted(xp: ModuleType, array: Any, offset: tuple[int, ...], fill: Any) -> Any:
    """Array ``b`` with ``b[p] = array[p + offset]`` and ``fill`` where ``p + offset`` is outside.

    Args:
        xp: array module.
        array: array of any dtype with ``len(offset)`` dimensions.
        offset: integer displacement per axis.
        fill: value for positions whose source lies outside the domain.

    Returns:
        New array of the shape and dtype of ``array``.
    """
    out = xp.full_like(array, fill)
    dst: list[slice] = []
    src: list[slice] = []
    for extent, step in zip(array.shape, offset):
        if abs(step) >= extent:
            return out
        if step >= 0:
            dst.append(slice(0, extent - step))
            src.append(slice(step, extent))
        else:
            dst.append(slice(-step, extent))
            src.append(slice(0, extent + step))
    out[tuple(dst)] = array[tuple(src)]
    return out
