"""Round numbers for scale bars and contour levels."""
from __future__ import annotations

import math

import numpy as np


def nice_number(value: float, up: bool = False) -> float:
    """A round number near ``value`` (``value > 0``): 1, 2 or 5 times a power of ten.

    The largest such number at most ``value``, or with ``up`` the smallest at least ``value``.
    """
    if not value > 0:
        raise ValueError(f"value must be > 0, got {value}")
    power = 10.0 ** math.floor(math.log10(value))
    candidates = [multiple * power for multiple in (1.0, 2.0, 5.0, 10.0)]
    if up:
        return min(candidate for candidate in candidates if candidate >= value * (1 - 1e-12))
    return max(candidate for candidate in candidates if candidate <= value * (1 + 1e-12))


def scale_bar_length_um(extent_um: float) -> float:
    """Length of a scale bar for an image ``extent_um`` wide: a round number near a fifth of it, um."""
    return nice_number(extent_um / 5.0)


def round_ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """The multiples of a round step (:func:`nice_number` of ``(high - low) / count``, up) from ``low`` to ``high``,
    both included: at least 2 and at most ``count + 1`` of them (empty unless ``high > low``).

    Returns:
        ``float64`` array, increasing.
    """
    if not high > low:
        return np.empty(0)
    step = nice_number((high - low) / count, up=True)
    ticks = np.arange(math.floor(low / step), math.ceil(high / step) + 1) * step
    slack = 1e-9 * step  # a multiple that equals an end but for rounding
    return ticks[(ticks >= low - slack) & (ticks <= high + slack)]


def contour_levels(low: float, high: float, count: int = 4) -> np.ndarray:
    """At most ``count`` round levels strictly between ``low`` and ``high`` (:func:`round_ticks` less the ends;
    empty unless ``high > low``).

    Returns:
        ``float64`` array, increasing.
    """
    levels = round_ticks(low, high, count)
    return levels[(levels > low) & (levels < high)]
