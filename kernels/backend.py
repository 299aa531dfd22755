"""Choice of the array module (NumPy on the CPU, CuPy on a GPU).

This is the only module of the project that imports CuPy. Every other module
receives the chosen module as ``xp`` and writes its arithmetic once.

* ``auto``: CuPy when it imports, sees a GPU and runs a small kernel; NumPy
  otherwise, with the reason recorded in :attr:`Backend.reason`.
* ``numpy``: always NumPy.
* ``cupy``: CuPy or a :class:`BackendError` that says why it cannot be used;
  never a silent fallback.

The backend also picks the implementation of each accelerated operation
(:mod:`kernels.accelerated`): :meth:`Backend.operation` gives the CUDA
implementation on CuPy and the compiled CPU one on NumPy with fast paths on,
else the ``xp`` reference. Fast paths are on unless ``get_backend(...,
fast_paths=False)`` or the environment variable :data:`FAST_PATHS_VARIABLE`
(``TME_FAST_PATHS=0``) turns them off; the choice is made once, when the
backend is made, and changes no result (each implementation gives its
reference's bits).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from kernels import accelerated
from kernels.calls import usable_cpus

BACKEND_NAMES = ("auto", "numpy", "cupy")

#: Environment variable read by :func:`get_backend` when ``fast_paths`` is not given: ``0`` (or
#: ``false``, ``off``, ``no``) turns the CUDA fast paths off; ``1`` (``true``, ``on``, ``yes``) or unset leaves them on.
FAST_PATHS_VARIABLE = "TME_FAST_PATHS"
_OFF, _ON = ("0", "false", "off", "no"), ("1", "true", "on", "yes", "")
#: Environment variable read by :func:`get_backend` when ``threads`` is not given: the threads that share a
#: NumPy field solve (a whole number from 1 to :data:`MAX_THREADS`); unset: the usable CPUs up to
#: :data:`DEFAULT_MAX_THREADS`. A process pool of K workers sets it to the CPUs / K in its workers.
THREADS_VARIABLE = "TME_THREADS"
#: Most threads by default: the field solve's calls are memory-bound, and more threads gain little beyond this.
DEFAULT_MAX_THREADS = 4
#: Most threads :data:`THREADS_VARIABLE` may ask for.
MAX_THREADS = 64


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
        fast_paths: whether :meth:`operation` may give CUDA implementations (on CuPy) and compiled CPU ones (on NumPy).
        threads: CPU threads that share the array calls of a field solve on NumPy
            (:class:`kernels.calls.CallList`; the same bits for any count); 1 on CuPy.
    """

    name: str
    xp: ModuleType
    reason: str
    device: str
    fast_paths: bool = True
    threads: int = 1

    def operation(self, name: str) -> Callable[..., Any]:
        """The implementation of accelerated operation ``name`` (:data:`kernels.accelerated.OPERATIONS`) to call.

        With :attr:`fast_paths` on, its CUDA implementation on CuPy and its
        compiled CPU one on NumPy, where it has them; else its ``xp``
        reference. All take ``xp`` first and give the same bits.

        Raises:
            KeyError: no operation is registered under ``name``.
        """
        if not self.fast_paths:
            return accelerated.implementation(name, None)
        return accelerated.implementation(name, "cuda" if self.name == "cupy" else "cpu")

    def to_host(self, array: Any) -> np.ndarray:
        """Copy ``array`` to a NumPy array on the host (no copy for NumPy input)."""
        if self.name == "cupy":
            return self.xp.asnumpy(array)
        return np.asarray(array)

    def synchronize(self) -> None:
        """Wait until the device has finished the work queued so far (no-op on NumPy): for timings."""
        if self.name == "cupy":
            self.xp.cuda.Device().synchronize()

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


def fast_paths_from_environment() -> bool:
    """Whether :data:`FAST_PATHS_VARIABLE` leaves the fast paths on (unset: on).

    Raises:
        BackendError: the variable holds something other than the allowed values.
    """
    value = os.environ.get(FAST_PATHS_VARIABLE, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise BackendError(f"backend: {FAST_PATHS_VARIABLE}={os.environ[FAST_PATHS_VARIABLE]!r}; allowed: "
                       f"{', '.join(_OFF)} (fast paths off) or {', '.join(v for v in _ON if v)} (on)")


def threads_from_environment() -> int:
    """The NumPy threads :data:`THREADS_VARIABLE` asks for; unset or empty: the usable CPUs up to
    :data:`DEFAULT_MAX_THREADS`.

    Raises:
        BackendError: the variable holds anything but a whole number from 1 to :data:`MAX_THREADS`.
    """
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return max(1, min(DEFAULT_MAX_THREADS, usable_cpus()))
    if not value.isdigit() or not 1 <= int(value) <= MAX_THREADS:
        raise BackendError(f"backend: {THREADS_VARIABLE}={os.environ[THREADS_VARIABLE]!r}; allowed: a whole number "
                           f"from 1 to {MAX_THREADS} (threads that share a NumPy field solve)")
    return int(value)


def threads_per_worker(workers: int) -> int:
    """The NumPy threads for each of ``workers`` processes that share this machine: the usable CPUs / ``workers``
    (at least 1, at most :data:`DEFAULT_MAX_THREADS`), so that together they do not ask for more CPUs than there are."""
    return max(1, min(DEFAULT_MAX_THREADS, usable_cpus() // max(1, workers)))


def get_backend(name: str = "auto", *, fast_paths: bool | None = None, threads: int | None = None) -> Backend:
    """Return the backend called ``name`` (``auto``, ``numpy`` or ``cupy``).

    Args:
        name: the backend.
        fast_paths: whether the backend's accelerated operations may use their CUDA
            implementations; None (the default) reads :data:`FAST_PATHS_VARIABLE` (unset: on).
        threads: threads that share a NumPy field solve (>= 1; :attr:`Backend.threads`); None (the default)
            reads :data:`THREADS_VARIABLE` (:func:`threads_from_environment`). CuPy always has 1.

    Raises:
        BackendError: ``name`` is unknown, ``cupy`` was asked for and cannot run,
            :data:`FAST_PATHS_VARIABLE` or :data:`THREADS_VARIABLE` holds an unknown value, or ``threads`` < 1.
    """
    if name not in BACKEND_NAMES:
        raise BackendError(f"backend: unknown backend {name!r}; allowed: {', '.join(BACKEND_NAMES)}")
    fast = fast_paths_from_environment() if fast_paths is None else bool(fast_paths)
    cpu_threads = threads_from_environment() if threads is None else int(threads)
    if cpu_threads < 1:
        raise BackendError(f"backend: threads={threads}; allowed: at least 1")
    if name == "numpy":
        return Backend("numpy", np, "asked for numpy", "CPU", fast, cpu_threads)
    cupy, description = probe_cupy()
    if cupy is not None:
        reason = "asked for cupy" if name == "cupy" else "auto: a working GPU was found"
        return Backend("cupy", cupy, reason, description, fast)
    if name == "cupy":
        raise BackendError(f"backend: cupy was asked for but cannot be used: {description}")
    return Backend("numpy", np, f"auto: no GPU backend, using numpy ({description})", "CPU", fast, cpu_threads)
