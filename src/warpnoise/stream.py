"""The streaming core: steps of flows in, noise on its target grid out, one frame at a time.

Every path from a video (or flows) to noise runs this loop: ``warpnoise noise`` and ``batch``
(:func:`warpnoise.pipeline.video_to_noise`), authored motion
(:func:`warpnoise.pipeline.flows_to_noise`), the ComfyUI nodes
(:func:`warpnoise.integrations.comfyui.latent_noise_from_images`) and the samplers of ``edit`` and
the demo (:func:`warpnoise.integrations.kdiffusion.warped_noise`). A *source* yields steps
``(frame, backward, forward)`` (estimated flows, a flow file, the zero flows of a still, an IMAGE
batch, exact flows of an authored motion); :meth:`NoiseStream.frames` warps each step, integrates
it to the target grid, keeps the frames a temporal VAE keeps, degrades them, and yields them to
the caller's *sink* (a noise or latents file, a preview, a list in memory). Because the loop is
one, the same options give the same bits on every path.

What the loop needs is resolved once, before any work, into three typed parts: the warp
(:class:`WarpSpec`: method, its validated options, seed, device), the target (:class:`Target`:
channels, block size, temporal factor, latent preset) and the degradation
(:class:`Degradation`: γ or a decoded per-pixel map, and its seed).

Convention:
    Steps are ``(frame, backward, forward)``: frame t's ``(H, W, 3)`` uint8 RGB frame (or None
    when nothing needs it), its backward flow ``(2, H, W)`` and frame t-1's forward flow
    ``(2, H, W)`` (or None), dx then dy in pixels; the first step is ``(frame_0, None, None)``.
    Noise is warped at pixel resolution and integrated over ``block x block`` cells (sum / block,
    :func:`warpnoise.field.block_integrate`), which keeps it i.i.d. N(0, 1) on the grid
    (Chang et al. 2024); a temporal factor ``r`` keeps pixel frames ``0, r, 2r, ...``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .field import block_integrate
from .latent.degradation import check_degradation, degradation_map, degrade
from .latent.presets import LatentPreset, latent_preset
from .methods import check_options, methods, needs_frames
from .rng import check_device, check_seed, derive_seed, make_generator
from .viz import preview_frame
from .warper import NoiseWarper

__all__ = ["Degradation", "NoiseFrame", "NoiseStream", "Step", "Target", "WarpSpec",
           "preview_speed"]

#: ``(frame t, backward flow of t, forward flow of t-1)``; no flows for the first frame.
Step = tuple[np.ndarray | None, Tensor | None, Tensor | None]


@dataclass(frozen=True)
class WarpSpec:
    """The warp: a registered method with validated options, its seed and device.

    ``options`` never holds ``frames``: a frame-guided method (:func:`~warpnoise.methods.
    needs_frames`) gets the stream's frames, and mask cells of the target's block size, from
    :meth:`warper`.
    """

    method: str
    options: dict[str, Any]
    seed: int
    device: torch.device

    @classmethod
    def checked(cls, method: str, options: dict[str, Any] | None = None, seed: int = 0,
                device: torch.device | str = "cpu") -> WarpSpec:
        """A spec whose every part is checked (unknown method, bad option, seed, device)."""
        options = dict(options or {})
        if method not in methods():
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(methods())}")
        if needs_frames(method) and "frames" in options:
            raise ValueError(f"method {method!r} takes its frames from the input video, "
                             "not from an option")
        check_options(method, **options)
        return cls(method, options, check_seed(seed), check_device(device))

    def warper(self, channels: int, height: int, width: int, *, frames: Any = None,
               block: int = 1, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> NoiseWarper:
        """A warper for ``(channels, height, width)`` noise. ``frames``: the re-iterable
        ``(H, W, 3)`` uint8 frames a frame-guided method reads (it makes its own streaming
        passes), whose mask cells are then the ``block x block`` cells of the grid."""
        options = dict(self.options)
        if needs_frames(self.method):
            options = {"block": block, **options, "frames": frames}
        seed = None if generator is not None else self.seed
        return NoiseWarper(channels, height, width, self.method, seed=seed, generator=generator,
                           device=self.device, dtype=dtype, **options)


@dataclass(frozen=True)
class Target:
    """The grid the noise ends on: ``channels``, ``block`` pixels per grid cell along each axis,
    every ``temporal``-th pixel frame kept, and the latent preset they come from (or None)."""

    channels: int
    block: int = 1
    temporal: int = 1
    preset: LatentPreset | None = None

    @classmethod
    def of(cls, channels: int = 4, downsample: int = 1,
           latent: str | LatentPreset | None = None) -> Target:
        """The target of ``--channels``/``--downsample`` or of a ``--latent`` preset (which sets
        both; giving other values beside it is an error)."""
        for name, v in (("channels", channels), ("downsample", downsample)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if latent is None:
            return cls(channels, downsample)
        p = latent_preset(latent)
        if channels not in (4, p.channels) or downsample not in (1, p.spatial):
            raise ValueError(f"--latent {p.name} sets {p.channels} channels and downsample "
                             f"{p.spatial}; drop --channels/--downsample")
        return cls(p.channels, p.spatial, p.temporal, p)

    def keeps(self, index: int) -> bool:
        """Whether pixel frame ``index`` is kept (every ``temporal``-th, from frame 0)."""
        return index % self.temporal == 0

    def check_size(self, height: int, width: int) -> None:
        """Raise ValueError unless the block size divides ``height x width`` frames."""
        h, w, s = height, width, self.block
        if h % s or w % s:
            raise ValueError(f"frame size {w}x{h} is not divisible by --downsample {s}; resize "
                             f"with --size (e.g. {w // s * s or s}x{h // s * s or s})")

    def shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(F, C, h, w)`` of the kept frames of ``frames`` pixel frames of ``height x width``."""
        return ((frames - 1) // self.temporal + 1, self.channels, height // self.block,
                width // self.block)


@dataclass(frozen=True)
class Degradation:
    """Go-with-the-Flow's degradation (Burgert et al. 2025, §3.3): a constant ``gamma``, or a
    per-pixel ``map`` ``(H', W')`` in [0, 1] decoded once and area-averaged to each grid; the
    fresh noise is a second stream of the run's seed (``seed``, recorded in the metadata)."""

    gamma: float = 0.0
    map: Tensor | None = None
    seed: int = 0
    source: str | None = None  # the map's file, for error messages

    @classmethod
    def of(cls, gamma: float = 0.0, map: Tensor | None = None, *, seed: int,
           source: str | None = None) -> Degradation:
        check_degradation(gamma)
        if map is not None:
            if gamma:
                raise ValueError("give --degradation or --degradation-map, not both")
            check_degradation(map)
        return cls(float(gamma), map, derive_seed(seed, "degradation"), source)

    def on_grid(self, frame: tuple[int, int], grid: tuple[int, int]) -> float | Tensor:
        """γ for noise on ``grid`` ``(h, w)`` made from frames of size ``frame`` ``(H, W)``: the
        map must have the frames' aspect ratio (within 1%), so that it lands where it was
        drawn."""
        if self.map is None:
            return self.gamma
        (mh, mw), (h, w) = self.map.shape, frame
        if abs(mw * h - mh * w) > 0.01 * mh * w:
            name = "" if self.source is None else f" {self.source!r}"
            raise ValueError(f"degradation map{name} is {mw}x{mh}, the frames are {w}x{h}: give "
                             "a map with the frames' aspect ratio")
        return degradation_map(self.map, 1.0, 0.0, grid)


@dataclass
class NoiseFrame:
    """One frame of a stream: pixel frame ``index`` with its ``frame`` and ``backward`` flow as
    the step gave them, and its ``(C, h, w)`` ``noise`` on the target grid (degraded when
    ``kept``, the frames a temporal VAE keeps)."""

    index: int
    frame: np.ndarray | None
    backward: Tensor | None
    noise: Tensor
    kept: bool = True


def preview_speed(backward: Tensor) -> float:
    """The speed a preview's flow colours are scaled to: a robust maximum (99th percentile of a
    subsample), so that a few outliers do not wash out the colours."""
    return float(torch.quantile(backward.square().sum(0).sqrt().flatten()[::7].float(), 0.99))


@dataclass
class NoiseStream:
    """Warp a stream of steps to noise on ``target``, frame by frame.

    Args:
        warp: the method, its options, seed and device (:class:`WarpSpec`).
        target: the grid the noise ends on (:class:`Target`).
        degradation: γ and its stream (:class:`Degradation`).
        frames: the pixel frames' count.
        height: the pixel frames' height (``target.block`` must divide it).
        width: the pixel frames' width (likewise).
        guide: the re-iterable frames a frame-guided method reads (ignored by the others).
        generator: with ``warp.seed`` unused, the warper's own generator (samplers chaining
            draws); the degradation always draws from its own stream.
        device: where the yielded noise goes (``"cpu"``: files and ComfyUI; the warp's device
            for samplers).
        dtype: the noise's (float64 warps in float64).

    ``seconds["warp"]`` accumulates the time spent warping and integrating. After the last
    frame, :attr:`generator` is the degradation stream (CogVideoX 1.5's padding continues it)
    and :attr:`speed` the running preview speed scale.
    """

    warp: WarpSpec
    target: Target
    degradation: Degradation
    frames: int
    height: int
    width: int
    guide: Any = None
    generator: torch.Generator | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    seconds: dict[str, float] = field(default_factory=lambda: {"warp": 0.0})
    speed: float = 1.0
    _warper: NoiseWarper | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        h, w, s = self.height, self.width, self.target.block
        self.target.check_size(h, w)
        self.gamma = self.degradation.on_grid((h, w), (h // s, w // s))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(F, C, h, w)`` of what :meth:`run` yields."""
        return self.target.shape(self.frames, self.height, self.width)

    def start(self) -> NoiseWarper:
        """Make the warper (the first frame's noise is drawn, the backend chosen) if :meth:`run`
        has not yet: a caller that records the backend does this before writing anything."""
        if self._warper is None:
            self._warper = self.warp.warper(self.target.channels, self.height, self.width,
                                            frames=self.guide, block=self.target.block,
                                            generator=self.generator, dtype=self.dtype)
        return self._warper

    @property
    def backend(self) -> str | None:
        """The backend the warper runs on (``"numba"``, ``"triton"``, ``"torch"``), once started;
        None for a method that does not say."""
        return None if self._warper is None else getattr(self._warper, "backend", None)

    @property
    def bits_version(self) -> int | None:
        """The version of the bits the method's seed gives (``persistent``'s ``BITS_VERSION``),
        once started; None for a method that does not number them."""
        return None if self._warper is None else getattr(self._warper.method, "bits_version",
                                                         None)

    def run(self, steps: Iterable[Step], *, every: bool = False) -> Iterator[NoiseFrame]:
        """Warp every step and yield the kept frames' noise (with ``every``, every frame's: the
        ones a temporal VAE drops come integrated, not degraded, ``kept`` False). A step's
        objects are dropped before the next is asked for: memory stays flat in the clip's
        length."""
        s = self.target.block
        warper = self.start()
        self.generator = make_generator(self.degradation.seed)
        for i, (frame, b, f) in enumerate(steps):
            tic = time.perf_counter()
            noise = warper.noise if b is None else warper.step(b, f)
            kept = self.target.keeps(i)
            if kept or every:
                noise = (noise if s == 1 else block_integrate(noise, s)).to(self.device)
            self.seconds["warp"] += time.perf_counter() - tic
            if b is not None and frame is not None:
                self.speed = max(self.speed, preview_speed(b))
            if kept:
                noise = degrade(noise, self.gamma, generator=self.generator)
            if kept or every:
                yield NoiseFrame(i, frame, b, noise, kept)
            del frame, b, f, noise

    def preview(self, item: NoiseFrame) -> np.ndarray:
        """The preview row of a yielded frame: input | flow | noise, flow colours on the stream's
        running speed scale (comparable from frame to frame)."""
        if item.frame is None:
            raise ValueError("a preview needs the frames: the source gave none")
        return preview_frame(item.frame, item.backward, item.noise, self.speed)
