"""Observed convergence orders of the implicit field step on BioFVM's convergence test 1.

u = 1 + cos(pi x / L0) exp(-D pi^2 t / L0^2), L0 = 500 um, D = 1e5 um^2/min,
no-flux faces, compared at t = 0.1 min (the same problem as
tests/validation/test_fields.py, which asserts these orders). Prints the max
error per time step (dx 2.5 um) and per voxel edge (dt proportional to dx^2)
and the observed orders log2(e(h) / e(h/2)).

Usage::

    python benchmarks/field_convergence.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.validation
from tests.validation.test_fields import biofvm_test1_error, observed_orders  # noqa: E402


def main() -> None:
    steps = (0.02, 0.01, 0.005, 0.0025)
    errors = [biofvm_test1_error(np, 200, dt) for dt in steps]
    print("time step (dx 2.5 um):")
    for dt, error, order in zip(steps, errors, [float("nan"), *observed_orders(errors)]):
        print(f"  dt {dt:8.4f} min  max error {error:.3e}  order {order:.2f}")
    sizes = (25, 50, 100, 200)
    errors = [biofvm_test1_error(np, n, 4e-4 * (500.0 / n / 20.0) ** 2) for n in sizes]
    print("voxel edge (dt = 4e-4 (dx / 20 um)^2 min):")
    for n, error, order in zip(sizes, errors, [float("nan"), *observed_orders(errors)]):
        print(f"  dx {500.0 / n:6.2f} um  max error {error:.3e}  order {order:.2f}")


if __name__ == "__main__":
    main()
