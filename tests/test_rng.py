"""Seeds, devices and generators are checked where the generator is made."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from warpnoise.rng import (
    check_device,
    check_seed,
    counter_normal,
    derive_key,
    draw_root,
    make_generator,
    normal_tensor,
)


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


def test_counter_normal_is_the_numba_function() -> None:
    """The torch form (int64 with wrap-around and masked shifts) is numba's uint64 algorithm:
    the same words, hence the same uniforms; the float64 results agree to libm rounding."""
    pytest.importorskip("numba")
    from warpnoise.kernels.hashing import normal

    key = derive_key(2**64 - 5, 1, 2)  # a key above 2^63: the signed arithmetic wraps
    counters = torch.cat([torch.arange(1000), torch.randint(0, 2**62, (1000,),
                                                            generator=torch.Generator().manual_seed(0))])
    got = counter_normal(key, counters).numpy()
    ref = np.array([normal(np.uint64(key), np.uint64(int(c))) for c in counters])
    assert np.abs(got - ref).max() < 1e-14
    tensor = normal_tensor(key, (3, 333), dtype=torch.float64)  # odd length: half a pair
    assert torch.equal(tensor.flatten(), counter_normal(key, torch.arange(999)))


def test_counter_normal_is_standard_normal_and_independent_across_counters() -> None:
    """10^6 draws: mean, variance, skewness and kurtosis of N(0, 1) (four standard errors),
    the cosine and sine of a pair and neighbouring pairs uncorrelated, and another key gives
    unrelated values."""
    n = 1 << 20
    z = normal_tensor(derive_key(7, 0), (n,), dtype=torch.float64)
    se = n ** -0.5
    assert abs(float(z.mean())) < 4 * se
    assert abs(float(z.var()) - 1) < 4 * 2**0.5 * se
    assert abs(float((z**3).mean())) < 4 * 6**0.5 * se
    assert abs(float((z**4).mean()) - 3) < 4 * 96**0.5 * se
    for lag in (1, 2, 3):
        c = float(torch.corrcoef(torch.stack([z[:-lag], z[lag:]]))[0, 1])
        assert abs(c) < 4 * se, lag
    other = normal_tensor(derive_key(7, 1), (n,), dtype=torch.float64)
    assert abs(float(torch.corrcoef(torch.stack([z, other]))[0, 1])) < 4 * se
    # Tails: P(|z| > 3) = 0.0027.
    assert abs(float((z.abs() > 3).double().mean()) - 0.0026998) < 4 * (0.0027 / n) ** 0.5


def test_derived_keys_are_deterministic_and_distinct() -> None:
    keys = {derive_key(root, kind, t) for root in (0, 1, 2**63) for kind in range(3)
            for t in range(100)}
    assert len(keys) == 900 and all(0 <= k < 2**64 for k in keys)
    assert derive_key(5, 1, 2) == derive_key(5, 1, 2) != derive_key(5, 2, 1)
    assert draw_root(torch.Generator().manual_seed(3)) == draw_root(
        torch.Generator().manual_seed(3))
