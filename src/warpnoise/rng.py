"""Explicit random state: every draw comes from a generator the caller controls."""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

__all__ = ["GOLDEN", "MIX1", "MIX2", "SEED_LIMIT", "check_device", "check_seed", "counter_normal",
           "derive_key", "derive_seed", "draw_root", "make_generator", "mix64", "normal_tensor"]

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


# Counter-based normal draws: the same function in numba (``warpnoise.kernels.hashing``), torch
# (here) and Triton (``warpnoise.kernels.triton_boxes``), so every backend draws the same values.

#: SplitMix64's increment (the golden ratio in 64 bits) and its finaliser's multipliers
#: (Steele, Lea & Flood 2014).
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
_MASK = 2**64 - 1
_INV_2_53 = 1.0 / 2.0**53


def mix64(x: int) -> int:
    """SplitMix64's output for state ``x`` (Python ints, modulo ``2^64``)."""
    z = (x + GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * MIX1) & _MASK
    z = ((z ^ (z >> 27)) * MIX2) & _MASK
    return z ^ (z >> 31)


def derive_key(key: int, *path: int) -> int:
    """A key in ``[0, 2^64)`` for the stream ``path`` (non-negative ints) below ``key``: each step
    hashes the parent key with the hashed index, so sibling and nested streams are unrelated."""
    for p in path:
        key = mix64((key ^ mix64(p)) & _MASK)
    return key


def draw_root(generator: torch.Generator) -> int:
    """The root key of a counter-drawn sequence: one ``torch.randint`` on ``generator`` (on its
    device; one host sync on CUDA), hashed to 64 bits."""
    r = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
    return mix64(int(r.item()))


def _signed(x: int) -> int:
    return x - 2**64 if x >= 2**63 else x


def _srl(z: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 ``z`` (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _splitmix(x: Tensor) -> Tensor:
    z = x + _signed(GOLDEN)
    z = (z ^ _srl(z, 30)) * _signed(MIX1)
    z = (z ^ _srl(z, 27)) * _signed(MIX2)
    return z ^ _srl(z, 31)


def counter_normal(key: int, counter: Tensor) -> Tensor:
    """``normal(key, counter)`` for every int64 entry of ``counter``, float64 on its device.

    Counters go in pairs ``m = counter >> 1``: SplitMix64 seeded with ``key`` read at positions
    ``2m`` and ``2m + 1`` gives two words whose top 53 bits are ``u1`` in (0, 1] and ``u2`` in
    [0, 1); Box-Muller (Box & Muller 1958) gives ``r = sqrt(-2 ln u1)``, ``theta = 2 pi u2`` and
    the draws ``r cos(theta)`` (even counter) and ``r sin(theta)`` (odd), independent N(0, 1).
    No rejection loop, so it vectorises; ``|draw| <= sqrt(-2 ln 2^-53) = 8.57``. int64
    arithmetic wraps around as uint64's, and logical shifts are arithmetic shifts masked, so the
    words are the uint64 algorithm's (:func:`warpnoise.kernels.hashing.normal`); the float64
    values agree with the numba and Triton forms to rounding (about 1e-15).
    """
    r, theta = _polar(key, _srl(counter, 1))
    return torch.where(counter & 1 == 1, r * theta.sin(), r * theta.cos())


def _polar(key: int, pair: Tensor) -> tuple[Tensor, Tensor]:
    base = pair * _signed((2 * GOLDEN) & _MASK) + _signed(key)
    h1 = _splitmix(base)
    h2 = _splitmix(base + _signed(GOLDEN))
    u1 = (_srl(h1, 11) + 1).double() * _INV_2_53
    u2 = _srl(h2, 11).double() * _INV_2_53
    return (-2.0 * u1.log()).sqrt(), 2.0 * math.pi * u2


def normal_tensor(key: int, shape: tuple[int, ...], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, chunk: int = 1 << 22) -> Tensor:
    """A tensor of ``shape`` whose flat entry ``i`` is ``normal(key, i)``, in chunks of ``chunk``
    pairs (both values of a pair from one radius and angle)."""
    n = math.prod(shape)
    out = torch.empty(n + n % 2, dtype=dtype, device=device)
    pairs = out.view(-1, 2)
    for s in range(0, pairs.shape[0], chunk):
        r, theta = _polar(key, torch.arange(s, min(s + chunk, pairs.shape[0]), device=device))
        pairs[s:s + chunk, 0] = r * theta.cos()
        pairs[s:s + chunk, 1] = r * theta.sin()
    return out[:n].view(shape)
