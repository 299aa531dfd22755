"""Drug action on tumor cells (pharmacodynamics) as whole-grid kernels.

The Emax/Hill kill of the cytotoxic drug kind (abm/config/drugs.py)
responds to the concentration a cell sees: the local tissue concentration
(the drug's field) less what the cell's efflux pumps remove, scaled by the
clone's sensitivity. A cycle-specific drug kills only cycling cells, so
quiescent (hypoxic or dormant) cells are spared. A killed cell starts
apoptosis. Kill hazards of several drugs add up.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kernels.layers import TumorLayer
from kernels.tumor import APOPTOTIC, CYCLING, QUIESCENT, probability


@dataclass(frozen=True)
class CytotoxicParameters:
    """Emax/Hill kill of one drug.

    Attributes:
        emax_per_h: maximum kill rate of a fully sensitive cell, 1/h.
        ec50: concentration of half the maximum kill, field units.
        hill: Hill coefficient.
        cycle_specific: kills only cycling cells.
    """

    emax_per_h: float
    ec50: float
    hill: float
    cycle_specific: bool


def kill_rate(
    xp: ModuleType, clone: Any, cell_state: Any, concentration: Any, efflux: Any, sensitivity: Any,
    drug: CytotoxicParameters,
) -> Any:
    """Kill rate of one drug at every voxel, 1/h (0 where no target cell).

    Args:
        clone: ``int32``, lattice shape: clone index, -1 where no tumor cell.
        cell_state: ``int8``, lattice shape (:mod:`kernels.tumor` codes).
        concentration: the drug's tissue field, lattice shape, field units.
        efflux: per-clone fraction pumped out, ``float64`` of shape ``(n_clones,)``.
        sensitivity: per-clone multiplier of the kill, ``float64`` of shape ``(n_clones,)``.
        drug: the drug's Emax/Hill parameters.

    Returns:
        ``float64``, lattice shape.
    """
    index = xp.maximum(clone, 0)
    targets = (clone >= 0) & ((cell_state == CYCLING) if drug.cycle_specific
                              else ((cell_state == CYCLING) | (cell_state == QUIESCENT)))
    response = hill_response(xp, (1.0 - efflux[index]) * concentration, drug)
    return xp.where(targets, drug.emax_per_h * sensitivity[index] * response, 0.0)


def hill_response(xp: ModuleType, concentration: Any, drug: Any) -> Any:
    """``c^h / (ec50^h + c^h)`` of the drug (anything with ``ec50`` and ``hill``, e.g. :class:`CytotoxicParameters`)
    at each voxel, 0 to 1 (negative levels count as 0)."""
    seen = xp.maximum(concentration, 0.0) ** drug.hill
    return seen / (drug.ec50**drug.hill + seen)


def kill(
    xp: ModuleType, tumor: TumorLayer, *, rate_per_h: Any, immunogenic_rate_per_h: Any, dt_h: float, draw: Any,
    draw_immunogenic: Any,
) -> tuple[TumorLayer, Any]:
    """Start apoptosis where a draw falls below ``1 - exp(-rate dt)``; a share of the killed cells die immunogenically.

    A killed cell's death is immunogenic with probability ``immunogenic_rate / rate``
    (the immunogenic drugs' share of its kill rate).

    Args:
        tumor: the tumor cells.
        rate_per_h: summed kill rate of the drugs (:func:`kill_rate`), ``float64``, lattice shape, 1/h.
        immunogenic_rate_per_h: the part of ``rate_per_h`` that kills by immunogenic death, same shape, 1/h.
        dt_h: cell step, h.
        draw, draw_immunogenic: uniform [0, 1) draws, lattice shape.

    Returns:
        ``(tumor, killed)``: the new layer and the bool mask of killed cells.
    """
    killed = (rate_per_h > 0) & (draw < probability(xp, rate_per_h, dt_h))
    new_state = xp.where(killed, APOPTOTIC, tumor.state).astype(tumor.state.dtype)
    new_age = xp.where(killed, 0.0, tumor.age_h).astype(tumor.age_h.dtype)
    immunogenic = killed & (draw_immunogenic * rate_per_h < immunogenic_rate_per_h)
    return tumor.replace(state=new_state, age_h=new_age, immunogenic=tumor.immunogenic | immunogenic), killed
