"""Counter-based random numbers, identical on NumPy and CuPy.

A draw is a hash of ``(key, step, stream, index)``: ``key`` comes from the
model's seed (Mesa's ``model.rng``), ``step`` is the cell-step counter,
``stream`` separates independent uses within a step (see the ``STREAM_*``
constants of the rules), and ``index`` is the flat voxel index. The hash is a
SplitMix64 finaliser over a Weyl sequence, computed in wrapping ``uint64``
arithmetic, which NumPy and CuPy evaluate bit for bit the same. A run therefore
gives the same cells whatever the device, thread count or execution order.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _splitmix_scalar(value: int) -> int:
    """SplitMix64 finaliser of one Python integer (exact, host side)."""
    z = (value + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def stream_offset(key: int, step: int, stream: int) -> int:
    """The 64-bit offset that selects one (key, step, stream) sequence."""
    return _splitmix_scalar(_splitmix_scalar(_splitmix_scalar(key & _MASK64) ^ (step & _MASK64)) ^ (stream & _MASK64))


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
    z = index * xp.uint64(_GOLDEN) + xp.uint64(stream_offset(key, step, stream))
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(_MIX1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(_MIX2)
    return z ^ (z >> xp.uint64(31))


def uniform(xp: ModuleType, key: int, step: int, stream: int, index: Any) -> Any:
    """Uniform doubles in [0, 1), one per entry of ``index``.

    Uses the top 53 bits of :func:`random_bits`, so the values are exact
    multiples of 2**-53 and identical on every backend.

    Returns:
        ``float64`` array of the shape of ``index``.
    """
    bits = random_bits(xp, key, step, stream, index)
    return (bits >> xp.uint64(11)).astype(xp.float64) * (1.0 / 9007199254740992.0)


def voxel_index(xp: ModuleType, shape: tuple[int, ...]) -> Any:
    """Flat voxel indices ``0 .. prod(shape)-1`` as a ``uint64`` array of ``shape``."""
    size = 1
    for extent in shape:
        size *= extent
    return xp.arange(size, dtype=xp.uint64).reshape(shape)
