"""The protocol every warping method implements, and the registry that names them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

__all__ = ["REGISTRY", "WarpMethod", "WarpState", "check_options", "counter_rng", "get_method",
           "needs_frames", "register", "uses_flows"]


@dataclass
class WarpState:
    """What a method carries from one frame to the next. ``noise`` is the current ``(C, H, W)``."""

    noise: Tensor


S = TypeVar("S", bound=WarpState)


@runtime_checkable
class WarpMethod(Protocol):
    """A noise-warping method.

    ``init`` receives the first frame's noise (i.i.d. N(0, 1), drawn by the caller) and returns
    the state; ``step`` advances the state by one frame. Both take the generator that every
    further random draw must come from. Flows arrive validated, ``(2, H, W)``, on the noise's
    device and dtype; ``forward_flow`` (frame t-1's forward flow) may be None.

    A method that needs the video itself (Control-A-Video masks by frame differences) keeps this
    protocol: it takes the frames as its ``frames=`` option and sets the class attribute
    ``needs_frames = True``, which tells the callers that hold the frames to pass them
    (:func:`needs_frames`). A method that ignores the flows ``step`` receives sets
    ``uses_flows = False``, so that callers need not estimate them (:func:`uses_flows`).

    A method whose draws are all counter-based (``normal(key, counter)``, the same values on every
    device and backend) sets ``counter_rng = True`` and adds ``start(shape, generator, device,
    dtype)``: it reads one root key from ``generator`` and returns the initial state, frame 0's
    noise included (drawn by counters too). :class:`warpnoise.NoiseWarper` then calls ``start``
    instead of drawing frame 0 and calling ``init``, with a generator on the CPU seeded from the
    seed whatever the device, so a seed gives the same noise on every device
    (:func:`counter_rng`); ``init`` still works (the root key from its generator).
    """

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState: ...

    def step(
        self,
        state: WarpState,
        backward_flow: Tensor,
        forward_flow: Tensor | None,
        generator: torch.Generator,
    ) -> WarpState: ...


REGISTRY: dict[str, Callable[..., WarpMethod]] = {}


def register(name: str) -> Callable[[Callable[..., WarpMethod]], Callable[..., WarpMethod]]:
    """Class decorator: make a method constructible by name (``get_method(name, **options)``)."""

    def deco(factory: Callable[..., WarpMethod]) -> Callable[..., WarpMethod]:
        if name in REGISTRY:
            raise ValueError(f"method {name!r} is already registered")
        REGISTRY[name] = factory
        return factory

    return deco


def get_method(name: str, **options: object) -> WarpMethod:
    """Build the method registered as ``name`` with its options."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}; choose one of {', '.join(sorted(REGISTRY))}"
        ) from None
    _check_option_types(name, factory, options)
    try:
        return factory(**options)
    except TypeError as e:
        raise ValueError(f"bad options for method {name!r}: {e}") from None


def _check_option_types(name: str, factory: Any, options: dict[str, object]) -> None:
    """A true/false given for a numeric option (``upsample=true``) is an error, not 1 or 0:
    Python's bool is an int, so the methods' own range checks would take it."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    for key, value in options.items():
        default = params[key].default if key in params else None
        if (isinstance(value, bool) and isinstance(default, (int, float))
                and not isinstance(default, bool)):
            raise ValueError(f"option {key} of method {name!r} must be a number, got "
                             f"{str(value).lower()}")


def needs_frames(name: str) -> bool:
    """Whether the method registered as ``name`` takes the video's frames as ``frames=``."""
    return bool(getattr(REGISTRY.get(name), "needs_frames", False))


def counter_rng(method: object) -> bool:
    """Whether ``method`` (an instance or its class) draws by counters from one root key and
    provides ``start`` (see :class:`WarpMethod`)."""
    return bool(getattr(method, "counter_rng", False))


def uses_flows(name: str) -> bool:
    """Whether method ``name`` reads the flows its ``step`` receives (all but those that set
    ``uses_flows = False``); callers that estimate flows only for the method may skip them."""
    return bool(getattr(REGISTRY.get(name), "uses_flows", True))


def check_options(name: str, **options: object) -> None:
    """Raise ValueError for an unknown method or bad options, before any work: builds the method
    once, a frame-guided one with a one-frame stand-in clip when ``frames`` is not given."""
    if needs_frames(name) and "frames" not in options:
        options = {**options, "frames": [torch.zeros(1, 1, 3)]}
    get_method(name, **options)


def fresh_like(noise: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    """Replace ``noise`` at ``mask`` ``(H, W)`` by new i.i.d. N(0, 1) draws (one per masked pixel
    and channel), returning a new tensor."""
    n = int(mask.sum())
    if n == 0:
        return noise
    out = noise.clone()
    out[:, mask] = torch.randn(noise.shape[0], n, generator=generator, device=noise.device,
                               dtype=noise.dtype)
    return out
