"""Choice of the array module (NumPy on the CPU, CuPy on a GPU).

This is the only module of the project that imports CuPy. Every other module
receives the chosen module as ``xp`` and writes its arithmetic once.

* ``auto``: CuPy when it imports, sees a GPU and runs a small kernel; NumPy
  otherwise, with the reason recorded in :attr:`Backend.reason`.
* ``numpy``: always NumPy.
* ``cupy``: CuPy or a :class:`BackendError` that says why it cannot be used;
  never a silent fallback.

:func:`replayable` turns a fixed sequence of array calls into one CUDA graph
launch on CuPy (and leaves it as it is on NumPy).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

BACKEND_NAMES = ("auto", "numpy", "cupy")

#: Whether :func:`replayable` captures CUDA graphs on CuPy; False makes every call a launch of its own,
#: as before graphs (for comparisons: the results are the same bits either way).
CUDA_GRAPHS = True


class BackendError(RuntimeError):
    """The requested array backend cannot be used on this machine."""


@dataclass(frozen=True)
class Backend:
    """The array module in use and why it was chosen.

    Attributes:
        name: ``"numpy"`` or ``"cupy"``.
        xp: the array module itself.
        reason: one sentence on why this backend was chosen.
        device: a human-readable name of the device the arrays live on.
    """

    name: str
    xp: ModuleType
    reason: str
    device: str

    def to_host(self, array: Any) -> np.ndarray:
        """Copy ``array`` to a NumPy array on the host (no copy for NumPy input)."""
        if self.name == "cupy":
            return self.xp.asnumpy(array)
        return np.asarray(array)

    def free_memory_bytes(self) -> int:
        """Bytes of memory available for new arrays on this backend's device."""
        if self.name == "cupy":
            free, _total = self.xp.cuda.runtime.memGetInfo()
            return int(free)
        return host_available_memory_bytes()


def host_available_memory_bytes() -> int:
    """Available host memory in bytes (``MemAvailable`` of /proc/meminfo, else total RAM)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def probe_cupy() -> tuple[ModuleType | None, str]:
    """Try to import CuPy and run one small kernel on the current GPU.

    Returns:
        ``(cupy_module, description)`` when CuPy works, else ``(None, reason)``.
    """
    try:
        import cupy  # the one CuPy import of the project
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc}); install the 'gpu' extra"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy sees no usable CUDA driver ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "CuPy found no GPU"
    try:
        check = cupy.arange(4, dtype=cupy.float32).sum().item()
    except Exception as exc:
        return None, f"CuPy could not run a kernel on the GPU ({type(exc).__name__}: {exc})"
    if check != 6.0:
        return None, "CuPy ran a test kernel but returned a wrong result"
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return cupy, f"GPU {cupy.cuda.Device().id}: {name} (CuPy {cupy.__version__})"


def get_backend(name: str = "auto") -> Backend:
    """Return the backend called ``name`` (``auto``, ``numpy`` or ``cupy``).

    Raises:
        BackendError: ``name`` is unknown, or ``cupy`` was asked for and cannot run.
    """
    if name not in BACKEND_NAMES:
        raise BackendError(f"backend: unknown backend {name!r}; allowed: {', '.join(BACKEND_NAMES)}")
    if name == "numpy":
        return Backend("numpy", np, "asked for numpy", "CPU")
    cupy, description = probe_cupy()
    if cupy is not None:
        reason = "asked for cupy" if name == "cupy" else "auto: a working GPU was found"
        return Backend("cupy", cupy, reason, description)
    if name == "cupy":
        raise BackendError(f"backend: cupy was asked for but cannot be used: {description}")
    return Backend("numpy", np, f"auto: no GPU backend, using numpy ({description})", "CPU")


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
        if self.graph is None and CUDA_GRAPHS and self.failed < self.ATTEMPTS:
            self.graph = self._capture()
        if self.graph is not None and CUDA_GRAPHS:
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

    On NumPy this returns ``function`` itself. On CuPy the first call
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
