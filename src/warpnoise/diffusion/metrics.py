"""Output-level measures of an edited video: temporal coherence and fidelity (Chang et al. 2024)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..flow import as_flows, forward_backward_occlusion, pixel_grid, sample

__all__ = ["detail_ratio", "psnr", "ssim", "to_float_frames", "warping_error"]


def to_float_frames(frames: np.ndarray | Tensor) -> Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(T, 3, H, W)`` float32 in [0, 1]; float tensors pass through."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, 3, H, W), got shape {tuple(frames.shape)}")
    return frames.float()


def warping_error(frames: np.ndarray | Tensor, backward_flows: Tensor, forward_flows: Tensor,
                  ) -> tuple[float, list[float]]:
    """Mean ``|O_t - O_{t-1}(x + b_t(x))|`` over pixels visible in both frames.

    The temporal-coherence measure of Chang et al. 2024 (§6, "warping error"): frame t-1 of the
    output is warped onto frame t with frame t's backward flow (bilinear) and compared on the
    pixels that the forward-backward check (:func:`warpnoise.flow.forward_backward_occlusion`)
    keeps. Flows should come from a reference video (the ground truth), not from the output.

    Convention:
        ``frames`` ``(T, H, W, 3)`` uint8 or ``(T, 3, H, W)`` float in [0, 1]; flows
        ``(T-1, 2, H, W)`` (entry ``t-1``: frame t's backward flow, frame t-1's forward flow).

    Returns:
        ``(mean, per_pair)``: the mean over all pairs, in intensity units of [0, 1], and each
        pair's error.
    """
    x = to_float_frames(frames)
    t, _, h, w = x.shape
    b = as_flows(backward_flows, h, w, name="backward_flows")
    f = as_flows(forward_flows, h, w, name="forward_flows")
    if b.shape[0] != t - 1 or f.shape[0] != t - 1:
        raise ValueError(f"{t} frames need {t - 1} flows, got {b.shape[0]} backward and "
                         f"{f.shape[0]} forward")
    grid = pixel_grid(h, w)
    per_pair = []
    for i in range(1, t):
        visible = ~forward_backward_occlusion(b[i - 1], f[i - 1])
        warped = sample(x[i - 1], grid + b[i - 1])
        err = (x[i] - warped).abs().mean(0)
        per_pair.append(float(err[visible].mean()) if bool(visible.any()) else float("nan"))
    return float(np.nanmean(per_pair)), per_pair


def psnr(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """PSNR in dB of two clips (uint8 ``(T, H, W, 3)`` or float ``(T, 3, H, W)`` in [0, 1]),
    from the MSE over the whole clip."""
    x, y = to_float_frames(a), to_float_frames(b)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = float((x - y).square().mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, scikit-image's Gaussian-window variant) over frames of two
    ``(T, H, W, 3)`` uint8 clips."""
    from skimage.metrics import structural_similarity

    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.mean([
        structural_similarity(x, y, channel_axis=2, data_range=255, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False)
        for x, y in zip(a, b, strict=True)
    ]))


def _laplacian_energy(frames: np.ndarray | Tensor) -> float:
    x = to_float_frames(frames)
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return float(F.conv2d(luma, k.to(luma)).abs().mean())


def detail_ratio(frames: np.ndarray | Tensor, reference: np.ndarray | Tensor) -> float:
    """Fine detail of ``frames`` relative to ``reference``: the ratio of their mean absolute
    Laplacian of luma (1 = as much high-frequency content; below 1 = blurrier).

    The blur that interpolated noise causes (Chang et al. 2024, §1, Fig. 2) lowers it; a
    low warping error with a low detail ratio is smoothness, not coherence.
    """
    ref = _laplacian_energy(reference)
    if ref == 0:
        raise ValueError("the reference has no detail (constant frames)")
    return _laplacian_energy(frames) / ref
