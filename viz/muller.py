"""Layout of a Muller (fish) plot: nested bands of clonal shares over time.

Given the lineage (``lineage.parquet``: each clone's parent and birth time)
and the cells of each clone at each record (``clones.parquet``), every clone
gets a band whose height at time ``t`` is its own share of the cells. A
clone's descendants are drawn inside it: its *envelope* (its own band plus
all its descendants' envelopes) is split so that half of its own share lies
below its children and half above, and the children's envelopes are stacked
in the middle. So a new clone grows out of the middle of its parent's band
at its birth time, and each lineage stays one connected region.

Clones are ordered depth-first through the lineage tree: founding clones by
index, bottom to top, and the children of a clone by birth time (then
index). Drawing the envelopes in that order, each on top of the ones before,
paints every clone's own band in its colour with its descendants over it.

Only NumPy and pandas are needed here; :func:`viz.figures.muller_figure`
draws the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viz import palette

#: At most this many births (of the largest clones) get a time point of their
#: own, where the clone's band starts from zero; the others grow from the
#: record before their birth (too thin to tell the difference).
MAX_BIRTH_POINTS = 400


@dataclass(frozen=True)
class MullerBands:
    """Bands of a Muller plot. ``K`` clones, ``T`` time points.

    Attributes:
        time_h: ``float64 (T,)``: the record times, plus the birth times of
            the largest clones born between records, hours, increasing.
        clones: ``int64 (K,)``: clone indices in depth-first (drawing) order.
        parents: ``int64 (K,)``: each clone's parent clone index, -1 for a
            founding clone (or one whose parent is not in the lineage).
        cells: ``float64 (K, T)``: each clone's own cells (linear between
            records, 0 before its birth; a missing record row counts 0).
        total: ``float64 (T,)``: cells of all clones.
        share: ``float64 (K, T)``: ``cells / total``, 0-1 (0 where ``total`` is 0).
        lower, upper: ``float64 (K, T)``: edges of each clone's envelope (its
            own band and its descendants'), in shares 0-1. ``upper - lower``
            is the share of the clone and all its descendants.
        colors: ``(K,)`` 8-bit colours, ``palette.clone_color`` of each clone.
    """

    time_h: np.ndarray
    clones: np.ndarray
    parents: np.ndarray
    cells: np.ndarray
    total: np.ndarray
    share: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    colors: tuple[palette.RGB, ...]

    @property
    def time_days(self) -> np.ndarray:
        """``float64 (T,)``: :attr:`time_h` in days."""
        return self.time_h / 24.0

    def row(self, clone: int) -> int:
        """Position of clone index ``clone`` in :attr:`clones`."""
        matches = np.flatnonzero(self.clones == clone)
        if matches.size == 0:
            raise KeyError(f"clone {clone} is not in the bands")
        return int(matches[0])

    def own_band(self, clone: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The clone's own band: its lower half ``(bottom, top)`` and its upper half ``(bottom, top)``, each ``(T,)``.

        Together the halves are ``share`` high; the space between them holds
        the clone's descendants.
        """
        k = self.row(clone)
        half = self.share[k] / 2.0
        return (self.lower[k], self.lower[k] + half), (self.upper[k] - half, self.upper[k])

    def polygons(self) -> list[tuple[int, np.ndarray]]:
        """Envelopes to fill, in drawing order: ``(clone index, vertices float64 (N, 2))``, x in days, y in shares.

        Each polygon runs along the lower edge and back along the upper edge
        over the times where the clone or a descendant has cells, plus one
        time point either side (so a band grows from, and shrinks to, zero).
        Clones never present are left out.
        """
        days = self.time_days
        out = []
        for k, clone in enumerate(self.clones):
            present = np.flatnonzero(self.upper[k] - self.lower[k] > 0)
            if present.size == 0:
                continue
            span = slice(max(present[0] - 1, 0), min(present[-1] + 2, days.size))
            x = days[span]
            vertices = np.concatenate([np.column_stack([x, self.lower[k, span]]),
                                       np.column_stack([x[::-1], self.upper[k, span][::-1]])])
            out.append((int(clone), vertices))
        return out

    def largest(self, count: int) -> list[int]:
        """Indices of the ``count`` clones with the largest peak share (ties: lower index first), in drawing order."""
        peak = self.share.max(axis=1) if self.share.size else np.zeros(len(self.clones))
        order = sorted(range(len(self.clones)), key=lambda k: (-peak[k], self.clones[k]))
        chosen = {k for k in order[:count] if peak[k] > 0}
        return [int(self.clones[k]) for k in range(len(self.clones)) if k in chosen]


def _depth_first(ids: np.ndarray, parent_row: np.ndarray, birth_h: np.ndarray) -> list[int]:
    """Rows in depth-first pre-order: roots by index, children by (birth, index). Rows in a parent cycle become roots."""
    children: dict[int, list[int]] = {}
    roots = []
    for k, p in enumerate(parent_row.tolist()):
        (roots if p < 0 else children.setdefault(p, [])).append(k)

    def birth_key(k: int) -> tuple[float, int]:
        return (birth_h[k] if np.isfinite(birth_h[k]) else -np.inf, int(ids[k]))

    order: list[int] = []
    seen = np.zeros(len(ids), dtype=bool)
    pending = sorted(roots, key=lambda k: int(ids[k]))
    while True:
        stack = pending[::-1]
        while stack:
            k = stack.pop()
            if seen[k]:
                continue
            seen[k] = True
            order.append(k)
            stack.extend(sorted(children.get(k, []), key=birth_key, reverse=True))
        if seen.all():
            return order
        unreached = int(np.flatnonzero(~seen)[0])  # only a malformed lineage (a cycle) gets here
        parent_row[unreached] = -1
        pending = [unreached]


def muller_bands(lineage, clone_series, column: str = "cells_live", record_times_h=None,
                 birth_points: int = MAX_BIRTH_POINTS) -> MullerBands:
    """Lay out the bands of a Muller plot.

    Args:
        lineage: DataFrame with ``clone`` and ``parent`` (-1 for a founding
            clone), optionally ``birth_time_h``; one row per clone (see
            ``TumorModel.lineage``). None: every clone is a founding clone.
        clone_series: DataFrame with ``time_h``, ``clone`` and ``column``;
            rows only where the clone had cells (see ``TumorModel.clone_series``).
        column: the cell count to show, ``cells_live`` (cycling and quiescent)
            or ``cells`` (any state).
        record_times_h: every record time, hours (e.g. the time series'
            ``time_h``), so records where no clone had cells count too;
            default: the times in ``clone_series``.
        birth_points: at most this many births between records get a time
            point where the clone starts from zero cells.

    Returns:
        The bands, with clones of the lineage and of the series (a clone in
        the series but not the lineage is treated as founding).
    """
    series_ids = clone_series["clone"].to_numpy(dtype=np.int64)
    lineage_ids = lineage["clone"].to_numpy(dtype=np.int64) if lineage is not None else np.zeros(0, dtype=np.int64)
    ids = np.union1d(lineage_ids, series_ids)
    row_of = {int(clone): k for k, clone in enumerate(ids)}
    parent_row = np.full(ids.size, -1, dtype=np.int64)
    birth_h = np.full(ids.size, np.nan)
    if lineage is not None:
        births = (lineage["birth_time_h"].to_numpy(dtype=float) if "birth_time_h" in lineage
                  else np.full(len(lineage), np.nan))
        parents = lineage["parent"].to_numpy(dtype=np.int64).tolist()
        for clone, parent, birth in zip(lineage_ids.tolist(), parents, births):
            k = row_of[clone]
            parent_row[k] = row_of.get(parent, -1) if parent >= 0 and parent != clone else -1
            birth_h[k] = birth
    birth_h[parent_row < 0] = np.nan  # founding clones are there from the start

    times = clone_series["time_h"].to_numpy(dtype=float)
    extra = np.asarray(record_times_h if record_times_h is not None else [], dtype=float)
    records = np.unique(np.concatenate([times, extra]))
    counts = np.zeros((ids.size, records.size))
    np.add.at(counts, (np.searchsorted(ids, series_ids), np.searchsorted(records, times)),
              clone_series[column].to_numpy(dtype=float))

    grid = records
    if records.size and birth_points > 0:
        between = np.isfinite(birth_h) & (birth_h > records[0]) & (birth_h < records[-1]) & ~np.isin(birth_h, records)
        candidates = np.flatnonzero(between)
        peaks = counts[candidates].max(axis=1) if candidates.size else np.zeros(0)
        chosen = candidates[np.argsort(-peaks, kind="stable")[:birth_points]]
        grid = np.union1d(records, birth_h[chosen])

    cells = np.zeros((ids.size, grid.size))
    for k in range(ids.size):
        x, y = records, counts[k]
        born = birth_h[k]
        if np.isfinite(born) and records.size and born >= records[0]:
            later = records >= born
            x, y = records[later], y[later]
            if born not in records:
                x, y = np.concatenate([[born], x]), np.concatenate([[0.0], y])
        if x.size:
            cells[k] = np.interp(grid, x, y, left=0.0, right=y[-1])

    order = _depth_first(ids, parent_row, birth_h)
    ids, parent_row, birth_h, cells = ids[order], parent_row[order], birth_h[order], cells[order]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    parent_row = np.where(parent_row >= 0, position[np.maximum(parent_row, 0)], -1)

    total = cells.sum(axis=0)
    share = np.divide(cells, total, out=np.zeros_like(cells), where=total > 0)
    subtree = share.copy()
    for k in range(len(order) - 1, -1, -1):  # children come after their parent in pre-order
        if parent_row[k] >= 0:
            subtree[parent_row[k]] += subtree[k]
    lower = np.zeros_like(share)
    cursor = np.zeros_like(share)  # where the next child of each clone starts
    root_cursor = np.zeros(grid.size)
    for k in range(len(order)):
        p = parent_row[k]
        start = root_cursor if p < 0 else cursor[p]
        lower[k] = start
        start += subtree[k]  # in place: advances the parent's (or the roots') cursor
        cursor[k] = lower[k] + share[k] / 2.0
    upper = lower + subtree
    parents = np.where(parent_row >= 0, ids[np.maximum(parent_row, 0)], -1)
    return MullerBands(time_h=grid, clones=ids, parents=parents, cells=cells, total=total, share=share,
                       lower=lower, upper=upper, colors=tuple(palette.clone_color(int(clone)) for clone in ids))
