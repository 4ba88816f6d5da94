"""Interrupts inside compiled code: recognised and re-raised as what they were."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from warpnoise._interrupt import (
    Terminated,
    deferred_interrupts,
    interrupt_in_chain,
    native_interrupts,
)

from ._native_interrupt import interrupted_kernel


def test_numba_wraps_an_interrupt_in_its_kernel_into_a_system_error() -> None:
    # The mechanism the fix relies on: the KeyboardInterrupt is in the SystemError's chain.
    with pytest.raises(SystemError, match="returned a result with an exception set") as info:
        interrupted_kernel()
    assert isinstance(interrupt_in_chain(info.value), KeyboardInterrupt)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, Terminated])
def test_native_interrupts_reraises_the_interrupt_itself(exc: type[BaseException]) -> None:
    with pytest.raises(exc) as info, native_interrupts():
        interrupted_kernel(exc)
    assert type(info.value) is exc
    assert isinstance(info.value.__cause__, SystemError)  # the original stays for debugging


def test_other_system_errors_pass_through() -> None:
    with pytest.raises(SystemError, match="unrelated"), native_interrupts():
        raise SystemError("unrelated")
    try:
        raise ValueError("root")
    except ValueError as root:
        assert interrupt_in_chain(root) is None


def test_ctrl_c_is_held_until_the_block_ends_then_raised(live_ctrl_c: None) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        _ = [i for i in range(1000)]  # bytecode runs: a live handler would raise by now
        done.append(True)
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_python_sigterm_handler_is_held_and_then_run() -> None:
    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        done = []
        with pytest.raises(Terminated), deferred_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            _ = [i for i in range(1000)]
            done.append(True)
        assert done == [True] and signal.getsignal(signal.SIGTERM) is terminate
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_deferral_is_a_no_op_outside_the_main_thread() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with deferred_interrupts():
                pass
        except BaseException as err:  # signal.signal would raise ValueError here
            errors.append(err)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []


def test_a_signal_inside_an_import_exits_at_once_instead_of_raising(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Raising inside an import can cross C++ module initialisation (an abort): with
    ``exit_now`` the handler calls it there, and raises as usual elsewhere."""
    import sys

    from warpnoise._interrupt import Terminated, signals_as_interrupts

    (tmp_path / "_wn_signalled_module.py").write_text(
        "import signal\nsignal.raise_signal(signal.SIGTERM)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls: list[int] = []

    class Exited(Exception):
        pass

    def exit_now(signum: int) -> None:
        calls.append(signum)
        raise Exited

    with signals_as_interrupts(exit_now=exit_now):
        with pytest.raises(Exited):
            import _wn_signalled_module  # noqa: F401
        assert calls == [signal.SIGTERM]
        with pytest.raises(Terminated):  # outside an import: the interrupt, as before
            signal.raise_signal(signal.SIGTERM)
    assert calls == [signal.SIGTERM]
    sys.modules.pop("_wn_signalled_module", None)
