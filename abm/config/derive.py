"""Conversion of a config to what the kernels take: step counts per cell step and kernel parameter sets.

Conversions to the units the kernels use happen here, once; ``Config``
checks its costs (substeps, margin loops) with the same counts.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kernels.diffusion import FieldParameters
from kernels.tumor import HypoxiaParameters

if TYPE_CHECKING:  # annotations only: abm.config.root imports this module
    from abm.config.root import Config


def field_substeps(dt_min: float | None, dt_cell_h: float) -> int:
    """Steps of a transient field in one cell step of ``dt_cell_h`` hours: equal steps no longer than ``dt_min`` minutes (None: one)."""
    return 1 if dt_min is None else max(1, math.ceil(dt_cell_h * 60.0 / dt_min - 1e-9))


def movement_substeps(speed_um_per_min: float, dt_cell_h: float, dx_um: float) -> int:
    """Immune movement substeps in one cell step: a cell at ``speed_um_per_min`` moves at most one voxel per substep."""
    return max(1, math.ceil(speed_um_per_min * dt_cell_h * 60.0 / dx_um - 1e-9))


def margin_steps(margin_um: float, dx_um: float) -> int:
    """Moore-neighbourhood dilations (or erosions) that span the invasive margin ``margin_um``."""
    return max(1, round(margin_um / dx_um))


def field_parameters(config: Config, name: str) -> FieldParameters:
    """Kernel parameters of field ``name`` on its substrate grid (edge ``dx_um x field_coarsening``; faces per array axis)."""
    field = config.fields[name]
    axes = "zyx"[3 - config.lattice.ndim:]

    def condition(face: str) -> float | None:
        value = field.boundary.faces.get(face, field.boundary.default)  # type: ignore[arg-type]
        return None if value == "no_flux" else float(value)

    faces = tuple((condition(f"{axis}_min"), condition(f"{axis}_max")) for axis in axes)
    return FieldParameters(field.D_um2_per_min, field.decay_per_min, config.lattice.dx_um * config.lattice.field_coarsening, faces)


def hypoxia_parameters(config: Config) -> HypoxiaParameters:
    """Kernel parameters of the tumor's oxygen response."""
    hypoxia = config.tumor.hypoxia
    return HypoxiaParameters(
        quiescence_below_mmHg=hypoxia.quiescence_below_mmHg,
        proliferation_saturation_mmHg=hypoxia.proliferation_saturation_mmHg,
        necrosis_threshold_mmHg=hypoxia.necrosis_threshold_mmHg,
        necrosis_max_mmHg=hypoxia.necrosis_max_mmHg,
        necrosis_max_rate_per_h=hypoxia.necrosis_max_rate_per_h,
    )
