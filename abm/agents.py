"""Mesa agents of the model: the clones a biologist names and follows.

Cells are not agents: they live in the lattice arrays and carry the index of
their agent (see :mod:`abm.state`). An agent holds the traits its cells share
and its place in the lineage; the model keeps the same traits in a host table
(:mod:`abm.clones`) that it mirrors into device arrays indexed by
:attr:`TumorSubclone.index`, so kernels gather them in one operation.
"""
from __future__ import annotations

import math

import mesa

from abm.clones import SCALAR_TRAITS, SENSITIVITY_PREFIX, antigen_list


class TumorSubclone(mesa.Agent):
    """A tumor subclone: heritable traits shared by its cells, and its lineage.

    Attributes:
        index: row in the model's trait table; the value of ``clone`` in the lattice.
        name: label from the config, or ``<founding clone>/<index>`` for a clone born in the run.
        parent: the subclone this one arose from, or None for a founding clone.
        birth_time_h: simulated hour at which the clone appeared (0 for founding clones).
        origin_um: coordinates (um, lattice axis order) of the daughter cell that
            founded the clone; None for founding clones.
        division_rate_per_h, apoptosis_per_h, resistance_cost, efflux,
        quiescence_entry_per_h, quiescence_exit_per_h, pdl1, mutation_rate:
            the traits (see :mod:`abm.clones`).
        drug_sensitivity: drug field name -> multiplier of its kill.
        antigens: neoantigen numbers (0-63), ascending.
        cell_count: cells of this clone on the lattice (any state) at the last record.
        live_cell_count: cycling and quiescent cells of this clone at the last record.
    """

    def __init__(
        self,
        model: mesa.Model,
        index: int,
        name: str,
        traits: dict[str, float],
        parent: "TumorSubclone | None" = None,
        birth_time_h: float = 0.0,
        origin_um: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(model)
        self.index = index
        self.name = name
        self.parent = parent
        self.birth_time_h = birth_time_h
        self.origin_um = origin_um
        for trait in SCALAR_TRAITS:
            setattr(self, trait, float(traits[trait]))
        self.drug_sensitivity = {name[len(SENSITIVITY_PREFIX):]: float(value)
                                 for name, value in traits.items() if name.startswith(SENSITIVITY_PREFIX)}
        self.antigens = antigen_list(int(traits["antigens"]))
        self.cell_count = 0
        self.live_cell_count = 0

    @property
    def root(self) -> "TumorSubclone":
        """The founding clone of this clone's lineage."""
        clone = self
        while clone.parent is not None:
            clone = clone.parent
        return clone

    @property
    def generation(self) -> int:
        """Mutations between the founding clone and this one (0 for a founding clone)."""
        depth, clone = 0, self
        while clone.parent is not None:
            depth, clone = depth + 1, clone.parent
        return depth


class TCellClone(mesa.Agent):
    """A T-cell clonotype: the neoantigen it recognises, its systemic pool, and its cells in the tissue.

    Attributes:
        index: position in the model's immune-agent table; the value of ``immune`` in the lattice.
        name: label from the config.
        antigen: the neoantigen number (0-63) its receptor recognises.
        precursors: naive precursor cells in the systemic pool.
        primed_pool: cells of the systemic pool at the last record (precursors plus expansion).
        activation: activation of its priming at the last record, 0 to 1.
        cells_effector, cells_exhausted: its cells on the lattice at the last record.
        polarisation_mean: NaN (a T cell has no polarisation; ``immune.parquet``'s column of macrophages).
    """

    kind = "t_cell"

    def __init__(self, model: mesa.Model, index: int, name: str, antigen: int, precursors: float) -> None:
        super().__init__(model)
        self.index = index
        self.name = name
        self.antigen = antigen
        self.precursors = precursors
        self.primed_pool = precursors
        self.activation = 0.0
        self.cells_effector = 0
        self.cells_exhausted = 0
        self.polarisation_mean = math.nan

    def series_values(self) -> tuple[int, int, int, float, float]:
        """Its last record in ``immune.parquet``'s order: antigen, effector and exhausted cells, primed pool, activation."""
        return self.antigen, self.cells_effector, self.cells_exhausted, self.primed_pool, self.activation


class SuppressorType(mesa.Agent):
    """A suppressor cell type of the config's table ``immune.suppressors``.

    Attributes:
        index: position in the model's immune-agent table; the value of ``immune`` in the lattice.
        name: the type's name in the table.
        kind: the same as ``name``.
        role: ``suppressor``.
        code: its kind code (``kind`` trait), assigned by the config at load.
        slot: its slot (code - 1): its entry stream and count column.
        cells: its cells on the lattice at the last record.
        polarisation_mean: of a macrophage type, the mean polarisation of its cells at the last record (NaN without
            cells); NaN for other types.
    """

    def __init__(self, model: mesa.Model, index: int, kind: str, code: int = 0, role: str = "suppressor") -> None:
        super().__init__(model)
        self.index = index
        self.name = kind
        self.kind = kind
        self.role = role
        self.code = code
        self.slot = code - 1
        self.cells = 0
        self.polarisation_mean = math.nan

    def series_values(self) -> tuple[int, int, int, float, float]:
        """Its last record in ``immune.parquet``'s order: no antigen (-1), its cells as effectors, none exhausted,
        no systemic pool or activation (NaN)."""
        return -1, self.cells, 0, math.nan, math.nan
