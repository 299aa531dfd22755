"""Mesa agents of the model: the clones a biologist names and follows.

Cells are not agents: they live in the lattice arrays and carry the index of
their agent (see :mod:`abm.state`). An agent holds the traits its cells share;
the model mirrors those traits into device arrays indexed by
:attr:`TumorSubclone.index` so kernels gather them in one operation.
"""
from __future__ import annotations

import mesa


class TumorSubclone(mesa.Agent):
    """A tumor subclone: heritable traits shared by its cells, and its lineage.

    Attributes:
        index: position in the model's trait arrays; the value of ``clone`` in the lattice.
        name: label from the config (or derived from the parent for new clones).
        parent: the subclone this one arose from, or None for a founding clone.
        birth_time_h: simulated hour at which the clone appeared.
        division_rate_per_h: division rate in full oxygen, 1/h.
        apoptosis_per_h: apoptosis rate, 1/h.
        cell_count: cells of this clone on the lattice at the last record.
    """

    TRAITS = ("division_rate_per_h", "apoptosis_per_h")

    def __init__(
        self,
        model: mesa.Model,
        index: int,
        name: str,
        division_rate_per_h: float,
        apoptosis_per_h: float,
        parent: "TumorSubclone | None" = None,
        birth_time_h: float = 0.0,
    ) -> None:
        super().__init__(model)
        self.index = index
        self.name = name
        self.parent = parent
        self.birth_time_h = birth_time_h
        self.division_rate_per_h = division_rate_per_h
        self.apoptosis_per_h = apoptosis_per_h
        self.cell_count = 0
