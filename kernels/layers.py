"""The per-voxel state in layers: tumor cells, immune cells, vessels.

A layer is a small frozen record of arrays of the lattice shape (``[y, x]``
in 2-D, ``[z, y, x]`` in 3-D) on one device, with the operations every rule
repeats (clear listed voxels, move or copy cells between listed voxels, reset new
cells). Kernels take layers and return new ones (arrays a kernel leaves
alone are the same objects in the new layer); no kernel changes a layer in
place. Dtypes are fixed by :meth:`empty` and kept by every operation.

A voxel holds at most one tumor cell and at most one immune cell; an immune
cell may share the voxel of a tumor cell (infiltration). Substrate fields
are a fourth layer kept as a dict ``name -> array`` (see
:class:`abm.state.Lattice`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: Tumor cell states (``TumorLayer.state``).
CYCLING, QUIESCENT, APOPTOTIC, NECROTIC = 0, 1, 2, 3
#: No immune cell (``ImmuneLayer.agent``).
NONE = -1
#: Immune cell states (``ImmuneLayer.state``); suppressor cells stay :data:`EFFECTOR`.
EFFECTOR, EXHAUSTED = 0, 1


@dataclass(frozen=True)
class TumorLayer:
    """Tumor cells, one per voxel at most.

    ==============  =======  ==============================================================
    array           dtype    meaning
    ==============  =======  ==============================================================
    ``clone``       int32    subclone index of the voxel's cell, -1 for none
    ``state``       int8     :data:`CYCLING`, :data:`QUIESCENT`, :data:`APOPTOTIC`, :data:`NECROTIC`
    ``age_h``       float32  hours since the cell entered its state
    ``immunogenic`` bool     the cell is dying an immunogenic death (a drug's immunogenic kill)
    ==============  =======  ==============================================================

    ``state`` is :data:`CYCLING` and ``age_h`` 0 where there is no cell.
    """

    clone: Any
    state: Any
    age_h: Any
    immunogenic: Any

    @classmethod
    def empty(cls, xp: ModuleType, shape: tuple[int, ...]) -> "TumorLayer":
        """No tumor cell anywhere."""
        return cls(clone=xp.full(shape, -1, dtype=xp.int32), state=xp.zeros(shape, dtype=xp.int8),
                   age_h=xp.zeros(shape, dtype=xp.float32), immunogenic=xp.zeros(shape, dtype=bool))

    def replace(self, **arrays: Any) -> "TumorLayer":
        """The layer with ``arrays`` (by name) replaced, the others shared."""
        return dataclasses.replace(self, **arrays)

    def occupied(self) -> Any:
        """Bool mask of voxels with a tumor cell of any state."""
        return self.clone >= 0

    def live(self) -> Any:
        """Bool mask of voxels with a cycling or quiescent tumor cell."""
        return (self.clone >= 0) & ((self.state == CYCLING) | (self.state == QUIESCENT))

    def cleared(self, index: Any) -> "TumorLayer":
        """No cell at the flat voxels ``index`` (``int64``, shape ``(n,)``): clone -1, :data:`CYCLING`, age 0, not
        immunogenic (the values of a voxel without a cell)."""
        arrays = {name: getattr(self, name).copy() for name in ("clone", "state", "age_h", "immunogenic")}
        for name, value in (("clone", -1), ("state", CYCLING), ("age_h", 0.0), ("immunogenic", False)):
            arrays[name].reshape(-1)[index] = value
        return self.replace(**arrays)


#: The arrays of an :class:`ImmuneLayer`.
_IMMUNE_ARRAYS = ("agent", "state", "exhaustion", "age_h")


@dataclass(frozen=True)
class ImmuneLayer:
    """Immune cells (T cells and suppressor cells), one per voxel at most.

    ==============  =======  ==============================================================
    array           dtype    meaning
    ==============  =======  ==============================================================
    ``agent``       int32    immune agent (T-cell clone or suppressor type) of the cell, :data:`NONE` for none
    ``state``       int8     :data:`EFFECTOR` or :data:`EXHAUSTED`
    ``exhaustion``  float32  a T cell's exhaustion (exhausted from 1 on); a macrophage's polarisation (0 M1 .. 1 M2)
    ``age_h``       float32  hours since the cell appeared
    ==============  =======  ==============================================================

    Where there is no cell the voxel holds the values of a new cell
    (:data:`EFFECTOR`, exhaustion 0, age 0): :meth:`cleared` keeps that so.
    """

    agent: Any
    state: Any
    exhaustion: Any
    age_h: Any

    @classmethod
    def empty(cls, xp: ModuleType, shape: tuple[int, ...]) -> "ImmuneLayer":
        """No immune cell anywhere."""
        return cls(agent=xp.full(shape, NONE, dtype=xp.int32), state=xp.zeros(shape, dtype=xp.int8),
                   exhaustion=xp.zeros(shape, dtype=xp.float32), age_h=xp.zeros(shape, dtype=xp.float32))

    def replace(self, **arrays: Any) -> "ImmuneLayer":
        """The layer with ``arrays`` (by name) replaced, the others shared."""
        return dataclasses.replace(self, **arrays)

    def occupied(self) -> Any:
        """Bool mask of voxels with an immune cell."""
        return self.agent >= 0

    def cleared(self, index: Any) -> "ImmuneLayer":
        """No cell at the flat voxels ``index`` (``int64``, shape ``(n,)``): agent :data:`NONE`, a new cell's state, exhaustion and age."""
        return self._written(index, agent=NONE, state=EFFECTOR, exhaustion=0.0, age_h=0.0)

    def arrived(self, index: Any, agent: Any) -> "ImmuneLayer":
        """New cells of ``agent`` (integer, shape ``(n,)``) at the flat voxels ``index`` (``int64``, shape ``(n,)``,
        voxels without a cell): effectors of exhaustion 0 and age 0."""
        return self._written(index, agent=agent, state=EFFECTOR, exhaustion=0.0, age_h=0.0)

    def moved(self, source: Any, target: Any) -> "ImmuneLayer":
        """The cells at the flat voxels ``source`` move to ``target`` (``int64``, shape ``(m,)`` each; targets hold no
        cell and differ from every source), taking their state, exhaustion and age along; their voxels are
        left as :meth:`cleared` leaves them."""
        layer = self._written(target, **{name: getattr(self, name).reshape(-1)[source] for name in _IMMUNE_ARRAYS})
        return layer._written(source, agent=NONE, state=EFFECTOR, exhaustion=0.0, age_h=0.0, copy=False)

    def divided(self, source: Any, target: Any) -> "ImmuneLayer":
        """Daughters of the cells at the flat voxels ``source`` at ``target`` (``int64``, shape ``(m,)`` each, voxels
        without a cell): copies of their mothers (agent, state, exhaustion) of age 0."""
        flat = {name: getattr(self, name).reshape(-1) for name in _IMMUNE_ARRAYS}
        return self._written(target, agent=flat["agent"][source], state=flat["state"][source],
                             exhaustion=flat["exhaustion"][source], age_h=0.0)

    def _written(self, index: Any, copy: bool = True, **values: Any) -> "ImmuneLayer":
        """The layer with ``values`` (by array name: a scalar or one value per entry of ``index``) written at the
        flat voxels ``index``; into copies of the arrays unless ``copy`` is False (arrays this call made)."""
        arrays = {}
        for name, value in values.items():
            array = getattr(self, name).copy() if copy else getattr(self, name)
            array.reshape(-1)[index] = value
            arrays[name] = array
        return self.replace(**arrays)


@dataclass(frozen=True)
class VesselLayer:
    """Blood vessels (a vessel voxel holds no tumor cell).

    ==============  =======  ==============================================================
    array           dtype    meaning
    ==============  =======  ==============================================================
    ``present``     bool     the voxel is a blood vessel
    ``perfusion``   float32  blood flow of a vessel, 0 to 1 (0 off vessels, at collapsed and at immature ones)
    ``immature``    bool     a new vessel grown by angiogenesis that has not yet matured (no blood flow yet)
    ``tip``         bool     an immature vessel's migrating sprout tip
    ``age_h``       float32  hours since an immature vessel formed (0 elsewhere)
    ==============  =======  ==============================================================

    The initial vessels are mature; only angiogenesis (:mod:`kernels.vessels`) makes immature ones and tips.
    """

    present: Any
    perfusion: Any
    immature: Any
    tip: Any
    age_h: Any

    @classmethod
    def empty(cls, xp: ModuleType, shape: tuple[int, ...]) -> "VesselLayer":
        """No vessel anywhere."""
        return cls(present=xp.zeros(shape, dtype=bool), perfusion=xp.zeros(shape, dtype=xp.float32),
                   immature=xp.zeros(shape, dtype=bool), tip=xp.zeros(shape, dtype=bool),
                   age_h=xp.zeros(shape, dtype=xp.float32))

    def replace(self, **arrays: Any) -> "VesselLayer":
        """The layer with ``arrays`` (by name) replaced, the others shared."""
        return dataclasses.replace(self, **arrays)
