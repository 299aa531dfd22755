"""Fixed lists of array calls: run in order, or on NumPy shared among threads with the same bits.

A field solve is mostly a few fixed lists of array calls on fixed arrays (the
V-cycle's two halves and the operator's application,
:mod:`kernels.diffusion`); on a GPU each list is captured once as a CUDA
graph. On NumPy a :class:`CallList` with ``threads > 1`` cuts each large
elementwise call (a ufunc with an ``out`` array, or ``copyto``) into slabs
along its output's first axis, one slab per thread, and the threads run the
list together. A barrier stops every thread before a call only where one
thread would read memory that another wrote since the last barrier, or write
memory that another read or wrote since then; the places are found once, from
the byte ranges each slab reads and writes. Every other call (a reduction, a
matrix product, a call on a small array) runs whole on the calling thread,
with the same barriers around it.

The result is the serial run's, to the bit: an elementwise call computes each
output element from the same operands whichever slab holds it, and the
barriers keep, for every byte, the order of the writes and reads that touch
it. The threads give speed on NumPy because its ufunc loops release the GIL;
tests/test_calls.py runs random call lists serially and threaded and
compares them bit for bit.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

#: Fewest output elements per slab: a smaller call runs whole. A barrier costs about 60 us on CPython, an
#: elementwise float32 pass about 0.5 ns per element, so a slab must be large to pay for it: with 2^14, a 2-day run of
#: configs/immune_excluded.yaml (36^3) took 1.7 times as long on two threads as on one; with 2^16 the same time, and a
#: 96^3 step is still 1.3 times faster on two (docs/performance.md, "Threads on the CPU").
MIN_SLAB_ELEMENTS = 1 << 16
#: A byte range that overlaps every other: what an opaque call may touch.
_EVERYTHING = (0, 1 << 64)


def _extent(array: np.ndarray) -> tuple[int, int]:
    """The byte range ``[start, stop)`` that ``array`` (a view of any strides) lies within."""
    start = stop = array.__array_interface__["data"][0]
    if array.size == 0:
        return start, start
    for extent, stride in zip(array.shape, array.strides):
        if stride > 0:
            stop += (extent - 1) * stride
        else:
            start += (extent - 1) * stride
    return start, stop + array.itemsize


def _overlaps(ranges: Sequence[tuple[int, int]], others: Sequence[tuple[int, int]]) -> bool:
    """Whether some byte range of ``ranges`` overlaps some range of ``others``."""
    return any(start < other_stop and other_start < stop for start, stop in ranges for other_start, other_stop in others)


@dataclass(frozen=True)
class _Part:
    """What one thread does for one call: ``run`` (None: nothing) and the byte ranges it reads and writes."""

    run: Callable[[], Any] | None
    reads: tuple[tuple[int, int], ...] = ()
    writes: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class RowCall:
    """A call whose work splits by rows (its output's first axis), such as a compiled loop over a lattice.

    Calling it does every row. A :class:`CallList` cuts it as it cuts an
    elementwise call (:data:`MIN_SLAB_ELEMENTS`), giving each thread
    ``run(start, stop)`` for its rows, with the barriers that the views of
    ``touches(start, stop)`` call for.

    Attributes:
        rows: extent of the output's first axis.
        elements: elements of the output.
        run: ``run(start, stop)`` does rows ``[start, stop)`` (it should release the GIL, as NumPy's loops do).
        touches: ``touches(start, stop)`` gives ``(read, written)``: views of every array that ``run(start, stop)``
            reads and writes (no more than it may touch).
    """

    rows: int
    elements: int
    run: Callable[[int, int], Any]
    touches: Callable[[int, int], tuple[Sequence[np.ndarray], Sequence[np.ndarray]]]

    def __call__(self) -> None:
        self.run(0, self.rows)


def _row_part(call: RowCall, start: int, stop: int) -> _Part:
    """Rows ``[start, stop)`` of ``call`` as one thread's part."""
    reads, writes = call.touches(start, stop)
    return _Part(partial(call.run, start, stop), tuple(_extent(view) for view in reads),
                 tuple(_extent(view) for view in writes))


#: Argument types whose memory a call can reach only as the arrays among them (anything else may hold arrays).
_PLAIN = (np.ndarray, np.generic, int, float, bool)


def _whole(call: Callable[[], Any], threads: int) -> list[_Part]:
    """``call`` run whole by the calling thread (thread 0); every array it is given counts as read and written
    (anything else it could reach: everything)."""
    if isinstance(call, RowCall):
        return [_row_part(call, 0, call.rows)] + [_Part(None)] * (threads - 1)
    if isinstance(call, partial):
        bound = getattr(call.func, "__self__", None)  # an array method's array: ``partial(array.fill, 0.0)``
        arrays = [value for value in (bound, *call.args, *call.keywords.values()) if isinstance(value, np.ndarray)]
        touched = tuple(_extent(array) for array in arrays)
        opaque = any(not isinstance(value, (*_PLAIN, type(None))) for value in (*call.args, *call.keywords.values()))
    else:
        touched, opaque = (), True
    touched = (_EVERYTHING,) if opaque else touched
    return [_Part(call, touched, touched)] + [_Part(None)] * (threads - 1)


def _slabs(call: Callable[[], Any], threads: int) -> list[_Part] | None:
    """``call`` cut into one slab per thread along its output's first axis, or None where it cannot be.

    It can be cut when it is a :class:`RowCall`, ``partial(ufunc, *inputs, out=array)`` (one output) or
    ``partial(np.copyto, array, source)``, its output has at least ``threads * MIN_SLAB_ELEMENTS`` elements and ``threads`` along its
    first axis, and no slab writes memory another slab reads or writes. Each input of the output's rank and
    first extent is cut like the output; any other input (broadcast, scalar) is given whole to every slab.
    """
    if isinstance(call, RowCall):
        if call.rows < threads or call.elements < threads * MIN_SLAB_ELEMENTS:
            return None
        bounds = [round(k * call.rows / threads) for k in range(threads + 1)]
        return _disjoint([_row_part(call, start, stop) for start, stop in zip(bounds[:-1], bounds[1:])])
    if not isinstance(call, partial):
        return None
    function, arguments, keywords = call.func, call.args, dict(call.keywords)
    if function is np.copyto and len(arguments) == 2 and not keywords:
        out, inputs = arguments[0], arguments[1:]
    elif isinstance(function, np.ufunc) and function.nout == 1 and set(keywords) == {"out"}:
        out, inputs = keywords["out"], arguments
    else:
        return None
    if not isinstance(out, np.ndarray) or out.ndim == 0 or out.shape[0] < threads or \
            out.size < threads * MIN_SLAB_ELEMENTS:
        return None
    if any(not isinstance(value, _PLAIN) for value in inputs):
        return None
    rows = out.shape[0]

    def cut(value: Any, start: int, stop: int) -> Any:
        if isinstance(value, np.ndarray) and value.ndim == out.ndim and value.shape[0] == rows:
            return value[start:stop]
        return value

    parts = []
    bounds = [round(k * rows / threads) for k in range(threads + 1)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        slab_inputs = tuple(cut(value, start, stop) for value in inputs)
        slab_out = out[start:stop]
        run = partial(np.copyto, slab_out, *slab_inputs) if function is np.copyto else \
            partial(function, *slab_inputs, out=slab_out)
        reads = tuple(_extent(value) for value in slab_inputs if isinstance(value, np.ndarray))
        parts.append(_Part(run, reads, (_extent(slab_out),)))
    return _disjoint(parts)


def _disjoint(parts: list[_Part]) -> list[_Part] | None:
    """``parts`` if no part writes memory that another reads or writes, else None (the call is not cut)."""
    for k, part in enumerate(parts):
        others = [other for j, other in enumerate(parts) if j != k]
        if any(_overlaps(part.writes, other.reads + other.writes) for other in others):
            return None
    return parts


@dataclass(frozen=True)
class _Step:
    """One call of a plan: ``barrier`` (every thread waits for the others first) and each thread's part."""

    barrier: bool
    parts: tuple[_Part, ...]


def plan(calls: Sequence[Callable[[], Any]], threads: int) -> list[_Step]:
    """The steps of ``calls`` on ``threads`` threads: each call cut into slabs where it can be
    (:func:`_slabs`), else whole on thread 0, with a barrier before a call whose parts would read what another
    thread wrote since the last barrier, or write what another thread read or wrote since then."""
    steps: list[_Step] = []
    reads: list[list[tuple[int, int]]] = [[] for _ in range(threads)]
    writes: list[list[tuple[int, int]]] = [[] for _ in range(threads)]
    for call in calls:
        parts = _slabs(call, threads) or _whole(call, threads)
        hazard = any(_overlaps(part.writes, reads[other] + writes[other]) or _overlaps(part.reads, writes[other])
                     for k, part in enumerate(parts) for other in range(threads) if other != k)
        if hazard:
            reads = [[] for _ in range(threads)]
            writes = [[] for _ in range(threads)]
        for k, part in enumerate(parts):
            reads[k] += part.reads
            writes[k] += part.writes
        steps.append(_Step(hazard, tuple(parts)))
    return steps


class _Team:
    """``threads - 1`` worker threads that run plans with the calling thread (thread 0), one plan at a time."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.barrier = threading.Barrier(threads)
        self.lock = threading.Lock()
        self.steps: list[_Step] = []
        self.errors: list[BaseException] = []
        self.starts = [threading.Semaphore(0) for _ in range(threads - 1)]
        for number in range(1, threads):
            threading.Thread(target=self._serve, args=(number,), name=f"tme-calls-{number}", daemon=True).start()

    def _serve(self, number: int) -> None:
        """A worker: runs its part of each plan handed over, until the team's barrier is broken."""
        while True:
            self.starts[number - 1].acquire()
            try:
                self._work(number)
                self.barrier.wait()
            except threading.BrokenBarrierError:
                return

    def _work(self, number: int) -> None:
        """Thread ``number``'s parts of the current plan, waiting at its barriers. An error is kept, not raised,
        and every thread goes on through the barriers (so that none waits forever) without running its later
        parts: the arrays are then left part-way, as a serial run's are at its failing call, though not
        necessarily at the same place."""
        for step in self.steps:
            if step.barrier:
                self.barrier.wait()
            part = step.parts[number]
            if part.run is not None and not self.errors:
                try:
                    part.run()
                except Exception as exc:  # raised by the calling thread once every thread is through
                    self.errors.append(exc)

    def run(self, steps: list[_Step]) -> None:
        """Run ``steps`` on the team; the first error of any thread is raised once all are through.

        Raises:
            threading.BrokenBarrierError: never to the caller: an interruption (KeyboardInterrupt, a signal
                handler's exception) while the plan runs breaks the team's barrier, which ends its workers,
                and propagates; the next run gets a new team.
        """
        with self.lock:
            self.steps, self.errors = steps, []
            for start in self.starts:
                start.release()
            try:
                self._work(0)
                self.barrier.wait()
            except BaseException:
                self.barrier.abort()
                _TEAMS.pop((os.getpid(), self.threads), None)
                raise
            if self.errors:
                raise self.errors[0]


#: The teams of this process by (process id, threads): a forked child, whose threads did not survive the fork,
#: starts its own.
_TEAMS: dict[tuple[int, int], _Team] = {}
_TEAMS_LOCK = threading.Lock()


def _team(threads: int) -> _Team:
    """This process's team of ``threads`` threads (started on first use)."""
    key = (os.getpid(), threads)
    with _TEAMS_LOCK:
        if key not in _TEAMS:
            _TEAMS[key] = _Team(threads)
        return _TEAMS[key]


class CallList:
    """A fixed list of array calls, each called without arguments, run in order by calling the list.

    On NumPy with ``threads > 1``, the calls are shared among ``threads``
    threads as the module doc says (the plan is made on the first call, from
    the arrays the calls hold then: they must not be reallocated); on CuPy, or
    with one thread, they run one after another on the calling thread. Either
    way the arrays end with the same bits.

    Args:
        xp: the array module of the calls' arrays.
        calls: the calls, usually ``functools.partial`` of ufuncs with ``out=`` arrays.
        threads: threads that share the work on NumPy (>= 1; the calling thread is one of them).
    """

    def __init__(self, xp: Any, calls: Sequence[Callable[[], Any]], threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.calls = tuple(calls)
        self.threads = threads if xp is np else 1
        #: the plan, made on the first call (None: not yet); empty: the calls run in order on the calling thread.
        self._steps: list[_Step] | None = [] if self.threads == 1 else None

    def __call__(self) -> None:
        if self._steps is None:
            steps = plan(self.calls, self.threads)
            # A list with nothing to share runs serially (the workers are not woken).
            self._steps = steps if any(part.run is not None for step in steps for part in step.parts[1:]) else []
        if self._steps:
            _team(self.threads).run(self._steps)
            return
        for call in self.calls:
            call()


def concurrently(calls: Sequence[Callable[[], Any]]) -> None:
    """Make each of ``calls`` (independent: none touches what another does) on a thread of its own, the first on
    the calling thread, and return when all are done; the first error of any is raised then."""
    if len(calls) == 1:
        calls[0]()
        return
    _team(len(calls)).run([_Step(False, tuple(_Part(call) for call in calls))])


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the system says, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
