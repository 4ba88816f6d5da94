"""The ``bridge`` method: Deng et al. (ICLR 2025), frame to frame as published."""

from __future__ import annotations

import math

import pytest
import torch

from warpnoise import warp_noise
from warpnoise.methods import get_method
from warpnoise.methods.base import WarpState
from warpnoise.methods.bridge import (
    _fixed_point_index_add,
    bridge_gather,
    cell_overlaps,
    particle_overlaps,
    polygon_area,
)
from warpnoise.stats import frame_stats, shifted_correlation

from . import _flows
from ._checks import exactness_failures, ideal_overlap

H = W = 192
C = 4


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# --- exact overlap areas -------------------------------------------------------------------------


def _clip(poly: list[tuple[float, float]], inside, cross) -> list[tuple[float, float]]:
    """One Sutherland-Hodgman pass against a half-plane."""
    out: list[tuple[float, float]] = []
    for i, cur in enumerate(poly):
        prev = poly[i - 1]
        if inside(cur):
            if not inside(prev):
                out.append(cross(prev, cur))
            out.append(cur)
        elif inside(prev):
            out.append(cross(prev, cur))
    return out


def _reference_area(poly: list[tuple[float, float]], x0: float, y0: float) -> float:
    """Area of a polygon inside the axis-aligned unit cell at ``(x0, y0)``, by clipping: an
    algorithm independent of the Green's-theorem one under test."""

    def at_x(c: float):
        def cross(p, q):
            t = (c - p[0]) / (q[0] - p[0])
            return (c, p[1] + t * (q[1] - p[1]))
        return cross

    def at_y(c: float):
        def cross(p, q):
            t = (c - p[1]) / (q[1] - p[1])
            return (p[0] + t * (q[0] - p[0]), c)
        return cross

    for inside, cross in (
        (lambda p: p[0] >= x0, at_x(x0)), (lambda p: p[0] <= x0 + 1, at_x(x0 + 1)),
        (lambda p: p[1] >= y0, at_y(y0)), (lambda p: p[1] <= y0 + 1, at_y(y0 + 1)),
    ):
        poly = _clip(poly, inside, cross)
        if not poly:
            return 0.0
    return 0.5 * sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1],
                                                               strict=True))


def _star_polygons(n: int, seed: int, height: int, width: int) -> torch.Tensor:
    """Random star-shaped 8-gons (positively oriented, y down) of radius 0.2 to 2.5 px, some
    crossing the frame edge."""
    g = _gen(seed)
    centre = torch.rand(n, 1, 2, generator=g, dtype=torch.float64)
    centre = centre * torch.tensor([width + 2.0, height + 2.0], dtype=torch.float64) - 1.5
    # Increasing angles with gaps below pi keep the polygon simple (star-shaped about its centre).
    jitter = 0.8 * torch.rand(n, 8, generator=g, dtype=torch.float64)
    ang = (torch.arange(8, dtype=torch.float64) + jitter) * (2 * math.pi / 8)
    rad = 0.2 + 2.3 * torch.rand(n, 8, generator=g, dtype=torch.float64)
    return centre + torch.stack([rad * torch.cos(ang), rad * torch.sin(ang)], dim=-1)


def test_cell_overlaps_match_a_clipping_reference() -> None:
    h, w = 7, 9
    polys = _star_polygons(40, seed=3, height=h, width=w)
    poly, cell, area, too_big = cell_overlaps(polys, h, w)
    assert not too_big.any()
    got = {(int(p), int(c)): float(a) for p, c, a in zip(poly, cell, area, strict=True)}
    n_checked = 0
    for i in range(polys.shape[0]):
        verts = [(float(x), float(y)) for x, y in polys[i]]
        for r in range(h):
            for c in range(w):
                want = _reference_area(verts, c - 0.5, r - 0.5)
                assert got.get((i, r * w + c), 0.0) == pytest.approx(want, abs=1e-12)
                n_checked += want > 0
    assert n_checked > 100


def test_cell_overlaps_of_polygons_inside_the_frame_sum_to_their_area() -> None:
    polys = _star_polygons(200, seed=4, height=40, width=40)
    polys = polys[(polys.amin(dim=(1, 2)) > 0) & (polys.amax(dim=(1, 2)) < 39)]
    poly, _, area, _ = cell_overlaps(polys, 40, 40)
    total = torch.zeros(polys.shape[0], dtype=torch.float64).index_add_(0, poly, area)
    torch.testing.assert_close(total, polygon_area(polys), atol=1e-12, rtol=0)


def test_cell_overlaps_skip_polygons_wider_than_max_span() -> None:
    polys = _star_polygons(50, seed=5, height=30, width=30)
    _, _, _, too_big = cell_overlaps(polys, 30, 30, max_span=3)
    span = torch.floor(polys.amax(dim=1) + 0.5) - torch.floor(polys.amin(dim=1) + 0.5) + 1
    assert torch.equal(too_big, (span > 3).any(dim=1))
    assert too_big.any() and not too_big.all()


def test_particle_weights_are_the_overlaps_of_a_unit_square() -> None:
    g = _gen(6)
    pts = torch.rand(2, 300, generator=g, dtype=torch.float64) * 12.0 - 1.0
    p1, c1, a1 = particle_overlaps(pts, 10, 10)
    corners = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]],
                           dtype=torch.float64)
    p2, c2, a2, _ = cell_overlaps(pts.T[:, None, :] + corners, 10, 10)
    dense1 = torch.zeros(300, 100, dtype=torch.float64).index_put_((p1, c1), a1)
    dense2 = torch.zeros(300, 100, dtype=torch.float64).index_put_((p2, c2), a2)
    torch.testing.assert_close(dense1, dense2, atol=1e-12, rtol=0)


# --- the Brownian-bridge split -------------------------------------------------------------------


def test_bridge_parts_of_a_source_pixel_sum_to_its_value() -> None:
    g = _gen(7)
    n_src, n_req = 50, 400
    noise = torch.randn(C, n_src, generator=g, dtype=torch.float64)
    source = torch.randint(0, n_src, (n_req,), generator=g)
    area = torch.rand(n_req, generator=g, dtype=torch.float64) + 0.01
    # One target per request: the gathered values are the parts themselves.
    parts, weight = bridge_gather(noise, torch.arange(n_req), source, area, n_req, g)
    per_source = torch.zeros(C, n_src, dtype=torch.float64).index_add_(1, source, parts)
    requested = torch.bincount(source, minlength=n_src) > 0
    torch.testing.assert_close(per_source[:, requested], noise[:, requested], atol=1e-9, rtol=0)
    total = torch.zeros(n_src, dtype=torch.float64).index_add_(0, source, area)
    torch.testing.assert_close(weight, area / total[source], atol=1e-9, rtol=0)


def test_bridge_parts_have_the_variance_of_their_area() -> None:
    # A source pixel split into areas 0.1, 0.3, 0.6: Var(part_i) = a_i and parts uncorrelated.
    g = _gen(8)
    n = 20000
    noise = torch.randn(1, n, generator=g, dtype=torch.float64)
    source = torch.arange(n).repeat_interleave(3)
    area = torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64).repeat(n)
    parts, _ = bridge_gather(noise, torch.arange(3 * n), source, area, 3 * n, g)
    p = parts.view(n, 3)
    torch.testing.assert_close(p.var(dim=0), torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64),
                               atol=0.02, rtol=0)
    corr = torch.corrcoef(p.T)
    assert (corr - torch.eye(3, dtype=torch.float64)).abs().max() < 0.04


def test_fixed_point_sums_match_float_sums_in_any_order() -> None:
    # The CUDA path: order-independent bits, float64 sums to 1e-11.
    g = _gen(10)
    values = torch.randn(3, 5000, generator=g, dtype=torch.float64)
    index = torch.randint(0, 40, (5000,), generator=g)
    perm = torch.randperm(5000, generator=g)
    a = _fixed_point_index_add(values, index, 40)
    b = _fixed_point_index_add(values[:, perm], index[perm], 40)
    assert torch.equal(a, b)
    want = torch.zeros(3, 40, dtype=torch.float64).index_add_(1, index, values)
    torch.testing.assert_close(a, want, atol=1e-10, rtol=0)


def test_keep_remainder_gives_part_of_an_undercovered_pixel_to_nobody() -> None:
    g = _gen(9)
    noise = torch.randn(C, 1, generator=g, dtype=torch.float64)
    one = torch.zeros(1, dtype=torch.long)
    area = torch.tensor([0.25], dtype=torch.float64)
    whole, w_whole = bridge_gather(noise, one, one, area, 1, g)
    part, w_part = bridge_gather(noise, one, one, area, 1, g, keep_remainder=True)
    torch.testing.assert_close(whole, noise, atol=1e-9, rtol=0)  # normalised: all of it
    assert float(w_whole) == pytest.approx(1.0) and float(w_part) == pytest.approx(0.25)
    assert not torch.allclose(part, noise)


# --- whole frames --------------------------------------------------------------------------------

MOTIONS = {
    "translation": lambda: _flows.translation(H, W, 0.37, 0.21),
    "rotation": lambda: _flows.rotation(H, W, 4.0),
    "zoom_in": lambda: _flows.zoom(H, W, 1.08),
    "zoom_out": lambda: _flows.zoom(H, W, 0.93),
    "swirl": lambda: _flows.swirl(H, W, 25.0, 45.0),
}


CASES = [(m, "polygon") for m in sorted(MOTIONS)] + [(m, "particle") for m in sorted(MOTIONS)]
# The remainder only differs where source pixels are partly requested: at the frame's edge.
CASES += [("translation", "keep_remainder"), ("zoom_out", "keep_remainder")]
OPTIONS = {"polygon": {}, "particle": {"footprint": "particle"},
           "keep_remainder": {"keep_remainder": True}}


@pytest.mark.parametrize(("motion", "variant"), CASES)
@pytest.mark.slow
def test_every_frame_is_iid_standard_normal(motion: str, variant: str) -> None:
    # Stronger motions than the shared suite (test_exact_methods), and both footprints.
    flow = MOTIONS[motion]()
    noise = warp_noise(flow[None], C, "bridge", seed=11, **OPTIONS[variant])[-1]
    assert exactness_failures(noise) == []


def test_identity_flow_keeps_the_noise() -> None:
    for footprint in ("polygon", "particle"):
        out = warp_noise(torch.zeros(1, 2, 32, 48), C, "bridge", seed=1, footprint=footprint)
        torch.testing.assert_close(out[1], out[0], atol=1e-6, rtol=0)


def test_integer_translation_moves_the_noise_and_fills_the_entering_edge() -> None:
    out = warp_noise(_flows.translation(40, 50, 3.0, -2.0)[None], C, "bridge", seed=2)
    torch.testing.assert_close(out[1][:, :-2, 3:], out[0][:, 2:, :-3], atol=1e-6, rtol=0)
    entering = torch.ones(40, 50, dtype=torch.bool)
    entering[:-2, 3:] = False
    fresh = out[1][:, entering]
    assert fresh.isfinite().all() and fresh.std() > 0.5
    assert (fresh[:, :, None] - out[0].reshape(C, 1, -1)).abs().amin() > 0


@pytest.mark.slow
def test_same_seed_gives_the_same_bits_and_another_seed_does_not() -> None:
    flow = _flows.swirl(64, 64, 30.0, 20.0).expand(3, 2, 64, 64)
    a = warp_noise(flow, C, "bridge", seed=5)
    b = warp_noise(flow, C, "bridge", seed=5)
    c = warp_noise(flow, C, "bridge", seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a[1:], c[1:])


def test_forward_flow_is_ignored() -> None:
    b, f, _ = _flows.layered(48, 48, 1, size=16, dx=2.0, top=8, left=8)
    with_f = warp_noise(b[None], C, "bridge", seed=3, forward_flows=f[None])
    without = warp_noise(b[None], C, "bridge", seed=3)
    assert torch.equal(with_f, without)


def test_output_follows_input_dtype() -> None:
    method = get_method("bridge")
    state = WarpState(torch.randn(C, 16, 16, generator=_gen(1), dtype=torch.float64))
    out = method.step(state, _flows.rotation(16, 16, 10.0).double(), None, _gen(2))
    assert out.noise.dtype == torch.float64 and out.noise.shape == (C, 16, 16)


@pytest.mark.parametrize("bad", [{"footprint": "quad"}, {"keep_remainder": 1},
                                 {"max_span": 0}])
def test_bad_options_raise_value_error(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        get_method("bridge", **bad)


# --- documented limitations of the published method ----------------------------------------------


def _binomial_peak(t: int, p: float) -> float:
    k = round(t * p)
    return math.comb(t, k) * p**k * (1 - p) ** (t - k)


@pytest.mark.slow
def test_slow_translation_decays_frame_to_frame_as_published() -> None:
    """Deng et al. re-sample the sub-pixel detail every frame, so under a (0.37, 0.21) px/frame
    translation the covariance with frame 0 is the bilinear kernel convolved t times (a binomial
    per axis): about 0.14 after 5 frames and 0.046 after 20, where warping from an anchor keeps
    the exact overlap (1 - 0.4)(1 - 0.2) = 0.48 at t = 20. This asserts that published behaviour;
    it is not a bug of this implementation."""
    h = w = 96
    d = (0.37, 0.21)
    # Channels are nearly free next to the geometry: 16 x 96^2 samples, standard error 0.0027.
    out = warp_noise(_flows.translation(h, w, *d).expand(20, 2, h, w), 16, "bridge", seed=4)
    for t in (5, 20):
        dx, dy = round(t * d[0]), round(t * d[1])
        corr = shifted_correlation(out[t], out[0], dx, dy)
        assert corr == pytest.approx(_binomial_peak(t, d[0]) * _binomial_peak(t, d[1]), abs=0.02)
    ideal_20, ix, iy = ideal_overlap(20, d)
    assert shifted_correlation(out[20], out[0], ix, iy) < 0.2 < ideal_20


@pytest.mark.slow
def test_without_occlusion_mask_a_moving_layer_keeps_only_part_of_its_noise() -> None:
    """No occlusion mask: the pixels a moving square uncovers point (flow 0) at the square's old
    position, so they and the square request the same source area twice; the normalisation keeps
    both N(0, 1) and independent, but the square keeps only half of that area's noise
    (correlation sqrt(1/2) with its source, where an exact carry gives 1)."""
    h = w = 160
    size, dx = 96, 48
    b, _, fg = _flows.layered(h, w, 1, size=size, dx=float(dx), top=32, left=8)
    out = warp_noise(b[None], C, "bridge", seed=8)
    s = frame_stats(out[1])
    assert abs(s.std - 1.0) < 0.02
    # The square now covers columns [56, 152) (rows [32, 128)); its left part [56, 104) sat over
    # source columns [8, 56), which the uncovered background also requests. Pixels within 2 px
    # of the square's edge are left out: their pre-images straddle the edge (folded or too wide).
    assert fg[32:128, 56:152].all()
    shared = torch.zeros(h, w, dtype=torch.bool)
    shared[34:126, 58:102] = True
    carried = torch.zeros(h, w, dtype=torch.bool)
    carried[34:126, 106:150] = True
    src = out[0].roll(dx, dims=2)
    corr_shared = float(torch.corrcoef(torch.stack([out[1][:, shared].flatten(),
                                                    src[:, shared].flatten()]))[0, 1])
    corr_carried = float(torch.corrcoef(torch.stack([out[1][:, carried].flatten(),
                                                     src[:, carried].flatten()]))[0, 1])
    assert corr_carried > 0.999
    assert corr_shared == pytest.approx(math.sqrt(0.5), abs=0.03)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_deterministically() -> None:
    flow = _flows.swirl(96, 96, 30.0, 30.0).expand(2, 2, 96, 96).cuda()
    a = warp_noise(flow, C, "bridge", seed=5, device="cuda")
    b = warp_noise(flow, C, "bridge", seed=5, device="cuda")
    assert a.device.type == "cuda"
    assert torch.equal(a, b)
    assert abs(frame_stats(a[-1]).std - 1.0) < 0.02
