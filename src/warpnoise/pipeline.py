"""From a video to noise: decode, estimate flow, warp, integrate to the latent grid, write.

This is the library function behind ``warpnoise noise`` (and ``warpnoise flow``); the batch
runner calls it too. Data flows one way: frames -> flows -> warper -> noise -> file.

Convention:
    Flows are estimated at pixel resolution (``(2, H, W)``, dx then dy; backward flow of frame t and
    forward flow of frame t-1 per step) and the noise is warped there; ``downsample = s`` then
    integrates ``s x s`` blocks (sum / s, :func:`warpnoise.field.block_integrate`), which keeps the
    noise i.i.d. N(0, 1) on the latent grid (BRIEF §4). Output noise is ``(T, C, H/s, W/s)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import __version__
from .diffusion.degradation import degrade
from .diffusion.latents import LatentPreset, arrange_latents, check_video, latent_preset
from .estimate import (
    FLOW_METHODS,
    PairEstimator,
    check_flow_options,
    estimate_flows,
    make_estimator,
)
from .field import block_integrate
from .io.atomic import check_writable
from .io.flowfile import load_flows, save_flows
from .io.noisefile import NOISE_EXTENSIONS, NoiseWriter, save_latents, validate_noise_file
from .io.video import VideoWriter, read_frames
from .io.video import _check_selection as check_selection
from .methods import DEFAULT_METHOD, check_options, methods, needs_frames
from .rng import check_device, check_seed, derive_seed, make_generator
from .viz import preview_frame
from .warper import NoiseWarper

__all__ = [
    "NoiseOptions",
    "NoiseResult",
    "Progress",
    "source_flows",
    "validate_noise_file",
    "video_to_flows",
    "video_to_noise",
]

#: ``progress(stage, done, total)``; stage is ``"decode"``, ``"flow"`` or ``"noise"``; total 0
#: means unknown.
Progress = Callable[[str, int, int], None]

OCCLUSION_RULE = "forward-backward consistency, Sundaram et al. 2010 (alpha=0.01, beta=0.5 px^2)"


@dataclass
class NoiseOptions:
    """Everything ``warpnoise noise`` can be told (see the CLI's ``--help`` for each)."""

    method: str = DEFAULT_METHOD
    channels: int = 4
    downsample: int = 1
    flow: str = "dis"  # "dis" | "farneback" | "raft" | path to a flow file
    dis_preset: str = "medium"
    raft_weights: str | None = None
    seed: int = 0
    dtype: str = "float32"
    size: tuple[int, int] | None = None
    scale: float | None = None
    start: int = 0
    frames: int | None = None
    stride: int = 1
    method_options: dict[str, Any] = field(default_factory=dict)
    preview_fps: float = 12.0
    device: str = "cpu"  # where the warper runs ("cuda" if available); output is on the CPU
    latent: str | None = None  # a warpnoise.diffusion.PRESETS name: write that pipeline's latents=
    degradation: float = 0.0  # Go-with-the-Flow's γ, fresh noise from derive_seed(seed, ...)

    def check(self) -> None:
        """Raise ValueError naming the first bad option; nothing is read or written."""
        if self.method not in methods():
            raise ValueError(f"unknown method {self.method!r}; choose one of "
                             f"{', '.join(methods())}")
        if needs_frames(self.method) and "frames" in self.method_options:
            raise ValueError(f"method {self.method!r} takes its frames from the input video, "
                             "not from an option")
        check_options(self.method, **self.method_options)  # bad names or values fail now
        for name in ("channels", "downsample"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {self.dtype!r}")
        check_seed(self.seed)
        check_device(self.device)
        if self.latent is not None:
            p = latent_preset(self.latent)
            if self.channels not in (4, p.channels) or self.downsample not in (1, p.spatial):
                raise ValueError(f"--latent {p.name} sets {p.channels} channels and downsample "
                                 f"{p.spatial}; drop --channels/--downsample")
        if (not isinstance(self.degradation, (int, float)) or isinstance(self.degradation, bool)
                or not 0 <= self.degradation <= 1):
            raise ValueError(f"degradation must be a number in [0, 1], got {self.degradation!r}")
        if self.flow not in FLOW_METHODS and not Path(self.flow).exists():
            raise ValueError(f"--flow {self.flow!r} is neither a flow method "
                             f"({', '.join(FLOW_METHODS)}) nor an existing flow file")
        check_flow_options(self.flow if self.flow in FLOW_METHODS else None, self.dis_preset,
                           self.raft_weights)
        check_selection(self.size, self.scale, self.start, self.frames, self.stride)
        if not 0 < self.preview_fps < math.inf:
            raise ValueError(f"preview fps must be a positive number, got {self.preview_fps}")


@dataclass
class NoiseResult:
    """What :func:`video_to_noise` wrote. ``seconds`` has decode, flow, warp, write, total."""

    output: Path
    frames: int
    shape: tuple[int, ...]  # (T, C, H, W); with --latent, the pipeline's latents tensor's
    seconds: dict[str, float]
    preview: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _decode(input: str | os.PathLike, o: NoiseOptions, progress: Progress | None) -> np.ndarray:
    total = o.frames or 0
    cb = None if progress is None else (lambda n: progress("decode", n, total))
    return read_frames(input, size=o.size, scale=o.scale, start=o.start, frames=o.frames,
                       stride=o.stride, progress=cb)


def _file_flows(path: str, frames: np.ndarray) -> tuple[Tensor, Tensor | None]:
    """Precomputed ``(backward, forward)`` from a flow file, checked against the frames."""
    backward, forward = load_flows(path)
    t, h, w = frames.shape[:3]
    if backward.shape[0] != t - 1:
        raise ValueError(f"flow file {path!r} has {backward.shape[0]} flows but {t} frames "
                         f"were selected (need {t - 1})")
    if tuple(backward.shape[2:]) != (h, w):
        raise ValueError(f"flow file {path!r} is {backward.shape[3]}x{backward.shape[2]} but "
                         f"the frames are {w}x{h} (use --size to match)")
    return backward, forward


def _check_outputs(output: str | os.PathLike, preview: str | os.PathLike | None) -> None:
    out = check_writable(output)
    if out.suffix.lower() not in NOISE_EXTENSIONS:
        raise ValueError(f"output {str(out)!r} must end in .safetensors, or .npy for "
                         "Go-with-the-Flow's [T, H, W, C] float16 layout")
    if preview is not None:
        pv = check_writable(preview)
        if pv.suffix.lower() != ".mp4":
            raise ValueError(f"preview {str(pv)!r} must be an .mp4 file")
        if pv.resolve() == out.resolve():
            raise ValueError("the preview and the output are the same file")


def video_to_noise(
    input: str | os.PathLike,
    output: str | os.PathLike,
    options: NoiseOptions,
    *,
    preview: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> NoiseResult:
    """Turn a video (file or folder of frames) into warped noise and write it.

    Writes ``output`` (``.safetensors``: tensor ``noise`` ``(T, C, H/s, W/s)`` in
    ``options.dtype`` with metadata; ``.npy``: Go-with-the-Flow's ``[T, H/s, W/s, C]`` float16)
    and, if asked, an mp4 ``preview`` (input | flow | noise). Both appear atomically when
    complete. Every check on the input happens before anything is written.

    Raises:
        ValueError: bad options, unreadable input, a frame size not divisible by ``downsample``,
            a flow file that does not match the frames.
    """
    options.check()
    _check_outputs(output, preview)
    preset = None if options.latent is None else latent_preset(options.latent)
    if preset is not None and Path(output).suffix.lower() != ".safetensors":
        raise ValueError(f"--latent writes the pipeline's latents tensor to .safetensors, not "
                         f"{Path(output).suffix!r} (.npy is Go-with-the-Flow's [T, H, W, C])")
    t_start = time.perf_counter()
    seconds = {"decode": 0.0, "flow": 0.0, "warp": 0.0, "write": 0.0}
    # Build the estimator first: a RAFT setup error should not wait for the whole decode.
    estimator = None if options.flow not in FLOW_METHODS else make_estimator(
        options.flow, preset=options.dis_preset, raft_weights=options.raft_weights)
    frames = _decode(input, options, progress)
    seconds["decode"] = time.perf_counter() - t_start
    t, h, w = frames.shape[:3]
    s = options.downsample if preset is None else preset.spatial
    channels = options.channels if preset is None else preset.channels
    if preset is not None:
        check_video(preset, t, h, w)
    if h % s or w % s:
        raise ValueError(f"frame size {w}x{h} is not divisible by --downsample {s}; resize with "
                         f"--size (e.g. {w // s * s or s}x{h // s * s or s})")
    file_b, file_f = (None, None) if estimator is not None else _file_flows(options.flow, frames)
    warper = NoiseWarper(channels, h, w, options.method, seed=options.seed,
                         device=options.device, **_method_options(options, frames, s))
    r = 1 if preset is None else preset.temporal
    shape = ((t - 1) // r + 1, channels, h // s, w // s)
    meta = _metadata(input, options, frames.shape, estimator is not None or file_f is not None)
    # The degradation's fresh noise is a second stream of the same seed (recorded in metadata).
    deg_gen = make_generator(int(meta["degradation_seed"]))

    def emit(i: int, noise: Tensor) -> None:
        if i % r == 0:  # temporal compression keeps every r-th frame (unit variance)
            sink.write(degrade(noise, options.degradation, generator=deg_gen))

    max_speed = 1.0
    with contextlib.ExitStack() as stack:
        # Frames go to disk as they are made: a long clip never sits in memory as noise.
        sink: Any = stack.enter_context(
            NoiseWriter(output, shape, meta, dtype=options.dtype) if preset is None else
            _LatentsSink(output, preset, shape, meta, options.dtype, deg_gen))
        writer = None
        if preview is not None:
            writer = stack.enter_context(VideoWriter(preview, options.preview_fps))
        noise = _integrate(warper.noise, s)
        _timed(seconds, "write", emit, 0, noise)
        if writer is not None:
            writer.write(preview_frame(frames[0], None, noise))
        pairs = stack.enter_context(contextlib.closing(
            _flow_pairs(estimator, frames, file_b, file_f, seconds)))
        if estimator is not None:
            stack.enter_context(_spare_one_thread())
        for i, (b, f) in enumerate(pairs, start=1):
            noise = _timed(seconds, "warp", lambda b=b, f=f: _integrate(warper.step(b, f), s))
            _timed(seconds, "write", emit, i, noise)
            if writer is not None:
                # A running maximum of robust speeds keeps the colours comparable across frames.
                speed = float(torch.quantile(b.square().sum(0).sqrt().flatten()[::7], 0.99))
                max_speed = max(max_speed, speed)
                writer.write(preview_frame(frames[i], b, noise, max_speed))
            if progress is not None:
                progress("noise", i, t - 1)
        tic = time.perf_counter()
    # Closing the stack finalises and renames the files.
    seconds["write"] += time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - t_start
    if preset is not None:
        shape = sink.latents_shape
    return NoiseResult(output=Path(output), frames=t, shape=shape, seconds=seconds,
                       preview=None if preview is None else Path(preview), metadata=meta)


def _method_options(o: NoiseOptions, frames: Any, block: int) -> dict[str, Any]:
    """The method's options, plus the frames for a frame-guided method (control-a-video), whose
    mask cells are then the ``block x block`` cells of the latent grid the noise is integrated
    to."""
    if not needs_frames(o.method):
        return dict(o.method_options)
    return {"block": block, **o.method_options, "frames": frames}


@contextlib.contextmanager
def _spare_one_thread() -> Iterator[None]:
    """Give torch one intra-op thread less while the flow thread runs, then restore.

    Torch's OpenMP workers spin at barriers; competing with the flow thread for the same cores
    made warping ~5x slower on 2 cores (measured with benchmarks/bench_e2e.py's clip).
    """
    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(n - 1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)


class _LatentsSink:
    """Collects the kept latent frames and writes the pipeline's ``latents=`` tensor on a clean
    exit (latent frames are small: 1/(s² r) of the pixel noise; CogVideoX 1.5's padding is
    drawn from ``generator`` after every degradation draw, as in ``latents_for``)."""

    def __init__(self, path: str | os.PathLike, preset: LatentPreset,
                 shape: tuple[int, int, int, int], metadata: dict[str, str], dtype: str,
                 generator: torch.Generator) -> None:
        self.path, self.preset, self.shape = path, preset, shape
        self.metadata, self.dtype, self.generator = metadata, dtype, generator
        self.frames: list[Tensor] = []
        self.latents_shape: tuple[int, ...] = ()

    def __enter__(self) -> _LatentsSink:
        return self

    def write(self, frame: Tensor) -> None:
        self.frames.append(frame.float().cpu())

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            return
        if len(self.frames) != self.shape[0]:
            raise ValueError(f"only {len(self.frames)} of {self.shape[0]} latent frames were made")
        latents = arrange_latents(torch.stack(self.frames), self.preset, seed=None,
                                  generator=self.generator)
        meta = self.metadata | {"latent_model": self.preset.name, "layout": self.preset.layout,
                                "latent_frames": str(self.shape[0])}
        save_latents(self.path, latents, meta, dtype=self.dtype)
        self.latents_shape = tuple(latents.shape)


def _timed(seconds: dict[str, float], stage: str, fn: Callable[..., Any], *args: Any) -> Any:
    tic = time.perf_counter()
    out = fn(*args)
    seconds[stage] += time.perf_counter() - tic
    return out


def _integrate(noise: Tensor, factor: int) -> Tensor:
    return (noise if factor == 1 else block_integrate(noise, factor)).cpu()


def _flow_pairs(
    estimator: PairEstimator | None,
    frames: np.ndarray,
    file_b: Tensor | None,
    file_f: Tensor | None,
    seconds: dict[str, float],
    ahead: int = 2,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(backward flow of t, forward flow of t-1)`` for ``t = 1 .. T-1``.

    Estimated flows are computed ``ahead`` pairs in advance in one background thread: OpenCV
    releases the GIL, so flow estimation overlaps with warping. Estimation time is added to
    ``seconds["flow"]`` (so stage times can sum to more than the wall time).
    """
    t = len(frames)
    if estimator is None:
        if file_b is None:
            raise ValueError("no flow estimator and no flow file")
        for i in range(1, t):
            yield file_b[i - 1], None if file_f is None else file_f[i - 1]
        return

    def job(i: int) -> tuple[tuple[Tensor, Tensor], float]:
        tic = time.perf_counter()
        out = estimator(frames[i - 1], frames[i])
        return out, time.perf_counter() - tic

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warpnoise-flow")
    try:
        pending = deque(pool.submit(job, i) for i in range(1, min(t, 1 + ahead)))
        following = 1 + ahead
        while pending:
            (b, f), dt = pending.popleft().result()
            seconds["flow"] += dt
            if following < t:
                pending.append(pool.submit(job, following))
                following += 1
            yield b, f
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _metadata(input: str | os.PathLike, o: NoiseOptions, frame_shape: tuple[int, ...],
              occlusion: bool) -> dict[str, str]:
    t, h, w = frame_shape[:3]
    return {
        "method": o.method, "method_options": json.dumps(o.method_options, sort_keys=True),
        "seed": str(o.seed), "channels": str(o.channels), "downsample": str(o.downsample),
        "flow": o.flow if o.flow in FLOW_METHODS else str(Path(o.flow).resolve()),
        "dis_preset": o.dis_preset, "source": str(Path(input).resolve()),
        "frame_size": f"{w}x{h}", "start": str(o.start), "stride": str(o.stride),
        "frames": str(t), "dtype": o.dtype, "degradation": str(o.degradation),
        "degradation_seed": str(derive_seed(o.seed, "degradation")),
        "occlusion": OCCLUSION_RULE if occlusion else "none (no forward flows)",
        "warpnoise_version": __version__,
    }


def video_to_flows(
    input: str | os.PathLike,
    output: str | os.PathLike,
    options: NoiseOptions,
    *,
    progress: Progress | None = None,
) -> tuple[Tensor, Tensor]:
    """Estimate backward and forward flows of a video and write them (``warpnoise flow``).

    Uses ``options.flow`` (a method), ``dis_preset``, ``raft_weights`` and the frame selection.
    Writes ``(T-1, 2, H, W)`` tensors ``backward`` and ``forward`` (see
    :mod:`warpnoise.io.flowfile`), atomically. Returns them.
    """
    check_flow_options(options.flow, options.dis_preset, options.raft_weights)
    check_selection(options.size, options.scale, options.start, options.frames, options.stride)
    out = check_writable(output)
    if out.suffix.lower() not in (".safetensors", ".npz"):
        raise ValueError(f"flow output {str(out)!r} must end in .safetensors or .npz (they hold "
                         "both backward and forward flows)")
    estimator = make_estimator(options.flow, preset=options.dis_preset,
                               raft_weights=options.raft_weights)
    frames = _decode(input, options, progress)
    t, h, w = frames.shape[:3]
    if t < 2:
        raise ValueError(f"{str(input)!r}: flows need at least 2 frames, the selection has {t}")
    cb = None if progress is None else (lambda done, total: progress("flow", done, total))
    backward, forward = estimate_flows(frames, progress=cb, estimator=estimator)
    meta = {"flow": options.flow, "dis_preset": options.dis_preset,
            "source": str(Path(input).resolve()), "frame_size": f"{w}x{h}",
            "start": str(options.start), "stride": str(options.stride), "frames": str(t),
            "warpnoise_version": __version__}
    save_flows(out, backward, forward, metadata=meta)
    return backward, forward


def source_flows(metadata: dict[str, str]) -> tuple[Tensor, Tensor | None, str] | None:
    """Recover the flows a noise file was made from, using its metadata.

    Re-estimates them from the ``source`` video with the same method and frame selection, or
    reloads the flow file it names. Returns ``(backward, forward, description)``, or None when the
    metadata is missing or the source is no longer there.
    """
    try:
        src, flow, n = metadata["source"], metadata["flow"], int(metadata["frames"])
        w, h = (int(v) for v in metadata["frame_size"].split("x"))
        start, stride = int(metadata.get("start", 0)), int(metadata.get("stride", 1))
    except (KeyError, ValueError):
        return None
    if not Path(src).exists():
        return None
    try:
        if flow not in FLOW_METHODS:
            if not Path(flow).exists():
                return None
            b, f = load_flows(flow)
            return b, f, f"flows from {flow}"
        frames = read_frames(src, size=(w, h), start=start, frames=n, stride=stride)
        if len(frames) < 2:
            return None
        b, f = estimate_flows(frames, flow, preset=metadata.get("dis_preset", "medium"))
    except ValueError:
        return None
    return b, f, f"{flow} flows re-estimated from {src}"

