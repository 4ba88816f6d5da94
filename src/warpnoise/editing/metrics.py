"""Output-level measures of an edited video: temporal coherence, fidelity, and what the noise's
own contribution (the hallucinated detail) does over time.

The warping error (Chang et al., "How I Warped Your Noise", ICLR 2024, §6) cannot tell detail
that sticks to the screen from detail that follows the content: both are low on slow motion.
:func:`follows_motion` and :func:`sticks_to_screen` look at the detail alone, with and without
warping it along the motion, so each baseline's failure shows as its own number: fresh noise
(``random``) gives neither, fixed noise sticks, interpolated noise keeps little detail
(:func:`detail_ratio`), and noise that moves with the video follows.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..flow import as_flows, forward_backward_occlusion, pixel_grid, sample

__all__ = ["MIN_MOTION", "coherence_measures", "detail_ratio", "follows_motion",
           "hallucinated_detail", "psnr", "ssim", "sticks_to_screen", "to_float_frames",
           "warping_error"]

#: Pixels that moved less than this (px/frame) cannot tell sticking from following.
MIN_MOTION = 0.5


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


def hallucinated_detail(frames: np.ndarray | Tensor, noise_free: np.ndarray | Tensor) -> Tensor:
    """The detail the noise made: ``frames - noise_free``, ``(T, 3, H, W)`` float.

    ``noise_free`` is the output of the same model on the same input with every noise draw set to
    zero (:func:`warpnoise.editing.edit.edit_frames` ``noise_free=True``): the model's
    deterministic answer, which follows the content by construction because it is a function of
    the input frame. Subtracting it leaves what the noise decided. Subtracting the input instead
    would leave the model's deterministic correction too (the super-resolver's predicted residual,
    a denoiser's smoothing), which moves with the content whatever the noise, and every noise
    would then seem to follow the motion.

    Convention:
        Both ``(T, H, W, 3)`` uint8 or ``(T, 3, H, W)`` float in [0, 1], the same shape.
    """
    x, y = to_float_frames(frames), to_float_frames(noise_free)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x - y


def _corr(a: Tensor, b: Tensor, mask: Tensor) -> float:
    """Pearson correlation of ``(C, H, W)`` ``a`` and ``b`` over the pixels of ``mask`` and every
    channel; NaN when fewer than 2 pixels are kept or one side is constant there."""
    if int(mask.sum()) < 2:
        return float("nan")
    u = a[:, mask].double().reshape(-1)
    v = b[:, mask].double().reshape(-1)
    u, v = u - u.mean(), v - v.mean()
    den = float((u.square().sum() * v.square().sum()).sqrt())
    return float((u * v).sum()) / den if den > 0 else float("nan")


def _pairs(detail: Tensor, backward_flows: Tensor, forward_flows: Tensor | None,
           ) -> tuple[Tensor, Tensor | None]:
    t, _, h, w = detail.shape
    b = as_flows(backward_flows, h, w, name="backward_flows")
    f = None if forward_flows is None else as_flows(forward_flows, h, w, name="forward_flows")
    if b.shape[0] != t - 1 or (f is not None and f.shape[0] != t - 1):
        raise ValueError(f"{t} frames need {t - 1} flows, got {b.shape[0]} backward"
                         + ("" if f is None else f" and {f.shape[0]} forward"))
    return b, f


def follows_motion(frames: np.ndarray | Tensor, noise_free: np.ndarray | Tensor,
                   backward_flows: Tensor, forward_flows: Tensor) -> tuple[float, list[float]]:
    """How much of frame t's hallucinated detail is frame t-1's, carried along the motion.

    The correlation of ``D_t(x)`` with ``D_{t-1}(x + b_t(x))`` (bilinear) over the pixels
    visible in both frames (:func:`warpnoise.flow.forward_backward_occlusion`), with ``D`` from
    :func:`hallucinated_detail`. 1: the detail moves with the content; 0: it is redrawn (fresh
    noise) or stays where it was while the content moved (fixed noise). Bilinear resampling
    of white detail lowers the score of perfectly carried detail at fractional offsets (about
    0.71 at half a pixel for ∫-noise-like detail), whatever the method. Flows should describe the
    real motion (the ground truth's, or the input's).

    Convention:
        ``frames``/``noise_free`` as :func:`hallucinated_detail`; flows ``(T-1, 2, H, W)``,
        entry ``t-1`` frame t's backward flow and frame t-1's forward flow.

    Returns:
        ``(mean, per_pair)``; a pair with no visible pixel is NaN and left out of the mean.
    """
    d = hallucinated_detail(frames, noise_free)
    b, f = _pairs(d, backward_flows, forward_flows)
    grid = pixel_grid(*d.shape[2:])
    per_pair = []
    for i in range(1, d.shape[0]):
        visible = ~forward_backward_occlusion(b[i - 1], f[i - 1])
        per_pair.append(_corr(d[i], sample(d[i - 1], grid + b[i - 1]), visible))
    return _nanmean(per_pair), per_pair


def sticks_to_screen(frames: np.ndarray | Tensor, noise_free: np.ndarray | Tensor,
                     backward_flows: Tensor, min_motion: float = MIN_MOTION,
                     ) -> tuple[float, list[float]]:
    """How much of frame t's hallucinated detail stays where frame t-1's was, on moving content.

    The correlation of ``D_t(x)`` with ``D_{t-1}(x)`` (no warping) over the pixels whose
    backward flow is longer than ``min_motion`` px: the detail of fixed noise, and of nearest-
    neighbour noise under sub-pixel motion, scores near 1 there while the content moves under
    it (Chang et al. 2024, §1: "sticking"); detail that follows the content scores about the
    detail's own spatial autocorrelation at the motion's offset (near 0 for white detail moved
    a pixel or more); fresh detail scores 0.

    Convention:
        As :func:`follows_motion`.

    Returns:
        ``(mean, per_pair)``; a pair with no pixel moving that far is NaN and left out of the
        mean (and the mean is NaN when nothing moves).
    """
    d = hallucinated_detail(frames, noise_free)
    b, _ = _pairs(d, backward_flows, None)
    per_pair = []
    for i in range(1, d.shape[0]):
        moved = b[i - 1].square().sum(0) > min_motion**2
        per_pair.append(_corr(d[i], d[i - 1], moved))
    return _nanmean(per_pair), per_pair


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if v == v]
    return float(np.mean(kept)) if kept else float("nan")


def coherence_measures(frames: np.ndarray | Tensor, noise_free: np.ndarray | Tensor | None,
                       backward_flows: Tensor, forward_flows: Tensor,
                       reference: np.ndarray | Tensor) -> dict[str, float | None]:
    """The four measures of what the noise does to a video, under the names results files use.

    ``follows_motion`` and ``sticks_to_screen`` (None without ``noise_free``), ``warping_error``
    (0-255 units, as the paper reports it) and ``detail`` (:func:`detail_ratio` against
    ``reference``: the ground truth, or the input when there is none).

    Convention:
        As :func:`follows_motion`; ``reference`` like ``frames``.
    """
    we, _ = warping_error(frames, backward_flows, forward_flows)
    out: dict[str, float | None] = {"follows_motion": None, "sticks_to_screen": None}
    if noise_free is not None:
        out["follows_motion"] = follows_motion(frames, noise_free, backward_flows,
                                               forward_flows)[0]
        out["sticks_to_screen"] = sticks_to_screen(frames, noise_free, backward_flows)[0]
    out["warping_error"] = we * 255.0
    out["detail"] = detail_ratio(frames, reference)
    return out
