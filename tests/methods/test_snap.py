"""``snap``: whole values carried whole, every frame exact, slow motion followed.

The statistical suite of every exact method (i.i.d. N(0, 1) under every motion, layered scene,
same seed same bits) runs on ``snap`` in test_exact_methods.py; here are the properties of its own
transport, each checked against ``nearest`` where that baseline fails it (so the test can fail).
"""

from __future__ import annotations

import pytest
import torch

import warpnoise
from warpnoise.backends import have_numba

from . import _flows as F
from ._checks import exactness_failures, interior_correlation

numba_only = pytest.mark.skipif(not have_numba(), reason="needs numba")


def _frames(method: str, flow: torch.Tensor, n: int, size: int, seed: int = 0,
            forward: bool = True, **options) -> list[torch.Tensor]:
    w = warpnoise.NoiseWarper(4, size, size, method=method, seed=seed, **options)
    return [w.noise] + [w.step(flow, -flow if forward else None) for _ in range(n)]


def _distinct(noise: torch.Tensor) -> int:
    """How many distinct values (4-channel vectors: no chance collision) a frame has."""
    return torch.unique(noise.reshape(noise.shape[0], -1).T, dim=0).shape[0]


def _carried(now: torch.Tensor, before: torch.Tensor) -> float:
    """The share of ``now``'s pixels whose value is one of ``before``'s."""
    c = now.shape[0]
    seen = torch.cat([before.reshape(c, -1).T, now.reshape(c, -1).T])
    _, inverse, counts = torch.unique(seen, dim=0, return_inverse=True, return_counts=True)
    n = before[0].numel()
    return float((counts[inverse[n:]] > 1).float().mean())


@pytest.mark.parametrize("method,moves", [("snap", True), ("nearest", False)])
def test_slow_translation_moves_the_noise_after_30_frames(method: str, moves: bool) -> None:
    """0.37 px/frame: after 30 frames the noise has moved by round(30 * d) with the content
    (correlation >= 0.95 with frame 0 along the accumulated motion, ~0.003 standard error), and
    every frame on the way is at round(t * d). Frame-to-frame nearest warping never moves (it
    rounds 0.37 to 0 every frame)."""
    d, size = (0.37, 0.21), 96
    frames = _frames(method, F.translation(size, size, *d), 30, size, seed=3, forward=False)
    corrs = [interior_correlation(frames[t], frames[0], round(t * d[0]), round(t * d[1]), 16)
             for t in range(1, 31)]
    if moves:
        assert min(corrs) >= 0.95, [round(c, 3) for c in corrs]
    else:
        assert corrs[-1] < 0.5


@pytest.mark.parametrize("factor", [1.03, 1 / 1.03])
def test_zoom_never_duplicates_a_value(factor: float) -> None:
    """Zoom in and out: every frame holds H x W distinct values and stays exact, while most
    values are carried from the previous frame; nearest warping duplicates under zoom-in."""
    size = 128
    flow = F.zoom(size, size, factor)
    frames = _frames("snap", flow, 8, size, seed=1)
    for t, noise in enumerate(frames):
        assert _distinct(noise) == size * size, f"frame {t}"
        assert exactness_failures(noise, tol_scale=1.5) == [], f"frame {t}"
    # Ideal: 1 / 1.03^2 = 94% (the rest is new content); measured 86-94%.
    assert min(_carried(frames[t], frames[t - 1]) for t in range(1, 9)) > 0.8
    if factor > 1:
        nearest = _frames("nearest", flow, 4, size, seed=1)
        assert _distinct(nearest[-1]) < 0.9 * size * size


def test_rotation_carries_almost_every_value() -> None:
    """Under a 2 degree/frame rotation nearly every pixel takes a value of the previous frame
    (the rest: pixels entering at the corners, and the few whose nearest value went to a nearer
    pixel)."""
    size = 128
    frames = _frames("snap", F.rotation(size, size, 2.0), 4, size, seed=2)
    shares = [_carried(frames[t], frames[t - 1]) for t in range(1, 5)]
    assert min(shares) > 0.95, shares


def test_uncovered_pixels_are_independent_of_the_layer() -> None:
    """A square moving 3 px/frame over a still background (forward flows for occlusion): the
    background it uncovers gets noise independent of every layer pixel a naive warp would copy
    (|corr| <= 0.02), and the layer keeps its noise exactly."""
    h = w = 192
    size, dx, top, left = 96, 3, 40, 20
    warper = warpnoise.NoiseWarper(4, h, w, method="snap", seed=2)
    prev = warper.noise
    rows = slice(top + 2, top + size - 2)
    uncovered, f2f, first = [], [], []
    for t in range(1, 9):
        b, f, _ = F.layered(h, w, t, size=size, dx=float(dx), top=top, left=left)
        noise = warper.step(b, f)
        x0 = left + t * dx
        uncovered.append(noise[:, rows, x0 - dx:x0].flatten())
        f2f.append(prev[:, rows, x0 - dx:x0].flatten())  # where the layer was in frame t-1
        first.append(warper.noise[:, rows, x0:x0 + dx].flatten())  # the layer's leading edge
        inner = noise[:, rows, x0 + 2:x0 + size - 2]
        assert torch.equal(inner, prev[:, rows, x0 + 2 - dx:x0 + size - 2 - dx])
        prev = noise
    u = torch.cat(uncovered)
    for other in (f2f, first):
        c = float(torch.corrcoef(torch.stack([u, torch.cat(other)]))[0, 1])
        assert abs(c) <= 0.02, c


@numba_only
@pytest.mark.parametrize("motion", ["rotation", "zoom", "swirl"])
def test_numba_and_torch_backends_give_the_same_bits(motion: str) -> None:
    size = 64
    flow = {"rotation": F.rotation(size, size, 3.0), "zoom": F.zoom(size, size, 1.05),
            "swirl": F.swirl(size, size, 20.0, 16.0)}[motion]
    a = torch.stack(_frames("snap", flow, 5, size, seed=4, backend="torch"))
    b = torch.stack(_frames("snap", flow, 5, size, seed=4, backend="numba"))
    assert torch.equal(a, b)


def test_bad_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        warpnoise.NoiseWarper(4, 8, 8, method="snap", backend="cuda")


def test_slack_lets_the_noise_lag_at_most_that_far() -> None:
    """With ``slack=1``, under 0.37 px/frame the noise stays within about a pixel of the content
    (the integer shift that best matches frame 0 is within 1 px of 0.37 t) and keeps moving, and
    every frame stays exact."""
    d, size = (0.37, 0.0), 96
    frames = _frames("snap", F.translation(size, size, *d), 30, size, seed=5, forward=False,
                     slack=1.0)
    for t in (10, 20, 30):
        corr = {k: interior_correlation(frames[t], frames[0], k, 0, 16) for k in range(14)}
        best = max(corr, key=corr.__getitem__)
        assert abs(best - d[0] * t) <= 1.0 and corr[best] > 0.9, (t, best, corr[best])
        assert exactness_failures(frames[t], tol_scale=2.0) == []
    with pytest.raises(ValueError, match="slack"):
        warpnoise.NoiseWarper(4, 8, 8, method="snap", slack=0.3)


@numba_only
def test_a_failing_kernel_falls_back_to_the_same_bits_on_auto(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import warpnoise.kernels.snap as kernel
    from warpnoise import backends
    from warpnoise.backends import BackendError, BackendFallbackWarning

    b = torch.zeros(3, 2, 32, 32)
    b[:, 0] = -0.6
    want = warpnoise.warp_noise(b, 2, method="snap", seed=1, forward_flows=-b, backend="torch")

    def broken(*args: object) -> None:
        raise RuntimeError("no kernel today")

    monkeypatch.setattr(kernel, "snap_sources_numba", broken)
    backends.forget_failures()
    try:
        with pytest.warns(BackendFallbackWarning, match="no kernel today"):
            got = warpnoise.warp_noise(b, 2, method="snap", seed=1, forward_flows=-b)
        assert torch.equal(got, want)
        with pytest.raises(BackendError, match="numba kernels failed"):
            warpnoise.warp_noise(b, 2, method="snap", seed=1, forward_flows=-b, backend="numba")
    finally:
        backends.forget_failures()
