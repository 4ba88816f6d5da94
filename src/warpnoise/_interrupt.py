"""Interrupts around compiled code, and SIGTERM as an interrupt.

Numba-compiled code does not check for signals, and the Python code numba runs around it is not
safe to interrupt:

* a Ctrl-C that lands while a kernel runs is handled when the kernel's wrapper next runs Python
  code: boxing a returned tuple of arrays calls ``numba.core.serialize._numba_unpickle``, the
  pending ``KeyboardInterrupt`` is raised there, and the wrapper returns its result anyway.
  CPython then raises ``SystemError: CPUDispatcher(...) returned a result with an exception set``
  with the ``KeyboardInterrupt`` at the root of its ``__cause__`` chain;
* one that lands while numba loads a kernel from its cache is raised inside llvmlite's ctypes
  callback, which swallows it ("Exception ignored on calling ctypes callback function") and hands
  LLVM a bad buffer: the process can die of a segmentation fault.

:func:`deferred_interrupts` holds SIGINT and SIGTERM for the length of one warper call and then
delivers them; :func:`native_interrupts` turns a ``SystemError`` that still wraps an interrupt
(from another signal, or a kernel called outside a deferred block) back into the interrupt.

:func:`signals_as_interrupts` is what a program (the ``warpnoise`` command) installs once, first:
SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated`, and a system call that a
signal broke (``EINTR`` from C code such as FFmpeg opening a FIFO) counts as that signal's
interrupt in :func:`interrupt_in_chain`.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["Terminated", "as_interrupt", "deferred_interrupts", "interrupt_in_chain",
           "kept_signal_handlers", "last_signal", "native_interrupts", "signals_as_interrupts"]

_DEFERRED = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # signals raised as interrupts by signals_as_interrupts, in order
_exit_now: list[Callable[[int], object]] = []  # innermost last (signals_as_interrupts' exit_now)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``finally`` blocks and atomic writers clean up."""


def last_signal() -> int | None:
    """The last signal :func:`signals_as_interrupts` turned into an interrupt, or None."""
    return _received[-1] if _received else None


def as_interrupt(signum: int | None) -> KeyboardInterrupt:
    """The interrupt a signal stands for: :class:`Terminated` for SIGTERM, else
    ``KeyboardInterrupt``."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _in_import(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside an import (a module's top level, reached through importlib)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    # An exception raised inside an import can cross C++ code that initialises an extension
    # module (torch's pybind11 calls back into Python while it imports its submodules), which
    # turns it into std::terminate and an abort. Imports write no output, so exiting at once
    # is safe there.
    if _exit_now and _in_import(frame):
        _exit_now[-1](signum)
    raise as_interrupt(signum)


@contextlib.contextmanager
def signals_as_interrupts(exit_now: Callable[[int], object] | None = None) -> Iterator[None]:
    """For the block, SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated`; the
    previous handlers are restored after. Outside the main thread it does nothing.

    ``exit_now(signum)``, if given, is called instead of raising when the signal lands inside an
    import, where an exception is not safe (see :func:`_raise_interrupt`); it should end the
    process (``os._exit``). A nested block without one keeps the enclosing block's."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, _raise_interrupt) for s in _DEFERRED}
    if exit_now is not None:
        _exit_now.append(exit_now)
    try:
        yield
    finally:
        if exit_now is not None:
            _exit_now.pop()
        for s, handler in saved.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def kept_signal_handlers() -> Iterator[None]:
    """Undo what a library's start-up does to SIGINT and SIGTERM: the handlers of before the
    block are re-installed after it (a Python handler set again also replaces a native one the
    library put in, like the crash reporter of Ray's core worker that dumps stacks on SIGTERM),
    and a ``sys.exit(SIGTERM)`` by a handler the library set for the block (Ray's ``ray.init``)
    becomes :class:`Terminated`. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in _DEFERRED}
    try:
        yield
    except SystemExit as e:
        if e.code != signal.SIGTERM:
            raise
        _received.append(signal.SIGTERM)
        raise Terminated from None
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


def interrupt_in_chain(err: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` that ``err`` is or was caused by (its ``__cause__`` /
    ``__context__`` chain), or None. An ``OSError`` with ``EINTR`` after a signal that
    :func:`signals_as_interrupts` handled stands for that signal's interrupt."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        if isinstance(current, OSError) and current.errno == errno.EINTR and _received:
            return as_interrupt(_received[-1])
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def native_interrupts() -> Iterator[None]:
    """Re-raise an interrupt swallowed into a ``SystemError`` by compiled code (see the module
    docstring) as the ``KeyboardInterrupt`` (or :class:`Terminated`) it was."""
    try:
        yield
    except SystemError as err:
        interrupt = interrupt_in_chain(err)
        if interrupt is None:
            raise
        raise type(interrupt)(*interrupt.args) from err


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then run their handlers (which raise).

    Only signals handled by Python are held (the default Ctrl-C handler, the CLI's SIGTERM
    handler, a notebook's); a SIGTERM left to the OS still ends the process at once. Outside the
    main thread, where Python cannot set handlers (and no signal is delivered), it does nothing.
    A held signal waits for the block: one warper call, or numba's one-off compilation.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, FrameType | None]] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append((signum, frame))

    saved = {s: h for s in _DEFERRED if callable(h := signal.getsignal(s))}
    for s in saved:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if pending:
            signum, frame = pending[0]
            saved[signum](signum, frame)  # type: ignore[operator]
