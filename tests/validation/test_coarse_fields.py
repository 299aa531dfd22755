"""Fields on a substrate grid coarser than the cell lattice (``lattice.field_coarsening``), against analytic solutions.

The coarse path is the fields rule's: rates per cell voxel averaged over each
block (:func:`kernels.diffusion.block_mean`), the solve at edge ``c dx``, the
result spread back over the block (:func:`kernels.diffusion.block_spread`).
Two errors, each with its own tolerance:

* the solve's discretisation error at ``c dx``: cell-centred finite volumes
  are second order in ``dx``, so at ``c = 2`` it is about 4 times the
  cell-resolution error; the checks compare coarse voxel centres with the
  analytic solution there, within ``c^2`` times the tolerance the
  cell-resolution test of tests/validation/test_fields.py uses;
* what a cell reads: its block's value, piecewise constant, so a cell at
  ``(c - 1) dx / 2`` from its block's centre (per axis) reads the field there
  off by up to that distance times the field's gradient (first order).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from abm.config import load_config
from abm.model import TumorModel
from kernels.diffusion import FieldParameters, block_mean, block_sample, block_spread, steady_state
from tests.conftest import to_host

D = 1.0e5  # um^2/min, oxygen [PCi]
DX = 20.0  # um, the cell lattice
C = 2


def test_block_transfers_are_exact_and_conserve_totals(xp):
    """Block means keep the total (rate x volume), spreading then sampling gives the coarse field back bit for bit."""
    rates = xp.asarray(np.random.default_rng(1).random((8, 12, 4)))
    coarse = block_mean(xp, rates, C)
    assert coarse.shape == (4, 6, 2)
    assert float(coarse.sum()) * C**3 == pytest.approx(float(rates.sum()), rel=1e-14)
    np.testing.assert_allclose(to_host(coarse)[1, 2, 0], to_host(rates)[2:4, 4:6, 0:2].mean(), rtol=1e-14)
    spread = block_spread(xp, coarse.astype(xp.float32), C)
    assert spread.shape == rates.shape and spread.dtype == xp.float32
    assert (to_host(spread)[2:4, 4:6, 0:2] == to_host(coarse.astype(xp.float32))[1, 2, 0]).all()
    assert (to_host(block_sample(xp, spread, C)) == to_host(coarse.astype(xp.float32))).all()
    assert block_mean(xp, rates, 1) is rates and block_spread(xp, rates, 1) is rates
    mask = rates > 0.5  # a cell type's voxels: the fraction of each block they fill, as float64
    for factor in (2, 4):
        fraction = to_host(block_mean(xp, mask, factor))
        expected = to_host(mask).reshape(8 // factor, factor, 12 // factor, factor, 4 // factor, factor).mean(axis=(1, 3, 5))
        assert fraction.dtype == np.float64 and np.array_equal(fraction, expected)


def test_slab_on_the_coarse_grid_matches_cosh_profile(xp):
    """1-D slab, u0 at x = 0, no flux at x = L, uptake k = D / l^2 by every cell (l = 100 um): u = u0 cosh((L - x)/l) / cosh(L/l).

    The uptake enters as a per-cell-voxel sink, averaged over blocks. Coarse
    centres (dx = 40 um = l / 2.5): within 4 x 0.5 % of u0 (test_fields.py's
    0.5 % at dx = l / 5, times c^2). What cells read: within the coarse error
    plus the largest gradient (u0 / l at the face) times dx / 2.
    """
    n, u0, length_um, l_um = 60, 38.0, 60 * DX, 100.0
    sink = xp.full((4, n), D / l_um**2)
    params = FieldParameters(D, 0.0, DX * C, ((None, None), (u0, None)))
    coarse, _ = steady_state(xp, xp.zeros((4 // C, n // C)), params, block_mean(xp, sink, C), rtol=1e-9)
    x = (np.arange(n // C) + 0.5) * DX * C
    expected = u0 * np.cosh((length_um - x) / l_um) / np.cosh(length_um / l_um)
    coarse_error = np.abs(to_host(coarse)[0] - expected).max()
    assert coarse_error < C**2 * 5e-3 * u0
    cells = to_host(block_spread(xp, coarse, C))[0]
    x_cells = (np.arange(n) + 0.5) * DX
    at_cells = u0 * np.cosh((length_um - x_cells) / l_um) / np.cosh(length_um / l_um)
    assert np.abs(cells - at_cells).max() < coarse_error + (u0 / l_um) * DX / 2


def test_point_source_3d_on_the_coarse_grid(xp):
    """Source S in one coarse voxel (the 2^3 cell voxels around the centre), l = 100 um: u = S exp(-r/l) / (4 pi D r).

    The lattice of test_fields.py's check in coarse voxels (41^3, faces at
    0 20.5 voxels from the source); at r = 5 to 10 coarse voxels (200 to
    400 um) within 6 % (measured: 3.7 to 5.2 %): c^2 times 1.5 %, the
    middle of that check's cell-resolution error at 5 to 10 voxels (0.5 to
    2.5 %, measured; second order in dx / l, and l = 100 um is 2.5 coarse
    voxels here).
    """
    n, strength, length = 82, 1.0e6, 100.0
    source = np.zeros((n, n, n))
    source[40:42, 40:42, 40:42] = strength / 8 / DX**3
    params = FieldParameters(D, D / length**2, DX * C, ((0.0, 0.0),) * 3)
    u, _ = steady_state(xp, xp.zeros((n // C,) * 3), params, 0.0, block_mean(xp, xp.asarray(source), C), rtol=1e-8)
    r = np.arange(5, 11) * DX * C
    expected = strength * np.exp(-r / length) / (4 * math.pi * D * r)
    np.testing.assert_allclose(to_host(u)[20, 20, 20 + np.arange(5, 11)], expected, rtol=C**2 * 0.015)


def test_model_mass_balance_on_the_coarse_grid():
    """A run at field_coarsening 2: cells read their block's value, and at steady state what the vessels supply
    equals what the cells take up, both summed over the cells' voxels with the values the cells read.

    A field with no decay, no-flux faces, uptake by live tumor cells and
    exchange at vessels: its steady state balances supply against uptake.
    The coarse solve balances block rates times block values; that is the
    balance of the cells' own rates times what they read because each
    block's rate is linear in its cells' rates (a block read at one cell,
    or a nonlinear average, breaks it). The scale of that rate (mean, not
    sum) is checked by the slab above. Tolerance 1e-5: the solve stops
    within about 1e-6 of the field's largest value per voxel.
    """
    overrides = ["lattice.field_coarsening=2", "fields.probe.units=au", "fields.probe.D_um2_per_min=1000",
                 "fields.probe.decay_per_min=0", "fields.probe.solver=steady", "fields.probe.uptake_per_min.tumor=0.5",
                 "fields.probe.vessel.supply_per_min=2", "fields.probe.vessel.blood_level=1"]
    model = TumorModel(load_config("configs/tiny.yaml", overrides))
    model.step()
    lattice = model.lattice
    probe = to_host(lattice.fields["probe"]).astype(np.float64)
    assert probe.shape == tuple(lattice.shape)
    blocks = probe.reshape(24, 2, 24, 2)
    assert (blocks == blocks[:, :1, :, :1]).all()  # piecewise constant over each 2 x 2 block
    live = to_host(lattice.tumor.live())
    perfusion = to_host(lattice.vessels.perfusion).astype(np.float64)
    uptake = (0.5 * live * probe).sum()
    supply = (2.0 * perfusion * (1.0 - probe)).sum()
    assert uptake > 0.0
    assert supply == pytest.approx(uptake, rel=1e-5)


@pytest.mark.parametrize("solver", ["transient", "transient_lod"])
def test_transient_solvers_step_on_the_coarse_grid(solver):
    """Each transient solver steps on the 24 x 24 grid of a 48 x 48 lattice: the field rises from 0 toward blood at the
    vessels, falls where cells take it up, and is the same over each 2 x 2 block."""
    overrides = ["lattice.field_coarsening=2", "fields.probe.units=au", "fields.probe.D_um2_per_min=1000",
                 "fields.probe.decay_per_min=0.01", f"fields.probe.solver={solver}", "fields.probe.dt_min=10",
                 "fields.probe.uptake_per_min.tumor=0.5", "fields.probe.vessel.supply_per_min=2",
                 "fields.probe.vessel.blood_level=1"]
    model = TumorModel(load_config("configs/tiny.yaml", overrides))
    for _ in range(3):
        model.step()
    probe = to_host(model.lattice.fields["probe"])
    blocks = probe.reshape(24, 2, 24, 2)
    assert (blocks == blocks[:, :1, :, :1]).all()
    live = to_host(model.lattice.tumor.live())
    vessels = to_host(model.lattice.vessels.perfusion) > 0
    assert 0.0 <= probe.min() and probe.max() <= 1.0
    assert probe[vessels].mean() > probe[live].mean() > 0.0


def test_chemotaxis_on_blocks_sees_a_weaker_gradient():
    """What chemotaxis loses on blocks (docs/fields.md): along a linear gradient in 3-D, on the 26-neighbour
    lattice, the T cells' rule (:func:`kernels.immune.uphill_direction`: the highest allowed neighbour if above
    the voxel's own level, ties drawn uniformly) finds a direction from every voxel at ``c = 1``, but at
    ``c = 2`` not from about 1 voxel in 8 (the block's uphill corner, whose higher neighbours are all in its
    own block), and its mean step along the gradient is about 0.7 of the fine lattice's."""
    from kernels.immune import uphill_direction
    from kernels.lattice import moore_offsets

    n = 24
    offsets = moore_offsets(3)
    rng = np.random.default_rng(5)
    centres = np.stack(np.meshgrid(*(np.arange(n) + 0.5,) * 3, indexing="ij"))
    inner = tuple(slice(1, n - 1) for _ in range(3))
    for _ in range(3):
        gradient = rng.standard_normal(3)
        gradient /= np.linalg.norm(gradient)
        fine = np.tensordot(gradient, centres, axes=1)
        steps = {}
        for c in (1, 2):
            field = block_spread(np, block_mean(np, fine, c), c)
            own = field[inner].reshape(-1)
            level = np.stack([field[tuple(slice(1 + o, n - 1 + o) for o in offset)].reshape(-1) for offset in offsets],
                             axis=1)
            allowed = np.ones(level.shape, dtype=bool)
            chosen = uphill_direction(np, own, level, allowed, rng.random(own.shape[0]))
            along = np.asarray([np.dot(gradient, offset) for offset in offsets])
            steps[c] = (float((chosen >= 0).mean()), float(np.where(chosen >= 0, along[chosen], 0.0).mean()))
        assert steps[1][0] == 1.0
        assert 0.84 <= steps[2][0] <= 0.92
        assert 0.6 <= steps[2][1] / steps[1][1] <= 0.8
