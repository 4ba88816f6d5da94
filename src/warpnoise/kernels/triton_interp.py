"""Triton kernels run by Triton's interpreter on CPU tensors, for tests and CPU-only machines:
the GPU code paths of every backend are exercised here without a GPU."""

from __future__ import annotations

from typing import Any

import triton.language as tl

__all__ = ["Interpreted", "call_interpreted"]


class Interpreted:
    """A kernel run by Triton's interpreter on CPU tensors, whatever ``TRITON_INTERPRET`` was
    when triton was imported: what that variable does to every kernel, done to this one. The
    interpreter runs a kernel as Python on numpy with ``triton.language`` patched to numpy
    builtins; for the duration of a launch, the ``@triton.jit`` helpers the kernel calls (ours
    and ``triton.language``'s) run as interpreted Python too, and every patch is undone after it.
    """

    def __init__(self, kernel: Any) -> None:
        # Interpreter internals (tested with triton 3.9), imported only where the CPU asks.
        from triton.runtime.interpreter import InterpretedFunction

        self.kernel = InterpretedFunction(kernel.fn)

    def __getitem__(self, grid: tuple[int, ...]) -> Any:
        from triton.runtime.interpreter import _patch_lang
        from triton.runtime.jit import JITFunction

        def launch(*args: Any, **kwargs: Any) -> Any:
            compiled_call = JITFunction.__call__
            # ``triton.language`` and ``triton.language.core``, as the helpers see them.
            scopes = [_patch_lang(self.kernel.fn), _patch_lang(tl.standard.zeros.fn)]
            JITFunction.__call__ = call_interpreted  # type: ignore[method-assign]
            try:
                return self.kernel[grid](*args, **kwargs)
            finally:
                JITFunction.__call__ = compiled_call  # type: ignore[method-assign]
                for scope in reversed(scopes):
                    scope.restore()

        return launch


def call_interpreted(helper: Any, *args: Any, **kwargs: Any) -> Any:
    """A ``@triton.jit`` helper called from an interpreted kernel: its interpreted form."""
    from triton.runtime.interpreter import InterpretedFunction

    return InterpretedFunction(helper.fn).rewrite()(*args, **kwargs)
