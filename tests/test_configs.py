"""Every config in configs/ is valid as written and runs a few cell steps.

The configs are found with a glob, so a new preset is covered the day it is
added. A lattice axis longer than :data:`MAX_AXIS` is shortened for the run
(the config itself is validated unchanged) to keep the suite fast.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abm.cli import main
from abm.config import load_config
from abm.model import TumorModel
from kernels.backend import get_backend

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
MAX_AXIS = 64
STEPS = 3


def test_the_shipped_configs_are_found():
    """The glob sees the configs the README and CI rely on."""
    assert {"default.yaml", "tiny.yaml"} <= {path.name for path in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_validates(path, capsys):
    """``tme validate`` accepts the file as written."""
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid")


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_runs_a_few_steps(path):
    """The model built from the config steps with its tumor alive, fields finite and non-negative."""
    shape = load_config(path).lattice.shape
    overrides = [f"lattice.shape={[min(extent, MAX_AXIS) for extent in shape]}"] if max(shape) > MAX_AXIS else []
    config = load_config(path, overrides)
    model = TumorModel(config, get_backend("numpy"))
    initial = model.latest["tumor_cells_total"]
    assert initial > 0, "the seed cluster holds no cell"
    for _ in range(STEPS):
        model.step()
    assert model.steps == STEPS
    final = model.measure()
    assert final["tumor_cells_total"] > 0
    assert final["time_h"] == STEPS * config.time.dt_cell_h
    for name, values in model.lattice.fields.items():
        assert np.isfinite(values).all(), f"field {name} has non-finite values"
        assert (values >= 0).all(), f"field {name} went negative"
    assert ((model.lattice.tumor.clone >= 0) & model.lattice.vessels.present).sum() == 0, "a tumor cell sits in a vessel"
