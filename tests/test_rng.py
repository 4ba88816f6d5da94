"""Seeds, devices and generators are checked where the generator is made."""

from __future__ import annotations

import pytest
import torch

from warpnoise.rng import check_device, check_seed, make_generator


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
