"""Seeds, devices and generators are checked where the generator is made."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from warpnoise.rng import (
    GOLDEN,
    ZIG_LAYERS,
    ZIG_R,
    ZIG_RATIO,
    _signed,
    _splitmix,
    _srl,
    check_device,
    check_seed,
    counter_normal,
    derive_key,
    draw_root,
    make_generator,
    normal_tensor,
)
from warpnoise.stats import ks_normal


@pytest.mark.parametrize(("seed", "message"), [
    (2**64, r"seed must be in \[0, 2\*\*64\), got 18446744073709551616"),
    (-1, r"seed must be in \[0, 2\*\*64\), got -1"),
    (True, "seed must be an int, got bool"),
    (1.0, "seed must be an int, got float"),
])
def test_bad_seeds_are_named(seed: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_seed(seed)
    with pytest.raises(ValueError, match=message):
        make_generator(seed)  # type: ignore[arg-type]


def test_seeds_span_the_whole_generator_range() -> None:
    for seed in (0, 2**63, 2**64 - 1):
        assert make_generator(seed).initial_seed() == seed


def test_cuda_without_cuda_is_named_before_torch_is_asked(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        make_generator(0, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        check_device("cuda:1")
    assert check_device("cpu") == torch.device("cpu")


# The counter-based normal every backend of ``persistent`` draws.


def _first_word_fails(key: int, counters: Tensor) -> tuple[Tensor, Tensor]:
    """Whether each counter's first ziggurat word fails the fast test, and its layer (0: the
    draw comes from the tail, else from a wedge or a later word)."""
    h = _splitmix(counters * _signed(GOLDEN) + _signed(key))
    i = h & (ZIG_LAYERS - 1)
    u = 2.0 * (_srl(h, 11).double() / 2.0**53) - 1.0
    return u.abs() >= torch.tensor(ZIG_RATIO, dtype=torch.float64)[i], i


def test_counter_normal_is_the_numba_function() -> None:
    """The torch form (int64 with wrap-around and masked shifts, the rejection loops over
    subsets) is numba's uint64 algorithm: the same words, layers and uniforms; the values are
    the same bits on the fast path and agree to libm rounding on the wedges and the tail."""
    pytest.importorskip("numba")
    from warpnoise.kernels.hashing import normal

    key = derive_key(2**64 - 5, 1, 2)  # a key above 2^63: the signed arithmetic wraps
    scan = torch.arange(1 << 18)
    slow, layer = _first_word_fails(key, scan)
    wedge, tail = scan[slow & (layer != 0)], scan[slow & (layer == 0)]
    assert len(wedge) > 1000 and len(tail) > 50
    counters = torch.cat([torch.arange(1000), torch.randint(0, 2**62, (1000,),
                                                            generator=torch.Generator().manual_seed(0)),
                          wedge[:2000], tail])
    got = counter_normal(key, counters).numpy()
    ref = np.array([normal(np.uint64(key), np.uint64(int(c))) for c in counters])
    assert np.abs(got - ref).max() < 1e-14
    fast = ~_first_word_fails(key, counters)[0].numpy()
    assert fast.sum() > 1900 and np.array_equal(got[fast], ref[fast])  # a look-up: same bits
    assert np.abs(got[-len(tail):]).min() > ZIG_R  # the tail's draws lie beyond R
    tensor = normal_tensor(key, (3, 333), dtype=torch.float64)
    assert torch.equal(tensor.flatten(), counter_normal(key, torch.arange(999)))
    grid = counter_normal(key, torch.arange(999).view(27, 37))  # any shape, entry by entry
    assert torch.equal(grid.flatten(), tensor.flatten())


def test_counter_normal_is_standard_normal_and_independent_across_counters() -> None:
    """2^22 draws: Kolmogorov-Smirnov against N(0, 1), a chi-square over 200 equiprobable bins
    (the wedges' shapes), mean, variance, skewness and kurtosis (four standard errors), the
    fractions beyond 3, beyond the ziggurat's edge R = 3.44 (the tail's draws) and beyond 4,
    neighbouring counters uncorrelated (also in their squares and signs), and another key gives
    unrelated values."""
    n = 1 << 22
    z = normal_tensor(derive_key(7, 0), (n,), dtype=torch.float64)
    se = n ** -0.5
    d, p = ks_normal(z)
    assert p > 1e-3, (d, p)
    bins = 200
    edges = torch.special.ndtri(torch.arange(1, bins, dtype=torch.float64) / bins)
    counts = torch.bincount(torch.bucketize(z, edges), minlength=bins).double()
    chi2 = float(((counts - n / bins) ** 2 / (n / bins)).sum())
    assert chi2 < (bins - 1) + 5 * (2 * (bins - 1)) ** 0.5, chi2  # mean 199, sd 20
    assert abs(float(z.mean())) < 4 * se
    assert abs(float(z.var()) - 1) < 4 * 2**0.5 * se
    assert abs(float((z**3).mean())) < 4 * 6**0.5 * se
    assert abs(float((z**4).mean()) - 3) < 4 * 96**0.5 * se
    for lag in (1, 2, 3):
        for f in (lambda v: v, lambda v: v * v, torch.sign):
            c = float(torch.corrcoef(torch.stack([f(z[:-lag]), f(z[lag:])]))[0, 1])
            assert abs(c) < 4 * se, lag
    other = normal_tensor(derive_key(7, 1), (n,), dtype=torch.float64)
    assert abs(float(torch.corrcoef(torch.stack([z, other]))[0, 1])) < 4 * se
    for t in (3.0, ZIG_R, 4.0):  # P(|z| > t): 0.0027, 5.8e-4, 6.3e-5
        prob = math.erfc(t / 2**0.5)
        assert abs(float((z.abs() > t).double().mean()) - prob) < 4 * (prob / n) ** 0.5, t
    beyond = z[z.abs() > ZIG_R].abs()  # the tail's law: mean phi(R) / P(z > R)
    m = math.exp(-0.5 * ZIG_R**2) / (2 * math.pi) ** 0.5 / (0.5 * math.erfc(ZIG_R / 2**0.5))
    sd = (1 + ZIG_R * m - m * m) ** 0.5
    assert abs(float(beyond.mean()) - m) < 4 * sd / beyond.numel() ** 0.5


def test_derived_keys_are_deterministic_and_distinct() -> None:
    keys = {derive_key(root, kind, t) for root in (0, 1, 2**63) for kind in range(3)
            for t in range(100)}
    assert len(keys) == 900 and all(0 <= k < 2**64 for k in keys)
    assert derive_key(5, 1, 2) == derive_key(5, 1, 2) != derive_key(5, 2, 1)
    assert draw_root(torch.Generator().manual_seed(3)) == draw_root(
        torch.Generator().manual_seed(3))
