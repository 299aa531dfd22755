"""Subclone traits on the host: the founding clones, and the traits of clones founded by mutation.

The model keeps one row per clone ever born (row = clone index) in a table of
host NumPy arrays, :class:`CloneTable`, and mirrors it to the device whenever
rows are added (at most once per cell step, only in steps with mutations).
Kernels gather from the mirror with ``trait[clone]``.

Traits (columns):

=============================  =======  ====================================================
column                         dtype    meaning
=============================  =======  ====================================================
``division_rate_per_h``        float64  division rate in full oxygen, after the cost of resistance, 1/h
``apoptosis_per_h``            float64  apoptosis rate, 1/h
``resistance_cost``            float64  relative division-rate loss that resistance costs
``efflux``                     float64  fraction of the local drug pumped out
``quiescence_entry_per_h``     float64  dormancy entry rate in oxygen, 1/h
``quiescence_exit_per_h``      float64  dormancy exit rate in oxygen, 1/h (``inf``: at once)
``pdl1``                       float64  PD-L1 expression, 0 to 1
``mutation_rate``              float64  probability that a daughter founds a new clone
``antigens``                   uint64   neoantigen set, bit ``k`` = antigen ``k``
``sensitivity_<drug>``         float64  multiplier of the drug's kill, one column per drug
=============================  =======  ====================================================
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from abm.config import MAX_ANTIGENS, Config, MutationConfig

SCALAR_TRAITS = (
    "division_rate_per_h", "apoptosis_per_h", "resistance_cost", "efflux",
    "quiescence_entry_per_h", "quiescence_exit_per_h", "pdl1", "mutation_rate",
)
SENSITIVITY_PREFIX = "sensitivity_"

# Offsets of the random streams that draw a mutant's changes (added to the
# rule's base stream), so that each change has a stream of its own.
_RATE_NORMAL_1, _RATE_NORMAL_2 = 0, 1
_EFFLUX = 2
_PDL1_EVENT, _PDL1_AMOUNT = 3, 4
_LOSS_EVENT, _LOSS_WHICH = 5, 6
_GAIN_EVENT, _GAIN_WHICH = 7, 8
_RESISTANCE = 16  # + drug number
MUTATION_STREAMS = _RESISTANCE  # streams used besides the per-drug ones


CloneTable = dict[str, np.ndarray]


def antigen_mask(antigens: list[int]) -> int:
    """The 64-bit set of a list of antigen numbers (0-63)."""
    mask = 0
    for antigen in antigens:
        mask |= 1 << antigen
    return mask


def antigen_list(mask: int) -> list[int]:
    """The antigen numbers in a 64-bit set, ascending."""
    return [bit for bit in range(MAX_ANTIGENS) if (int(mask) >> bit) & 1]


def sensitivity_column(drug: str) -> str:
    """The table column of the sensitivity to ``drug``."""
    return SENSITIVITY_PREFIX + drug


def founding_table(config: Config) -> CloneTable:
    """One row per founding clone of the config, in config order."""
    clones = config.tumor.clones
    table: CloneTable = {
        "division_rate_per_h": np.array([(1.0 - c.resistance_cost) / c.cycle_time_h for c in clones]),
        "apoptosis_per_h": np.array([c.apoptosis_per_h for c in clones]),
        "resistance_cost": np.array([c.resistance_cost for c in clones]),
        "efflux": np.array([c.efflux for c in clones]),
        "quiescence_entry_per_h": np.array([c.quiescence_entry_per_h for c in clones]),
        "quiescence_exit_per_h": np.array([math.inf if c.quiescence_exit_per_h is None else c.quiescence_exit_per_h
                                           for c in clones]),
        "pdl1": np.array([c.pdl1 for c in clones]),
        "mutation_rate": np.array([c.mutation_rate for c in clones]),
        "antigens": np.array([antigen_mask(c.antigens) for c in clones], dtype=np.uint64),
    }
    for drug in config.drug_names:
        table[sensitivity_column(drug)] = np.array([c.drug_sensitivity.get(drug, 1.0) for c in clones])
    return table


def rows(table: CloneTable, index: np.ndarray) -> CloneTable:
    """The rows ``index`` of every column."""
    return {name: values[index] for name, values in table.items()}


def append(table: CloneTable, new: CloneTable) -> CloneTable:
    """``table`` with the rows of ``new`` added at the end."""
    return {name: np.concatenate([values, new[name]]) for name, values in table.items()}


def _pick_bit(bits: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """Per row of ``bits`` (bool, ``(n, 64)``), the position of a uniformly chosen True entry (rows with one)."""
    count = bits.sum(axis=1)
    rank = np.minimum(np.floor(draw * count), np.maximum(count - 1, 0))
    return np.argmax(np.cumsum(bits, axis=1) > rank[:, None], axis=1)


def mutant_table(
    parents: CloneTable, rules: MutationConfig, drugs: list[str], draw: Callable[[int], np.ndarray],
    max_division_rate_per_h: float,
) -> CloneTable:
    """Traits of new clones, one per mutant daughter, from their parents' rows and the mutation rules.

    Each change is drawn independently per mutant: a lognormal factor on the
    division rate (``division_rate_sd``), gain of resistance to each drug
    (sensitivity x factor, division rate x (1 - cost)), gain of efflux, a
    PD-L1 shift, loss of one present antigen, gain of one absent antigen.

    Args:
        parents: the parent clones' rows, one per mutant (``n`` rows).
        rules: the config's mutation rules.
        drugs: the drugs with a sensitivity column, in the table's order.
        draw: ``draw(k)`` -> ``n`` uniform [0, 1) numbers of stream offset ``k``.
        max_division_rate_per_h: division rates are clipped to this (ln 2 / dt).

    Returns:
        The new rows, same columns as ``parents``.
    """
    new = {name: values.copy() for name, values in parents.items()}
    rate = new["division_rate_per_h"]
    if rules.division_rate_sd > 0:
        normal = np.sqrt(-2.0 * np.log1p(-draw(_RATE_NORMAL_1))) * np.cos(2.0 * math.pi * draw(_RATE_NORMAL_2))
        rate *= np.exp(rules.division_rate_sd * normal)

    def add_cost(gained: np.ndarray, cost: float) -> None:
        rate[gained] *= 1.0 - cost
        new["resistance_cost"][gained] = 1.0 - (1.0 - new["resistance_cost"][gained]) * (1.0 - cost)

    for number, drug in enumerate(drugs):
        rule = rules.resistance.get(drug)
        if rule is not None:
            gained = draw(_RESISTANCE + number) < rule.probability
            new[sensitivity_column(drug)][gained] *= rule.sensitivity_factor
            add_cost(gained, rule.cost)
    if rules.efflux is not None:
        gained = draw(_EFFLUX) < rules.efflux.probability
        new["efflux"][gained] = 1.0 - (1.0 - new["efflux"][gained]) * (1.0 - rules.efflux.increase)
        add_cost(gained, rules.efflux.cost)
    if rules.pdl1 is not None:
        shifts = draw(_PDL1_EVENT) < rules.pdl1.probability
        change = (2.0 * draw(_PDL1_AMOUNT) - 1.0) * rules.pdl1.max_change
        new["pdl1"] = np.where(shifts, np.clip(new["pdl1"] + change, 0.0, 1.0), new["pdl1"])
    new["division_rate_per_h"] = np.minimum(rate, max_division_rate_per_h)

    masks = new["antigens"]
    bits = ((masks[:, None] >> np.arange(MAX_ANTIGENS, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    one = np.uint64(1)
    loses = (draw(_LOSS_EVENT) < rules.antigen_loss_probability) & bits.any(axis=1)
    lost = _pick_bit(bits, draw(_LOSS_WHICH)).astype(np.uint64)
    gains = (draw(_GAIN_EVENT) < rules.antigen_gain_probability) & ~bits.all(axis=1)
    gained = _pick_bit(~bits, draw(_GAIN_WHICH)).astype(np.uint64)
    masks = np.where(loses, masks & ~(one << lost), masks)
    new["antigens"] = np.where(gains, masks | (one << gained), masks).astype(np.uint64)
    return new
