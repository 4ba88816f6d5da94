"""Interrupts that arrive while compiled code runs, and SIGTERM as an interrupt.

Numba-compiled code does not check for signals. A Ctrl-C that lands while a kernel runs is
handled when the kernel's wrapper next runs Python code: boxing a returned tuple of arrays calls
``numba.core.serialize._numba_unpickle``, the pending ``KeyboardInterrupt`` is raised there, and
the wrapper returns its result anyway. CPython then raises ``SystemError: CPUDispatcher(...)
returned a result with an exception set`` with the ``KeyboardInterrupt`` at the root of its
``__cause__`` chain. :func:`native_interrupts` turns that back into the interrupt it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["Terminated", "interrupt_in_chain", "native_interrupts"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``finally`` blocks and atomic writers clean up."""


def interrupt_in_chain(err: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` that ``err`` is or was caused by (its ``__cause__`` /
    ``__context__`` chain), or None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
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
