"""Every config in configs/ is valid as written and runs a few cell steps.

The configs are found with a glob, so a new preset is covered the day it is
added. For the run (the config itself is validated unchanged) a preset too
large for the suite is shrunk (``tests.presets.SHRINK``) and any other lattice
axis longer than :data:`MAX_AXIS` is shortened, to keep the suite fast.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from abm.cli import main
from abm.config import load_config
from abm.model import TumorModel
from kernels.backend import get_backend
from tests.presets import MAX_TEST_VOXELS, SHRINK, shrunk

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
MAX_AXIS = 64
STEPS = 3


def test_the_shipped_configs_are_found():
    """The glob sees the configs the README and CI rely on."""
    assert {"default.yaml", "tiny.yaml"} <= {path.name for path in CONFIGS}


def test_every_preset_too_large_for_the_suite_is_shrunk_to_one_that_is_not():
    """A preset over MAX_TEST_VOXELS has a SHRINK entry, which names a preset and brings it under MAX_TEST_VOXELS."""
    stems = {path.stem for path in CONFIGS}
    assert set(SHRINK) <= stems, f"SHRINK names configs that configs/ lacks: {sorted(set(SHRINK) - stems)}"
    for path in CONFIGS:
        voxels = math.prod(load_config(path, shrunk(path.stem)).lattice.shape)
        assert voxels <= MAX_TEST_VOXELS, f"{path.name}: {voxels:,} voxels in tests; add or fix its SHRINK entry"


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_validates(path, capsys):
    """``tme validate`` accepts the file as written; a preset too large for the suite is loaded as written (every
    check of the config itself) and validated shrunk, so that validate builds its initial state (it does not above
    ``abm.cli.VALIDATE_BUILD_LIMIT_BYTES``; configs/large_3d.yaml as written would need about 19 GiB free)."""
    load_config(path)
    settings = [argument for override in shrunk(path.stem) for argument in ("--set", override)]
    assert main(["validate", str(path), *settings]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid")


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_runs_a_few_steps(path):
    """The model built from the config steps with its tumor alive, fields finite and non-negative."""
    overrides = shrunk(path.stem)
    shape = load_config(path, overrides).lattice.shape
    if max(shape) > MAX_AXIS:
        overrides.append(f"lattice.shape={[min(extent, MAX_AXIS) for extent in shape]}")
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
