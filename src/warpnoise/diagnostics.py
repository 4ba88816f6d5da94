"""What a bug report needs and what a user asks first (``warpnoise doctor``), and compiling the
kernels ahead of use (``warpnoise warmup``).

:func:`report` collects the versions of warpnoise and the packages it uses, the devices, which
backend the default method runs on each device and why (:func:`warpnoise.methods.persistent.
backend_for`), whether its numba kernels are in the on-disk cache, the Triton cache, video
decoding support and the cache folders. :func:`warm_up` runs a few small steps of
the default method on each device so that numba (CPU) and Triton (CUDA) compile their kernels
and write them to their caches; later processes load them instead of compiling.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PACKAGES", "WarmupResult", "compile_notice", "devices", "report", "warm_up"]

#: Distribution names whose versions the report lists (import name in brackets where it differs).
PACKAGES = {"warpnoise": "warpnoise", "torch": "torch", "numpy": "numpy", "numba": "numba",
            "triton": "triton", "opencv": "opencv-python-headless", "av": "av",
            "safetensors": "safetensors", "diffusers": "diffusers", "ray": "ray"}
#: Channel counts :func:`warm_up` compiles for by default: on the CPU every count shares one
#: compiled copy (the second only loads it); Triton compiles each count apart (16: Wan, ...).
CHANNELS = (4, 16)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        if dist == "opencv-python-headless":  # the non-headless wheel provides cv2 too
            return _version("opencv-python")
        if dist == "warpnoise":
            from . import __version__

            return __version__
        return None


def devices() -> list[str]:
    """The devices this machine offers torch: ``cpu``, each ``cuda:N`` and ``mps``."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def _device_info(name: str) -> dict[str, Any]:
    from .methods.persistent import backend_for

    dev = torch.device(name)
    info: dict[str, Any] = {"device": name}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info["name"] = props.name
        info["memory_gib"] = round(props.total_memory / 2**30, 1)
        info["capability"] = f"{props.major}.{props.minor}"
    elif dev.type == "cpu":
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    backend, reason = backend_for(dev)
    info["backend"] = backend
    info["why"] = reason
    return info


def _numba_kernels() -> dict[str, Any]:
    from .backends import have_numba

    if not have_numba():
        return {"installed": False}
    from .kernels import boxes

    return {"installed": True, "cache_dir": boxes.cache_dir(), "cached": boxes.cache_status()}


def _triton_cache_dir() -> str | None:
    from .backends import have_triton

    if not have_triton():
        return None
    env = os.environ.get("TRITON_CACHE_DIR")
    if env:
        return env
    try:
        from triton import knobs

        return str(knobs.cache.dir)
    except (ImportError, AttributeError):
        return os.path.join(os.path.expanduser("~"), ".triton", "cache")


def _triton_kernels() -> dict[str, Any]:
    path = _triton_cache_dir()
    if path is None:
        return {"installed": False}
    entries = len(os.listdir(path)) if os.path.isdir(path) else 0
    return {"installed": True, "cache_dir": path, "cache_entries": entries}


def _video() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import av

        codecs = av.codecs_available
        out["pyav"] = True
        out["decoders"] = {c: c in codecs for c in ("h264", "hevc", "vp9", "av1", "mpeg4", "gif")}
    except ImportError:
        out["pyav"] = False
    try:
        import cv2  # noqa: F401

        out["opencv"] = True
    except ImportError:
        out["opencv"] = False
    out["sample_clip_decodes"] = _sample_decodes() if out["pyav"] else False
    return out


def _sample_decodes() -> bool:
    """Whether the bundled clip decodes (its first frame)."""
    from importlib.resources import as_file, files

    try:
        from .io.video import read_frames

        with as_file(files("warpnoise") / "data" / "sample.mp4") as clip:
            return len(read_frames(str(clip), frames=1)) == 1
    except Exception:
        return False


def report() -> dict[str, Any]:
    """Everything ``warpnoise doctor`` prints, as JSON-ready data."""
    from .methods import DEFAULT_METHOD

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {name: _version(dist) for name, dist in PACKAGES.items()},
        "default_method": DEFAULT_METHOD,
        "devices": [_device_info(d) for d in devices()],
        "kernels": {"numba": _numba_kernels(), "triton": _triton_kernels()},
        "video": _video(),
        "caches": {"numba": os.environ.get("NUMBA_CACHE_DIR") or "next to the package "
                   "(__pycache__)", "triton": _triton_cache_dir(),
                   "torch_hub": torch.hub.get_dir(), "temp": tempfile.gettempdir()},
    }


def compile_notice(method: str, channels: int, device: torch.device | str,
                   options: dict[str, Any] | None = None) -> str | None:
    """A line to show before the first step when ``method`` will compile kernels first (numba
    not cached for ``channels`` channels, or Triton with an empty cache), else None."""
    if method != "persistent":
        return None
    from .methods.persistent import backend_for

    try:
        backend, _ = backend_for(torch.device(device), (options or {}).get("backend", "auto"))
    except ValueError:
        return None
    if backend == "numba":
        from .kernels import boxes

        if boxes.cache_status(channels) is not False:
            return None
        return ("warpnoise: compiling the CPU kernels (once, for every channel count; about a "
                "minute; `warpnoise warmup` does it ahead of time) ...")
    if backend == "triton" and _triton_kernels().get("cache_entries") == 0:
        return (f"warpnoise: compiling the Triton kernels for {channels} channels (once per GPU "
                "and channel count; `warpnoise warmup --device cuda` does it ahead) ...")
    return None


@dataclass
class WarmupResult:
    """One warm-up: the device, channel count, backend run, seconds, and whether the kernels were
    compiled (False: they were already cached and only loaded)."""

    device: str
    channels: int
    backend: str
    seconds: float
    compiled: bool | None


#: Frame sizes a warm-up warps: Triton compiles apart sizes divisible by 16 and others.
_SIZES = ((64, 64), (60, 90))


def _tiny_sequence(channels: int, h: int, w: int, device: str) -> None:
    """Three steps of a square moving over a static background, with forward flows: the first
    step runs the anchored pass, the later ones the loose pass too (every kernel compiles)."""
    from .warper import NoiseWarper

    s = min(h, w) // 3
    warper = NoiseWarper(channels, h, w, seed=0, device=device)
    for t in range(1, 4):
        b = torch.zeros(2, h, w)
        f = torch.zeros(2, h, w)
        b[0, s:2 * s, s + 3 * t:2 * s + 3 * t] = -3.0
        f[0, s:2 * s, s + 3 * (t - 1):2 * s + 3 * (t - 1)] = 3.0
        warper.step(b, f)
    if warper.device.type == "cuda":
        torch.cuda.synchronize(warper.device)


def warm_up(channels: Sequence[int] = CHANNELS, device_names: Sequence[str] | None = None,
            on_result: Callable[[WarmupResult], None] | None = None) -> list[WarmupResult]:
    """Compile and cache the default method's kernels for ``channels`` on each device (default:
    the CPU and every CUDA device). Devices whose backend has no compiled kernels (the torch
    path) are skipped. ``on_result`` is called after each warm-up (progress)."""
    from .methods.persistent import backend_for
    from .rng import check_device

    names = list(device_names) if device_names else [d for d in devices() if d != "mps"]
    for c in channels:
        if not isinstance(c, int) or isinstance(c, bool) or c < 1:
            raise ValueError(f"channels must be positive integers, got {c!r}")
    for name in names:
        check_device(name)
    results = []
    for name in names:
        backend, _ = backend_for(torch.device(name))
        if backend == "torch":
            continue
        for c in channels:
            before = None
            if backend == "numba":
                from .kernels import boxes

                before = boxes.cache_status(c)
            t = time.perf_counter()
            for h, w in _SIZES if backend == "triton" else _SIZES[:1]:
                _tiny_sequence(c, h, w, name)
            compiled = None if before is None else not before
            result = WarmupResult(name, c, backend, time.perf_counter() - t, compiled)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
