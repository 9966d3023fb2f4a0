"""Ctrl-C: one record that the user asked this process to stop, and how a command's process ends after it.

Python raises a KeyboardInterrupt at whatever bytecode runs next, and on its way out it may become something
else: the ImportError of a module whose initialisation it cut short ("initialization failed"), SQLAlchemy's
PendingRollbackError of a transaction it broke off, any error of code that it left half done. The command
line's SIGINT handler calls :func:`request`; after that, whatever ends the work is the interrupt
(:func:`is_interrupt`): an ingest records its run as interrupted, and the command says "interrupted" and exits
130. Without the record (the Python API), an exception caused by a KeyboardInterrupt still counts as one.

Once the command has stopped, the process ends with ``os._exit(130)`` (:func:`exit_interrupted`): the
interpreter's own shutdown would tear down native thread pools (ONNX Runtime's, OpenMP's) that may still be
busy, in a thread that was creating a model session say, and that can abort the process (SIGABRT, "terminate
called without an active exception") instead of exiting 130. Standard library only: the command line installs
:func:`stop_at_once` before it imports anything else.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_INTERRUPTED = 130

_requested = False
_announced = False
_program = False  # this process is the command line's (run_main): it may end itself
STOP_WITHIN_S = 10.0  # a command that has not stopped this long after a Ctrl-C is ended (see request)


def request() -> None:
    """Note that the user asked this process to stop (the command line's SIGINT handler).

    In the command line's own process, a second Ctrl-C ends it at once, and so does the first one after
    STOP_WITHIN_S seconds if the command has not stopped by then: an interrupt swallowed where it left a lock
    taken (the import system's, say) can leave the command waiting for ever on a thread that needs that lock.
    """
    global _requested
    if _requested and _program:
        exit_interrupted()
    _requested = True
    if _program:
        import threading

        threading.Thread(target=_stop_anyway, name="zsindex-ctrl-c", daemon=True).start()


def _stop_anyway() -> None:
    import time

    time.sleep(STOP_WITHIN_S)
    exit_interrupted()


def own_process() -> None:
    """This process runs the command line (run_main): after a Ctrl-C it ends itself (see request)."""
    global _program
    _program = True


def requested() -> bool:
    return _requested


def reset(keep_announced: bool = False) -> None:
    """Forget the Ctrl-C (a command starts, or ends: the library's later work is not interrupted)."""
    global _requested, _announced
    _requested = False
    _announced = _announced and keep_announced


def is_interrupt(exc: BaseException) -> bool:
    """Whether exc ends the work because of a Ctrl-C: a KeyboardInterrupt, an exception raised while handling
    one or caused by one, or anything at all once the command line has received a Ctrl-C."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return _requested


def announce(echo: Callable[[str], Any]) -> None:
    """Say "interrupted" with echo (the command line's: click.echo to stderr), once."""
    global _announced
    if not _announced:
        _announced = True
        echo("interrupted")


def exit_interrupted() -> NoReturn:
    """End the process now with 130, after saying "interrupted" (once) and flushing stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed pipe or a write it interrupted: the exit matters more
            pass
    if not _announced:
        try:
            os.write(2, b"interrupted\n")
        except OSError:
            pass
    os._exit(EXIT_INTERRUPTED)


def _at_once(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    exit_interrupted()


def stop_at_once() -> None:
    """Until a command's own handler takes over (and again after it), a Ctrl-C ends the process at once with 130:
    nothing is under way that needs recording or undoing. Only where Python's own handler would run (an ignored
    SIGINT, as in a background job, stays ignored) and only in the main thread."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _at_once)
    except ValueError:  # not the main thread
        pass


def ignore_from_now() -> None:
    """Ignore SIGINT from now on: for the very end of a process whose work is done (its last atexit call), where
    the interpreter puts back the system's default action and a Ctrl-C would kill it by the signal while native
    libraries unload, instead of letting it exit with the command's own status."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def at_once_handler(handler: Any) -> bool:
    """Whether handler is the one stop_at_once installs."""
    return handler is _at_once
