"""Warped noise shaped for samplers: per-step sequences, latent resolution, video-model layouts.

A diffusion sampler draws noise twice: once to noise the input (SDEdit's ``x_t``, or the initial
latents) and, for ancestral/SDE samplers, once per step. For video made of image-model frames
each draw is a whole ``(T, C, H, W)`` warped sequence: warped *across frames*, independent *across
draws* (Chang et al., "How I Warped Your Noise", ICLR 2024, §5: "we warp the noise ... at every
denoising step"). Every sequence comes from one seed chain, never from global random state.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import torch
from torch import Tensor

from ..methods import DEFAULT_METHOD
from ..rng import make_generator
from ..stream import Degradation, NoiseStream, Target, WarpSpec
from ..warper import clip_flows

__all__ = ["WarpedNoiseSampler", "warped_noise"]

_SEED_SPACE = 2**62


def warped_noise(
    backward_flows: Any,
    channels: int,
    method: str = DEFAULT_METHOD,
    *,
    factor: int = 1,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    forward_flows: Any | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> Tensor:
    """One warped sequence, at pixel resolution or integrated to a latent grid.

    Warps at the flows' (pixel) resolution, then integrates ``factor x factor`` blocks
    (:func:`warpnoise.field.block_integrate`, sum / factor), which keeps every latent pixel i.i.d.
    N(0, 1) (Chang et al., ICLR 2024): one ∫-noise field seen at two resolutions.

    Convention:
        ``backward_flows`` / ``forward_flows`` are ``(T-1, 2, H, W)`` pixel flows (entry ``t-1``:
        frame t's backward flow, frame t-1's forward flow). Returns ``(T, C, H // factor,
        W // factor)``.

    A frame-guided method (``control-a-video``) takes the clip as ``frames=`` (re-iterable
    ``(H, W, 3)`` uint8), its mask cells then ``factor x factor``. The sequence runs through the
    streaming core (:class:`warpnoise.stream.NoiseStream`), as every other path does.

    Raises:
        ValueError: bad flows, method or options, or ``H``/``W`` not divisible by ``factor``.
    """
    flows, fwd = clip_flows(backward_flows, forward_flows, device)
    device = flows.device
    t1, _, h, w = flows.shape
    _check_factor(h, w, factor)
    guide = options.pop("frames", None)
    warp = WarpSpec.checked(method, options, 0 if seed is None else seed, device)
    stream = NoiseStream(warp, Target(channels, factor), Degradation(), t1 + 1, h, w,
                         guide=guide, generator=generator, device=device, dtype=dtype)
    out = torch.empty(stream.shape, device=device, dtype=dtype)
    steps = chain([(None, None, None)],
                  ((None, flows[i], None if fwd is None else fwd[i]) for i in range(t1)))
    for item in stream.run(steps):
        out[item.index] = item.noise
    return out


def _check_factor(h: int, w: int, factor: int) -> None:
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"flows of {h}x{w} pixels cannot be integrated by factor {factor}")


class WarpedNoiseSampler:
    """Fresh warped noise at every call: a k-diffusion ``noise_sampler`` for a batch of frames.

    Each call returns a new ``(T, C, h, w)`` sequence, warped across the T frames along the flows
    and independent of every earlier call. Warps run ``prefetch`` sequences at a time as one
    ``prefetch · C``-channel warp (channels of warped noise are independent, and a warper's cost
    is mostly the geometry, shared by all channels), each warp seeded from a generator seeded
    with ``seed``: the chain is reproducible for a given ``(seed, prefetch)`` and never touches
    global random state.

    Convention:
        Flows as in :func:`warped_noise`: ``(T-1, 2, H, W)`` at pixel resolution; the noise is
        ``(T, channels, H // factor, W // factor)``. With k-diffusion, the sampled batch ``x`` must
        be the T frames in order.

    Example:
        >>> ns = WarpedNoiseSampler(torch.zeros(3, 2, 32, 32), channels=4, factor=8, seed=0)
        >>> ns(torch.tensor(1.0), torch.tensor(0.5)).shape     # k-diffusion's signature
        torch.Size([4, 4, 4, 4])
        >>> # k_diffusion.sampling.sample_euler_ancestral(model, x, sigmas, noise_sampler=ns)
    """

    def __init__(
        self,
        backward_flows: Any,
        channels: int,
        method: str = DEFAULT_METHOD,
        *,
        factor: int = 1,
        seed: int = 0,
        prefetch: int = 1,
        forward_flows: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> None:
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive int, got {prefetch!r}")
        self.prefetch = prefetch
        self._queue: list[Tensor] = []
        self.backward_flows, self.forward_flows = clip_flows(backward_flows, forward_flows,
                                                             device)
        self.device = self.backward_flows.device
        self.channels = channels
        self.method = method
        self.factor = factor
        self.dtype = dtype
        self.options = options
        # The seed chain lives on the CPU so that it is the same on every device.
        self._chain = make_generator(seed, None, "cpu")
        self.calls = 0
        t1, _, h, w = self.backward_flows.shape
        _check_factor(h, w, factor)
        self.shape = (t1 + 1, channels, h // factor, w // factor)

    def next_seed(self) -> int:
        """The seed of the next sequence (advances the chain)."""
        return int(torch.randint(_SEED_SPACE, (), generator=self._chain))

    def __call__(self, sigma: Any = None, sigma_next: Any = None) -> Tensor:
        """The next ``(T, C, h, w)`` sequence; ``sigma``/``sigma_next`` are accepted and unused
        (k-diffusion passes them; the noise is standard normal whatever the step)."""
        self.calls += 1
        if not self._queue:
            many = warped_noise(self.backward_flows, self.channels * self.prefetch, self.method,
                                factor=self.factor, seed=self.next_seed(),
                                forward_flows=self.forward_flows, device=self.device,
                                dtype=self.dtype, **self.options)
            self._queue = list(many.split(self.channels, dim=1))
        return self._queue.pop(0).contiguous()
