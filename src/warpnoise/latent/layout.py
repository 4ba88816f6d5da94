"""Warped noise laid out as a video model's ``latents=``: frame subsampling for temporal VAEs."""

from __future__ import annotations

from torch import Tensor

__all__ = ["to_video_latents"]


def to_video_latents(noise: Tensor, layout: str = "bcfhw", *, temporal_compression: int = 1,
                     batch_size: int = 1) -> Tensor:
    """Shape a ``(T, C, H, W)`` warped sequence as a video model's ``latents=`` argument.

    Video VAEs with temporal compression ``r`` (CogVideoX, Wan: r = 4) encode frame 0 alone and
    then each group of ``r`` frames into one latent frame, so ``T = 1 + r (F - 1)`` pixel frames
    make ``F`` latent frames. Latent frame ``k`` takes the noise of pixel frame ``k r``, the last
    frame of its group: a subsample, not an average, because averaging correlated (warped)
    frames would not be unit variance. The motion between latent frames is then ``r`` frames'
    worth, carried exactly by the warp.

    Convention:
        ``noise`` is ``(T, C, H, W)``, already at latent spatial resolution (see
        :func:`warped_noise`'s ``factor``). ``layout="bcfhw"`` gives ``(B, C, F, H, W)``
        (AnimateDiff, Wan, diffusers' UNet3D / WanTransformer3D); ``"bfchw"`` gives
        ``(B, F, C, H, W)`` (CogVideoX). The batch repeats the same noise ``batch_size`` times.

    Raises:
        ValueError: an unknown layout, a non-4D input, or ``T - 1`` not divisible by ``r``.
    """
    if noise.ndim != 4:
        raise ValueError(f"noise must be (T, C, H, W), got shape {tuple(noise.shape)}")
    r = temporal_compression
    t = noise.shape[0]
    if r < 1 or (t - 1) % r:
        raise ValueError(f"{t} frames do not fit temporal compression {r}: "
                         f"need T = 1 + {r} * (F - 1)")
    frames = noise[::r]
    if layout == "bcfhw":
        out = frames.permute(1, 0, 2, 3)
    elif layout == "bfchw":
        out = frames
    else:
        raise ValueError(f"layout must be 'bcfhw' or 'bfchw', got {layout!r}")
    return out.unsqueeze(0).expand(batch_size, *out.shape).contiguous()
