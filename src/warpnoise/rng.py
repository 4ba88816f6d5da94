"""Explicit random state: every draw comes from a generator the caller controls."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["SEED_LIMIT", "check_device", "check_seed", "derive_seed", "make_generator"]

#: Seeds are integers in ``[0, SEED_LIMIT)``: what ``torch.Generator.manual_seed`` takes without
#: aliasing (torch also takes negatives down to ``-2**63`` and maps them onto the same range).
SEED_LIMIT = 2**64


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` if it is an int in ``[0, 2**64)``.

    Raises:
        ValueError: not an int (bools are refused), negative, or too large.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"{name} must be an int, got {type(seed).__name__}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**64), got {seed}")
    return seed


def check_device(device: torch.device | str) -> torch.device:
    """Return ``device`` as a ``torch.device`` if this machine has it.

    Raises:
        ValueError: an unknown device string, or CUDA (MPS) asked for where it is not available.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r} (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {dev} was asked for but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps was asked for but MPS is not available")
    return dev


def make_generator(
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Generator:
    """Return ``generator`` if given, else a new generator on ``device`` seeded with ``seed``.

    Raises:
        ValueError: both or neither given, a generator on another device, a seed outside
            ``[0, 2**64)``, or a device this machine does not have (e.g. CUDA without CUDA).
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
    check_seed(seed)
    g = torch.Generator(device=check_device(device))
    g.manual_seed(seed)
    return g


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for a second random stream of the same run (e.g. ``"degradation"``).

    SHA-256 of ``(seed, purpose)``: the same pair always gives the same seed, and the derived
    stream is unrelated to the stream of ``seed`` itself or of any small seed a user would pick.
    """
    check_seed(seed)
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2
