"""Explicit random state: every draw comes from a generator the caller controls."""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

__all__ = ["GOLDEN", "MIX1", "MIX2", "SEED_LIMIT", "check_device", "check_seed", "counter_normal",
           "derive_key", "derive_seed", "draw_root", "make_generator", "mix64", "normal_tensor",
           "ziggurat_table"]

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
    return (z >> s).bitwise_and_((1 << (64 - s)) - 1)


def _splitmix(x: Tensor) -> Tensor:
    # In place on the new tensor ``z``: half the time of a temporary per operation.
    z = x + _signed(GOLDEN)
    z.bitwise_xor_(_srl(z, 30)).mul_(_signed(MIX1))
    z.bitwise_xor_(_srl(z, 27)).mul_(_signed(MIX2))
    return z.bitwise_xor_(_srl(z, 31))


#: The ziggurat's layers, edge, and common area (Marsaglia & Tsang 2000, the 128-layer table of
#: Doornik 2005).
ZIG_LAYERS = 128
ZIG_R = 3.442619855899
ZIG_V = 9.91256303526217e-3


def _ziggurat() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ziggurat's tables (Doornik 2005, ``zigNorInit``): ``x`` (129 edges, ``x[0] = V / f(R)``
    the bottom layer's equivalent width, ``x[1] = R`` down to ``x[128] = 0``) and ``ratio``
    (128: ``x[i + 1] / x[i]``), with ``f(x) = exp(-x^2 / 2)``. Computed once, here, and handed
    to every backend, so all of them hold the same float64 bits."""
    f = math.exp(-0.5 * ZIG_R * ZIG_R)
    x = [ZIG_V / f, ZIG_R] + [0.0] * (ZIG_LAYERS - 1)
    for i in range(2, ZIG_LAYERS):
        x[i] = math.sqrt(-2.0 * math.log(ZIG_V / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    return tuple(x), tuple(x[i + 1] / x[i] for i in range(ZIG_LAYERS))


#: ``ZIG_X[i]``, ``i <= 128``: the layers' edges; ``ZIG_RATIO[i] = ZIG_X[i + 1] / ZIG_X[i]``.
ZIG_X, ZIG_RATIO = _ziggurat()
_ZIG_TABLES: dict[torch.device, Tensor] = {}


def ziggurat_table(device: torch.device | str = "cpu") -> Tensor:
    """``ZIG_X`` then ``ZIG_RATIO`` as one float64 tensor ``(257,)`` on ``device`` (made once per
    device): what the torch draws and the Triton kernels read."""
    dev = torch.device(device)
    if dev not in _ZIG_TABLES:
        _ZIG_TABLES[dev] = torch.tensor(ZIG_X + ZIG_RATIO, dtype=torch.float64, device=dev)
    return _ZIG_TABLES[dev]


def _uniform(h: Tensor) -> Tensor:
    """(0, 1] from the top 53 bits of the words ``h``."""
    return _srl(h, 11).add_(1).double().mul_(_INV_2_53)


def _signed_unit(h: Tensor) -> Tensor:
    """[-1, 1) from the top 53 bits of the words ``h``: ``2 (h >> 11) / 2^53 - 1``, the scalings
    by powers of two exact, so the same bits as the scalar forms."""
    return _srl(h, 11).double().mul_(2.0 * _INV_2_53).sub_(1.0)


def counter_normal(key: int, counter: Tensor) -> Tensor:
    """``normal(key, counter)`` for every int64 entry of ``counter``, float64 on its device.

    Each counter's first word is SplitMix64 seeded with ``key`` read at position ``counter``,
    ``h = splitmix64(key + counter * golden)``; further words, where needed, continue the chain
    ``h = splitmix64(h)``. The words feed the ziggurat method (Marsaglia & Tsang 2000, 128 layers
    as in Doornik 2005): layer ``i = h & 127``, ``u = 2 (h >> 11) / 2^53 - 1`` in [-1, 1); if
    ``|u| < ratio[i]`` the draw is ``u x[i]`` (about 98.8% of draws: a table look-up and one
    float64 product, so the same bits in every backend). Otherwise the next word decides: layer
    0 draws from the tail beyond ``R`` (Marsaglia 1964: ``a = -ln(U) / R``, ``b = -ln(U')`` until
    ``2b > a^2``, draw ``+-(R + a)``), another layer accepts ``x = u x[i]`` if
    ``f(x[i+1]) + U (f(x[i]) - f(x[i+1])) < f(x)`` and otherwise starts over with the next word.
    Exact N(0, 1): the loops run until they accept, with no truncated tail. Vectorised: one pass
    for every counter, then loops over the rejected ones only. int64 arithmetic wraps around as
    uint64's and logical shifts are arithmetic shifts masked, so the words are the uint64
    algorithm's (:func:`warpnoise.kernels.hashing.normal`); the values agree with the numba and
    Triton forms bit for bit on the fast path and to float64 rounding of ``exp`` and ``log``
    (about 1e-15) elsewhere.
    """
    table = ziggurat_table(counter.device)
    zx, zr = table[:ZIG_LAYERS + 1], table[ZIG_LAYERS + 1:]
    h = _splitmix(counter * _signed(GOLDEN) + _signed(key))
    i = h & (ZIG_LAYERS - 1)
    u = _signed_unit(h)
    out = u * zx[i]
    todo = (u.abs() >= zr[i]).nonzero(as_tuple=True)
    h, i, u = h[todo], i[todo], u[todo]
    while h.numel():
        h = _splitmix(h)
        tail = i == 0
        if bool(tail.any()):
            out[tuple(t[tail] for t in todo)] = _tail(h[tail], u[tail] < 0.0)
        keep = ~tail
        todo, h, i, u = tuple(t[keep] for t in todo), h[keep], i[keep], u[keep]
        x = u * zx[i]
        f0 = (-0.5 * (zx[i] * zx[i] - x * x)).exp()
        f1 = (-0.5 * (zx[i + 1] * zx[i + 1] - x * x)).exp()
        ok = f1 + _uniform(h) * (f0 - f1) < 1.0
        out[tuple(t[ok] for t in todo)] = x[ok]
        # The rejected start over with the next word: layer and u from it, the fast test again.
        rej = ~ok
        todo, h = tuple(t[rej] for t in todo), _splitmix(h[rej])
        i = h & (ZIG_LAYERS - 1)
        u = _signed_unit(h)
        fast = u.abs() < zr[i]
        out[tuple(t[fast] for t in todo)] = u[fast] * zx[i[fast]]
        slow = ~fast
        todo, h, i, u = tuple(t[slow] for t in todo), h[slow], i[slow], u[slow]
    return out


def _tail(h: Tensor, negative: Tensor) -> Tensor:
    """Marsaglia's (1964) draws beyond ``R`` from the words ``h`` onwards, negated where
    ``negative``: ``a = -ln(U) / R``, ``b = -ln(U')`` on the next word, until ``2b > a^2``."""
    out = torch.empty(h.shape, dtype=torch.float64, device=h.device)
    todo = torch.arange(h.numel(), device=h.device)
    while h.numel():
        a = -_uniform(h).log() / ZIG_R
        h = _splitmix(h)
        b = -_uniform(h).log()
        h = _splitmix(h)
        ok = b + b > a * a
        out[todo[ok]] = ZIG_R + a[ok]
        todo, h = todo[~ok], h[~ok]
    return torch.where(negative, -out, out)


def normal_tensor(key: int, shape: tuple[int, ...], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, chunk: int = 1 << 22) -> Tensor:
    """A tensor of ``shape`` whose flat entry ``i`` is ``normal(key, i)``, in chunks of ``chunk``
    counters."""
    n = math.prod(shape)
    out = torch.empty(n, dtype=dtype, device=device)
    for s in range(0, n, chunk):
        out[s:s + chunk] = counter_normal(key, torch.arange(s, min(s + chunk, n), device=device))
    return out.view(shape)
