"""Interrupts inside compiled code: recognised and re-raised as what they were."""

from __future__ import annotations

import pytest

from warpnoise._interrupt import Terminated, interrupt_in_chain, native_interrupts

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
