"""The ``cohort`` section: virtual patients for ``tme compare``, each a draw of some config values from distributions.

A distribution is chosen by its ``distribution`` key (a section of variants):
``normal``, ``lognormal``, ``truncated_normal``, ``uniform`` or
``categorical``. Its numbers are in the units of the key it draws (a draw for
``tumor.clones.0.cycle_time_h`` is in hours). Drawing and applying the values
is :mod:`abm.cohort`'s; the keys are dotted config keys as ``--set`` takes them
(:func:`config_key_problem` checks that one names a value of the config).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from abm.config.base import MAX_FACTOR, MAX_LEVEL, MIN_LEVEL, Strict, Variants

#: Most virtual patients in a cohort.
MAX_PATIENTS = 10_000
#: Most values of a categorical distribution.
MAX_CATEGORIES = 1000
#: Largest sd of the log of a lognormal draw (e^10 is a factor of 22,000 at one sd).
MAX_LOG_SD = 10.0
#: Least probability a truncated normal's interval must hold (beyond it the draws lose their precision).
MIN_TRUNCATED_MASS = 1e-9
#: Keys no cohort or sweep may set: the seeds are the design's (patients x replicates), the backend never changes a
#: result, and the cohort does not draw itself.
RESERVED_KEYS = ("seed", "backend", "cohort")

Value = Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]
Spread = Annotated[float, Field(gt=0, le=MAX_LEVEL)]


def _check_interval(lower: float, upper: float) -> None:
    """ValueError unless ``lower < upper``."""
    if lower >= upper:
        raise ValueError(f"lower ({lower:g}) must be less than upper ({upper:g})")


class Distribution(Strict):
    """A distribution of one config value; a variant holds its own parameters."""

    distribution: str


class NormalDistribution(Distribution):
    """Normal: ``mean + sd x N(0, 1)``, unbounded (a draw outside the key's range is refused before any run)."""

    distribution: Literal["normal"] = "normal"
    mean: Value = Field(description="mean, in the units of the key")
    sd: Spread = Field(description="standard deviation, in the units of the key; > 0")


class LognormalDistribution(Distribution):
    """Lognormal: ``median x exp(sigma x N(0, 1))``: positive, for rates, times and counts of cells."""

    distribution: Literal["lognormal"] = "lognormal"
    median: Annotated[float, Field(ge=MIN_LEVEL, le=MAX_LEVEL)] = Field(description="median, in the units of the key; > 0")
    sigma: Annotated[float, Field(gt=0, le=MAX_LOG_SD)] = Field(description="standard deviation of the natural log; > 0")


class TruncatedNormalDistribution(Distribution):
    """Normal restricted to ``[lower, upper]`` (drawn by the inverse of its distribution function, no rejection loop)."""

    distribution: Literal["truncated_normal"] = "truncated_normal"
    mean: Value = Field(description="mean of the normal before truncation, in the units of the key")
    sd: Spread = Field(description="standard deviation before truncation; > 0")
    lower: Value = Field(description="least value, in the units of the key")
    upper: Value = Field(description="greatest value, in the units of the key; > lower")

    @model_validator(mode="after")
    def _interval(self) -> "TruncatedNormalDistribution":
        _check_interval(self.lower, self.upper)
        normal = NormalDist(self.mean, self.sd)
        if normal.cdf(self.upper) - normal.cdf(self.lower) < MIN_TRUNCATED_MASS:
            raise ValueError(f"[{self.lower:g}, {self.upper:g}] lies too far in the tail of normal(mean {self.mean:g}, "
                             f"sd {self.sd:g}): it holds less than {MIN_TRUNCATED_MASS:g} of the probability")
        return self


class UniformDistribution(Distribution):
    """Uniform on ``[lower, upper)``."""

    distribution: Literal["uniform"] = "uniform"
    lower: Value = Field(description="least value, in the units of the key")
    upper: Value = Field(description="bound above, in the units of the key; > lower")

    @model_validator(mode="after")
    def _interval(self) -> "UniformDistribution":
        _check_interval(self.lower, self.upper)
        return self


class CategoricalDistribution(Distribution):
    """One of ``values`` (any config values: numbers, names, lists), with probabilities ``weights`` / their sum."""

    distribution: Literal["categorical"] = "categorical"
    values: Annotated[list[Any], Field(min_length=1, max_length=MAX_CATEGORIES)] = Field(
        description=f"the values a patient may have, in the units of the key; 1 to {MAX_CATEGORIES}")
    weights: Annotated[list[Annotated[float, Field(ge=0, le=MAX_FACTOR)]], Field(max_length=MAX_CATEGORIES)] | None = Field(
        None, description="relative weight of each value (one per value, sum > 0); null: equal")

    @model_validator(mode="after")
    def _weights(self) -> "CategoricalDistribution":
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(f"weights: {len(self.weights)} weights for {len(self.values)} values; one per value")
            if not math.fsum(self.weights) > 0:
                raise ValueError("weights: all 0; at least one weight must be > 0")
        return self


#: ``distribution`` -> its class.
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "normal": NormalDistribution, "lognormal": LognormalDistribution, "truncated_normal": TruncatedNormalDistribution,
    "uniform": UniformDistribution, "categorical": CategoricalDistribution}
#: The annotation of a cohort parameter.
AnyDistribution = Annotated[Distribution, Variants("distribution", lambda: DISTRIBUTIONS, "normal", "distribution")]


class CohortConfig(Strict):
    """Virtual patients: ``tme compare`` runs every arm on each (a paired design); see docs/experiments.md."""

    patients: Annotated[int, Field(ge=1, le=MAX_PATIENTS)] = Field(description=f"number of virtual patients, 1 to {MAX_PATIENTS:,}")
    parameters: Annotated[dict[str, AnyDistribution], Field(max_length=100)] = Field(
        default_factory=dict, description="dotted config key (as --set takes it) -> the distribution of its value over "
                                          "patients (abm.cohort: drawn from generators seeded by the config's `seed` and the key, apart from the runs' draws)")


def config_key_problem(data: dict[str, Any], dotted: str) -> str | None:
    """Why ``dotted`` names no value of the resolved config ``data`` (``Config.model_dump(mode="json")``), or None.

    A key names a value that is there (a number in the key indexes a list:
    ``tumor.clones.0.cycle_time_h``), as ``--set`` would reach it, and none of
    :data:`RESERVED_KEYS`.
    """
    parts = dotted.split(".")
    if not all(parts):
        return f"empty part in key {dotted!r}"
    if parts[0] in RESERVED_KEYS:
        return f"{parts[0]} is set by the design, not drawn or swept; reserved: {', '.join(RESERVED_KEYS)}"
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if isinstance(node, dict):
            if part not in node:
                return f"no config key {'.'.join(parts[:depth + 1])}; keys of {where or 'the top level'}: {', '.join(node)}"
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{part} is not an index of {where}, a list of {len(node)}"
            node = node[int(part)]
        else:
            return f"{where} is a value, not a section"
    return None
