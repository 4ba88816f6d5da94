"""The streaming API: :class:`NoiseWarper` and :func:`warp_noise`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._interrupt import deferred_interrupts
from .flow import as_flow, as_flows
from .methods import DEFAULT_METHOD, get_method
from .methods.base import counter_rng
from .rng import check_device, make_generator

__all__ = ["NoiseWarper", "clip_flows", "warp_noise"]


def _check_size(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class NoiseWarper:
    """Noise that follows a video, one frame at a time.

    Convention:
        Noise is ``(C, H, W)``. ``step`` takes frame t's backward flow ``(2, H, W)`` (dx, dy in
        pixels: pixel ``x`` of frame t came from ``x + b(x)`` in frame t-1) and, optionally, frame
        t-1's forward flow ``(2, H, W)`` for occlusion handling. Flows may be torch tensors or numpy
        arrays; they are moved to the warper's device.

    Args:
        channels: the noise's channel count.
        height: the noise's height.
        width: the noise's width.
        method: a name from :func:`warpnoise.methods`.
        seed: seeds a new generator (default 0). Ignored if ``generator`` is given. For a method
            that draws by counters (``persistent``: :func:`warpnoise.methods.base.counter_rng`)
            the generator is made on the CPU whatever ``device``, so a seed gives the same noise
            on every device and backend; other methods seed a generator on ``device``.
        generator: a ``torch.Generator`` on ``device``; every random draw comes from it (a
            counter-drawing method reads one root key from it): the noise reproduces on that
            device.
        device: where the noise lives. A device this machine does not have (``"cuda"`` without
            CUDA) is a ``ValueError``.
        dtype: the noise's floating dtype. Computation runs in float32 (float64 if asked) and
            the result is cast to ``dtype``.
        **options: the method's options (e.g. ``upsample=8`` for ``integral``).

    Example:
        >>> w = NoiseWarper(4, 64, 64, method="integral", seed=0)
        >>> w.noise.shape
        torch.Size([4, 64, 64])
        >>> w.step(torch.zeros(2, 64, 64)).shape
        torch.Size([4, 64, 64])
    """

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        method: str = DEFAULT_METHOD,
        *,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> None:
        self.shape = (_check_size("channels", channels), _check_size("height", height),
                      _check_size("width", width))
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        self.device = check_device(device)
        self.dtype = dtype
        self._work_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self.method_name = method
        self.method = get_method(method, **options)
        counted = counter_rng(self.method)
        self.generator = make_generator(
            None if generator is not None else seed, generator,
            self.device if generator is not None or not counted else torch.device("cpu"))
        with deferred_interrupts():  # see warpnoise._interrupt
            if counted:
                self._state = self.method.start(self.shape, self.generator, self.device,
                                                self._work_dtype)
            else:
                first = torch.randn(self.shape, generator=self.generator, device=self.device,
                                    dtype=self._work_dtype)
                self._state = self.method.init(first, self.generator)
        self.frame = 0

    @property
    def backend(self) -> str:
        """The backend the sequence runs on: ``"numba"``, ``"triton"`` or ``"torch"`` (chosen
        when it started; ``"torch"`` after a compiled backend fell back, and for methods
        without compiled backends)."""
        b = getattr(self._state, "backend", None)
        name = b if isinstance(b, str) else getattr(b, "name", None)
        return name or "torch"

    @property
    def noise(self) -> Tensor:
        """The current frame's ``(C, H, W)`` noise."""
        return self._state.noise.to(self.dtype)

    def step(self, backward_flow: Any, forward_flow: Any | None = None) -> Tensor:
        """Advance one frame and return its ``(C, H, W)`` noise.

        Raises:
            ValueError: a flow of the wrong shape, or with NaN or inf values.
        """
        _, h, w = self.shape
        b = as_flow(backward_flow, h, w, name="backward_flow", device=self.device,
                    dtype=self._work_dtype)
        f = None if forward_flow is None else as_flow(
            forward_flow, h, w, name="forward_flow", device=self.device, dtype=self._work_dtype)
        # Ctrl-C waits for the end of the step: numba's kernels and its cache loading are not
        # safe to interrupt (see warpnoise._interrupt; the numba backend also unwraps interrupts
        # raised inside compiled code).
        with deferred_interrupts():
            self._state = self.method.step(self._state, b, f, self.generator)
            self.frame += 1  # a held interrupt is raised after a whole, counted step
        return self.noise


def clip_flows(backward_flows: Any, forward_flows: Any | None = None,
               device: torch.device | str | None = None) -> tuple[Tensor, Tensor | None]:
    """A clip's flows checked and moved to ``device`` (default: the backward flows' device if
    they are a tensor, else the CPU): ``(backward (T-1, 2, H, W), forward (T-1, 2, H, W) or
    None)``, float32.

    Raises:
        ValueError: a bad shape, NaN or inf, forward flows of another size or count, or a device
            this machine does not have.
    """
    if device is None:
        device = backward_flows.device if isinstance(backward_flows, Tensor) else "cpu"
    device = check_device(device)
    flows = as_flows(backward_flows, name="backward_flows", device=device)
    t1, _, h, w = flows.shape
    if forward_flows is None:
        return flows, None
    fwd = as_flows(forward_flows, h, w, name="forward_flows", device=device)
    if fwd.shape[0] != t1:
        raise ValueError(f"forward_flows has {fwd.shape[0]} flows but backward_flows has {t1}")
    return flows, fwd


def warp_noise(
    backward_flows: Any,
    channels: int,
    method: str = DEFAULT_METHOD,
    *,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    forward_flows: Any | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> Tensor:
    """Warped noise for a whole clip.

    Convention:
        ``backward_flows`` is ``(T-1, 2, H, W)``: entry ``t-1`` is frame t's backward flow.
        ``forward_flows``, if given, is ``(T-1, 2, H, W)``: entry ``t-1`` is frame t-1's forward
        flow. Returns ``(T, C, H, W)``.

    Example:
        >>> warp_noise(torch.zeros(2, 2, 32, 32), channels=3, method="fixed").shape
        torch.Size([3, 3, 32, 32])
    """
    flows, fwd = clip_flows(backward_flows, forward_flows, device)
    device = flows.device
    t1, _, h, w = flows.shape
    warper = NoiseWarper(channels, h, w, method, seed=seed, generator=generator, device=device,
                         dtype=dtype, **options)
    out = torch.empty(t1 + 1, channels, h, w, device=device, dtype=dtype)
    out[0] = warper.noise
    for t in range(t1):
        out[t + 1] = warper.step(flows[t], None if fwd is None else fwd[t])
    return out
