"""Backend choice: numpy always works, cupy is never a silent fallback; the backend picks each accelerated
operation's implementation, and one switch (argument or TME_FAST_PATHS) turns the CUDA and compiled CPU ones off."""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from kernels import accelerated, diffusion
from kernels import backend as backend_module
from kernels.backend import FAST_PATHS_VARIABLE, Backend, BackendError, get_backend, probe_cupy

CUPY, CUPY_REASON = probe_cupy()


def test_numpy_backend():
    backend = get_backend("numpy")
    assert backend.name == "numpy" and backend.xp is np
    assert backend.free_memory_bytes() > 0
    array = backend.xp.arange(3)
    assert isinstance(backend.to_host(array), np.ndarray)


def test_unknown_backend_names_the_allowed_ones():
    with pytest.raises(BackendError, match="allowed: auto, numpy, cupy"):
        get_backend("tpu")


@pytest.mark.skipif(CUPY is not None, reason="a GPU is present")
def test_auto_falls_back_to_numpy_and_says_why_and_cupy_is_an_error():
    backend = get_backend("auto")
    assert backend.name == "numpy"
    assert backend.reason.startswith("auto: no GPU backend") and CUPY_REASON in backend.reason
    with pytest.raises(BackendError, match="cupy was asked for but cannot be used"):
        get_backend("cupy")


@pytest.mark.gpu
@pytest.mark.skipif(CUPY is None, reason=f"no GPU backend: {CUPY_REASON}")
def test_auto_picks_cupy_on_a_gpu():
    backend = get_backend("auto")
    assert backend.name == "cupy" and backend.free_memory_bytes() > 0


# --------------------------------------------------------------------------- accelerated operations

def _functions(implementation):
    """The functions of an implementation: itself, or each field of a bundle (:class:`kernels.diffusion.SolverKernels`)."""
    if isinstance(implementation, diffusion.SolverKernels):
        return {field.name: getattr(implementation, field.name) for field in dataclasses.fields(implementation)}
    return {"": implementation}


def test_registry_lists_every_operation_with_an_xp_reference_in_kernels():
    assert set(accelerated.OPERATIONS) == {"field_line_sweep", "immune_movement_substep", "place_daughters", "enclosed",
                                            "replayable", "field_solver_kernels"}
    for name, operation in accelerated.OPERATIONS.items():
        assert operation.name == name
        references = _functions(operation.reference)
        for function in references.values():
            assert callable(function) and function.__module__.startswith("kernels.")
            assert not function.__module__.startswith(("kernels.cuda", "kernels.cpu"))
            assert list(inspect.signature(function).parameters)[0] == "xp"
        if not isinstance(operation.reference, diffusion.SolverKernels):
            assert operation.reference.__doc__ and "reference" in operation.reference.__doc__
        for package, implementation in (("kernels.cuda.", operation.cuda), ("kernels.cpu.", operation.cpu)):
            if implementation is None:
                continue
            functions = _functions(implementation)
            assert functions.keys() == references.keys()
            for part, function in functions.items():  # its own, or (in a bundle) the reference's
                assert function.__module__.startswith(package) or function is references[part]
                assert inspect.signature(function).parameters.keys() == inspect.signature(references[part]).parameters.keys()
    assert accelerated.OPERATIONS["field_solver_kernels"].cpu is not None


@pytest.mark.parametrize("fast_paths", [True, False])
def test_numpy_backend_gives_cpu_implementations_unless_fast_paths_are_off(fast_paths):
    backend = get_backend("numpy", fast_paths=fast_paths)
    assert backend.fast_paths is fast_paths
    for name, operation in accelerated.OPERATIONS.items():
        expected = operation.cpu if fast_paths and operation.cpu is not None else operation.reference
        assert backend.operation(name) is expected


def test_a_cupy_backend_gives_cuda_implementations_unless_fast_paths_are_off():
    """The choice is the backend's (shown with a stand-in Backend named cupy: no GPU needed); a CPU
    implementation is never given on CuPy."""
    for fast_paths in (True, False):
        backend = Backend("cupy", np, "test", "test device", fast_paths)
        for name, operation in accelerated.OPERATIONS.items():
            expected = operation.cuda if fast_paths and operation.cuda is not None else operation.reference
            assert backend.operation(name) is expected


def test_unknown_operation_names_the_registered_ones():
    with pytest.raises(KeyError, match="registered: field_line_sweep, immune_movement_substep, place_daughters, enclosed, replayable, "
                                         "field_solver_kernels"):
        get_backend("numpy").operation("teleport")


@pytest.mark.parametrize("value, expected", [(None, True), ("1", True), ("on", True), ("", True), ("0", False),
                                             ("false", False), ("OFF", False), ("no", False)])
def test_environment_turns_fast_paths_off_and_an_argument_overrides_it(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(FAST_PATHS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(FAST_PATHS_VARIABLE, value)
    assert get_backend("numpy").fast_paths is expected
    assert get_backend("auto").fast_paths is expected
    assert get_backend("numpy", fast_paths=not expected).fast_paths is (not expected)


def test_unknown_fast_paths_value_is_an_error(monkeypatch):
    monkeypatch.setenv(FAST_PATHS_VARIABLE, "maybe")
    with pytest.raises(BackendError, match="TME_FAST_PATHS='maybe'; allowed: 0, false, off, no"):
        get_backend("numpy")


def test_no_module_global_fast_path_switches_remain():
    """The choice lives on the backend: no kernels module holds an on/off flag for a fast path."""
    import kernels.cuda.graphs
    import kernels.cuda.lines
    import kernels.cpu.stencils
    import kernels.cuda.movement
    import kernels.diffusion
    for module in (backend_module, kernels.diffusion, kernels.cuda.lines, kernels.cuda.movement, kernels.cuda.graphs,
                   kernels.cpu.stencils):
        flags = [name for name, value in vars(module).items() if isinstance(value, bool) and not name.startswith("__")]
        assert flags == [], f"{module.__name__}: {flags}"
    assert not hasattr(backend_module, "CUDA_GRAPHS") and not hasattr(kernels.cuda.movement, "ENABLED")
