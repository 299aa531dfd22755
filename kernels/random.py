"""Counter-based random numbers, identical on NumPy and CuPy.

A draw is a hash of ``(key, step, stream, index)``: ``key`` comes from the
model's seed (Mesa's ``model.rng``), ``step`` is the cell-step counter,
``stream`` separates independent uses within a step (see the ``STREAM_*``
constants of the rules), and ``index`` is the flat voxel index. The hash is a
SplitMix64 finaliser over a Weyl sequence, computed in wrapping ``uint64``
arithmetic, which NumPy and CuPy evaluate bit for bit the same. A run therefore
gives the same cells whatever the device, thread count or execution order.

The constants below are the only place the numbers of the hash are written:
the CUDA kernels that draw in place get them through the prelude that
:func:`kernels.cuda.prelude.random_prelude` generates from them.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

MASK64 = (1 << 64) - 1
#: Weyl increment of the counter (2**64 / golden ratio, odd).
WEYL = 0x9E3779B97F4A7C15
#: Multipliers of the SplitMix64 finaliser.
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
#: Right shifts of the finaliser: before the first multiply, before the second, after it.
SHIFT1, SHIFT2, SHIFT3 = 30, 27, 31
#: A uniform double is the top 53 bits (``bits >> 11``) times 2**-53.
MANTISSA_SHIFT = 11
UNIT = 1.0 / 9007199254740992.0


def _splitmix_scalar(value: int) -> int:
    """SplitMix64 finaliser of one Python integer (exact, host side)."""
    z = (value + WEYL) & MASK64
    z = ((z ^ (z >> SHIFT1)) * MIX1) & MASK64
    z = ((z ^ (z >> SHIFT2)) * MIX2) & MASK64
    return z ^ (z >> SHIFT3)


def stream_offset(key: int, step: int, stream: int) -> int:
    """The 64-bit offset that selects one (key, step, stream) sequence."""
    return _splitmix_scalar(_splitmix_scalar(_splitmix_scalar(key & MASK64) ^ (step & MASK64)) ^ (stream & MASK64))


def random_bits(xp: ModuleType, key: int, step: int, stream: int, index: Any) -> Any:
    """64 random bits per entry of ``index``.

    Args:
        xp: array module (numpy or cupy).
        key: 64-bit run key (from the seed).
        step: cell-step number (>= 0).
        stream: stream id that separates uses within a step.
        index: ``uint64`` array of counters (normally flat voxel indices), any shape.

    Returns:
        ``uint64`` array of the shape of ``index``.
    """
    return bits_at(xp, stream_offset(key, step, stream), index)


def bits_at(xp: ModuleType, offset: Any, index: Any) -> Any:
    """64 random bits per entry of ``index`` in the sequence that starts at ``offset``.

    Args:
        xp: array module.
        offset: the sequence's :func:`stream_offset`: a Python int, or a ``uint64`` scalar or
            0-d array of ``xp`` (an entry of a device table of offsets).
        index: ``uint64`` array of counters, any shape.

    Returns:
        ``uint64`` array of the shape of ``index``.
    """
    start = xp.uint64(offset) if isinstance(offset, int) else offset
    z = index * xp.uint64(WEYL) + start
    z = (z ^ (z >> xp.uint64(SHIFT1))) * xp.uint64(MIX1)
    z = (z ^ (z >> xp.uint64(SHIFT2))) * xp.uint64(MIX2)
    return z ^ (z >> xp.uint64(SHIFT3))


def uniform(xp: ModuleType, key: int, step: int, stream: int, index: Any) -> Any:
    """Uniform doubles in [0, 1), one per entry of ``index``.

    Uses the top 53 bits of :func:`random_bits`, so the values are exact
    multiples of 2**-53 and identical on every backend.

    Returns:
        ``float64`` array of the shape of ``index``.
    """
    return uniform_at(xp, stream_offset(key, step, stream), index)


def uniform_at(xp: ModuleType, offset: Any, index: Any) -> Any:
    """Uniform doubles in [0, 1) from the sequence that starts at ``offset`` (see :func:`bits_at`).

    ``uniform(xp, key, step, stream, index)`` is ``uniform_at(xp, stream_offset(key, step, stream), index)``.

    Returns:
        ``float64`` array of the shape of ``index``.
    """
    bits = bits_at(xp, offset, index)
    return (bits >> xp.uint64(MANTISSA_SHIFT)).astype(xp.float64) * UNIT


def voxel_index(xp: ModuleType, shape: tuple[int, ...]) -> Any:
    """Flat voxel indices ``0 .. prod(shape)-1`` as a ``uint64`` array of ``shape``."""
    size = 1
    for extent in shape:
        size *= extent
    return xp.arange(size, dtype=xp.uint64).reshape(shape)
