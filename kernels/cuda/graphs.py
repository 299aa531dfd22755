"""CUDA implementation of the ``replayable`` operation: a fixed list of array calls as one CUDA graph.

The field solver's V-cycle and operator are fixed lists of array calls on
fixed arrays (:class:`kernels.diffusion.FieldSolver`). On a GPU, launching
them one by one costs more than their arithmetic; :func:`replayable`
captures them once as a CUDA graph and replays it: one launch, the same
kernels in the same order, so the same bits as the calls one by one (the
``xp`` reference, :func:`kernels.diffusion.uncaptured`).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np


class _Replay:
    """``function`` (no arguments) captured once as a CUDA graph on the first call, replayed by later calls.

    See :func:`replayable`. Attributes: ``graph`` (the captured graph, None
    until captured or where capture failed) and ``failure`` (why the last
    capture failed, else None).
    """

    #: Failed captures after which ``function`` runs uncaptured for good (the first may fail
    #: only because CuPy compiled and loaded kernels during it).
    ATTEMPTS = 2

    def __init__(self, cupy: ModuleType, function: Callable[[], Any]) -> None:
        self.cupy = cupy
        self.function = function  # holds every array the graph reads or writes
        self.graph: Any = None
        self.failure: str | None = None
        self.failed = 0

    def __call__(self) -> None:
        if self.graph is None and self.failed < self.ATTEMPTS:
            self.graph = self._capture()
        if self.graph is not None:
            self.graph.launch()  # on the current stream, in order with the calls around it
        else:
            self.function()

    def _capture(self) -> Any:
        """The graph of ``function``'s calls, or None (``function`` then runs uncaptured)."""
        cuda = self.cupy.cuda
        pool = self.cupy.get_default_memory_pool()
        reserved = pool.total_bytes()
        stream = cuda.Stream(non_blocking=True)  # its own, empty memory-pool arena
        graph, error = None, None
        with stream:
            # Thread-local mode: cudaMalloc in this thread (a memory-pool allocation) ends the capture in an error.
            stream.begin_capture(getattr(cuda.runtime, "streamCaptureModeThreadLocal", 1))
            try:
                self.function()
            except Exception as exc:  # noqa: BLE001 - any failure means: run uncaptured
                error = exc
            finally:
                try:
                    graph = stream.end_capture()
                except Exception as exc:  # noqa: BLE001
                    error = error or exc
        if error is None and pool.total_bytes() != reserved:
            error = RuntimeError("the captured calls allocated device memory")
        if error is None:
            return graph
        self.failed += 1
        self.failure = f"{type(error).__name__}: {error}"
        if self.failed == self.ATTEMPTS:
            warnings.warn(f"CUDA graph capture failed ({self.failure}); the calls run one by one", RuntimeWarning,
                          stacklevel=3)
        return None


def replayable(xp: ModuleType, function: Callable[[], Any]) -> Callable[[], None]:
    """``function`` (no arguments, no result) made cheap to call again and again on a GPU.

    The CUDA implementation of the ``replayable`` operation, whose ``xp``
    reference :func:`kernels.diffusion.uncaptured` returns ``function``
    itself (as this does for an array module without CUDA). On CuPy the first call
    captures the device work of ``function`` as a CUDA graph (on a stream of
    its own; nothing runs then) and launches it; every later call launches
    the graph again on the current stream: one launch instead of one per
    array call, the same kernels in the same order, so the same bits.

    The captured calls must read and write the same arrays each time (the
    graph holds their addresses and every scalar argument), allocate no
    memory, and wait for nothing on the host: feed a changing input by
    copying it into a fixed array first. An allocation or an uncapturable
    call (cuBLAS, a host copy) fails the capture; ``function`` then runs
    uncaptured, captures again once, and after a second failure stays
    uncaptured with a :class:`RuntimeWarning`.
    """
    if xp is np or not hasattr(xp, "cuda"):
        return function
    return _Replay(xp, function)
