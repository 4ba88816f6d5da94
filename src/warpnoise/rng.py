"""Explicit random state: every draw comes from a generator the caller controls."""

from __future__ import annotations

import torch

__all__ = ["make_generator"]


def make_generator(
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Generator:
    """Return ``generator`` if given, else a new generator on ``device`` seeded with ``seed``.

    Raises:
        ValueError: both or neither given, or a generator on another device.
    """
    if generator is not None:
        if seed is not None:
            raise ValueError("pass either seed or generator, not both")
        if torch.device(generator.device).type != torch.device(device).type:
            raise ValueError(
                f"generator is on {generator.device} but the noise is on {device}"
            )
        return generator
    if seed is None:
        raise ValueError("a seed or a torch.Generator is required (warpnoise never uses global "
                         "random state)")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
