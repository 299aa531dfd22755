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


def uniform_choice(xp: ModuleType, wants: Any, allowed: list[Any], draw: Any) -> Any:
    """For each voxel in ``wants``, one of its allowed directions, chosen uniformly.

    Args:
        wants: bool, lattice shape: voxels that choose.
        allowed: one bool array per direction (lattice shape): the direction may be chosen.
        draw: uniform [0, 1) draws, lattice shape.

    Returns:
        ``int8``, lattice shape: the chosen direction's index, -1 where the voxel
        does not choose or has no allowed direction.
    """
    count = xp.zeros(wants.shape, dtype=xp.int32)
    for direction in allowed:
        count += direction
    rank = xp.floor(draw * count).astype(xp.int32)
    choice = xp.full(wants.shape, -1, dtype=xp.int8)
    seen = xp.zeros(wants.shape, dtype=xp.int32)
    chooses = wants & (count > 0)
    for k, direction in enumerate(allowed):
        choice = xp.where(chooses & direction & (seen == rank), k, choice).astype(xp.int8)
        seen += direction
    return choice


def source_index(xp: ModuleType, source_direction: Any, offsets: list[tuple[int, ...]]) -> Any:
    """Flat index of each voxel's source: ``p - offsets[k]`` where ``source_direction`` is ``k >= 0``, else ``p`` itself.

    Args:
        source_direction: ``int8``, lattice shape, as :func:`claim` reports it.
        offsets: the neighbourhood.

    Returns:
        ``int64``, lattice shape: indices into the flattened (C-order) lattice.
    """
    shape = source_direction.shape
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    flat_offsets = xp.asarray([sum(step * stride for step, stride in zip(offset, strides)) for offset in offsets] + [0],
                              dtype=xp.int64)
    here = xp.arange(source_direction.size, dtype=xp.int64).reshape(shape)
    return here - flat_offsets[xp.where(source_direction >= 0, source_direction, len(offsets)).astype(xp.int64)]


def gather(values: Any, index: Any) -> Any:
    """``values`` read at flat ``index`` (see :func:`source_index`): each voxel takes its source's value."""
    return values.reshape(-1)[index]


def neighbour_indices(xp: ModuleType, shape: tuple[int, ...], index: Any, offsets: list[tuple[int, ...]]) -> Any:
    """Flat indices of the neighbours ``p + offsets[k]`` of listed voxels ``p``, -1 where the neighbour is outside.

    Args:
        shape: the lattice shape (C order).
        index: ``int64``, shape ``(n,)``: flat voxel indices.
        offsets: ``K`` offsets (a neighbourhood, or the voxel itself and its neighbourhood).

    Returns:
        ``int64``, shape ``(n, K)``.
    """
    flat = index.astype(xp.int64)
    inside = xp.ones((flat.shape[0], len(offsets)), dtype=bool)
    neighbour = xp.zeros((flat.shape[0], len(offsets)), dtype=xp.int64)
    stride = 1
    for axis in range(len(shape) - 1, -1, -1):
        steps = xp.asarray([offset[axis] for offset in offsets], dtype=xp.int64)
        coordinate = (flat // stride) % shape[axis]
        moved = coordinate[:, None] + steps[None, :]
        inside &= (moved >= 0) & (moved < shape[axis])
        neighbour += moved * stride
        stride *= shape[axis]
    return xp.where(inside, neighbour, -1)


def listed_choice(xp: ModuleType, allowed: Any, draw: Any) -> Any:
    """:func:`uniform_choice` for listed voxels: the ``floor(draw x count)``-th allowed direction in offset order.

    Args:
        allowed: bool, shape ``(n, K)``: direction ``k`` may be chosen by voxel ``i``.
        draw: uniform [0, 1) draws, shape ``(n,)``.

    Returns:
        ``int8``, shape ``(n,)``: the chosen direction, -1 where none is allowed.
    """
    count = allowed.sum(axis=1, dtype=xp.int32)
    rank = xp.floor(draw * count).astype(xp.int32)
    seen = xp.cumsum(allowed, axis=1, dtype=xp.int32) - allowed  # allowed directions before k
    hit = allowed & (seen == rank[:, None])
    return xp.where(hit.any(axis=1), xp.argmax(hit, axis=1), -1).astype(xp.int8)


def listed_claim(xp: ModuleType, target: Any, direction: Any, draw_priority: Any) -> Any:
    """:func:`claim` for listed claimants: each claimed voxel goes to its claimant with the highest priority
    draw, and among equal priorities to the claimant of the lowest direction index.

    Claimants are grouped by a sort on (target, -priority, direction) rather than by a scatter whose result
    could depend on the order of writes, so the winners are the same on every device.

    Args:
        target: ``int64``, shape ``(m,)``: the flat index of the voxel each claimant claims.
        direction: integer, shape ``(m,)``: the index ``k`` of the offset toward the target (claimants of
            one target have different ``k``).
        draw_priority: ``float64``, shape ``(m,)``: each claimant's priority draw.

    Returns:
        bool, shape ``(m,)``: the claimant won its target.
    """
    order = xp.lexsort(xp.stack([direction.astype(xp.float64), -draw_priority, target.astype(xp.float64)]))
    grouped = target[order]
    first = xp.ones(grouped.shape, dtype=bool)
    first[1:] = grouped[1:] != grouped[:-1]
    won = xp.zeros(target.shape, dtype=bool)
    won[order[first]] = True
    return won


def on_lattice(xp: ModuleType, shape: tuple[int, ...], index: Any, values: Any = True, dtype: Any = bool) -> Any:
    """An array of lattice ``shape`` and ``dtype``, zero (False) but at the flat voxels ``index`` (integers, shape
    ``(n,)``), which hold ``values`` (a scalar or shape ``(n,)``): a list of cells spread onto the lattice."""
    array = xp.zeros(shape, dtype=dtype)
    array.reshape(-1)[index] = values
    return array


def chosen(xp: ModuleType, neighbour: Any, choice: Any) -> Any:
    """``neighbour[i, choice[i]]``: the flat index of each voxel's chosen neighbour (``int64``, shape ``(n,)``;
    ``choice``, shape ``(n,)``, must be >= 0)."""
    return xp.take_along_axis(neighbour, choice.astype(xp.int64)[:, None], axis=1)[:, 0]


def placed(
    xp: ModuleType, claimants: Any, neighbour: Any, choice: Any, draw_priority: Any,
) -> tuple[Any, Any]:
    """Claims of listed cells on neighbours (:func:`listed_claim`): the winners and their targets.

    Args:
        claimants: ``int64``, shape ``(n,)``: the flat voxels of the cells.
        neighbour: ``int64``, shape ``(n, K)``: their neighbours (:func:`neighbour_indices`).
        choice: integer, shape ``(n,)``: the claimed neighbour's index, -1 for no claim.
        draw_priority: ``float64``, shape ``(n,)``: the claimants' priority draws.

    Returns:
        ``(source, target)``, ``int64`` of shape ``(m,)`` each: the winners' voxels (in the order of
        ``claimants``) and the voxels they won.
    """
    claims = choice >= 0
    source = claimants[claims]
    target = chosen(xp, neighbour[claims], choice[claims])
    won = listed_claim(xp, target, choice[claims], draw_priority[claims])
    return source[won], target[won]
