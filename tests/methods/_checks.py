"""Statistical checks shared by the method tests (``docs/method.md``, "How it is tested").

Thresholds are sized for 4 x 192 x 192 frames: the standard error of the mean, of the standard
deviation and of a pooled lag-1 correlation is about 0.003, so a right method passes the 0.01
bounds every time and a wrong one misses them by far. A single channel pair has about 37k samples
(SE 0.005) and there are 6 pairs, hence 0.02 for the channel correlation.
"""

from __future__ import annotations

from torch import Tensor

from warpnoise.stats import frame_stats, shifted_correlation

MEAN_TOL = 0.01
STD_TOL = 0.01
LAG_TOL = 0.01
CHANNEL_TOL = 0.02
KS_P_MIN = 1e-3
MORAN_Z_MAX = 4.0


def exactness_failures(noise: Tensor, tol_scale: float = 1.0) -> list[str]:
    """What makes ``(C, H, W)`` noise fail to look i.i.d. N(0, 1); empty when it passes.
    ``tol_scale`` widens the mean, std and correlation bounds for smaller frames (2 for
    4 x 96 x 96: four times fewer samples, twice the standard errors)."""
    s = frame_stats(noise)
    fails = []
    if abs(s.mean) > MEAN_TOL * tol_scale:
        fails.append(f"mean {s.mean:.4f}")
    if abs(s.std - 1.0) > STD_TOL * tol_scale:
        fails.append(f"std {s.std:.4f}")
    if s.ks_p < KS_P_MIN:
        fails.append(f"KS p {s.ks_p:.2g}")
    if max(abs(s.lag1_x), abs(s.lag1_y)) > LAG_TOL * tol_scale:
        fails.append(f"lag-1 corr ({s.lag1_x:.4f}, {s.lag1_y:.4f})")
    if s.channel_corr > CHANNEL_TOL * tol_scale:
        fails.append(f"channel corr {s.channel_corr:.4f}")
    if abs(s.morans_z) > MORAN_Z_MAX:
        fails.append(f"Moran z {s.morans_z:.2f}")
    return fails


def ideal_overlap(t: int, d: tuple[float, float]) -> tuple[float, int, int]:
    """∫-noise correlation of frame t with frame 0 at the nearest integer shift under a
    translation ``d`` per frame: the overlap ``(1 - |e_x|)(1 - |e_y|)`` of two unit squares."""
    sx, sy = t * d[0], t * d[1]
    ix, iy = round(sx), round(sy)
    return (1 - abs(sx - ix)) * (1 - abs(sy - iy)), ix, iy


def interior_correlation(a: Tensor, b: Tensor, dx: int, dy: int, margin: int) -> float:
    """``corr(a(x), b(x - d))`` over ``a``'s pixels at least ``margin`` from the border (where
    content enters with fresh noise); needs ``margin >= |dx|, |dy|``."""
    m = margin
    assert m >= abs(dx) and m >= abs(dy), "margin must cover the shift"
    _, h, w = a.shape
    return shifted_correlation(a[:, m:h - m, m:w - m], b[:, m - dy:h - m - dy, m - dx:w - m - dx],
                               0, 0)


def coherence_errors(frames: Tensor, d: tuple[float, float], margin: int = 16) -> list[float]:
    """|measured - ideal| correlation with frame 0 for every frame of ``(T, C, H, W)``."""
    errs = []
    for t in range(1, frames.shape[0]):
        ideal, ix, iy = ideal_overlap(t, d)
        errs.append(abs(interior_correlation(frames[t], frames[0], ix, iy, margin) - ideal))
    return errs
