"""From a video to noise: decode, estimate flow, warp, integrate to the latent grid, write.

This is the library function behind ``warpnoise noise`` (and ``warpnoise flow``); the batch
runner calls it too. Data flows one way: frames -> flows -> warper -> noise -> file.

Memory is flat in the length of the clip: frames stream from a :class:`~warpnoise.io.video.
FrameSource` and are dropped once their flow, noise and preview frame are made. A first pass
decodes the clip without keeping anything to count the frames (the noise and flow files state
their shape in a header written first) and to reject an undecodable input before any work; the
second pass does the work. What is held at any time, whatever the length:

* the warper's state, ``O(H x W)`` (for ``persistent`` the anchor's tables, ``C k^2`` floats per
  pixel);
* the flow thread's look-ahead: at most ``LOOKAHEAD + 1`` steps of (frame, backward flow,
  forward flow), i.e. 16 bytes per pixel for the flows plus 3 for the frame per step;
* one frame of noise being written, and the preview encoder's own few frames;
* with ``latent`` only, the kept latent frames (``1/(s^2 r)`` of the pixel noise, e.g. 0.1 MB a
  frame for Wan at 832x480): a pipeline's ``latents=`` tensor is arranged whole (its layout puts
  channels or packing before time), so it is written at the end.

Convention:
    Flows are estimated at pixel resolution (``(2, H, W)``, dx then dy; backward flow of frame t and
    forward flow of frame t-1 per step) and the noise is warped there; ``downsample = s`` then
    integrates ``s x s`` blocks (sum / s, :func:`warpnoise.field.block_integrate`), which keeps the
    noise i.i.d. N(0, 1) on the latent grid (Chang et al. 2024). Output noise is
    ``(T, C, H/s, W/s)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import __version__
from .backends import check_available
from .estimate import (
    FLOW_METHODS,
    PairEstimator,
    check_flow_options,
    estimate_flows,
    make_estimator,
)
from .io.atomic import check_outputs
from .io.flowfile import FlowReader, FlowWriter, load_flows
from .io.noisefile import NOISE_EXTENSIONS, NoiseWriter, save_latents, validate_noise_file
from .io.video import ClipInfo, FrameSource, VideoWriter, check_selection, read_frames
from .latent.degradation import read_degradation_map
from .latent.presets import LatentPreset, arrange_latents, check_video
from .methods import DEFAULT_METHOD, needs_frames, uses_flows
from .stream import Degradation, NoiseStream, Step, Target, WarpSpec

__all__ = [
    "LOOKAHEAD",
    "FlowResult",
    "FlowSource",
    "NoiseOptions",
    "NoisePlan",
    "NoiseResult",
    "Progress",
    "Selection",
    "Step",
    "check_frame_shape",
    "flows_to_noise",
    "plan_metadata",
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
    degradation_map: str | None = None  # a per-pixel γ file instead (read_degradation_map)
    record_source_path: bool = False  # metadata names input files by full path, not name only

    def check(self) -> None:
        """Raise ValueError naming the first bad option; nothing is written (:meth:`plan`)."""
        self.plan()

    def plan(self) -> NoisePlan:
        """Resolve the options once into the typed parts everything downstream takes; raise
        ValueError naming the first bad option. Reads only a degradation map (decoded here, once)
        and a flow file's existence; nothing is written."""
        warp = WarpSpec.checked(self.method, self.method_options, self.seed, self.device)
        if "backend" in warp.options:  # a method with compiled kernels (backends.py)
            check_available(warp.options["backend"], warp.device)
        target = Target.of(self.channels, self.downsample, self.latent)
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {self.dtype!r}")
        if (not isinstance(self.degradation, (int, float)) or isinstance(self.degradation, bool)
                or not 0 <= self.degradation <= 1):
            raise ValueError(f"degradation must be a number in [0, 1], got {self.degradation!r}")
        if self.degradation_map is not None and self.degradation:
            raise ValueError("give --degradation or --degradation-map, not both")
        gamma_map = None if self.degradation_map is None else read_degradation_map(
            self.degradation_map)
        degradation = Degradation.of(self.degradation, gamma_map, seed=warp.seed,
                                     source=self.degradation_map)
        flow = FlowSource.of(self.flow, self.dis_preset, self.raft_weights)
        selection = Selection.of(self.size, self.scale, self.start, self.frames, self.stride)
        if not 0 < self.preview_fps < math.inf:
            raise ValueError(f"preview fps must be a positive number, got {self.preview_fps}")
        return NoisePlan(warp, target, degradation, flow, selection, self.dtype,
                         self.preview_fps, self.record_source_path, self.degradation_map)


@dataclass(frozen=True)
class FlowSource:
    """Where a run's flows come from: an estimator (``method``, one of
    :data:`~warpnoise.estimate.FLOW_METHODS`, with its DIS preset or RAFT weights), or a flow
    file (``file``, :mod:`warpnoise.io.flowfile`)."""

    method: str | None
    file: str | None
    dis_preset: str = "medium"
    raft_weights: str | None = None

    @classmethod
    def of(cls, flow: str, dis_preset: str = "medium",
           raft_weights: str | None = None) -> FlowSource:
        """``--flow``: a method name, else the path of an existing flow file."""
        if flow in FLOW_METHODS:
            check_flow_options(flow, dis_preset, raft_weights)
            return cls(flow, None, dis_preset, raft_weights)
        if not Path(flow).exists():
            raise ValueError(f"--flow {flow!r} is neither a flow method "
                             f"({', '.join(FLOW_METHODS)}) nor an existing flow file")
        check_flow_options(None, dis_preset, raft_weights)
        return cls(None, flow, dis_preset, raft_weights)

    def estimator(self) -> PairEstimator | None:
        """The pair estimator, or None for a flow file."""
        if self.method is None:
            return None
        return make_estimator(self.method, preset=self.dis_preset,
                              raft_weights=self.raft_weights)


@dataclass(frozen=True)
class Selection:
    """Which frames of the input, at which size (:class:`~warpnoise.io.video.FrameSource`)."""

    size: tuple[int, int] | None = None
    scale: float | None = None
    start: int = 0
    frames: int | None = None
    stride: int = 1

    @classmethod
    def of(cls, size: tuple[int, int] | None = None, scale: float | None = None, start: int = 0,
           frames: int | None = None, stride: int = 1) -> Selection:
        check_selection(size, scale, start, frames, stride)
        return cls(size, scale, start, frames, stride)

    def source(self, input: str | os.PathLike) -> FrameSource:
        return FrameSource(input, size=self.size, scale=self.scale, start=self.start,
                           frames=self.frames, stride=self.stride)


@dataclass(frozen=True)
class NoisePlan:
    """:class:`NoiseOptions` resolved once (:meth:`NoiseOptions.plan`): the warp, the target
    grid, the degradation (its map decoded), the flow source and the frame selection, plus how
    files are written. Metadata is written from it (:func:`plan_metadata`)."""

    warp: WarpSpec
    target: Target
    degradation: Degradation
    flow: FlowSource
    selection: Selection
    dtype: str = "float32"
    preview_fps: float = 12.0
    record_source_path: bool = False
    degradation_map: str | None = None


@dataclass
class NoiseResult:
    """What :func:`video_to_noise` wrote. ``seconds`` has decode, flow, warp, write, total."""

    output: Path
    frames: int
    shape: tuple[int, ...]  # (T, C, H, W); with --latent, the pipeline's latents tensor's
    seconds: dict[str, float]
    preview: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _scan(source: FrameSource, progress: Progress | None) -> ClipInfo:
    """The streaming pre-pass: count the selected frames and get their size; keep nothing."""
    if progress is not None:
        progress("decode", 0, 0)
    info = source.probe()
    if progress is not None:
        progress("decode", info.frames, info.frames)
    return info


def _check_flow_file(reader: FlowReader, path: str, info: ClipInfo) -> None:
    """A precomputed flow file's step count and size, checked against the selected frames."""
    if reader.count != info.frames - 1:
        raise ValueError(f"flow file {path!r} has {reader.count} flows but {info.frames} frames "
                         f"were selected (need {info.frames - 1})")
    if (reader.height, reader.width) != (info.height, info.width):
        raise ValueError(f"flow file {path!r} is {reader.width}x{reader.height} but the frames "
                         f"are {info.width}x{info.height} (use --size to match)")


def _check_outputs(input: str | os.PathLike | None, output: str | os.PathLike,
                   preview: str | os.PathLike | None, o: NoisePlan) -> None:
    """The outputs' suffixes, that they can be written, and that none is an input file."""
    out = Path(output)
    check_outputs({"output": out, "--preview": preview}, _inputs(input, o))
    if out.suffix.lower() not in NOISE_EXTENSIONS:
        raise ValueError(f"output {str(out)!r} must end in .safetensors, or .npy for "
                         "Go-with-the-Flow's [T, H, W, C] float16 layout")
    if preview is not None and Path(preview).suffix.lower() != ".mp4":
        raise ValueError(f"preview {str(preview)!r} must be an .mp4 file")
    if o.target.preset is not None and out.suffix.lower() != ".safetensors":
        raise ValueError(f"--latent writes the pipeline's latents tensor to .safetensors, not "
                         f"{out.suffix!r} (.npy is Go-with-the-Flow's [T, H, W, C])")


def _inputs(input: str | os.PathLike | None, o: NoisePlan) -> dict[str, Any]:
    """Every file the plan makes a run read, named as the CLI names them."""
    return {"the input video": input, "--flow": o.flow.file,
            "--degradation-map": o.degradation_map, "--raft-weights": o.flow.raft_weights}


def video_to_noise(
    input: str | os.PathLike,
    output: str | os.PathLike,
    options: NoiseOptions | NoisePlan,
    *,
    preview: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> NoiseResult:
    """Turn a video (file or folder of frames) into warped noise and write it.

    Writes ``output`` (``.safetensors``: tensor ``noise`` ``(T, C, H/s, W/s)`` in
    ``options.dtype`` with metadata; ``.npy``: Go-with-the-Flow's ``[T, H/s, W/s, C]`` float16)
    and, if asked, an mp4 ``preview`` (input | flow | noise). Both appear atomically when
    complete. The input is read twice, frame by frame (see the module docstring): the first pass
    counts and checks the frames before any work, the second makes the noise. ``options`` may
    be already resolved (:meth:`NoiseOptions.plan`), as the command line does before its own
    checks.

    Raises:
        ValueError: bad options, unreadable input, a frame size not divisible by ``downsample``,
            a flow file that does not match the frames (a malformed file before any decoding,
            its shape before any work, NaN or inf when the step is reached; nothing is written
            then).
    """
    plan = options if isinstance(options, NoisePlan) else options.plan()
    _check_outputs(input, output, preview, plan)
    t_start = time.perf_counter()
    seconds = {"decode": 0.0, "flow": 0.0, "warp": 0.0, "write": 0.0}
    # Build the estimator first: a RAFT setup error should not wait for the pre-pass.
    estimator = plan.flow.estimator()
    source = plan.selection.source(input)
    with contextlib.ExitStack() as stack:
        # A flow file's headers are read and checked before the clip is decoded.
        flow_file = None if plan.flow.file is None else stack.enter_context(
            FlowReader(plan.flow.file))
        info = _scan(source, progress)
        seconds["decode"] = time.perf_counter() - t_start
        t, h, w = info.frames, info.height, info.width
        check_frame_shape(plan, t, h, w)
        if flow_file is not None:
            _check_flow_file(flow_file, plan.flow.file, info)
        occlusion = estimator is not None or bool(flow_file and flow_file.has_forward)
        meta = plan_metadata(plan, (t, h, w), occlusion, input)
        if estimator is not None and (uses_flows(plan.warp.method) or preview is not None):
            steps = _estimated_steps(estimator, source, seconds)
            stack.enter_context(_spare_one_thread())
        elif estimator is not None:  # the method reads the frames itself, and no flow
            steps = _still_steps(t, h, w)
        else:
            steps = _file_steps(flow_file, source if preview is not None else None, seconds)
        return _warp_steps(stack, steps, output, plan, (t, h, w), meta, source, seconds,
                           t_start, preview, progress)


def flows_to_noise(
    steps: Iterable[Step],
    output: str | os.PathLike,
    options: NoiseOptions | NoisePlan,
    frame_shape: tuple[int, int, int],
    metadata: dict[str, str],
    *,
    preview: str | os.PathLike | None = None,
    progress: Progress | None = None,
    seconds: dict[str, float] | None = None,
) -> NoiseResult:
    """Warp noise along flows that come from elsewhere (e.g. exact flows of an authored motion)
    and write it as :func:`video_to_noise` does: same files, latents, degradation and preview.

    Convention:
        ``steps`` yields ``frame_shape[0]`` tuples ``(frame, backward, forward)``: the first
        ``(frame_0, None, None)``, then frame t's ``(H, W, 3)`` uint8 RGB frame (or None when no
        ``preview`` is asked), its backward flow ``(2, H, W)`` and frame t-1's forward flow
        ``(2, H, W)`` (or None), dx then dy in pixels. ``frame_shape`` is ``(T, H, W)``.
        ``metadata`` is recorded in the file beside the plan's own (method, seed, channels,
        degradation and its seed, frame size and count), which it may not override. The time
        spent producing each step is added to ``seconds["flow"]``.

    Raises:
        ValueError: bad options (:meth:`NoiseOptions.plan`; the flow source is not used), a
            method that reads video frames, a frame size or count the latent preset refuses, or
            a bad flow when its step is reached (nothing is written then).
    """
    plan = options if isinstance(options, NoisePlan) else options.plan()
    if needs_frames(plan.warp.method):
        raise ValueError(f"method {plan.warp.method!r} reads video frames; flows given directly "
                         "need a method that follows flows")
    _check_outputs(None, output, preview, plan)
    t, h, w = frame_shape
    check_frame_shape(plan, t, h, w)
    t_start = time.perf_counter()
    seconds = {"decode": 0.0, "flow": 0.0, "warp": 0.0, "write": 0.0} | (seconds or {})
    own = plan_metadata(plan, frame_shape, occlusion=True)
    # What describes a video and its flow estimate is the caller's to say.
    own = {k: v for k, v in own.items() if k not in _VIDEO_KEYS}
    meta = {k: str(v) for k, v in metadata.items()} | own
    with contextlib.ExitStack() as stack:
        timed = _timed_iter(steps, seconds, "flow")
        return _warp_steps(stack, timed, output, plan, frame_shape, meta, None, seconds,
                           t_start, preview, progress)


#: Metadata of :func:`video_to_noise` that describes the video and its flow estimate.
_VIDEO_KEYS = ("flow", "dis_preset", "source", "start", "stride", "occlusion")


def check_frame_shape(options: NoiseOptions | NoisePlan, t: int, h: int, w: int) -> None:
    """The latent preset's frame and size rules, and the block size dividing the frame."""
    target = (options if isinstance(options, NoisePlan) else options.plan()).target
    if target.preset is not None:
        check_video(target.preset, t, h, w)
    target.check_size(h, w)


def _warp_steps(stack: contextlib.ExitStack, steps: Iterable[Step], output: str | os.PathLike,
                plan: NoisePlan, frame_shape: tuple[int, int, int], meta: dict[str, str],
                frames: Any, seconds: dict[str, float], t_start: float,
                preview: str | os.PathLike | None, progress: Progress | None) -> NoiseResult:
    """Drain the streaming core (:class:`~warpnoise.stream.NoiseStream`) into the files: the
    noise or latents file (frames go to disk as they are made; the latents tensor, a small
    fraction of the noise, is arranged whole at the end) and the preview; files are finalised
    when ``stack`` closes."""
    t, h, w = frame_shape
    stream = NoiseStream(plan.warp, plan.target, plan.degradation, t, h, w, guide=frames,
                         seconds=seconds)
    shape = stream.shape
    preset = plan.target.preset
    stream.start()  # the backend is chosen now, and recorded
    if stream.backend is not None:
        meta["backend"] = stream.backend
    if stream.bits_version is not None:
        meta["bits_version"] = str(stream.bits_version)
    with stack:
        sink: Any = stack.enter_context(
            NoiseWriter(output, shape, meta, dtype=plan.dtype) if preset is None else
            _LatentsSink(output, preset, shape, meta, plan.dtype, stream))
        writer = None
        if preview is not None:
            writer = stack.enter_context(VideoWriter(preview, plan.preview_fps))
        steps = stack.enter_context(contextlib.closing(iter(steps)))  # type: ignore[type-var]
        items = stack.enter_context(contextlib.closing(stream.run(steps, every=writer is not None)))
        for item in items:
            if item.kept:
                _timed(seconds, "write", sink.write, item.noise)
            if writer is not None:
                writer.write(stream.preview(item))
            if progress is not None and item.index:
                progress("noise", item.index, t - 1)
            del item  # hold nothing of this step while waiting for the next
        if progress is not None and t > 1 and not plan.target.keeps(t - 1) and writer is None:
            progress("noise", t - 1, t - 1)
        tic = time.perf_counter()
    # Closing the stack finalises and renames the files.
    seconds["write"] += time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - t_start
    if preset is not None:
        shape = sink.latents_shape
    return NoiseResult(output=Path(output), frames=t, shape=shape, seconds=seconds,
                       preview=None if preview is None else Path(preview), metadata=meta)


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
    drawn from the stream's degradation generator after every degradation draw, as in
    ``latents_for``)."""

    def __init__(self, path: str | os.PathLike, preset: LatentPreset,
                 shape: tuple[int, int, int, int], metadata: dict[str, str], dtype: str,
                 stream: NoiseStream) -> None:
        self.path, self.preset, self.shape = path, preset, shape
        self.metadata, self.dtype, self.stream = metadata, dtype, stream
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
                                  generator=self.stream.generator)
        save_latents(self.path, latents, self.metadata, dtype=self.dtype)
        self.latents_shape = tuple(latents.shape)


def _timed(seconds: dict[str, float], stage: str, fn: Callable[..., Any], *args: Any) -> Any:
    tic = time.perf_counter()
    out = fn(*args)
    seconds[stage] += time.perf_counter() - tic
    return out


#: Steps the flow thread may run ahead of the warper. One finished step waiting while the warper
#: works on the current one keeps both threads busy when they take turns at the same speed; a
#: second absorbs frames whose flow takes longer than their warp (or the reverse) without a
#: stall. More buys nothing on two cores and costs a frame and two flows each (16 bytes per pixel
#: for the flows: 33 MB a step at 1080p).
LOOKAHEAD = 2

def _estimated_steps(estimator: PairEstimator, source: Iterable[np.ndarray],
                     seconds: dict[str, float], ahead: int = LOOKAHEAD) -> Iterator[Step]:
    """Yield every frame with its flows, decoding and estimating in one background thread.

    The thread runs at most ``ahead`` steps in advance of the consumer: OpenCV and PyAV release
    the GIL, so decoding and flow estimation overlap with warping. Decoding and estimation times
    are added to ``seconds`` (so stage times can sum to more than the wall time).
    """
    frames = iter(source)
    prev: np.ndarray | None = None

    def job() -> Step | None:
        nonlocal prev
        tic = time.perf_counter()
        cur = next(frames, None)
        seconds["decode"] += time.perf_counter() - tic
        if cur is None:
            return None
        tic = time.perf_counter()
        b, f = (None, None) if prev is None else estimator(prev, cur)
        seconds["flow"] += time.perf_counter() - tic
        prev = cur
        return cur, b, f

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warpnoise-flow")
    try:
        pending = deque(pool.submit(job) for _ in range(ahead))
        while (step := pending.popleft().result()) is not None:
            pending.append(pool.submit(job))
            yield step
            del step
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def _file_steps(flows: FlowReader, source: Iterable[np.ndarray] | None,
                seconds: dict[str, float]) -> Iterator[Step]:
    """Yield every frame with its flows from a flow file, both read one step at a time.

    Frames are decoded only when ``source`` is given (the preview needs them); else they are None.
    """
    frames = _timed_iter(source, seconds, "decode") if source is not None else repeat(None)
    pairs = chain([(None, None)], _timed_iter(flows, seconds, "flow"))
    # A frame count that changed since the pre-pass is caught by the writer (frames missing).
    for frame, (b, f) in zip(frames, pairs, strict=False):
        yield frame, b, f


def _still_steps(frames: int, height: int, width: int) -> Iterator[Step]:
    """Steps for a method that ignores flows (:func:`warpnoise.methods.uses_flows`): zero flows
    of the frame size, which the warper still checks, and no frames (nothing decodes them)."""
    zero = torch.zeros(2, height, width)
    yield None, None, None
    for _ in range(frames - 1):
        yield None, zero, zero


def _timed_iter(items: Iterable[Any], seconds: dict[str, float], stage: str) -> Iterator[Any]:
    """``items``, with the time spent producing each added to ``seconds[stage]``."""
    it = iter(items)
    while True:
        tic = time.perf_counter()
        item = next(it, _END)
        seconds[stage] += time.perf_counter() - tic
        if item is _END:
            return
        yield item


_END = object()


def _file_name(path: str | os.PathLike, full: bool) -> str:
    """How metadata names an input file: its name only, so that a file shared with a dataset
    does not carry its maker's folders and user name; the resolved path when ``full``."""
    p = Path(path).resolve()
    return str(p) if full else p.name


def plan_metadata(plan: NoisePlan, frame_shape: tuple[int, int, int], occlusion: bool,
                  input: str | os.PathLike | None = None) -> dict[str, str]:
    """What a noise or latents file says about its tensor and how it was made, from the plan:
    the channels, block size and grid are the tensor's (a ``--latent`` preset's, not the
    options' defaults). ``input`` is the video, or None when the flows came from elsewhere
    (:func:`flows_to_noise`)."""
    target, full = plan.target, plan.record_source_path
    t, h, w = frame_shape
    s, r, sel = target.block, target.temporal, plan.selection
    flow = plan.flow.method if plan.flow.file is None else _file_name(plan.flow.file, full)
    deg = plan.degradation
    return {
        "method": plan.warp.method,
        "method_options": json.dumps(plan.warp.options, sort_keys=True),
        "seed": str(plan.warp.seed), "channels": str(target.channels), "downsample": str(s),
        "temporal_compression": str(r), "grid": f"{w // s}x{h // s}", "flow": str(flow),
        "dis_preset": plan.flow.dis_preset,
        "source": "" if input is None else _file_name(input, full),
        "frame_size": f"{w}x{h}", "start": str(sel.start), "stride": str(sel.stride),
        "frames": str(t), "dtype": plan.dtype,
        "degradation": str(deg.gamma) if deg.map is None else "per-pixel map",
        "degradation_seed": str(deg.seed),
        "occlusion": OCCLUSION_RULE if occlusion else "none (no forward flows)",
        "warpnoise_version": __version__, "torch_version": torch.__version__,
    } | ({} if plan.degradation_map is None else
         {"degradation_map": _file_name(plan.degradation_map, full)}) | (
        {} if target.preset is None else {
            "latent_model": target.preset.name, "layout": target.preset.layout,
            "latent_frames": str((t - 1) // r + 1)})


@dataclass
class FlowResult:
    """What :func:`video_to_flows` wrote: ``flows`` steps (T - 1) of ``(2, height, width)``
    backward and forward flows; ``seconds`` has decode, flow, write, total."""

    output: Path
    flows: int
    width: int
    height: int
    seconds: dict[str, float]


def video_to_flows(
    input: str | os.PathLike,
    output: str | os.PathLike,
    options: NoiseOptions,
    *,
    progress: Progress | None = None,
) -> FlowResult:
    """Estimate backward and forward flows of a video and write them (``warpnoise flow``).

    Uses ``options.flow`` (a method), ``dis_preset``, ``raft_weights`` and the frame selection.
    Writes ``(T-1, 2, H, W)`` tensors ``backward`` and ``forward`` (see
    :mod:`warpnoise.io.flowfile`), atomically, one step at a time: like :func:`video_to_noise`
    it holds a few frames and flows whatever the clip's length (the file itself grows by 16 bytes
    per pixel and frame). Read them back with :func:`warpnoise.io.flowfile.load_flows` or, step
    by step, :class:`warpnoise.io.flowfile.FlowReader`.
    """
    check_flow_options(options.flow, options.dis_preset, options.raft_weights)
    selection = Selection.of(options.size, options.scale, options.start, options.frames,
                             options.stride)
    out = Path(output)
    if out.suffix.lower() not in (".safetensors", ".npz"):
        raise ValueError(f"flow output {str(out)!r} must end in .safetensors or .npz (they hold "
                         "both backward and forward flows)")
    check_outputs({"output": out}, {"the input video": input,
                                    "--raft-weights": options.raft_weights})
    t_start = time.perf_counter()
    seconds = {"decode": 0.0, "flow": 0.0, "write": 0.0}
    estimator = make_estimator(options.flow, preset=options.dis_preset,
                               raft_weights=options.raft_weights)
    source = selection.source(input)
    info = _scan(source, progress)
    seconds["decode"] = time.perf_counter() - t_start
    t, h, w = info.frames, info.height, info.width
    if t < 2:
        raise ValueError(f"{str(input)!r}: flows need at least 2 frames, the selection has {t}")
    meta = {"flow": options.flow, "dis_preset": options.dis_preset,
            "source": _file_name(input, options.record_source_path), "frame_size": f"{w}x{h}",
            "start": str(options.start), "stride": str(options.stride), "frames": str(t),
            "warpnoise_version": __version__}
    with FlowWriter(out, t - 1, h, w, metadata=meta) as sink, contextlib.closing(
            _estimated_steps(estimator, source, seconds)) as steps:
        for i, (_, b, f) in enumerate(steps):
            if b is not None:
                _timed(seconds, "write", sink.write, b, f)
                if progress is not None:
                    progress("flow", i, t - 1)
        tic = time.perf_counter()
    seconds["write"] += time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - t_start
    return FlowResult(output=out, flows=t - 1, width=w, height=h, seconds=seconds)


def _find(name: str, folders: tuple[Path, ...]) -> Path | None:
    """``name`` as recorded in metadata (a full path, or a file name looked up in ``folders``
    and then the working folder), if it exists."""
    p = Path(name)
    for candidate in ([p] if p.is_absolute() else [*(f / p for f in folders), p]):
        if candidate.exists():
            return candidate
    return None


def source_flows(metadata: dict[str, str], near: str | os.PathLike | None = None
                 ) -> tuple[Tensor, Tensor | None, str] | None:
    """Recover the flows a noise file was made from, using its metadata.

    Re-estimates them from the ``source`` video with the same method and frame selection, or
    reloads the flow file it names. A source recorded by name only (the default, see
    ``NoiseOptions.record_source_path``) is looked for in the folder ``near`` (the noise file's),
    then in the working folder. Returns ``(backward, forward, description)``, or None when the
    metadata is missing or the source is not found.
    """
    try:
        src_name, flow, n = metadata["source"], metadata["flow"], int(metadata["frames"])
        w, h = (int(v) for v in metadata["frame_size"].split("x"))
        start, stride = int(metadata.get("start", 0)), int(metadata.get("stride", 1))
    except (KeyError, ValueError):
        return None
    folders = () if near is None else (Path(near).parent,)
    src = _find(src_name, folders)
    if src is None:
        return None
    try:
        if flow not in FLOW_METHODS:
            flow_path = _find(flow, folders)
            if flow_path is None:
                return None
            flow = str(flow_path)
            b, f = load_flows(flow)
            return b, f, f"flows from {flow}"
        frames = read_frames(src, size=(w, h), start=start, frames=n, stride=stride)
        if len(frames) < 2:
            return None
        b, f = estimate_flows(frames, flow, preset=metadata.get("dis_preset", "medium"))
    except ValueError:
        return None
    return b, f, f"{flow} flows re-estimated from {src}"

