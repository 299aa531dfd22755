"""The output tables of a model, from Mesa's DataCollector and the model's compartments, and its snapshots.

The run directory's column schemas are :mod:`abm.rundir`'s; these functions
build the frames a run writes (:mod:`abm.runner`) and a notebook reads
(:class:`abm.model.TumorModel`'s methods of the same names).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.agents import SuppressorType, TCellClone, TumorSubclone
from abm.immunity import IMMUNE_SERIES_COLUMNS, POLARISATION_COLUMN
from abm.rundir import EVENT_COLUMNS

if TYPE_CHECKING:
    from abm.step import StepContext
    from abm.therapy import Therapy

CLONE_COLUMNS = ("time_h", "time_days", "clone", "cells", "cells_live")


def snapshot(context: "StepContext") -> dict[str, np.ndarray]:
    """Host copies of the per-voxel arrays, for the run directory's snapshots (names: :data:`abm.rundir.SNAPSHOT_PATTERN`'s files).

    ``time_h`` (end of the last step), ``dx_um``, ``clone``, ``cell_state``,
    ``vessel``, ``perfusion``; with immune cells ``immune``, ``immune_state``,
    ``exhaustion`` (``float32``: a T cell's exhaustion, 0 elsewhere); with a
    macrophage type also ``polarisation`` (``float32``: each macrophage's, 0
    M1-like to 1 M2-like, NaN where no macrophage is), which the immune layer
    keeps in its ``exhaustion`` array; ``field_<name>`` per field.
    """
    lattice, to_host = context.lattice, context.run.backend.to_host
    arrays = {
        "time_h": np.asarray(context.time_h),
        "dx_um": np.asarray(lattice.dx_um),
        "clone": to_host(lattice.tumor.clone),
        "cell_state": to_host(lattice.tumor.state),
        "vessel": to_host(lattice.vessels.present),
        "perfusion": to_host(lattice.vessels.perfusion),
    }
    if context.immune.enabled:
        arrays["immune"] = to_host(lattice.immune.agent)
        arrays["immune_state"] = to_host(lattice.immune.state)
        exhaustion = lattice.immune.exhaustion
        codes = context.immune.config.kind_codes
        macrophage_codes = [codes[name] for name in context.immune.config.macrophages]
        if macrophage_codes:
            xp = context.xp
            kinds = context.immune.kind_of(xp, lattice.immune.agent)
            macrophage = functools.reduce(xp.logical_or, [kinds == code for code in macrophage_codes])
            arrays["polarisation"] = to_host(xp.where(macrophage, exhaustion, xp.float32(np.nan)))
            exhaustion = xp.where(macrophage, xp.float32(0.0), exhaustion)
        arrays["exhaustion"] = to_host(exhaustion)
    for name, values in lattice.fields.items():
        arrays[f"field_{name}"] = to_host(values)
    return arrays


def timeseries(collector: mesa.DataCollector):
    """The model series as a pandas DataFrame, one row per record."""
    return collector.get_model_vars_dataframe().reset_index(drop=True)


def clone_series(collector: mesa.DataCollector, clones: list[TumorSubclone], dt_h: float):
    """Cells per clone per record (Mesa's agent-type series), rows only where the clone had cells.

    Columns :data:`CLONE_COLUMNS`: time, clone index, cells of any state,
    live (cycling or quiescent) cells. The data for Muller plots.
    """
    import pandas

    frame = collector.get_agenttype_vars_dataframe(TumorSubclone).reset_index()
    if frame.empty:
        return pandas.DataFrame({column: [] for column in CLONE_COLUMNS})
    index_of = {clone.unique_id: clone.index for clone in clones}
    frame = frame[frame["cells"] > 0]
    time_h = frame["Step"].to_numpy() * dt_h
    return pandas.DataFrame({
        "time_h": time_h,
        "time_days": time_h / 24.0,
        "clone": frame["AgentID"].map(index_of).to_numpy(dtype=np.int64),
        "cells": frame["cells"].to_numpy(dtype=np.int64),
        "cells_live": frame["cells_live"].to_numpy(dtype=np.int64),
    }).sort_values(["time_h", "clone"], kind="stable").reset_index(drop=True)


def immune_series(collector: mesa.DataCollector, agents: list, dt_h: float):
    """Cells of each immune agent per record (Mesa's agent-type series), one row per agent and record.

    Columns :data:`abm.immunity.IMMUNE_SERIES_COLUMNS`: time, agent index,
    name, kind (``t_cell`` for a T-cell clone, else the suppressor type's name), antigen (-1 for
    suppressors), effector and exhausted cells (a suppressor's cells are
    its effectors), the clone's systemic pool and activation (NaN for
    suppressors); in a run with a macrophage type also
    :data:`abm.immunity.POLARISATION_COLUMN` (the type's mean polarisation,
    NaN for other agents). Empty without immune cells.
    """
    import pandas

    frames = []
    polarisation = POLARISATION_COLUMN in collector.agenttype_reporters.get(SuppressorType, {})
    for agent_class in (TCellClone, SuppressorType):
        if agent_class not in collector.agenttype_reporters:
            continue
        frame = collector.get_agenttype_vars_dataframe(agent_class).reset_index()
        by_id = {agent.unique_id: agent for agent in agents}
        rows = frame["AgentID"].map(by_id)
        time_h = frame["Step"].to_numpy() * dt_h
        is_t = agent_class is TCellClone
        frames.append(pandas.DataFrame({
            "time_h": time_h,
            "time_days": time_h / 24.0,
            "agent": [agent.index for agent in rows],
            "name": [agent.name for agent in rows],
            "kind": [agent.kind for agent in rows],
            "antigen": [agent.antigen if is_t else -1 for agent in rows],
            "cells_effector": frame["cells_effector" if is_t else "cells"].to_numpy(dtype=np.int64),
            "cells_exhausted": frame["cells_exhausted"].to_numpy(dtype=np.int64) if is_t else np.zeros(len(frame), dtype=np.int64),
            "primed_pool": frame["primed_pool"].to_numpy(dtype=np.float64) if is_t else np.full(len(frame), np.nan),
            "activation": frame["activation"].to_numpy(dtype=np.float64) if is_t else np.full(len(frame), np.nan),
            **({POLARISATION_COLUMN: np.full(len(frame), np.nan) if is_t else
                frame[POLARISATION_COLUMN].to_numpy(dtype=np.float64)} if polarisation else {}),
        }))
    if not frames:
        return pandas.DataFrame({column: [] for column in IMMUNE_SERIES_COLUMNS})
    return pandas.concat(frames).sort_values(["time_h", "agent"], kind="stable").reset_index(drop=True)


def events(therapy: "Therapy"):
    """The treatment's events (doses, lines, assessments) as a DataFrame, columns :data:`abm.rundir.EVENT_COLUMNS`."""
    import pandas

    return pandas.DataFrame(therapy.events, columns=list(EVENT_COLUMNS))
