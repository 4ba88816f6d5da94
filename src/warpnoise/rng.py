"""Explicit random state: every draw comes from a generator the caller controls."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "make_generator"]


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


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for a second random stream of the same run (e.g. ``"degradation"``).

    SHA-256 of ``(seed, purpose)``: the same pair always gives the same seed, and the derived
    stream is unrelated to the stream of ``seed`` itself or of any small seed a user would pick.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2
