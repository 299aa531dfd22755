"""Tumor heterogeneity: founding clones and their arrangement, mutation, lineage, per-clone records, metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from abm import clones as clone_table
from abm.config import load_config
from abm.model import TumorModel
from kernels import heterogeneity
from kernels.backend import get_backend
from kernels.lattice import moore_offsets

NUMPY = get_backend("numpy")
#: Oxygen without uptake (no hypoxia: every cell may divide) and a drug field for sensitivities.
FIELDS = "fields={oxygen: {preset: oxygen, uptake_per_min: {}}, drug: {preset: chemo_drug}}"
DRUG_FIELD = "fields={oxygen: {preset: oxygen}, drug: {preset: chemo_drug}}"
DRUG = "drugs={drug: {}}"  # declared, with no drug in the tissue (blood level 0): it kills nobody here


def make_model(overrides=(), path="configs/tiny.yaml"):
    return TumorModel(load_config(path, list(overrides)), NUMPY)


def run_steps(model, steps):
    for _ in range(steps):
        model.step()
    return model


def mutating_model(rate=0.05, extra=(), seed=3):
    """Cells scattered over a 2-D lattice, dividing freely; daughters mutate at ``rate``.

    The mutation rules add resistance to ``drug``, PD-L1 shifts and antigen loss.
    """
    return make_model([
        f"seed={seed}", "lattice.shape=[64, 64]", "tumor.initial={geometry: scattered, cells: 400}", FIELDS, DRUG,
        "vessels.pattern=none",
        f"tumor.clones=[{{name: a, fraction: 0.7, mutation_rate: {rate}, antigens: [1, 2, 3]}},"
        f" {{name: b, fraction: 0.3, mutation_rate: {rate}, antigens: [4, 5]}}]",
        "tumor.mutation.resistance={drug: {probability: 0.3, sensitivity_factor: 0.1, cost: 0.1}}",
        "tumor.mutation.pdl1={probability: 0.5, max_change: 0.2}",
        "tumor.mutation.antigen_loss_probability=0.3", "tumor.mutation.division_rate_sd=0.05", *extra])


@pytest.fixture(scope="module")
def mutated():
    """A run of 48 cell steps with mutation, shared by the record and lineage tests."""
    return run_steps(mutating_model(), 48)


# founding clones ------------------------------------------------------------

def test_founding_clones_get_exact_counts_even_when_rare():
    model = make_model(["lattice.shape=[64, 64, 64]", "tumor.initial.radius_um=300", "vessels.pattern=none",
                        "tumor.clones=[{name: parental}, {name: resistant, fraction: 0.002}]",
                        "tumor.clones.0.fraction=0.998"])
    counts = np.bincount(model.lattice.tumor.clone[model.lattice.tumor.clone >= 0], minlength=2)
    assert counts[1] == round(0.002 * counts.sum()) > 0


def test_exact_counts_add_up_and_round_each_share():
    assert clone_table_counts(1000, [0.5, 0.3, 0.2]) == [500, 300, 200]
    assert clone_table_counts(7, [0.5, 0.25, 0.25]) == [3, 2, 2]
    counts = clone_table_counts(3, [0.01] + [0.33] * 3)
    assert sum(counts) == 3 and min(counts) >= 0


def clone_table_counts(total, fractions):
    from kernels.setup import exact_counts
    return exact_counts(total, fractions)


@pytest.mark.parametrize("shape", [[80, 80], [36, 36, 36]])
def test_arrangements_set_spatial_segregation(shape):
    """Mixed clones sit next to each other at the random-mixing rate; sectors and nests segregate them."""
    three = "tumor.clones=[{name: a, fraction: 0.4}, {name: b, fraction: 0.3}, {name: c, fraction: 0.3}]"
    base = [f"lattice.shape={shape}", "tumor.initial.radius_um=300", "vessels.pattern=none", three,
            "tumor.initial.nest_radius_um=80"]
    measured = {}
    for arrangement in ("mixed", "sectors", "nests"):
        model = make_model(base + [f"tumor.initial.arrangement={arrangement}"])
        measured[arrangement] = model.latest["same_clone_neighbour_fraction"]
        random = model.latest["same_clone_neighbour_fraction_random"]
        assert math.isclose(random, 0.4**2 + 0.3**2 + 0.3**2, abs_tol=0.01)
    assert abs(measured["mixed"] - random) < 0.03
    assert measured["sectors"] > random + 0.4
    assert measured["nests"] > random + 0.3


def test_scattered_cells_are_spread_over_the_domain():
    model = make_model(["lattice.shape=[60, 60]", "tumor.initial={geometry: scattered, cells: 300}", "vessels.pattern=none"])
    occupied = model.lattice.tumor.clone >= 0
    assert occupied.sum() == 300
    quadrants = [occupied[:30, :30].sum(), occupied[:30, 30:].sum(), occupied[30:, :30].sum(), occupied[30:, 30:].sum()]
    assert min(quadrants) > 40  # 75 expected in each


def test_founding_traits_reach_the_device_table():
    model = make_model([DRUG_FIELD, DRUG,
                        "tumor.clones=[{name: a, cycle_time_h: 20, resistance_cost: 0.25, drug_sensitivity: {drug: 0.2},"
                        " efflux: 0.5, pdl1: 0.7, antigens: [3, 0], quiescence_exit_per_h: 0.5}]"])
    traits = model.subclones.device
    assert traits["division_rate_per_h"][0] == pytest.approx(0.75 / 20)
    assert traits["sensitivity_drug"][0] == 0.2 and traits["efflux"][0] == 0.5 and traits["pdl1"][0] == 0.7
    assert int(traits["antigens"][0]) == 0b1001 and traits["quiescence_exit_per_h"][0] == 0.5
    agent = model.subclones.agents[0]
    assert agent.antigens == [0, 3] and agent.drug_sensitivity == {"drug": 0.2}
    assert model.latest["fraction_resistant"] == 1.0  # 0.2 x (1 - 0.5) < 0.5
    assert model.latest["mean_sensitivity_drug"] == pytest.approx(0.2)


# mutation and lineage ----------------------------------------------------------

def test_clone_counts_add_up_to_the_lattice_at_every_record(mutated):
    series = mutated.clone_series()
    frame = mutated.timeseries()
    per_record = series.groupby("time_h")["cells"].sum()
    np.testing.assert_array_equal(per_record.index.to_numpy(), frame["time_h"].to_numpy())
    np.testing.assert_array_equal(per_record.to_numpy(), frame["tumor_cells_total"].to_numpy())
    live = series.groupby("time_h")["cells_live"].sum().to_numpy()
    np.testing.assert_array_equal(live, frame["tumor_cells_live"].to_numpy())
    on_lattice = np.bincount(mutated.lattice.tumor.clone[mutated.lattice.tumor.clone >= 0], minlength=len(mutated.subclones.agents))
    assert (on_lattice == [clone.cell_count for clone in mutated.subclones.agents]).all()


def test_lineage_is_a_tree_rooted_in_the_founding_clones(mutated):
    lineage = mutated.lineage()
    assert len(lineage) == len(mutated.subclones.agents) > 2 + 5  # mutation made clones
    assert (lineage["clone"] == np.arange(len(lineage))).all()
    roots = lineage[lineage["parent"] < 0]
    assert list(roots["name"]) == ["a", "b"] and (roots["birth_time_h"] == 0).all()
    birth = lineage.set_index("clone")["birth_time_h"]
    for row in lineage[lineage["parent"] >= 0].itertuples():
        assert row.parent < row.clone  # parents exist before their children: no cycle is possible
        assert birth[row.parent] < row.birth_time_h
        ancestor, depth = row.clone, 0
        while lineage["parent"][ancestor] >= 0:
            ancestor, depth = lineage["parent"][ancestor], depth + 1
        assert ancestor == row.root and depth == row.generation
        assert row.name.startswith(lineage["name"][row.root] + "/")
        assert not math.isnan(row.origin_y_um) and 0 < row.origin_x_um < 64 * 20
    assert set(mutated.clone_series()["clone"]) <= set(lineage["clone"])


def test_no_mutation_no_new_clones():
    model = run_steps(mutating_model(rate=0.0), 48)
    assert len(model.subclones.agents) == 2 and model.subclones.mutations_total == 0
    assert (model.timeseries()["clones_total"] == 2).all()
    assert model.latest["divisions_total"] > 100


def test_mutation_events_match_the_rate_within_a_binomial_bound():
    rate = 0.02
    model = run_steps(mutating_model(rate=rate, extra=["lattice.shape=[128, 128]", "tumor.initial.cells=1500"]), 48)
    divisions = model.latest["divisions_total"]
    mutations = model.subclones.mutations_total
    assert divisions > 3000
    assert abs(mutations - rate * divisions) <= 4 * math.sqrt(divisions * rate * (1 - rate))
    assert len(model.subclones.agents) == 2 + mutations  # below max_clones every mutation founds a clone


def test_children_follow_the_mutation_rules():
    """Every change at probability 1: each child's traits are its parent's, changed exactly as configured."""
    model = run_steps(make_model([
        "lattice.shape=[48, 48]", FIELDS, DRUG, "tumor.initial={geometry: scattered, cells: 200}",
        "tumor.clones=[{name: a, mutation_rate: 0.2, antigens: [1, 2, 3, 4, 5, 6], pdl1: 0.5, efflux: 0.1}]",
        "tumor.mutation={resistance: {drug: {probability: 1, sensitivity_factor: 0.5, cost: 0.1}},"
        " efflux: {probability: 1, increase: 0.2, cost: 0.05}, pdl1: {probability: 1, max_change: 0.1},"
        " antigen_loss_probability: 1}"]), 24)
    lineage = model.lineage().set_index("clone")
    children = lineage[lineage["parent"] >= 0]
    assert len(children) > 5
    for clone, child in children.iterrows():
        parent = lineage.loc[child["parent"]]
        assert child["sensitivity_drug"] == pytest.approx(parent["sensitivity_drug"] * 0.5)
        assert child["division_rate_per_h"] == pytest.approx(parent["division_rate_per_h"] * 0.9 * 0.95)
        assert 1 - child["resistance_cost"] == pytest.approx((1 - parent["resistance_cost"]) * 0.9 * 0.95)
        assert 1 - child["efflux"] == pytest.approx((1 - parent["efflux"]) * 0.8)
        assert abs(child["pdl1"] - parent["pdl1"]) <= 0.1 + 1e-12 and child["pdl1"] != parent["pdl1"]
        child_set = set(clone_table.antigen_list(child["antigens"]))
        parent_set = set(clone_table.antigen_list(parent["antigens"]))
        assert child_set < parent_set and len(parent_set - child_set) == 1 or (not parent_set and not child_set)
        assert child["mutation_rate"] == parent["mutation_rate"]


def test_antigen_gain_adds_one_new_antigen():
    parents = {"antigens": np.array([0b101, 0, (1 << 64) - 1], dtype=np.uint64),
               **{name: np.zeros(3) for name in clone_table.SCALAR_TRAITS}}
    rules = load_config("configs/tiny.yaml", ["tumor.mutation.antigen_gain_probability=1"]).tumor.mutation
    draws = iter(np.linspace(0.05, 0.95, 30))
    new = clone_table.mutant_table(parents, rules, [], lambda offset: np.full(3, next(draws)), 1.0)
    gained = [set(clone_table.antigen_list(n)) - set(clone_table.antigen_list(p))
              for n, p in zip(new["antigens"], parents["antigens"])]
    assert [len(g) for g in gained] == [1, 1, 0]  # the full set has nothing left to gain
    assert set(clone_table.antigen_list(new["antigens"][0])) >= {0, 2}


def test_max_clones_caps_new_clones_and_counts_the_rest():
    model = run_steps(mutating_model(rate=0.2, extra=["tumor.mutation.max_clones=6"]), 24)
    assert len(model.subclones.agents) == 6
    assert model.subclones.mutations_suppressed == model.subclones.mutations_total - 4 > 0
    assert model.latest["mutations_suppressed"] == model.subclones.mutations_suppressed


def test_mutation_is_reproducible_with_the_seed():
    first = run_steps(mutating_model(), 24)
    second = run_steps(mutating_model(), 24)
    other = run_steps(mutating_model(seed=4), 24)
    assert first.lineage().equals(second.lineage())
    np.testing.assert_array_equal(first.lattice.tumor.clone, second.lattice.tumor.clone)
    assert not first.lineage().equals(other.lineage())


def test_mutation_runs_in_3d():
    model = run_steps(mutating_model(extra=["lattice.shape=[24, 24, 24]"]), 12)
    lineage = model.lineage()
    assert len(lineage) > 2 and {"origin_z_um", "origin_y_um", "origin_x_um"} <= set(lineage.columns)


# metrics ------------------------------------------------------------------------

def test_diversity_indices():
    assert heterogeneity.shannon_index(np, np.array([5, 5])) == pytest.approx(math.log(2))
    assert heterogeneity.simpson_index(np, np.array([5, 5, 0])) == pytest.approx(0.5)
    assert heterogeneity.shannon_index(np, np.array([7, 0])) == 0 == heterogeneity.simpson_index(np, np.array([7]))
    assert heterogeneity.shannon_index(np, np.zeros(3)) == 0


def test_same_clone_neighbour_fraction_on_a_hand_made_lattice():
    clone = np.array([[0, 0, 1],
                      [0, 0, 1],
                      [-1, -1, 1]], dtype=np.int32)
    live = clone >= 0
    # live neighbours and same-clone ones, cell by cell in row order:
    # (0,0) 3/3, (0,1) 3/5, (0,2) 1/3, (1,0) 3/3, (1,1) 3/6, (1,2) 2/4, (2,2) 1/2
    expected = np.mean([1, 3 / 5, 1 / 3, 1, 1 / 2, 1 / 2, 1 / 2])
    measured = heterogeneity.same_clone_neighbour_fraction(np, clone, live, moore_offsets(2))
    assert measured == pytest.approx(expected)


def test_resistant_fraction_grows_under_selection_free_mutation(mutated):
    frame = mutated.timeseries()
    assert frame["fraction_resistant"].iloc[0] == 0
    assert frame["fraction_resistant"].iloc[-1] > 0
    assert frame["fraction_resistant_drug"].iloc[-1] == frame["fraction_resistant"].iloc[-1]
    assert (frame["clones_alive"] <= frame["clones_total"]).all()
    assert frame["mean_antigen_count"].iloc[0] == pytest.approx(0.7 * 3 + 0.3 * 2, abs=0.01)
