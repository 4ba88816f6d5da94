"""Control-A-Video's residual-based noise initialisation (Chen et al., "Control-A-Video", 2023).

As in the authors' released code (the residual variant; ``init_noise_by_residual_thres``, τ = 0.1
in their inference script): with the frame residual ``r_t = |I_t - I_{t-1}|`` divided by its
maximum over the whole clip (every pair, pixel and colour channel), resized to the noise grid
(bilinear) and averaged over colour channels, the mask is ``M_t = r_t > τ`` and, in frame order,

    z_t = M_t ⊙ ε_t + (1 - M_t) ⊙ z_{t-1},    ε_t i.i.d. N(0, 1),

so a pixel that changed gets fresh noise and a static one keeps the previous frame's value. Every
frame is exactly i.i.d. N(0, 1) (each value is a copy of an earlier N(0, 1) draw or a fresh one,
never a mix), the correlation over time is 1 where the video is static and 0 elsewhere, and
nothing follows the motion (no flow is used).

How it plugs in. The method needs the video itself, not its flows, and its normalisation needs
the whole clip before the first frame. It keeps the :class:`~warpnoise.methods.base.WarpMethod`
protocol as it is: it takes the frames as a constructor option (``frames=``) and ignores the flows
that ``step`` receives, and it declares ``needs_frames = True`` so that the callers that hold the
frames (:func:`warpnoise.pipeline.video_to_noise`, the demo, ``warpnoise edit``) pass them, and
``uses_flows = False`` so that ``warpnoise noise`` estimates no flows for it (unless a preview
shows them). The frames are read twice: once at construction for the global maximum (a
streaming pre-pass, one frame pair in memory), then one frame per ``step``. A re-iterable source
(an array, a list, or an object whose ``__iter__`` re-opens the video) is therefore required; a
one-shot iterator is refused.

Convention:
    ``frames``: ``(T, H_f, W_f, C)`` channels last (what :func:`warpnoise.io.video.read_frames`
    returns; uint8 or float; the scale does not matter, the normalisation removes it), or a
    re-iterable of ``(H_f, W_f, C)`` frames; frame t belongs to noise frame t. The noise is
    ``(C_n, H, W)``; with ``block = s`` the mask is made on the ``(H/s, W/s)`` grid and each cell
    covers ``s x s`` noise pixels, so that :func:`warpnoise.field.block_integrate` by ``s`` gives
    exactly the method on the latent grid (as the authors apply it to SD latents).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import WarpState, register

__all__ = ["ControlAVideo", "clip_residual_max", "residual_mask"]


@dataclass
class ResidualState(WarpState):
    """The noise, the open pass over the frames, and the frame the next residual starts from."""

    frames: Iterator[Any]
    previous: Tensor


def _as_frame(frame: Any) -> Tensor:
    """One ``(H, W, C)`` frame (numpy or torch) as a float32 CPU tensor."""
    t = torch.as_tensor(np.asarray(frame) if not isinstance(frame, Tensor) else frame)
    if t.ndim != 3:
        raise ValueError(f"control-a-video frames must be (H, W, C), got shape {tuple(t.shape)}")
    return t.detach().to("cpu", torch.float32)


def clip_residual_max(frames: Iterable[Any]) -> tuple[float, int]:
    """``(max |I_t - I_{t-1}|, T)`` over every pair, pixel and channel of a clip, in one pass
    holding two frames. Raises ValueError for frames of different shapes or non-finite values."""
    top, count, prev = 0.0, 0, None
    for frame in frames:
        cur = _as_frame(frame)
        if not bool(torch.isfinite(cur).all()):
            raise ValueError(f"control-a-video frame {count} contains NaN or inf")
        if prev is not None:
            if cur.shape != prev.shape:
                raise ValueError(f"control-a-video frame {count} has shape {tuple(cur.shape)}, "
                                 f"frame 0 has {tuple(prev.shape)}")
            top = max(top, float((cur - prev).abs().max()))
        prev, count = cur, count + 1
    return top, count


def residual_mask(previous: Tensor, current: Tensor, scale: float, grid: tuple[int, int],
                  tau: float) -> Tensor:
    """``M_t = mean_c(resize(|I_t - I_{t-1}| / scale)) > τ`` on ``grid``: a bool ``(h, w)``.

    Frames ``(H_f, W_f, C)``; ``scale`` is the clip's maximum residual (0: a static clip, no pixel
    changes). The resize is bilinear without antialiasing, as the released code's
    ``F.interpolate(..., mode='bilinear')``; the channel mean is taken first (the two are linear
    maps on different axes, so they commute), which resizes one channel instead of three.
    """
    if scale <= 0:
        return torch.zeros(grid, dtype=torch.bool)
    d = (current - previous).abs()
    # The channel mean as a sum of channel planes: a reduction over a last axis of 3 is several
    # times slower in torch (measured at 256²: 0.4 ms against 3.3 ms on one thread).
    r = sum(d.unbind(-1)) / (d.shape[-1] * scale)
    if tuple(r.shape) != grid:
        r = F.interpolate(r[None, None], size=grid, mode="bilinear", align_corners=False)[0, 0]
    return r > tau


@register("control-a-video")
class ControlAVideo:
    """Control-A-Video's residual noise: fresh where the frame changed, copied where it did not.

    Args:
        frames: the clip (see the module docstring); required.
        tau: the threshold on the normalised residual, in [0, 1] (default 0.1, the authors'):
            larger keeps more of the previous noise (smoother, stickier), 0 renews every pixel
            that changed at all.
        block: the mask's cell size in noise pixels (the latent factor when the noise is then
            integrated by ``block``); the noise size must be divisible by it.
    """

    needs_frames: ClassVar[bool] = True
    uses_flows: ClassVar[bool] = False

    def __init__(self, frames: Any = None, tau: float = 0.1, block: int = 1) -> None:
        if frames is None:
            raise ValueError("control-a-video needs the video's frames (frames=...): it masks "
                             "by frame differences, not flows")
        if isinstance(frames, Iterator):
            raise ValueError("control-a-video reads the frames twice (the clip's maximum "
                             "residual first): pass an array or a re-iterable source, not a "
                             "one-shot iterator")
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and 0 <= tau <= 1):
            raise ValueError(f"tau must be a number in [0, 1], got {tau!r}")
        if not isinstance(block, int) or isinstance(block, bool) or block < 1:
            raise ValueError(f"block must be a positive int, got {block!r}")
        self.frames = frames
        self.tau = float(tau)
        self.block = block
        self.scale, self.length = clip_residual_max(frames)
        if self.length == 0:
            raise ValueError("control-a-video got no frames")

    def init(self, noise: Tensor, generator: torch.Generator) -> ResidualState:
        _, h, w = noise.shape
        if h % self.block or w % self.block:
            raise ValueError(f"noise of {w}x{h} is not divisible by block {self.block}")
        it = iter(self.frames)
        return ResidualState(noise, it, _as_frame(next(it)))

    def step(self, state: ResidualState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> ResidualState:
        try:
            current = _as_frame(next(state.frames))
        except StopIteration:
            raise ValueError(f"control-a-video: the noise has more frames than the clip "
                             f"({self.length})") from None
        z = state.noise
        _, h, w = z.shape
        s = self.block
        mask = residual_mask(state.previous, current, self.scale, (h // s, w // s), self.tau)
        if s > 1:
            mask = mask.repeat_interleave(s, 0).repeat_interleave(s, 1)
        fresh = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        return ResidualState(torch.where(mask.to(z.device), fresh, z), state.frames, current)
