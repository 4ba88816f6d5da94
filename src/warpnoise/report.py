"""The fidelity report of noise: is every frame i.i.d. N(0, 1), and does it move with the video?

Per frame it reads :func:`warpnoise.stats.frame_stats` (mean, std, KS test, lag-1 spatial and
channel correlation, Moran's I). Given the clip's flows it measures the temporal correlation of
frame t with frame t-1 *along the motion* (:func:`warpnoise.stats.warped_correlation`, pixels
disoccluded by the forward-backward test excluded) and, for contrast, at fixed pixels. It also
computes the paper's covariance maps (Chang et al., ICLR 2024): the covariance of a pixel with its
neighbours in frame t and in frame t-1.

Verdict thresholds (per frame, ``n = C*H*W`` values, ``m = H*W`` per channel):
``|mean| < 5/sqrt(n)``, ``|std - 1| < 5/sqrt(2n)``, KS p-value ``> 0.001 / T`` (Bonferroni over
frames), ``|lag-1| < 5/sqrt(n)``, channel correlation ``< 5/sqrt(m)``, ``|Moran's z| < 5``. Five
standard errors: a right
method passes essentially always, while interpolated noise (std ~0.8, lag-1 ~0.2) fails by far.
"Moves with the video" means the median correlation along the motion exceeds
:data:`MOTION_THRESHOLD` (independent noise gives 0 ± 5/sqrt(n); ∫-noise under a sub-pixel motion
gives the overlap of two unit squares, 0.25 to 1) *and*, where the video moves (pixels whose flow
is at least :data:`MOVING_PX` noise pixels long), the noise correlates more along the motion
than in place, by five standard errors. The second test is what tells noise that follows the
motion from noise that sticks: over a static background, fixed noise correlates perfectly
"along the motion" too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .flow import as_flows, forward_backward_occlusion
from .stats import frame_stats, warped_correlation

__all__ = [
    "MAX_RADIUS",
    "MOTION_THRESHOLD",
    "MOVING_PX",
    "NoiseReport",
    "check_radius",
    "covariance_maps",
    "flows_to_noise_grid",
    "noise_report",
]

MOTION_THRESHOLD = 0.2
#: A pixel moves when its flow is at least this long (noise-grid pixels): nearest sampling along
#: the motion then reads another pixel than in place.
MOVING_PX = 1.0
#: Largest neighbourhood radius of :func:`covariance_maps` (a 33 x 33 map): ∫-noise is
#: uncorrelated beyond one pixel, and the cost grows as ``(2r+1)^2`` passes over the frames.
MAX_RADIUS = 16
_STAT_KEYS = ("mean", "std", "ks_stat", "ks_p", "lag1_x", "lag1_y", "channel_corr", "morans_i",
              "morans_z")


def flows_to_noise_grid(flows: Tensor, height: int, width: int) -> Tensor:
    """Bring ``(N, 2, H, W)`` pixel flows to a ``height x width`` noise grid.

    The noise grid must divide the flow grid by one integer factor ``s`` (the ``--downsample`` of
    latent noise): flows are averaged over ``s x s`` blocks and divided by ``s`` (pixels of the
    coarse grid).

    Raises:
        ValueError: the sizes are not related by one integer factor.
    """
    _, _, fh, fw = flows.shape
    if (fh, fw) == (height, width):
        return flows
    s = fh // height
    if s < 1 or fh != s * height or fw != s * width:
        raise ValueError(f"flows are {fw}x{fh} but the noise is {width}x{height}: the flow size "
                         "must equal the noise size or be an integer multiple of it")
    return F.avg_pool2d(flows, s) / s


def _frame_verdict(st: dict[str, float], n: int, m: int, frames: int) -> list[str]:
    fails = []
    if abs(st["mean"]) >= 5 / math.sqrt(n):
        fails.append(f"mean {st['mean']:+.4f}")
    if abs(st["std"] - 1) >= 5 / math.sqrt(2 * n):
        fails.append(f"std {st['std']:.4f}")
    if st["ks_p"] <= 1e-3 / frames:
        fails.append(f"KS p {st['ks_p']:.2g}")
    for key in ("lag1_x", "lag1_y"):
        if abs(st[key]) >= 5 / math.sqrt(n):
            fails.append(f"{key} {st[key]:+.3f}")
    if m > 1 and st["channel_corr"] >= 5 / math.sqrt(m):
        fails.append(f"channel corr {st['channel_corr']:.3f}")
    if abs(st["morans_z"]) >= 5:
        fails.append(f"Moran z {st['morans_z']:+.1f}")
    return fails


@dataclass
class NoiseReport:
    """What :func:`noise_report` found. ``as_dict()`` is what ``warpnoise stats --json`` prints."""

    shape: tuple[int, int, int, int]
    frames: list[dict[str, Any]]
    temporal: list[dict[str, float]] | None
    normal: bool
    moves: bool | None
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "normal": self.normal, "moves_with_video": self.moves,
                "summary": self.summary, "frames": self.frames, "temporal": self.temporal}

    def verdict(self) -> list[str]:
        """Plain-language lines: the per-frame verdict and the temporal one."""
        t = self.shape[0]
        bad = [f["frame"] for f in self.frames if f["fails"]]
        lines = [f"i.i.d. N(0,1) per frame: {'yes' if self.normal else 'NO'} "
                 f"({t - len(bad)}/{t} frames pass"
                 + (f"; failing: {bad[:10]}{' ...' if len(bad) > 10 else ''})" if bad else ")")]
        if self.moves is None:
            lines.append("moves with the video: not checked (no flows: pass --flows, or keep the "
                         "source video where the noise file says it is)")
        else:
            s = self.summary
            if not self.moves and "moving_corr_motion_median" in s and (
                    s["moving_corr_static_median"] >= s["moving_corr_motion_median"]
                    or s["temporal_corr_motion_median"] > MOTION_THRESHOLD):
                return [*lines, f"moves with the video: NO, it sticks (where the video moves, "
                        f"median correlation along the motion "
                        f"{s['moving_corr_motion_median']:.3f}, in place "
                        f"{s['moving_corr_static_median']:.3f})"]
            lines.append(f"moves with the video: {'yes' if self.moves else 'NO'} (median "
                         f"correlation with frame t-1 along the motion "
                         f"{s['temporal_corr_motion_median']:.3f}, at fixed pixels "
                         f"{s['temporal_corr_static_median']:.3f}; threshold {MOTION_THRESHOLD})")
        return lines


def noise_report(
    noise: Tensor,
    backward_flows: Tensor | None = None,
    forward_flows: Tensor | None = None,
) -> NoiseReport:
    """Fidelity report of a ``(T, C, H, W)`` noise sequence (see the module docstring).

    Convention:
        ``backward_flows`` ``(T-1, 2, H', W')``: entry t-1 is frame t's backward flow;
        ``forward_flows`` the same layout, entry t-1 frame t-1's forward flow (used only for the
        occlusion mask). ``H' x W'`` is the noise size or an integer multiple of it (flows of
        the pixel frames of latent noise).

    Raises:
        ValueError: wrong shapes or frame counts.
    """
    if noise.ndim != 4:
        raise ValueError(f"noise must have shape (T, C, H, W), got {tuple(noise.shape)}")
    t, c, h, w = noise.shape
    x = noise.detach().cpu().float()
    frames = []
    for i in range(t):
        if float(x[i].std()) == 0.0 or c * h * w < 2:
            # Moran's I and correlations divide by the variance: report, don't crash.
            st = dict.fromkeys(_STAT_KEYS, float("nan")) | {"mean": float(x[i].mean()),
                                                             "std": 0.0}
            frames.append({"frame": i, **st, "fails": ["constant frame (zero variance)"]})
            continue
        st = frame_stats(x[i]).as_dict()
        frames.append({"frame": i, **st, "fails": _frame_verdict(st, c * h * w, h * w, t)})
    temporal = None
    if backward_flows is not None and t > 1:
        b = _noise_grid_flows(backward_flows, t, h, w, "backward_flows")
        f = None if forward_flows is None else _noise_grid_flows(forward_flows, t, h, w,
                                                                 "forward_flows")
        temporal = []
        for i in range(1, t):
            visible = None if f is None else ~forward_backward_occlusion(b[i - 1], f[i - 1])
            zero = torch.zeros_like(b[i - 1])
            moving = b[i - 1].square().sum(0) >= MOVING_PX ** 2
            if visible is not None:
                moving &= visible
            n_moving = int(moving.sum())
            temporal.append({
                "frame": i,
                "corr_motion": warped_correlation(x[i], x[i - 1], b[i - 1], visible),
                "corr_static": warped_correlation(x[i], x[i - 1], zero),
                "moving": n_moving / (h * w),
                "moving_corr_motion": (warped_correlation(x[i], x[i - 1], b[i - 1], moving)
                                       if n_moving else float("nan")),
                "moving_corr_static": (warped_correlation(x[i], x[i - 1], zero, moving)
                                       if n_moving else float("nan")),
                "occluded": 0.0 if visible is None else float(1 - visible.float().mean()),
                "mean_speed": float(b[i - 1].square().sum(0).sqrt().mean()),
            })
    normal = all(not fr["fails"] for fr in frames)
    summary: dict[str, Any] = {
        "frames_passing": sum(not fr["fails"] for fr in frames),
        "std_min": min(fr["std"] for fr in frames), "std_max": max(fr["std"] for fr in frames),
        "ks_p_min": float(np.nanmin([fr["ks_p"] for fr in frames] + [np.inf])),
        "lag1_abs_max": float(np.nanmax([max(abs(fr["lag1_x"]), abs(fr["lag1_y"]))
                                         for fr in frames] + [-np.inf])),
    }
    moves = None
    if temporal:
        motion = float(np.nanmedian([s["corr_motion"] for s in temporal]))
        summary["temporal_corr_motion_median"] = motion
        summary["temporal_corr_static_median"] = float(
            np.nanmedian([s["corr_static"] for s in temporal]))
        moves = bool(motion > MOTION_THRESHOLD)
        with_motion = [s for s in temporal if s["moving"] > 0]
        if with_motion:
            along = float(np.nanmedian([s["moving_corr_motion"] for s in with_motion]))
            still = float(np.nanmedian([s["moving_corr_static"] for s in with_motion]))
            n = c * h * w * float(np.median([s["moving"] for s in with_motion]))
            summary |= {"moving_corr_motion_median": along, "moving_corr_static_median": still,
                        "moving_share_median": n / (c * h * w)}
            # Five standard errors of a correlation over the moving values (each ~1/sqrt(n)).
            moves = moves and bool(along - still > 5 / math.sqrt(max(n, 1.0)))
    return NoiseReport(shape=(t, c, h, w), frames=frames, temporal=temporal, normal=normal,
                       moves=moves, summary=summary)


def _noise_grid_flows(flows: Tensor, t: int, h: int, w: int, name: str) -> Tensor:
    flows = as_flows(flows, name=name).cpu()
    if flows.shape[0] != t - 1:
        raise ValueError(f"{name} has {flows.shape[0]} flows but the noise has {t} frames "
                         f"(expected {t - 1})")
    return flows_to_noise_grid(flows, h, w)


def covariance_maps(
    noise: Tensor,
    backward_flows: Tensor | None = None,
    *,
    radius: int = 3,
    max_pairs: int = 16,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The paper's spatial and temporal covariance maps of a noise sequence.

    Convention:
        ``noise`` ``(T, C, H, W)``; ``backward_flows`` as in :func:`noise_report`. Returns
        ``(spatial, temporal)``, each ``(2r+1, 2r+1)`` indexed ``[dy + r, dx + r]``:
        ``spatial`` is ``E[n_t(x) n_t(x + d)]`` and ``temporal`` is
        ``E[n_t(x) n_{t-1}(s(x) + d)]`` with ``s(x) = round(x + b(x))`` along the motion (or
        ``x`` without flows), averaged over pixels, channels and frames. Ideal ∫-noise: spatial 1
        at the centre (unit variance) and 0 elsewhere; interpolated noise shows a lower centre
        and a blurred neighbourhood. ``temporal`` is None for a single frame. At most
        ``max_pairs`` frames, evenly spaced, are used. ``radius`` is checked by
        :func:`check_radius`.
    """
    if noise.ndim != 4:
        raise ValueError(f"noise must have shape (T, C, H, W), got {tuple(noise.shape)}")
    t, _, h, w = noise.shape
    check_radius(radius, h, w)
    # Raw products, not correlations: the centre then shows any loss of variance.
    x = noise.detach().cpu().float()
    picks = np.unique(np.linspace(1 if t > 1 else 0, t - 1, min(max_pairs, t)).round().astype(int))
    b = None if backward_flows is None or t < 2 else _noise_grid_flows(
        backward_flows, t, h, w, "backward_flows")
    size = 2 * radius + 1
    spatial = np.zeros((size, size))
    temporal = np.zeros((size, size)) if t > 1 else None
    ys = torch.arange(h).view(h, 1).expand(h, w)
    xs = torch.arange(w).view(1, w).expand(h, w)
    n_t = 0
    for i in picks:
        spatial += _neighbour_corr(x[i], x[i], xs, ys, radius)
        if temporal is None or i == 0:
            continue
        if b is None:
            sx, sy = xs, ys
        else:
            sx = (xs + b[i - 1, 0].double()).round().long()
            sy = (ys + b[i - 1, 1].double()).round().long()
        temporal += _neighbour_corr(x[i], x[i - 1], sx, sy, radius)
        n_t += 1
    spatial /= len(picks)
    if temporal is not None:
        temporal /= max(n_t, 1)
    return spatial, temporal


def check_radius(radius: object, height: int | None = None, width: int | None = None) -> int:
    """Return ``radius`` if it is an int in ``[0, MAX_RADIUS]`` (and below the frame size, when
    given): the neighbourhood radius of :func:`covariance_maps`.

    Raises:
        ValueError: not an int, negative, above :data:`MAX_RADIUS`, or as large as the frame.
    """
    if not isinstance(radius, int) or isinstance(radius, bool):
        raise ValueError(f"radius must be an int, got {type(radius).__name__}")
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must be between 0 and {MAX_RADIUS}, got {radius}")
    if height is not None and width is not None and radius >= min(height, width):
        raise ValueError(f"radius {radius} does not fit frames of {width}x{height} (at most "
                         f"{min(height, width) - 1})")
    return radius


def _neighbour_corr(a: Tensor, b: Tensor, sx: Tensor, sy: Tensor, r: int) -> np.ndarray:
    """Mean of ``a(x) * b(s(x) + d)`` over pixels and channels for every ``|d| <= r``.

    ``a`` and ``b`` are ``(C, H, W)`` zero-mean noise (so this is a covariance); ``s(x)`` is
    ``(sx, sy)``, integer ``(H, W)``. Neighbours beyond the frame are skipped; pixels whose
    ``s(x)`` leaves the frame are dropped. One offset at a time, so memory stays ``O(C H W)``
    whatever ``r``.
    """
    c, h, w = a.shape
    ok = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    a_ok = a[:, ok]
    wp = w + 2 * r
    # b and a frame mask zero-padded by r: a neighbour beyond the frame adds 0 to both sums.
    b_pad = F.pad(b, (r, r, r, r)).reshape(c, -1)
    in_frame = F.pad(torch.ones(h, w), (r, r, r, r)).reshape(-1)
    base = (sy[ok] + r) * wp + (sx[ok] + r)
    out = np.full((2 * r + 1, 2 * r + 1), np.nan)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            idx = base + (dy * wp + dx)
            count = float(in_frame[idx].sum()) * c
            if count > 0:
                total = (a_ok * b_pad.index_select(1, idx)).sum(dtype=torch.float64)
                out[dy + r, dx + r] = float(total) / count
    return out
