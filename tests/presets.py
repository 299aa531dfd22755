"""Running the presets of configs/ from tests: a model built from a preset and stepped to its end."""
from __future__ import annotations

from pathlib import Path

from abm.clones import antigen_list
from abm.comparison import arm_configs
from abm.config import load_config
from abm.model import TumorModel
from kernels.backend import get_backend

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: Most voxels a preset may have and still be run by tests on its own lattice; a larger one needs a SHRINK entry.
MAX_TEST_VOXELS = 10**6
#: Overrides that make a preset too large for the suite small enough to run on the CPU (about a second per cell
#: step), as every test that runs presets applies them: config stem -> ``dotted.key=value`` overrides. large_3d:
#: 48^3 with the ball's radius cut by the same factor 8, treated from hour 6 so a short (golden) run is treated.
SHRINK: dict[str, tuple[str, ...]] = {
    "large_3d": ("lattice.shape=[48, 48, 48]", "tumor.initial.radius_um=150.0", "treatment.start_day=0.25"),
    # a 3-D preset's GPU size: its CPU size (the file it extends)
    "sequencing_3d_gpu": ("lattice.shape=[40, 40, 40]", "tumor.initial.radius_um=120.0"),
    "resistance_second_line_3d_gpu": ("lattice.shape=[48, 48, 48]", "tumor.initial.radius_um=140.0"),
    "poor_perfusion_3d_gpu": ("lattice.shape=[48, 48, 48]", "vessels.core_radius_um=220.0", "tumor.initial.radius_um=200.0"),
    "therapy_immune_evasion_3d_gpu": ("lattice.shape=[40, 40, 40]", "tumor.initial.radius_um=100.0"),
    "therapy_immune_suppression_3d_gpu": ("lattice.shape=[40, 40, 40]", "tumor.initial.radius_um=100.0"),
    "therapy_macrophages_3d_gpu": ("lattice.shape=[40, 40, 40]", "tumor.initial.radius_um=100.0"),
}


def shrunk(stem: str) -> list[str]:
    """The overrides tests apply to preset ``stem`` before their own (its SHRINK entry; none for most presets)."""
    return list(SHRINK.get(stem, ()))


def run_preset(name: str, *overrides: str, arm: str | None = None, backend: str = "numpy") -> TumorModel:
    """The model of ``configs/<name>.yaml``, shrunk (:data:`SHRINK`), with ``dotted.key=value`` overrides, treated by
    ``arm``, run to its end."""
    config = load_config(CONFIGS / f"{name}.yaml", [*shrunk(name), *overrides])
    if arm is not None:
        config = arm_configs(config, [arm])[arm]
    model = TumorModel(config, get_backend(backend))
    for _ in range(config.time.total_steps):
        model.step()
    return model


def antigen_negative_share(model: TumorModel, antigen: int = 0):
    """Share of live tumor cells, per record (float64 array), in clones that do not present ``antigen``."""
    lineage = model.lineage()
    negative = set(lineage["clone"][[antigen not in antigen_list(mask) for mask in lineage["antigens"]]])
    series = model.clone_series()
    by_time = series.assign(negative=series["clone"].isin(negative) * series["cells_live"]).groupby("time_h")
    return (by_time["negative"].sum() / by_time["cells_live"].sum()).to_numpy()
