"""What a rule is given: the run's fixed parameters and the step context.

A rule (:mod:`abm.rules`) never sees the model. Each cell step it gets one
:class:`StepContext`: the lattice in layers, the subclones' traits, the
immune and therapy compartments, the running totals, the clock, its random
draws, and a per-step cache of derived masks. What a run fixes at set-up
(the config, the array module, the step, the neighbourhood, the field
operators) is the context's :class:`RunParameters`.

Names: what a rule reads and writes is named by layer and array
(``tumor.clone``, ``immune.agent``, ``vessels.perfusion``; ``fields.<name>``,
or ``fields.*`` for every field) or by compartment (:data:`COMPARTMENTS`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields as dataclass_fields
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from kernels.backend import Backend
from kernels.layers import ImmuneLayer, TumorLayer, VesselLayer
from kernels.random import uniform
from kernels.tumor import HypoxiaParameters

if TYPE_CHECKING:
    from abm.config import Config
    from abm.immunity import ImmuneSystem
    from abm.state import Lattice
    from abm.subclones import Subclones
    from abm.therapy import Therapy

#: Compartments a rule may read or write besides the lattice: the subclones' trait table, the T cells' systemic
#: priming (pools, activations), the dosed drugs' plasma levels, the treatment's lines and assessments, the totals.
COMPARTMENTS = frozenset({"clones", "priming", "plasma", "treatment", "totals.divisions", "totals.drug_kills",
                          "totals.immune_kills", "totals.immune_drug_deaths"})


def layer_names(config: "Config") -> frozenset[str]:
    """Every lattice name of ``config``'s runs: ``<layer>.<array>`` of the three cell layers and ``fields.<name>``."""
    names = {f"{layer}.{item.name}" for layer, kind in (("tumor", TumorLayer), ("immune", ImmuneLayer),
                                                      ("vessels", VesselLayer)) for item in dataclass_fields(kind)}
    return frozenset(names | {f"fields.{name}" for name in config.fields})


@dataclass(frozen=True)
class RunParameters:
    """What a run fixes at set-up; no rule changes it.

    Attributes:
        config: the validated config.
        backend: the array backend (``xp`` its array module).
        random_key: the 64-bit key of the counter-based random streams (from Mesa's ``rng``).
        dt_h: the cell step, h.
        offsets: the Moore neighbourhood (:func:`kernels.lattice.moore_offsets`).
        hypoxia: the tumor cells' oxygen thresholds.
        field_parameters: field name -> :class:`kernels.diffusion.FieldParameters`.
        drug_actions: action -> ``(name, drug)`` of the drugs whose kind has it, in field order.
    """

    config: "Config"
    backend: Backend
    random_key: int
    dt_h: float
    offsets: list[tuple[int, ...]]
    hypoxia: HypoxiaParameters
    field_parameters: dict[str, Any]
    drug_actions: dict[str, list[tuple[str, Any]]]

    @property
    def xp(self) -> ModuleType:
        return self.backend.xp


@dataclass
class Totals:
    """Running totals since the start of the run: device ``int64`` scalars (read at records only)."""

    divisions: Any
    drug_kills: Any
    immune_kills: Any
    immune_drug_deaths: Any

    @classmethod
    def zero(cls, xp: ModuleType) -> "Totals":
        return cls(*(xp.zeros((), dtype=xp.int64) for _ in range(4)))


@dataclass
class StepContext:
    """What every rule gets each cell step (see the module doc).

    Attributes:
        run: the run's fixed parameters.
        lattice: the :class:`abm.state.Lattice`; a rule replaces the layers it writes.
        subclones: the :class:`abm.subclones.Subclones` (device traits, founding of new clones).
        immune: the :class:`abm.immunity.ImmuneSystem` (agents, traits, priming).
        therapy: the :class:`abm.therapy.Therapy` (lines, doses, plasma levels, assessments).
        totals: the running :class:`Totals`.
        burden: ``burden(assessment) -> (burden, live cells)`` of the current lattice, for the assessments.
        step: index of the cell step being taken (0 for the first); Mesa's ``model.steps`` less one.
        solver_iterations: field name -> CG iterations of this step's solve (0 for the split solver).
    """

    run: RunParameters
    lattice: "Lattice"
    subclones: "Subclones"
    immune: "ImmuneSystem"
    therapy: "Therapy"
    totals: Totals
    burden: Callable[[Any], tuple[float, int]]
    step: int = 0
    solver_iterations: dict[str, int] = field(default_factory=dict)
    _cache: dict[str, tuple[frozenset[str], Any]] = field(default_factory=dict)

    @property
    def xp(self) -> ModuleType:
        return self.run.backend.xp

    @property
    def time_h(self) -> float:
        """Time at the start of this step, h."""
        return self.step * self.run.dt_h

    def draw(self, stream: int, index: Any = None) -> Any:
        """``float64`` uniform [0, 1) draws of ``stream`` at this step: one per voxel (lattice shape), or at the flat
        voxels ``index`` (integers, shape ``(n,)``) only, the values the whole-lattice draw has there."""
        at = self.lattice.voxel_index if index is None else index.astype(self.xp.uint64)
        return uniform(self.xp, self.run.random_key, self.step, stream, at)

    def live_tumor(self) -> Any:
        """Bool, lattice shape: voxels with a live tumor cell, computed once until the tumor layer is written."""
        return self.derived("live_tumor", frozenset({"tumor.clone", "tumor.state"}), self.lattice.tumor.live)

    def immune_kinds(self) -> Any:
        """``int8``, lattice shape: each voxel's immune kind code (-1 where none), computed once until
        ``immune.agent`` is written."""
        return self.derived("immune_kinds", frozenset({"immune.agent"}),
                            lambda: self.immune.kind_of(self.xp, self.lattice.immune.agent))

    def derived(self, name: str, reads: frozenset[str], compute: Callable[[], Any]) -> Any:
        """A value derived from the lattice (a mask, a factor), computed once per step until something it reads is written.

        Args:
            name: the value's name (one computation per name).
            reads: the names it is computed from; :meth:`written` drops it when a rule writes one of them.
            compute: computes it from the current lattice.
        """
        if name not in self._cache:
            self._cache[name] = (reads, compute())
        return self._cache[name][1]

    def written(self, names: frozenset[str]) -> None:
        """Forget the derived values that read any of ``names`` (the runner calls this after each rule with its writes)."""
        stale = [name for name, (reads, _) in self._cache.items() if reads & names or ("fields.*" in names and any(
            read.startswith("fields.") for read in reads))]
        for name in stale:
            del self._cache[name]

    def new_step(self, step: int) -> None:
        """Begin cell step ``step``: the clock moves and the cache empties."""
        self.step = step
        self._cache.clear()
