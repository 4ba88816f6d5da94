"""ComfyUI adapters: an IMAGE batch to warped latent noise, and a NOISE that fits the sampler.

ComfyUI's data (legacy node API; checked against ``nodes.py`` and
``comfy_extras/nodes_custom_sampler.py`` of the ComfyUI sources):

- ``IMAGE``: a float tensor ``[B, H, W, C]`` in [0, 1]; a video is its frames, in order, as the
  batch.
- ``LATENT``: ``{"samples": tensor, ...}``. ComfyUI's own empty video latents are
  ``[B, C, T', h, w]`` for every video model (Wan 2.1/2.2, HunyuanVideo, CogVideoX, LTX-Video:
  tokens are packed inside the model), image latents ``[B, C, h, w]`` (a clip's frames are the
  batch).
- ``NOISE``: any object with ``seed`` and ``generate_noise(input_latent)`` returning a CPU tensor
  shaped like ``input_latent["samples"]``. ``SamplerCustomAdvanced`` calls it once per run and
  scales the result by σ itself (``model_sampling.noise_scaling``), so it must be N(0, 1): warped
  ∫-noise is, exactly (Chang et al., ICLR 2024).

:func:`latent_noise_from_images` streams the frames through one
:class:`~warpnoise.NoiseWarper` at pixel resolution and keeps only the latent grid: ``s x s``
block integration (:func:`~warpnoise.block_integrate`), every ``r``-th frame
(:func:`~warpnoise.diffusion.keeps_frame`), degradation γ per kept frame
(:func:`~warpnoise.diffusion.degrade`, fresh noise from ``derive_seed(seed, "degradation")``).
These are the pieces and the bits of ``warpnoise noise --latent MODEL --degradation γ``.
:class:`WarpedNoise` is the NOISE object. The node pack (``comfyui/warpnoise_nodes``) only
declares nodes around these functions.

Convention:
    Latent frames are ``(F, C, h, w)`` float32 on the CPU, ``F = (T - 1) / r + 1`` for ``T`` pixel
    frames. Layouts name the dimensions of ``samples``: ``B,C,T,H,W`` (ComfyUI's video latents),
    ``B,T,C,H,W`` (frames before channels, as CogVideoX wrappers take it), ``T,C,H,W`` (the frames
    are the batch: image models), ``diffusers`` (the preset's diffusers ``latents=`` tensor,
    :func:`~warpnoise.diffusion.arrange_latents`), ``auto`` (ComfyUI's own for the model).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..diagnostics import compile_notice
from ..estimate import PairEstimator, make_estimator
from ..io.noisefile import LATENTS_FORMAT, load_latents, load_noise
from ..latent.degradation import check_degradation, degrade
from ..latent.layout import to_video_latents
from ..latent.presets import (
    LatentPreset,
    arrange_latents,
    check_video,
    latent_preset,
    split_latents,
)
from ..methods import DEFAULT_METHOD, uses_flows
from ..rng import derive_seed, make_generator
from ..stream import Degradation, NoiseStream, Step, Target, WarpSpec

__all__ = [
    "FLOWS",
    "LAYOUTS",
    "PREVIEW_WIDTH",
    "LatentNoise",
    "WarpedNoise",
    "arrange",
    "custom_preset",
    "flow_estimator",
    "frame_rgb8",
    "latent_noise_from_images",
    "load_latent_noise",
    "parse_method_options",
    "resolve_input_path",
]

#: Flow estimators offered to ComfyUI users (``dis-*``: OpenCV DIS presets).
FLOWS = ("dis-medium", "dis-fast", "dis-ultrafast", "farneback", "raft")
#: Latent layouts (see the module docstring).
LAYOUTS = ("auto", "B,C,T,H,W", "B,T,C,H,W", "T,C,H,W", "diffusers")
#: The preview's panels (input, flow, noise) are at most this many pixels wide.
PREVIEW_WIDTH = 512
_VIDEO_LAYOUTS = {"B,C,T,H,W": "bcfhw", "B,T,C,H,W": "bfchw"}
_DIMS = {"B,C,T,H,W": "BCTHW", "B,T,C,H,W": "BTCHW", "T,C,H,W": "TCHW"}
_DIM_NAMES = {"B": "batch", "C": "channels", "T": "frames", "H": "height", "W": "width"}


def custom_preset(channels: int, spatial: int, temporal: int) -> LatentPreset:
    """A preset for a model the presets do not name: ``channels`` latent channels, ``spatial``
    and ``temporal`` compression (``temporal = 1``: the frames are the batch)."""
    for name, v in (("channels", channels), ("spatial compression", spatial),
                    ("temporal compression", temporal)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return LatentPreset("custom", "custom latent", "", channels, spatial, temporal,
                        size_multiple=spatial, layout="bcfhw" if temporal > 1 else "bchw")


def flow_estimator(flow: str, raft_weights: str | None = None,
                   device: torch.device | str | None = None) -> PairEstimator:
    """The pair estimator named by one of :data:`FLOWS` (RAFT from a local weights file)."""
    if flow.startswith("dis-"):
        return make_estimator("dis", preset=flow.removeprefix("dis-"))
    if flow in ("farneback", "raft"):
        return make_estimator(flow, raft_weights=raft_weights or None, device=device)
    raise ValueError(f"unknown flow {flow!r}; choose one of {', '.join(FLOWS)}")


def parse_method_options(text: str) -> dict[str, Any]:
    """A method's options from a JSON object, e.g. ``{"upsample": 4}`` (empty: none)."""
    if not text.strip():
        return {}
    try:
        out = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"method options must be a JSON object such as {{\"upsample\": 4}}; "
                         f"cannot parse {text!r}: {e.msg}") from None
    if not isinstance(out, dict):
        raise ValueError(f"method options must be a JSON object such as {{\"upsample\": 4}}, "
                         f"got {text!r}")
    return out


def _check_images(images: Any) -> None:
    shape = tuple(getattr(images, "shape", ()))
    if not isinstance(images, Tensor) or images.ndim != 4 or shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must be a ComfyUI IMAGE, a [B, H, W, C] tensor with C = 1, 3 "
                         f"or 4, got shape {shape}")
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")
    if min(shape) < 1:
        raise ValueError(f"images is empty: shape {shape}")


def frame_rgb8(image: Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """One IMAGE frame ``[H, W, C]`` (0..1) as ``(H', W', 3)`` uint8 RGB for optical flow.

    Grey frames are repeated to RGB and alpha is dropped; ``size`` ``(W, H)`` resizes (area
    averaging when shrinking, bilinear when enlarging, as :func:`warpnoise.io.read_frames`).
    """
    import cv2

    x = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(-1, -1, 3)
    x = x.detach().float().cpu()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("an IMAGE frame contains NaN or inf values")
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    h, w = arr.shape[:2]
    if size is not None and tuple(size) != (w, h):
        interp = cv2.INTER_AREA if size[0] * size[1] < w * h else cv2.INTER_LINEAR
        arr = cv2.resize(arr, tuple(size), interpolation=interp)
    return np.ascontiguousarray(arr)


def _shrink(row: np.ndarray, width: int) -> np.ndarray:
    """A preview row with panels at most :data:`PREVIEW_WIDTH` wide (area averaging): ComfyUI
    holds IMAGE outputs as float32, 12 bytes per pixel."""
    import cv2

    if width <= PREVIEW_WIDTH:
        return row
    h = max(1, round(row.shape[0] * PREVIEW_WIDTH / width))
    return cv2.resize(row, (3 * PREVIEW_WIDTH, h), interpolation=cv2.INTER_AREA)


def _comfy_hint(e: ValueError) -> ValueError:
    # check_video's hints name the command line's options; say what a ComfyUI user changes.
    msg = re.sub(r"\(--frames \d+\)", "(trim the IMAGE batch, e.g. with Get Image from Batch)",
                 str(e))
    return ValueError(msg.replace("(--size)", "(set the node's width and height)"))


@dataclass
class LatentNoise:
    """Warped noise on a model's latent grid (what the nodes output).

    Attributes:
        frames: ``(F, C, h, w)`` float32 CPU: the kept, degraded latent frames.
        preset: the model's latent preset (or :func:`custom_preset`).
        pixel_frames: the pixel frames ``T`` they came from.
        pixel_size: ``(W, H)`` of those frames, when known.
        generator: the degradation stream after the last frame (CogVideoX 1.5's diffusers
            padding continues it, as in :func:`~warpnoise.diffusion.latents_for`).
        preview: ``(F, H', 3W', 3)`` uint8 rows input | flow | noise of the kept frames
            (panels at most :data:`PREVIEW_WIDTH` wide), or None.
    """

    frames: Tensor
    preset: LatentPreset
    pixel_frames: int
    pixel_size: tuple[int, int] | None
    generator: torch.Generator
    preview: np.ndarray | None = None


@dataclass(frozen=True)
class _Frames:
    """An IMAGE batch as the re-iterable ``(H, W, 3)`` uint8 frames at the warp's size that
    frame-guided methods (``control-a-video``) read, converted one at a time as they are read."""

    images: Tensor
    size: tuple[int, int]

    def __iter__(self) -> Any:
        return (frame_rgb8(image, self.size) for image in self.images)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def latent_noise_from_images(
    images: Tensor,
    model: str | LatentPreset,
    *,
    estimator: PairEstimator,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    degradation: float = 0.0,
    size: tuple[int, int] | None = None,
    device: str = "cpu",
    method_options: dict[str, Any] | None = None,
    preview: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> LatentNoise:
    """Warp noise along a ComfyUI IMAGE batch and keep it on the model's latent grid.

    Frame by frame: flow of the pair (``estimator``, backward and forward for occlusions), one
    warper step at pixel resolution, ``s x s`` block integration, and for every ``r``-th frame
    degradation γ (Go-with-the-Flow, Burgert et al. CVPR 2025, §3.3). Memory is one pixel frame
    of noise plus the warper's state plus the latent frames, whatever the clip's length.

    Convention:
        ``images`` ``[T, H, W, C]`` in [0, 1] (ComfyUI's IMAGE), resized to ``size`` ``(W, H)``
        if given; the clip must follow the model's frame and size rules
        (:func:`~warpnoise.diffusion.check_video`). ``seed`` seeds the warper and, through
        ``derive_seed(seed, "degradation")``, the degradation: the same bits as
        ``warpnoise noise --latent MODEL --seed SEED --degradation γ`` on the same frames.
        ``on_frame(done, total)`` is called after each pixel frame.

    Raises:
        ValueError: bad images, a clip that breaks the model's rules (with the sizes that keep
            them), a bad method, option, degradation or device.
    """
    _check_images(images)
    p = latent_preset(model)
    t, h, w = (int(v) for v in images.shape[:3])
    if size is not None:
        w, h = size
    try:
        check_video(p, t, h, w)
    except ValueError as e:
        raise _comfy_hint(e) from None
    warp = WarpSpec.checked(method, method_options, seed, device)
    stream = NoiseStream(warp, Target(p.channels, p.spatial, p.temporal, p),
                         Degradation.of(degradation, seed=seed), t, h, w,
                         guide=_Frames(images, (w, h)))
    # The first run compiles the kernels (a minute on the CPU): say so rather than wait silently.
    notice = compile_notice(method, p.channels, device, warp.options)
    if notice is not None:
        print(notice, file=sys.stderr, flush=True)
    started = time.perf_counter()
    # A method that ignores flows gets zero flows: none is estimated unless the preview shows it.
    estimate = uses_flows(method) or preview
    kept: list[Tensor] = []
    rows: list[np.ndarray] = []
    for item in stream.run(_image_steps(images, (w, h), estimator if estimate else None)):
        kept.append(item.noise)
        if preview:
            rows.append(_shrink(stream.preview(item), w))
        if notice is not None and item.index >= 1:
            print(f"warpnoise: kernels ready ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
            notice = None
        if on_frame is not None:
            on_frame(item.index + 1, t)
    if on_frame is not None and t > 1 and not stream.target.keeps(t - 1):
        on_frame(t, t)
    return LatentNoise(frames=torch.stack(kept), preset=p, pixel_frames=t, pixel_size=(w, h),
                       generator=stream.generator, preview=np.stack(rows) if preview else None)


def _image_steps(images: Tensor, size: tuple[int, int],
                 estimator: PairEstimator | None) -> Iterator[Step]:
    """The streaming core's steps from an IMAGE batch: each frame as ``(H, W, 3)`` uint8 at
    ``size`` with its flows from ``estimator`` (zero flows without one: a method that ignores
    them, and no preview)."""
    w, h = size
    prev = frame_rgb8(images[0], size)
    yield prev, None, None
    still = torch.zeros(2, h, w)
    for image in images[1:]:
        cur = frame_rgb8(image, size)
        b, f = (still, still) if estimator is None else estimator(prev, cur)
        yield cur, b, f
        prev = cur


def load_latent_noise(
    path: str | os.PathLike,
    model: str,
    *,
    temporal: int = 4,
    degradation: float = 0.0,
    seed: int = 0,
) -> LatentNoise:
    """Latent frames from a noise file, checked against a model and degraded.

    Accepts what ``warpnoise noise`` writes: ``.safetensors`` noise ``(T, C, h, w)`` (made with
    ``--downsample s`` so that it is on the latent grid), a ``--latent MODEL`` file (the
    pipeline's ``latents=``, already on latent frames), and Go-with-the-Flow's ``noises.npy``
    ``[T, h, w, C]``. Noise files keep every ``r``-th frame (49 → 13 for ``r = 4``, what
    Go-with-the-Flow's inference does). ``model="custom"`` takes the channels from the file and
    ``temporal`` as ``r``. Degradation as in :func:`latent_noise_from_images` (``seed`` is the
    degradation's seed; the same seed as the file's warp gives the bits of ``warpnoise noise
    --latent MODEL --degradation γ``).

    Raises:
        ValueError: a missing or malformed file, channels or frames that do not fit the model.
    """
    check_degradation(degradation)
    latents = meta = None
    if str(path).lower().endswith(".safetensors"):
        try:
            latents, meta = load_latents(path)
        except ValueError as e:
            if "has no 'latents' tensor" not in str(e):
                raise
    gen = make_generator(derive_seed(seed, "degradation"))
    if latents is not None and meta is not None and meta.get("format") == LATENTS_FORMAT:
        p = latent_preset(meta.get("latent_model", "?"))
        if model not in ("custom", p.name):
            raise ValueError(f"{str(path)!r} holds {p.title} latents (--latent {p.name}); choose "
                             f"model {p.name} or custom")
        w, h = (int(v) for v in meta["frame_size"].split("x"))
        t = int(meta["frames"])
        frames = split_latents(latents.float(), p, h, w, t)
        size: tuple[int, int] | None = (w, h)
    else:
        noise, meta = load_noise(path)
        t, c = int(noise.shape[0]), int(noise.shape[1])
        p = custom_preset(c, 1, temporal) if model == "custom" else latent_preset(model)
        if c != p.channels:
            raise ValueError(f"{p.title} takes {p.channels} latent channels but {str(path)!r} "
                             f"has {c} (make it with --channels {p.channels} or --latent {p.name})")
        check_video(p, t, noise.shape[2] * p.spatial, noise.shape[3] * p.spatial)
        frames = noise[:: p.temporal].float()
        size = (noise.shape[3] * p.spatial, noise.shape[2] * p.spatial) if p.spatial > 1 else None
    frames = torch.stack([degrade(f, degradation, generator=gen) for f in frames])
    return LatentNoise(frames=frames, preset=p, pixel_frames=t, pixel_size=size, generator=gen)


def _resolve(layout: str, preset: LatentPreset) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown latent layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        return "B,C,T,H,W" if preset.is_video else "T,C,H,W"
    return layout


def arrange(noise: LatentNoise, layout: str = "auto") -> Tensor:
    """The latent frames in ``layout`` for one clip: a LATENT's ``samples``.

    ``auto`` is ComfyUI's own layout for the model: ``[1, C, F, h, w]`` for video models,
    ``[F, C, h, w]`` for image models (frames are the batch). Repeated calls give the same
    tensor (``diffusers`` padding is drawn from a copy of ``noise.generator``).
    """
    lay = _resolve(layout, noise.preset)
    if lay in _VIDEO_LAYOUTS:
        return to_video_latents(noise.frames, _VIDEO_LAYOUTS[lay])
    if lay == "T,C,H,W":
        return noise.frames.clone()
    # A copy of the stream: every call pads with the same draws (those latents_for would make).
    gen = torch.Generator(noise.generator.device)
    gen.set_state(noise.generator.get_state())
    return arrange_latents(noise.frames, noise.preset, seed=None, generator=gen)


class WarpedNoise:
    """A ComfyUI ``NOISE``: warped latent frames served in the shape of the sampler's latent.

    ``generate_noise(input_latent)`` returns a CPU tensor shaped exactly like
    ``input_latent["samples"]`` (dtype too), as ``SamplerCustomAdvanced`` needs. Video layouts
    repeat the clip over the latent's batch; with frames as the batch, a latent holding a subset
    of the frames (``batch_index``, from ComfyUI's batch nodes) gets those frames. With
    ``layout="auto"`` the layout is read from the latent: 5-D ``[B, C, T, H, W]`` (else
    ``[B, T, C, H, W]``), 4-D frames as the batch. Anything else raises a ValueError naming both
    shapes and what differs.
    """

    def __init__(self, noise: LatentNoise, *, seed: int, layout: str = "auto") -> None:
        self.seed = seed
        self.noise = noise
        self.layout = layout
        self._resolved = _resolve(layout, noise.preset)
        self._base = arrange(noise, layout)

    def _laid_out(self, layout: str) -> Tensor:
        return self._base if layout == self._resolved else arrange(self.noise, layout)

    def _batched(self, layout: str) -> bool:
        return layout in _VIDEO_LAYOUTS or (layout == "diffusers" and self.noise.preset.is_video)

    def _fit(self, layout: str, shape: tuple[int, ...], batch_index: Any) -> Tensor | None:
        x = self._laid_out(layout)
        if x.ndim != len(shape):
            return None
        if self._batched(layout):
            return x.expand(shape[0], *x.shape[1:]).clone() if x.shape[1:] == shape[1:] else None
        if tuple(x.shape) == shape:
            return x.clone()
        if (isinstance(batch_index, (list, tuple)) and len(batch_index) == shape[0]
                and x.shape[1:] == shape[1:]
                and all(isinstance(i, int) and 0 <= i < x.shape[0] for i in batch_index)):
            return x[list(batch_index)].clone()
        return None

    def generate_noise(self, input_latent: dict[str, Any]) -> Tensor:
        """Noise shaped like ``input_latent["samples"]`` (ComfyUI's NOISE protocol)."""
        samples = input_latent.get("samples") if isinstance(input_latent, dict) else None
        if not isinstance(samples, Tensor):
            raise ValueError("the sampler's latent has no 'samples' tensor")
        if samples.is_nested:
            raise ValueError("the sampler's latent is a nested tensor (several latents, e.g. "
                             "video and audio); warped noise covers one video latent")
        shape = tuple(int(s) for s in samples.shape)
        if self.layout != "auto":
            candidates = [self._resolved]
        elif len(shape) == 5:
            candidates = ["B,C,T,H,W", "B,T,C,H,W"]
        else:
            candidates = ["T,C,H,W"]
        for layout in candidates:
            out = self._fit(layout, shape, input_latent.get("batch_index"))
            if out is not None:
                dtype = samples.dtype if samples.dtype.is_floating_point else torch.float32
                return out.to("cpu", dtype)
        raise ValueError(self._mismatch(shape, candidates[0]))

    def _mismatch(self, shape: tuple[int, ...], layout: str) -> str:
        f, c, h, w = self.noise.frames.shape
        x = self._laid_out(layout)
        want = (shape[0], *x.shape[1:]) if self._batched(layout) else tuple(x.shape)
        msg = (f"the warped noise does not fit the sampler's latent: latent samples have shape "
               f"{shape}, the noise ({f} latent frames, {c} channels, {w}x{h} latent pixels) "
               f"laid out {layout} has shape {want}")
        dims = _DIMS.get(layout)
        if len(want) != len(shape):
            msg += f"; the latent is {len(shape)}-D, the noise {len(want)}-D"
        elif dims is not None:
            diff = [f"{_DIM_NAMES[d]} {a} vs {b}" for d, a, b in zip(dims, want, shape,
                                                                     strict=True) if a != b]
            msg += f"; {', '.join(diff)} (noise vs latent)"
        p, size = self.noise.preset, self.noise.pixel_size
        if size is not None:
            msg += (f". This noise is for {self.noise.pixel_frames} frames of {size[0]}x{size[1]} "
                    f"({p.title}): give the latent that width, height and length")
        return msg


def resolve_input_path(path: str, input_folder: str | None) -> Path:
    """The file ``path`` names inside ComfyUI's ``input_folder``, as core loaders read files.

    ``path`` is relative to ``input_folder`` (subfolders allowed) or an absolute path inside it;
    symlinks are followed before the check, so a link pointing out is refused too. A shared
    server then never hands a workflow a file outside its input folder. With no input folder
    (the node run outside ComfyUI) ``path`` is taken as given.

    Raises:
        ValueError: the path resolves outside ``input_folder``.
    """
    text = path.strip()
    if input_folder is None:
        return Path(text).expanduser()
    root = Path(input_folder).resolve()
    p = (root / text).resolve()  # an absolute `text` replaces root; `..` and links resolve
    if not p.is_relative_to(root):
        raise ValueError(f"{text!r} is outside ComfyUI's input folder {str(root)!r}: put the "
                         "noise file there (subfolders are fine) and give its name relative to "
                         "it")
    return p
