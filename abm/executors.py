"""Executors: where the runs of a comparison go, and how their results come back as they finish.

An executor is a function ``(jobs, workers) -> iterator of results``: a job
is a list of runs ``(config, run directory)`` that one worker does in turn
(one run, or the arms of one seed branched from their shared trunk,
:mod:`abm.branching`), its result a list of ``(run directory, None)`` or
``(run directory, failure message)``, yielded in the order the jobs finish.
:func:`run_jobs` draws the progress bar over either of the two:

* :func:`process_pool` (``--executor process``, the default): ``workers``
  local processes, each doing one job at a time (one worker: the runs go in
  this process, one after the other);
* the Dask executor of :func:`open_executor` (``--executor dask``): the
  workers of a ``dask.distributed`` scheduler (``--scheduler ADDRESS``), or of
  a local cluster of ``workers`` processes started for the comparison. Each
  run goes in a process of its own, started by the Dask worker
  (``python -m abm.executors``), so that it can be interrupted like a pool
  worker's run and ends with the worker that started it.

A run that fails (a numerical failure, a refused write) stops nothing else:
it is a result with its message, and its directory holds the records up to
the failure. A worker that dies (killed from outside, out of memory) stops
nothing else either. A Dask worker takes its run process with it (SIGKILL);
the scheduler gives the job to another worker; once more workers died
running it than Dask's ``distributed.scheduler.allowed-failures`` (3), its
runs are failures. A run process killed on its own is a failure too. A pool
process that dies is replaced by a new one for its job, up to
:data:`ALLOWED_DEATHS` (3) times, then its runs are failures. A job given
again continues its runs where they stopped (:func:`abm.branching.run_arms`:
from a checkpoint where the run has one, else from step 0).

Ctrl-C or SIGTERM to the main process stops the queue at once: each running
run gets SIGTERM and keeps its records (status ``interrupted``), then the
workers end. docs/executors.md has the recipes (a SLURM cluster with
dask-jobqueue, one worker per GPU).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import uuid
from multiprocessing.connection import wait as connection_wait
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from abm import rundir
from abm.config import Config, ConfigError
from kernels.backend import THREADS_VARIABLE, threads_per_worker

#: A run to do: its config (seed included) and its run directory (a string, so that it pickles the same everywhere).
Run = tuple[Config, str]
#: The runs one worker does in turn (:func:`abm.branching.jobs`): one run, or the arms of one seed.
Job = list[Run]
#: A job's finished runs: each directory with ``None``, or with the message of its failure.
Result = list[tuple[str, str | None]]
#: Runs ``jobs`` on ``workers`` workers, yielding each result as its run finishes.
Executor = Callable[[list[Job], int], Iterator[Result]]

EXECUTORS = ("process", "dask")
#: Seconds to wait for a Dask scheduler to answer before ``--scheduler`` is refused.
SCHEDULER_CONNECT_S = 10.0
#: Deaths of its worker process after which the process pool gives up on a job (then a failure of its runs), as
#: Dask's ``distributed.scheduler.allowed-failures`` (default 3) does for a task.
ALLOWED_DEATHS = 3
#: Seconds a stopped run has to write its records before its process is killed.
STOP_GRACE_S = 60.0
#: How often (seconds) a Dask task checks whether the comparison was stopped while its run goes.
STOP_POLL_S = 0.5


def run_jobs(jobs: list[Job], workers: int, executor: Executor, progress: bool) -> None:
    """Run ``jobs`` with ``executor``: a progress bar of runs done, running and failed with an ETA (if ``progress``;
    on stderr), and a line per failed run (always; on stdout)."""
    total = sum(len(job) for job in jobs)
    with tqdm(total=total, unit="run", desc="runs", disable=not progress, leave=True) as bar:
        failed = 0
        bar.set_postfix(running=min(workers, total), failed=0)
        for result in executor(jobs, workers):
            for _, failure in result:
                if failure is not None:
                    failed += 1
                    tqdm.write(f"run failed: {failure}", file=sys.stdout)
            bar.update(len(result))
            bar.set_postfix(running=min(workers, total - bar.n), failed=failed)


# --------------------------------------------------------------------------- the local process pool


def _end_with_parent(parent: int, death_signal: int) -> None:
    """Set-up of a worker or run process: exit at once on SIGINT or SIGTERM (until a run handles them itself), and
    receive ``death_signal`` when the process ``parent`` (which started this one) dies.

    Unwinding through a pool's queues could wait forever on a pipe that the
    dead main process no longer reads, hence the immediate exit. On Linux the
    kernel sends ``death_signal`` when the parent dies, even by SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``), so no orphan goes on with the queue.
    """
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda signum, frame: os._exit(128 + signum))
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, death_signal)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _run_one(job: Job) -> Result:
    """The runs of one job, each into its directory (:func:`abm.branching.run_arms`): ``(directory, None)``, or the
    message of a failed run.

    In a pool worker, an interruption (the main process stopping the queue)
    ends the worker process at once, once the run has written its records,
    so it takes no further job; in the main process it propagates.
    """
    from abm.branching import run_arms

    try:
        return run_arms(job)
    except KeyboardInterrupt:
        if multiprocessing.parent_process() is None:
            raise
        os._exit(130)


def process_pool(jobs: list[Job], workers: int) -> Iterator[Result]:
    """The default executor: ``workers`` local processes, each doing one job at a time (one worker: the jobs go in
    this process, in order).

    The pool knows which job each process holds, so a process that dies
    (killed from outside, out of memory) takes no other job with it: a new
    process takes its place and its job is given again, continuing its runs
    where they stopped (:func:`abm.branching.run_arms`). A job whose process
    died more than :data:`ALLOWED_DEATHS` times is a failure of each of its
    runs that did not complete.

    Raises:
        KeyboardInterrupt: nothing more starts and the processes are ended (each running one writes its run's records).
    """
    if workers == 1:
        for job in jobs:
            yield _run_one(job)
        return
    context = multiprocessing.get_context("spawn")  # a child that uses a GPU needs a CUDA context of its own
    waiting = list(reversed(range(len(jobs))))  # job indices, popped from the end: the jobs in order
    deaths = [0] * len(jobs)
    idle: list[tuple[Any, Any]] = []  # (process, its end of the pipe) of the processes waiting for a job
    busy: dict[Any, tuple[Any, int]] = {}  # its end of the pipe -> (process, index of the job it holds)
    try:
        while waiting or busy:
            while waiting and len(busy) < workers:
                if not idle:
                    ours, theirs = context.Pipe()
                    process = context.Process(target=_worker, args=(theirs, os.getpid(), threads_per_worker(workers)),
                                              daemon=True)
                    process.start()
                    theirs.close()
                    idle.append((process, ours))
                process, pipe = idle.pop()
                try:
                    pipe.send(jobs[waiting[-1]])
                except OSError:  # it died while it waited for a job
                    pipe.close()
                    process.join()
                    continue
                busy[pipe] = (process, waiting.pop())
            connection_wait([*busy, *(process.sentinel for process, _ in busy.values())])
            for pipe, (process, index) in list(busy.items()):
                result = _received(pipe) if pipe.poll() else None
                if result is None and process.is_alive():
                    continue  # still at work
                del busy[pipe]
                if result is not None:
                    idle.append((process, pipe))
                    yield result
                    continue
                pipe.close()
                process.join()
                deaths[index] += 1
                if deaths[index] <= ALLOWED_DEATHS:
                    waiting.append(index)  # the next to start
                    continue
                why = (f"its worker process died each of the {deaths[index]} times it ran it "
                       f"(last: {_ended(process.exitcode)})")
                yield _unfinished([out for _, out in jobs[index]], why)
    finally:  # done, interrupted, or the caller closing the generator
        _stop_workers([process for process, _ in busy.values()], idle)


def _received(pipe: Any) -> Result | None:
    """The result a worker sent on ``pipe``; None where the worker died instead (the pipe closed)."""
    try:
        return pipe.recv()
    except (EOFError, OSError):
        return None


def _worker(pipe: Any, parent: int, threads: int) -> None:
    """A pool process: does each job received on ``pipe`` and sends back its result, until it receives None (or the
    pool ends it); ends with ``parent`` (:func:`_end_with_parent`). Its runs' NumPy field solves use ``threads``
    threads (:data:`kernels.backend.THREADS_VARIABLE`), unless the environment already says how many."""
    _end_with_parent(parent, signal.SIGTERM)
    os.environ.setdefault(THREADS_VARIABLE, str(threads))
    while (job := pipe.recv()) is not None:
        pipe.send(_run_one(job))


def _ended(exitcode: int | None) -> str:
    """How a process that ended with ``exitcode`` (negative: the signal that killed it) ended, in words."""
    if exitcode is not None and exitcode < 0:
        return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _unfinished(outs: list[str], why: str) -> Result:
    """The result of a job (its run directories ``outs``) whose process died for the reason ``why``: each run that
    did not complete is a failure (the runs before the one under way may have)."""
    return [(out, None if rundir.summary_status(Path(out)) == "complete" else f"{out}: {why}; the directory holds "
             f"its records") for out in outs]


def _stop_workers(running: list[Any], idle: list[tuple[Any, Any]]) -> None:
    """End the pool's processes: the ``running`` ones by SIGTERM (each writes its run's records), the ``idle`` ones
    (process, its end of the pipe) by telling them they are done (each returns, and its exit cleans up after it);
    waits up to :data:`STOP_GRACE_S` for each before SIGKILL."""
    for _, pipe in idle:
        with contextlib.suppress(OSError):  # it died (a Ctrl-C reaches every process of the terminal's group)
            pipe.send(None)
    for process in running:
        process.terminate()
    processes = [*running, *(process for process, _ in idle)]
    for process in processes:
        process.join(timeout=STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()


# --------------------------------------------------------------------------- Dask


@contextlib.contextmanager
def open_executor(kind: str, scheduler: str | None, workers: int | None) -> Iterator[tuple[Executor, int]]:
    """The executor ``kind`` (:data:`EXECUTORS`) and its worker count, for the duration of the block.

    For ``dask``: connected to ``scheduler`` (its workers' threads are the
    count), or a local cluster of ``workers`` processes of one thread each
    started for the block, its scratch space in a temporary directory
    removed with it. Everything is checked here, before any run starts.

    Args:
        kind: ``process`` or ``dask``.
        scheduler: a Dask scheduler address (``tcp://host:8786``); only with ``dask``.
        workers: worker processes of the pool or the local cluster; ``None`` only with ``scheduler``.

    Raises:
        ConfigError: an unknown kind, ``scheduler`` without ``dask`` or with ``workers``, a scheduler that does not
            answer within :data:`SCHEDULER_CONNECT_S` seconds or has no workers.
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor: {kind!r}; one of {', '.join(EXECUTORS)}")
    if scheduler is not None and kind != "dask":
        raise ConfigError(f"--scheduler {scheduler}: only with --executor dask")
    if kind == "process":
        yield process_pool, workers
        return
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if workers is not None:
            raise ConfigError(f"--workers {workers}: the scheduler's workers run the runs; leave --workers out with "
                              f"--scheduler")
        try:
            client = Client(scheduler, timeout=SCHEDULER_CONNECT_S)
        except Exception as exc:  # refused, timed out, a bad address, something else answering: all the same here
            raise ConfigError(f"--scheduler {scheduler}: no Dask scheduler answered within {SCHEDULER_CONNECT_S:g} s "
                              f"({exc}); give the address of a running scheduler (tcp://HOST:PORT) or leave "
                              f"--scheduler out for a local cluster") from None
        with client:
            threads = sum(client.nthreads().values())
            if threads == 0:
                raise ConfigError(f"--scheduler {scheduler}: the scheduler has no workers; start some first")
            yield functools.partial(_dask_jobs, client, 1), threads
        return
    with tempfile.TemporaryDirectory(prefix="tme-dask-") as scratch, dask.config.set({"temporary-directory": scratch}):
        # The scheduler's and the workers' scratch space goes in ``scratch``. The workers are started with SIGINT
        # ignored (they inherit it), so that Ctrl-C in a terminal, which reaches every process of the group, leaves
        # them to this process to stop; each run process handles it itself.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        finally:
            signal.signal(signal.SIGINT, previous)
        with cluster, Client(cluster) as client:
            yield functools.partial(_dask_jobs, client, threads_per_worker(workers)), workers


def _dask_jobs(client, threads: int, jobs: list[Job], workers: int) -> Iterator[Result]:
    """Executor over the Dask ``client``'s workers (``workers`` only sizes the progress bar); each run's NumPy
    field solves use ``threads`` threads (1 on a scheduler's cluster, whose threads are the parallelism; the CPUs
    / the workers on a local cluster).

    A run whose worker died more often than Dask allows is a failure, unless it completed before
    (:func:`_unfinished`, as the pool does). On an
    interruption (or the caller closing the generator) every task is told to
    stop its run (a Dask ``Event``), and this waits up to
    :data:`STOP_GRACE_S` for the runs to write their records.
    """
    from distributed import Event, KilledWorker, as_completed
    from distributed import wait as wait_for

    stop = Event(f"tme-stop-{uuid.uuid4().hex}", client=client)
    futures = {client.submit(_dask_task, job, stop.name, threads, pure=False): [out for _, out in job] for job in jobs}
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except KilledWorker as exc:
                result = _unfinished(futures[future], f"its Dask worker died each time it ran it ({exc})")
            except Exception as exc:  # the task itself failed (a directory could not be emptied, say)
                result = [(out, f"{out}: {type(exc).__name__}: {exc}") for out in futures[future]]
            yield result
    except BaseException:
        stop.set()
        with contextlib.suppress(TimeoutError):
            wait_for(list(futures), timeout=STOP_GRACE_S + 10.0)
        raise


def _dask_task(job: Job, stop: str, threads: int) -> Result:
    """A job's runs in a process of their own, on a Dask worker, until they end or the comparison sets the event
    ``stop``; their NumPy field solves use ``threads`` threads unless the worker's environment says how many.

    After a worker died, the scheduler gives the job to another, whose run
    process continues the job's runs where they stopped
    (:func:`abm.branching.run_arms`). The run process gets SIGKILL if this
    worker dies, SIGTERM (records kept, status ``interrupted``) when the
    comparison stops.
    """
    from distributed import Event

    outs = [out for _, out in job]
    event = Event(stop)
    if event.is_set():
        return [(out, "not started: the comparison was stopped") for out in outs]
    root = str(Path(__file__).resolve().parents[1])  # this code, whatever the worker's own path holds
    environment = {THREADS_VARIABLE: str(threads), **os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-m", "abm.executors", str(os.getpid())], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=environment)
    child.stdin.write(pickle.dumps(job))
    child.stdin.close()
    while child.poll() is None:
        if event.wait(timeout=STOP_POLL_S):
            child.terminate()
            try:
                child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    answer = child.stdout.read()
    child.stdout.close()
    if child.returncode == 0:
        return [(done, failure) for done, failure in json.loads(answer)]
    return _unfinished(outs, f"its run process ended ({_ended(child.returncode)})")


def _run_process() -> None:
    """``python -m abm.executors PARENT``: the job pickled on stdin, its result as JSON on stdout (exit 0), or exit
    130 on an interruption (the run under way keeps its records)."""
    _end_with_parent(int(sys.argv[1]), signal.SIGKILL)
    job = pickle.loads(sys.stdin.buffer.read())
    answer, sys.stdout = sys.stdout, sys.stderr  # whatever the run prints cannot fill the pipe the task reads last
    try:
        result = _run_one(job)
    except KeyboardInterrupt:
        sys.exit(130)
    answer.write(json.dumps(result))


if __name__ == "__main__":
    _run_process()
