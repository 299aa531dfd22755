"""Signals as interruptions: SIGTERM (a scheduler's time limit, ``kill``) is handled as SIGINT (Ctrl-C).

The context managers change signal handlers only in the main thread; in any
other thread (where Python allows no handler) they change nothing.
"""
from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Iterator

_INTERRUPTIONS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _on_interruptions(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Within the block, ``handler`` takes SIGINT and SIGTERM; the previous handlers come back after it."""
    try:
        previous = {number: signal.signal(number, handler) for number in _INTERRUPTIONS}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise KeyboardInterrupt (whatever handlers were set outside it)."""
    with _on_interruptions(signal.default_int_handler):
        yield


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then raise KeyboardInterrupt if one came.

    The final writes of a run go in such a block, so an interruption there
    cannot leave a summary that disagrees with the tables.
    """
    received: list[int] = []
    with _on_interruptions(lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise KeyboardInterrupt


class StopRequest:
    """Whether SIGINT or SIGTERM came while a run's steps go (:func:`stop_between_steps`).

    Attributes:
        received: a signal came; the run stops before its next step.
    """

    def __init__(self) -> None:
        self.received = False

    def handle(self, signum: int, frame: Any) -> None:
        """The first signal asks for a stop between steps; a second one interrupts at once (a step that hangs)."""
        if self.received:
            raise KeyboardInterrupt
        self.received = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came: called between steps, where the state is whole."""
        if self.received:
            raise KeyboardInterrupt


@contextlib.contextmanager
def stop_between_steps() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM ask the run to stop at its next :meth:`StopRequest.check` (after the step
    under way, so that a checkpoint holds a completed step); a second signal raises KeyboardInterrupt at once."""
    request = StopRequest()
    with _on_interruptions(request.handle):
        yield request
