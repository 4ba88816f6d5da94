"""Which code runs a method's step: compiled kernels (numba on the CPU, Triton on CUDA) or the torch
path that runs anywhere, and the fall back from a compiled path that fails to the torch path.

A method with compiled kernels takes ``backend=`` (:data:`BACKENDS`): ``"auto"`` (the default)
picks the fastest path the device and the installed packages allow (:func:`choose`), and when that
path's kernels fail to compile or launch on the first step of a sequence, the method warns once
(:class:`BackendFallbackWarning`, naming the cause and where to report it) and continues on the
torch path on the same device: the noise stays exact (i.i.d. N(0, 1) per frame), and where the
method's backends draw alike (``persistent``, ``snap``) it is the compiled path's noise to float
rounding. A failed path is remembered for the rest of the process, so later
sequences go to the torch path at once. An explicit ``"numba"`` or ``"triton"`` is checked before
any work (:func:`check_available`) and a failure of its kernels raises :class:`BackendError`.

A method uses :func:`choose` when a sequence starts and :func:`run_compiled` around each compiled
step (see :mod:`warpnoise.methods.persistent`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

from ._interrupt import interrupt_in_chain

__all__ = ["BACKENDS", "REPORT", "BackendError", "BackendFallbackWarning", "check_available",
           "check_backend", "choose", "failed", "forget_failures", "have_numba", "have_triton",
           "run_compiled"]

#: The values of a method's ``backend=`` option.
BACKENDS = ("auto", "numba", "triton", "torch")
#: How a failing compiled path is reported.
REPORT = "please report it on warpnoise's issue tracker with the output of `warpnoise doctor`"

T = TypeVar("T")


class BackendError(RuntimeError):
    """The kernels of an explicitly requested backend failed (``backend="auto"`` falls back)."""


class BackendFallbackWarning(RuntimeWarning):
    """A compiled path failed and ``backend="auto"`` continues on the torch path."""


#: (method, backend, device type) -> the failure's one-line cause, for the rest of the process.
_FAILED: dict[tuple[str, str, str], str] = {}


@functools.cache
def have_numba() -> bool:
    """Whether numba imports (the CPU kernels)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def have_triton() -> bool:
    """Whether triton imports (the CUDA kernels)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def check_backend(backend: object) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise ValueError."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return str(backend)


def _unavailable(backend: str, device: torch.device, triton_on_cpu: bool = False) -> str | None:
    """Why ``backend`` cannot run on ``device`` (None: it can)."""
    if backend == "numba":
        if device.type != "cpu":
            return f"backend 'numba' runs on the CPU, not on {device}"
        if not have_numba():
            return "backend 'numba' needs numba (pip install numba)"
    if backend == "triton":
        if device.type != "cuda" and not (device.type == "cpu" and triton_on_cpu):
            return f"backend 'triton' runs on CUDA devices, not on {device}"
        if not have_triton():
            return "backend 'triton' needs triton (pip install triton; Linux x86_64 only)"
    return None


def check_available(backend: str, device: torch.device | str) -> None:
    """Raise ValueError when an explicit ``backend`` cannot run on ``device`` (before any work)."""
    why = _unavailable(check_backend(backend), torch.device(device))
    if why is not None:
        raise ValueError(why)


def failed(method: str, backend: str, device: torch.device) -> str | None:
    """The cause of an earlier failure of ``method``'s ``backend`` on ``device``'s kind in this
    process, or None."""
    return _FAILED.get((method, backend, device.type))


def forget_failures() -> None:
    """Forget the failures recorded in this process (tests; a retry after fixing the cause)."""
    _FAILED.clear()


def choose(method: str, requested: str, device: torch.device, *, use_triton: bool = True,
           triton_on_cpu: bool = False) -> tuple[str, str]:
    """The backend ``method`` runs on ``device`` and why: ``(backend, reason)``.

    ``"auto"``: Triton on CUDA when triton imports (for methods with Triton kernels,
    ``use_triton``), numba on the CPU when numba imports, else the torch path; a compiled path
    that failed earlier in this process is skipped. ``triton_on_cpu`` lets Triton run in its
    interpreter on CPU tensors. An explicit backend is returned as is, or ValueError when it
    cannot run on ``device``.
    """
    check_backend(requested)
    if requested != "auto":
        why = _unavailable(requested, device, triton_on_cpu)
        if why is not None:
            raise ValueError(why)
        return requested, "requested"
    wants_triton = device.type == "cuda" or (device.type == "cpu" and triton_on_cpu)
    if wants_triton and use_triton:
        if not have_triton():
            reason = "triton is not installed"
        elif (cause := failed(method, "triton", device)) is not None:
            reason = f"the Triton kernels failed earlier in this process ({cause})"
        else:
            return "triton", f"{device.type} device and triton {_version('triton')} installed"
        if device.type == "cuda":
            return "torch", reason
    elif wants_triton:
        return "torch", f"{method} has no Triton kernels"
    if device.type == "cpu":
        if not have_numba():
            return "torch", "numba is not installed"
        if (cause := failed(method, "numba", device)) is not None:
            return "torch", f"the numba kernels failed earlier in this process ({cause})"
        return "numba", f"CPU and numba {_version('numba')} installed"
    return "torch", f"no compiled kernels for {device.type} devices"


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cause(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:300] + " ..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run_compiled(method: str, backend: str, requested: str, device: torch.device,
                 compiled: Callable[[], T], fallback: Callable[[], T] | None) -> T:
    """Run a compiled step, falling back to the torch path when it fails.

    Args:
        method, backend, requested: the method's name, the compiled backend ``compiled`` runs
            and the backend the user asked for (``"auto"`` allows the fall back).
        compiled: the step on the compiled path.
        fallback: the same step on the torch path, or None where the state cannot be handed
            over (after the first step of a sequence the compiled path's buffers may be half
            written: the error is raised).

    Interrupts and out-of-memory errors pass through unchanged. Any other failure, with
    ``requested == "auto"`` and a ``fallback``, warns once per method, backend and device kind
    (:class:`BackendFallbackWarning`), is remembered (:func:`choose` skips the path from then
    on) and returns ``fallback()``; otherwise it raises :class:`BackendError`.
    """
    try:
        return compiled()
    except Exception as e:
        if interrupt_in_chain(e) is not None or isinstance(e, torch.cuda.OutOfMemoryError):
            raise
        cause = _cause(e)
        if requested != "auto" or fallback is None:
            hint = ("backend='auto' falls back to the torch path on a first step"
                    if requested != "auto" else "backend='torch' avoids the compiled kernels")
            raise BackendError(
                f"{method}: the {backend} kernels failed on {device} ({cause}); {hint}; "
                f"{REPORT}") from e
        key = (method, backend, device.type)
        if key not in _FAILED:
            warnings.warn(
                f"{method}: the {backend} kernels failed on {device} ({cause}); continuing on the "
                f"torch path (exact noise, slower); {REPORT}. "
                "backend='torch' skips this attempt.", BackendFallbackWarning, stacklevel=2)
        _FAILED[key] = cause
        return fallback()
