"""NumPy and CuPy give the same simulation: whole presets step for step on both backends (GPU only).

Every decision draws from the counter-based generator, so the two backends
see the same random numbers; the per-voxel state (cells, clones, immune
cells) must match exactly and the fields to rounding.
"""
from __future__ import annotations

import numpy as np
import pytest

from kernels.backend import probe_cupy
from tests.presets import run_preset

_CUPY, _CUPY_REASON = probe_cupy()

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_CUPY is None, reason=f"no GPU backend: {_CUPY_REASON}")]

PHAGOCYTES_AND_VESSELS = [
    "time.duration_days=8", "tumor.necrotic_clearance_per_h=0.01",
    "drugs.antivegf.normalisation={start_h: 24, duration_h: 48, perfusion_factor: 2.0}",
    "immune.suppressors.tam={role: macrophage, recruitment: {rate_per_h: 0.04}, phagocytosis: {rate_per_h: 0.2, m1_below: 0.6}, "
    "vessel_support: 0.8}"]
CASES = {
    # tumor growth, hypoxia and necrosis in 3-D
    "necrotic_core": ("necrotic_core", None, ["time.duration_days=2"]),
    # the same with pushing (chains of cells shoved toward free voxels), 3-D
    "necrotic_core_pushing": ("necrotic_core", None, ["time.duration_days=2", "tumor.max_push_distance=4"]),
    # subclones, mutation, a drug at a steady level, 3-D
    "preexisting_resistance": ("preexisting_resistance", None, ["time.duration_days=2"]),
    # T cells primed by chemotherapy, anti-PD-1, dosing, lymphodepletion; 2-D
    "sequencing_concurrent": ("sequencing", "concurrent", ["time.duration_days=12"]),
    # Tregs, MDSCs, suppression field, 3-D
    "immune_excluded": ("immune_excluded", None, ["time.duration_days=2"]),
    # the same with every field on the coarse substrate grid (lattice.field_coarsening)
    "immune_excluded_coarse_fields": ("immune_excluded", None, ["time.duration_days=2", "lattice.field_coarsening=2"]),
    # macrophages: entry, polarisation by IFN-gamma-like and hypoxia-driven signals, M1 kill, M2 contact
    # inhibition, depletion and repolarisation by a CSF1R inhibitor; 2-D
    "therapy_macrophages": ("therapy_macrophages", "anti_pd1_csf1r", ["time.duration_days=12"]),
    # macrophages that eat dead cells and keep new vessels, angiogenesis, anti-VEGF with its normalisation window; 2-D
    "macrophages_vessels_normalisation": ("angiogenesis_sequencing", "antivegf_then_antipd1", PHAGOCYTES_AND_VESSELS),
}


@pytest.mark.parametrize("case", CASES)
def test_numpy_and_cupy_runs_match(case):
    name, arm, overrides = CASES[case]
    host = run_preset(name, *overrides, arm=arm, backend="numpy")
    device = run_preset(name, *overrides, arm=arm, backend="cupy")
    host_frame, device_frame = host.timeseries(), device.timeseries()
    assert list(host_frame.columns) == list(device_frame.columns)
    for column in host_frame.columns:
        expected, actual = host_frame[column].to_numpy(), device_frame[column].to_numpy()
        if np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(actual, expected, err_msg=column)
        else:
            np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-9, err_msg=column)
    host_state, device_state = host.snapshot(), device.snapshot()
    for key, expected in host_state.items():
        actual = device_state[key]
        if key.startswith("field_") or np.issubdtype(np.asarray(expected).dtype, np.floating):
            np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-9, err_msg=key)
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=key)
