"""Drug kinds as data: a new kind is one DrugConfig subclass and one register_drug_kind call.

The worked example of docs/therapy.md ("How to add a drug kind"), run as
written: a radiosensitizer that kills cycling tumor cells at
``rate_per_h x c / (c + ec50)`` of its local level, declared in a config
and run. A fixture runs the documented block (which defines and registers
the kind) and removes the kind after each test, so no other test sees it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from abm.config import (DRUG_KINDS, ConfigError, DrugConfig, parse_config, read_yaml, register_drug_kind, to_yaml,
                        unregister_drug_kind)
from abm.model import TumorModel
from abm.reference import render
from tests.test_api import python_blocks


# --------------------------------------------------------------------------- the new kind, as docs/therapy.md gives it

THERAPY_DOC = Path(__file__).resolve().parents[1] / "docs" / "therapy.md"


def docs_example() -> str:
    """The fenced python block of docs/therapy.md that defines and registers the radiosensitizer."""
    return next(block for block in python_blocks(THERAPY_DOC) if "class Radiosensitizer" in block)


@pytest.fixture
def radiosensitizer():
    """The kind, defined and registered by running the documented example as written; removed after the test."""
    namespace: dict = {}
    exec(compile(docs_example(), str(THERAPY_DOC), "exec", dont_inherit=True), namespace)  # one class, one registration
    yield namespace["Radiosensitizer"]
    unregister_drug_kind("radiosensitizer")


CONFIG = """
seed: 3
lattice: {shape: [32, 32], dx_um: 20.0}
time: {dt_cell_h: 1.0, duration_days: 1, record_every_h: 6}
tumor: {initial: {radius_um: 100.0}}
fields:
  oxygen: {preset: oxygen}
  rs: {preset: chemo_drug, initial: 4.0, vessel: {supply_per_min: 1.0, blood_level: 4.0}}
drugs:
  rs: {kind: radiosensitizer, rate_per_h: 0.5}
"""


def _config(text: str = CONFIG):
    return parse_config(read_yaml(text), "test config")


def _kills(config, steps: int = 6) -> tuple[int, TumorModel]:
    model = TumorModel(config)
    for _ in range(steps):
        model.step()
    return model.latest["drug_kills_total"], model


def test_a_registered_kind_is_declared_by_config_and_kills(radiosensitizer):
    config = _config()
    drug = config.drugs["rs"]
    assert isinstance(drug, radiosensitizer) and drug.rate_per_h == 0.5 and drug.ec50 == 1.0
    assert config.drug_names == []  # no sensitivity per clone: the kind does not ask for one
    assert [name for name, _ in config.drugs_acting("tumor_kill_rate")] == ["rs"]
    assert config.drugs_acting("pd1_occupancy") == []
    kills, model = _kills(config)
    control, _ = _kills(_config(CONFIG.replace("rate_per_h: 0.5", "rate_per_h: 0.0")))
    assert kills > 0 and control == 0
    assert model.latest["mean_division_rate_per_h"] > 0  # the tumor itself still runs


def test_the_kind_resolves_and_reloads(radiosensitizer):
    config = _config()
    again = parse_config(read_yaml(to_yaml(config)), "dumped")
    assert again.drugs["rs"] == config.drugs["rs"]
    assert "## drugs.NAME (kind: radiosensitizer)" in render()


def test_the_kind_keys_are_its_own(radiosensitizer):
    with pytest.raises(ConfigError, match=r"drugs\.rs\.emax_per_h: unknown key; allowed keys: kind, pk, rate_per_h, ec50"):
        _config(CONFIG.replace("rate_per_h: 0.5", "emax_per_h: 0.5"))
    with pytest.raises(ConfigError, match=r"drugs\.rs\.rate_per_h: Input should be greater than or equal to 0"):
        _config(CONFIG.replace("rate_per_h: 0.5", "rate_per_h: -1"))


def test_an_unregistered_kind_is_refused_naming_the_allowed_ones():
    assert "radiosensitizer" not in DRUG_KINDS
    with pytest.raises(ConfigError, match=r"drugs\.rs\.kind: unknown drug kind; allowed: cytotoxic, anti_pd1, anti_vegf, csf1r_inhibitor \(got 'radiosensitizer'\)"):
        _config()


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="registered already"):
        register_drug_kind(type("Other", (DrugConfig,), {"__annotations__": {"kind": Literal["cytotoxic"]}}))
    with pytest.raises(TypeError, match="Literal"):
        register_drug_kind(type("Loose", (DrugConfig,), {"__annotations__": {"kind": str}}))
    assert list(DRUG_KINDS) == ["cytotoxic", "anti_pd1", "anti_vegf", "csf1r_inhibitor"]


def test_a_drug_without_kind_is_cytotoxic_and_kinds_keep_their_keys():
    config = _config(CONFIG.replace("rs: {kind: radiosensitizer, rate_per_h: 0.5}", "rs: {emax_per_h: 0.1}"))
    assert config.drugs["rs"].kind == "cytotoxic" and config.drug_names == ["rs"]
    with pytest.raises(ConfigError, match=r"drugs\.rs\.kd: unknown key; allowed keys: kind, pk, emax_per_h"):
        _config(CONFIG.replace("rs: {kind: radiosensitizer, rate_per_h: 0.5}", "rs: {kd: 1.0}"))
    blocked = _config(CONFIG.replace("rs: {kind: radiosensitizer, rate_per_h: 0.5}", "rs: {kind: anti_pd1, kd: 2.0}"))
    occupancy = blocked.drugs["rs"].pd1_occupancy(np, np.array([2.0], dtype=np.float32))
    np.testing.assert_allclose(occupancy, 0.5)
