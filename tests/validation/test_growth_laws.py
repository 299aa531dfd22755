"""Growth laws with and without pushing (benchmarks/growth_laws.py; figures in docs/model.md, "Pushing").

A 2-D spheroid in medium with oxygen limits grows Eden-like without pushing
(a thin proliferating edge) and, with ``tumor.max_push_distance = 8``,
exponentially at about half the division rate (the diameter of a disc whose
area doubles each cycle) until a few hundred um, then linearly, with an
oxygen-limited proliferating rim of about 100 um [Drasdo and Hoehme 2005].
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The default clone's division rate, 1/day (cycle time 23.1 h).
DIVISION_RATE_PER_DAY = 24.0 / 23.1


@pytest.mark.slow
def test_pushing_spheroid_grows_exponentially_then_linearly_with_a_rim_of_about_100_um(tmp_path):
    out = tmp_path / "growth.json"
    result = subprocess.run([sys.executable, "benchmarks/growth_laws.py", "--json", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    runs = json.loads(out.read_text())
    still, pushing = runs["0"]["figures"], runs["8"]["figures"]
    assert 0.6 * DIVISION_RATE_PER_DAY / 2 < pushing["early_rate_per_day"] < 1.05 * DIVISION_RATE_PER_DAY / 2
    assert 300.0 < pushing["switch_diameter_um"] < 500.0
    assert pushing["late_r2"] > 0.99
    assert 80.0 < pushing["rim_um"] < 150.0
    # without pushing: linear nearly from the seed, a thinner proliferating edge, a smaller tumor
    assert still["linear_r2_whole_run"] > 0.98 and still["late_r2"] > 0.98
    assert still["rim_um"] < 0.7 * pushing["rim_um"]
    assert still["final_diameter_um"] < 0.9 * pushing["final_diameter_um"]
