"""kernels.calls: a call list shared among threads ends with the serial run's bits, and its plan puts barriers
exactly where a thread would touch what another wrote."""
from __future__ import annotations

import multiprocessing
import os
from functools import partial

import numpy as np
import pytest

from kernels import calls
from kernels.backend import THREADS_VARIABLE, BackendError, get_backend, threads_per_worker
from kernels.calls import CallList, concurrently, plan
from kernels.diffusion import FieldParameters, FieldSolver, Workspace

SHAPE = (23, 19, 17)


@pytest.fixture
def small_slabs(monkeypatch):
    """Slabs of any size, so that small test arrays are cut."""
    monkeypatch.setattr(calls, "MIN_SLAB_ELEMENTS", 1)


def _random_calls(rng: np.random.Generator, arrays: list[np.ndarray], count: int) -> list:
    """``count`` calls of the kinds a solver's lists hold, on ``arrays`` (same shape, float32), drawn at random:
    whole-array ufuncs, neighbour updates along each axis (``out[low] -= v[high]`` and back), in-place updates of
    an array from itself shifted (which no slab may split), strided block sums along the first axis, broadcast
    copies, a scalar product into a 0-d array, and an opaque call."""
    made = []
    ndim = arrays[0].ndim
    for _ in range(count):
        kind = rng.integers(7)
        a, b, c = (arrays[k] for k in rng.choice(len(arrays), 3, replace=False))
        if kind == 0:
            ufunc = (np.add, np.subtract, np.maximum, np.arctan2)[rng.integers(4)]  # arctan2 keeps values bounded
            made.append(partial(ufunc, a, b, out=c))
        elif kind == 1:
            axis = int(rng.integers(ndim))
            low = tuple(slice(0, -1) if k == axis else slice(None) for k in range(ndim))
            high = tuple(slice(1, None) if k == axis else slice(None) for k in range(ndim))
            target, neighbour = (low, high) if rng.integers(2) else (high, low)
            made.append(partial(np.subtract, c[target], a[neighbour], out=c[target]))
        elif kind == 2:
            axis = int(rng.integers(ndim))
            low = tuple(slice(0, -1) if k == axis else slice(None) for k in range(ndim))
            high = tuple(slice(1, None) if k == axis else slice(None) for k in range(ndim))
            made.append(partial(np.add, c[low], c[high], out=c[low]))  # reads the next plane of what it writes
        elif kind == 3:
            half = a.shape[0] // 2
            made.append(partial(np.add, a[0:2 * half:2], a[1:2 * half:2], out=c[:half]))
        elif kind == 4:
            made.append(partial(np.copyto, c, a[:1]))  # broadcast along the first axis
        elif kind == 5:
            made.append(partial(np.multiply, a, np.float32(0.5), out=c))
        else:
            made.append(partial(np.dot, a.reshape(-1)[:50], b.reshape(-1)[:50]))  # a reduction, whole
    return made


def _arrays(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(5)]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("seed", range(12))
def test_random_call_lists_end_with_the_serial_bits(small_slabs, seed, threads):
    rng = np.random.default_rng(1000 + seed)
    serial_arrays, threaded_arrays = _arrays(seed), _arrays(seed)
    serial = CallList(np, _random_calls(rng, serial_arrays, 60))
    rng = np.random.default_rng(1000 + seed)
    threaded = CallList(np, _random_calls(rng, threaded_arrays, 60), threads=threads)
    for _ in range(3):  # a list is run again and again with its plan
        serial()
        threaded()
    for mine, theirs in zip(threaded_arrays, serial_arrays):
        assert mine.tobytes() == theirs.tobytes()


def test_the_plan_cuts_large_calls_and_waits_only_where_data_crosses_slabs(small_slabs):
    a, b, c = (np.ones(SHAPE, dtype=np.float32) for _ in range(3))
    steps = plan([
        partial(np.multiply, a, 2.0, out=b),               # each thread writes its slab of b
        partial(np.add, b, 1.0, out=b),                    # reads its own slab of b only: no barrier
        partial(np.subtract, c[1:], b[:-1], out=c[1:]),    # reads the plane before: one is another thread's: a barrier
        partial(np.multiply, c, a, out=a),                 # reads c, written by the same thread since the barrier
        partial(np.add, c[:, 1:], c[:, :-1], out=c[:, 1:]),  # reads and writes c in the same slab: no barrier
        partial(np.dot, a.reshape(-1), b.reshape(-1)),     # a reduction over everything: whole, after a barrier
        partial(np.add, b, 1.0, out=b),                    # after a whole call that read b: a barrier
    ], 2)
    assert [step.barrier for step in steps] == [False, False, True, False, False, True, True]
    assert all(step.parts[1].run is not None for step in steps[:5])  # cut into two slabs
    assert steps[5].parts[1].run is None  # the reduction: thread 0 only


def test_an_array_methods_array_counts_as_touched(small_slabs):
    """``partial(a.fill, 0.0)`` writes ``a`` although no argument is an array: a slab of a later call that reads
    ``a`` waits for it."""
    a, b = (np.ones(SHAPE, dtype=np.float32) for _ in range(2))
    steps = plan([partial(np.multiply, b, 2.0, out=b), partial(a.fill, 0.0), partial(np.add, a, 1.0, out=b)], 2)
    assert [step.barrier for step in steps] == [False, False, True]


def test_a_call_that_reads_what_another_slab_writes_is_not_cut(small_slabs):
    v = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    [step] = plan([partial(np.add, v[:-1], v[1:], out=v[:-1])], 2)
    assert step.parts[1].run is None


def test_small_calls_and_other_modules_run_whole():
    a = np.ones((4, 4), dtype=np.float32)
    [step] = plan([partial(np.add, a, a, out=a)], 2)  # far below MIN_SLAB_ELEMENTS per slab
    assert step.parts[1].run is None
    assert CallList(object(), [], threads=4).threads == 1  # not NumPy: in order, on the calling thread
    with pytest.raises(ValueError, match="threads must be at least 1"):
        CallList(np, [], threads=0)


def test_an_error_in_a_slab_reaches_the_caller_and_the_threads_go_on(small_slabs):
    a = np.ones(SHAPE, dtype=np.float32)
    b = np.ones(SHAPE, dtype=np.int64)
    failing = CallList(np, [partial(np.multiply, a, 2.0, out=a), partial(np.add, a, 0.5, out=b)], threads=2)
    with pytest.raises(TypeError):  # float into int64 with casting "same_kind": raised in each slab
        failing()
    fresh = np.ones(SHAPE, dtype=np.float32)
    CallList(np, [partial(np.multiply, fresh, 3.0, out=fresh)], threads=2)()
    assert np.all(fresh == 3.0)


def test_an_interruption_breaks_the_team_and_the_next_run_gets_a_new_one(small_slabs):
    a = np.ones(SHAPE, dtype=np.float32)

    def interrupt() -> None:
        raise KeyboardInterrupt

    interrupted = CallList(np, [partial(np.multiply, a, 2.0, out=a), interrupt, partial(np.add, a, 1.0, out=a)],
                           threads=2)
    with pytest.raises(KeyboardInterrupt):
        interrupted()
    CallList(np, [partial(np.add, a, 1.0, out=a)], threads=2)()
    assert np.all(a == 3.0)


def test_concurrently_makes_every_call_on_threads_of_its_own_and_raises_the_first_error():
    seen = []
    concurrently([partial(seen.append, k) for k in range(3)])
    assert sorted(seen) == [0, 1, 2]

    def fail() -> None:
        raise ValueError("slab 2")

    with pytest.raises(ValueError, match="slab 2"):
        concurrently([partial(seen.append, 3), fail])
    assert 3 in seen  # the other call ran


def _run_in_child(queue) -> None:
    a = np.ones(SHAPE, dtype=np.float32)
    calls.MIN_SLAB_ELEMENTS = 1
    CallList(np, [partial(np.multiply, a, 5.0, out=a)], threads=2)()
    queue.put(float(a.sum()))


def test_a_forked_child_starts_its_own_threads(small_slabs):
    a = np.ones(SHAPE, dtype=np.float32)
    CallList(np, [partial(np.add, a, 1.0, out=a)], threads=2)()  # the parent's team exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_run_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the child hung or failed"
    assert queue.get(timeout=5) == 5.0 * np.prod(SHAPE)


@pytest.mark.parametrize("transient", [False, True])
def test_field_solves_give_the_same_bits_and_iterations_on_any_thread_count(small_slabs, transient):
    rng = np.random.default_rng(3)
    shape = (34, 30, 28)
    sink = np.where(rng.random(shape) < 0.3, 10.0, 0.0)
    source = np.where(rng.random(shape) < 0.01, 1.0e4, 0.0)
    params = FieldParameters(1.0e5, 0.1, 20.0, ((38.0, 38.0),) * 3)
    results = []
    for threads in (1, 2, 3):
        solver = FieldSolver(np, shape, params, sink, dt_min=60.0 if transient else None, workspace=Workspace(np),
                             threads=threads)
        u = np.full(shape, 38.0, dtype=np.float32)
        outcome = []
        for _ in range(2):
            u, iterations = solver.step(u, source) if transient else solver.solve(u, source)
            outcome.append((u.tobytes(), iterations))
            solver.update_sink(sink * 0.5)
        results.append(outcome)
        shared = [part for step in solver._multigrid.down._steps or () for part in step.parts[1:] if part.run is not None]
        assert bool(shared) == (threads > 1)  # the V-cycle's calls were cut among the threads
    assert results[0][0][1] > 0
    assert results[1] == results[0] and results[2] == results[0]


def test_threads_come_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert get_backend("numpy").threads == 3
    assert get_backend("numpy", threads=1).threads == 1
    monkeypatch.delenv(THREADS_VARIABLE)
    assert 1 <= get_backend("numpy").threads <= 4
    for bad in ("0", "-1", "two", "1.5", "65"):
        monkeypatch.setenv(THREADS_VARIABLE, bad)
        with pytest.raises(BackendError, match=f"TME_THREADS='{bad}'; allowed: a whole number from 1 to 64"):
            get_backend("numpy")
    with pytest.raises(BackendError, match="threads=0; allowed: at least 1"):
        get_backend("numpy", threads=0)


def test_workers_share_the_cpus(monkeypatch):
    monkeypatch.setattr("kernels.backend.usable_cpus", lambda: 8)
    assert [threads_per_worker(workers) for workers in (1, 2, 3, 8, 16)] == [4, 4, 2, 1, 1]


def test_a_pool_worker_sets_its_threads_unless_the_environment_has(monkeypatch):
    from abm import executors

    class Pipe:
        def recv(self):
            return None  # no job: the worker returns

    monkeypatch.setattr(executors, "_end_with_parent", lambda parent, signal_number: None)
    monkeypatch.setenv(THREADS_VARIABLE, "9")  # recorded, so that the teardown restores the variable as it was
    monkeypatch.delenv(THREADS_VARIABLE)
    executors._worker(Pipe(), os.getpid(), 3)
    assert os.environ[THREADS_VARIABLE] == "3"
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    executors._worker(Pipe(), os.getpid(), 3)
    assert os.environ[THREADS_VARIABLE] == "1"
