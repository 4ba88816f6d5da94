"""From a motion description to noise: in memory (:func:`noise`) or as files (:func:`write`).

The noise is the chosen warper (default: the project's default method) run on the exact flows
of :func:`warpnoise.motion.flows`, at pixel resolution, then (for files) the same latent presets,
degradation and file format as ``warpnoise noise`` (:func:`warpnoise.pipeline.flows_to_noise`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..field import block_integrate
from ..io.atomic import check_output_folder, check_outputs
from ..io.video import IMAGE_EXTENSIONS, FrameSource, VideoWriter
from ..methods import DEFAULT_METHOD
from ..pipeline import NoiseOptions, NoiseResult, Progress, check_frame_shape, flows_to_noise
from ..warper import NoiseWarper
from .flows import flows
from .render import AnimationFrame, draw_outlines, outlines, render
from .scene import Scene, scene
from .spec import Motion

__all__ = ["FLOW_NOTE", "MotionResult", "first_frame", "leaving_frames", "load_scene", "noise",
           "write"]

#: What the noise files' metadata says of the flows.
FLOW_NOTE = "exact (warpnoise.motion: analytic flows of the motion description)"
OCCLUSION_NOTE = "exact: pixels hidden in frame t-1 have their source a frame width left of it"


def first_frame(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """The first frame of an image or a video as ``(H, W, 3)`` uint8 RGB, resized to ``size``
    ``(W, H)`` if given (area averaging when shrinking).

    Raises:
        ValueError: a missing or unreadable file.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"image {str(p)!r} does not exist")
    if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
        import cv2

        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read image {str(p)!r}")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
            shrink = size[0] * size[1] < img.shape[0] * img.shape[1]
            img = cv2.resize(img, tuple(size),
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.ascontiguousarray(img)
    return next(iter(FrameSource(p, size=size, frames=1)))


def leaving_frames(sc: Scene) -> dict[str, list[int]]:
    """Per layer name, the frames in which its whole outline lies outside the frame (it is not
    seen there; nothing of it is carried, and pixels it brings back in get fresh noise)."""
    out: dict[str, list[int]] = {}
    for t in range(sc.frames):
        for k, pts in enumerate(outlines(sc, t)):
            p = np.concatenate(pts)
            x, y = p[:, 0], p[:, 1]
            if (x.max() < -0.5 or x.min() > sc.width - 0.5 or y.max() < -0.5
                    or y.min() > sc.height - 0.5):
                out.setdefault(sc.layers[k].name, []).append(t)
    return out


def noise(sc: Scene, channels: int = 4, *, method: str = DEFAULT_METHOD, seed: int = 0,
          downsample: int = 1, device: torch.device | str = "cpu",
          **options: Any) -> Tensor:
    """Warped noise ``(T, C, H/s, W/s)`` float32 for the scene's motion, in memory.

    Warps at pixel resolution along the exact flows, then integrates ``s x s`` blocks
    (``downsample``, sum / s: still i.i.d. N(0, 1)). For a diffusers pipeline pass the
    ``downsample=1`` result to :func:`warpnoise.diffusion.latents_for` with ``grid="pixel"``;
    for files and long clips use :func:`write`, which streams.
    """
    if sc.height % downsample or sc.width % downsample:
        raise ValueError(f"frame size {sc.width}x{sc.height} is not divisible by downsample "
                         f"{downsample}")
    warper = NoiseWarper(channels, sc.height, sc.width, method, seed=seed, device=device,
                         **options)
    out = [block_integrate(warper.noise, downsample).cpu()]
    for step in flows(sc):
        out.append(block_integrate(warper.step(step.backward, step.forward), downsample).cpu())
    return torch.stack(out)


@dataclass
class MotionResult:
    """What :func:`write` wrote, and the seconds spent on flows, rendering, warping, writing."""

    noise: NoiseResult
    animation: Path
    masks: list[Path]
    preview: Path | None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _mask_video_name(k: int, name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return f"mask_{k}_{safe}.mp4"


def write(
    image: np.ndarray,
    sc: Scene,
    out_dir: str | os.PathLike,
    options: NoiseOptions,
    *,
    preview: bool = False,
    progress: Progress | None = None,
    on_frame: Callable[[AnimationFrame], None] | None = None,
    inputs: dict[str, str | os.PathLike | None] | None = None,
) -> MotionResult:
    """Write the noise, the animation, one mask video per layer and (``preview``) a preview.

    Files in ``out_dir`` (created if needed), each appearing atomically when complete:
    ``noise.safetensors`` (as ``warpnoise noise -o``: tensor ``noise`` ``(T, C, H/s, W/s)``, or
    with ``options.latent`` the pipeline's ``latents``; metadata records the motion description
    as ``motion``), ``animation.mp4`` (the driving animation at the motion's fps),
    ``mask_<k>_<name>.mp4`` (layer k's visible share, white = 1) and ``preview.mp4``
    (animation with layer outlines | flow | noise). Frames stream: memory does not grow with the
    clip's length (the latent frames of ``--latent`` aside, as for ``warpnoise noise``).

    ``inputs`` (``{what: path}``, e.g. the image and the motion file) are the files the caller
    read: no output may be one of them (:func:`warpnoise.io.atomic.check_outputs`).

    Raises:
        ValueError: bad options, an image that is not the scene's size, a frame count or size
            that the latent preset refuses, an output that is an input; all before anything is
            written.
    """
    if image.shape != (sc.height, sc.width, 3):
        raise ValueError(f"the image is {image.shape[1]}x{image.shape[0]} but the motion's "
                         f"frames are {sc.width}x{sc.height}")
    out = check_output_folder(out_dir)
    plan = replace(options, preview_fps=sc.fps).plan()
    names = ["noise.safetensors", "animation.mp4", "preview.mp4",
             *(_mask_video_name(k, layer.name) for k, layer in enumerate(sc.layers))]
    check_outputs({n: out / n for n in names}, inputs, writable=False)
    check_frame_shape(plan, sc.frames, sc.height, sc.width)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {"flows": 0.0, "render": 0.0}
    meta = {"flow": FLOW_NOTE, "occlusion": OCCLUSION_NOTE, "motion": sc.spec.to_json(),
            "frame_size": f"{sc.width}x{sc.height}", "fps": str(sc.fps)}
    anim_path = out / "animation.mp4"
    mask_paths = [out / _mask_video_name(k, layer.name) for k, layer in enumerate(sc.layers)]
    with ExitStack() as stack:
        anim = stack.enter_context(VideoWriter(anim_path, sc.fps))
        masks = [stack.enter_context(VideoWriter(p, sc.fps)) for p in mask_paths]

        def steps() -> Iterator[tuple[np.ndarray | None, Tensor | None, Tensor | None]]:
            frames, pairs = render(sc, image), flows(sc)
            for t in range(sc.frames):
                tic = time.perf_counter()
                fr = next(frames)
                toc = time.perf_counter()
                step = None if t == 0 else next(pairs)
                seconds["flows"] += time.perf_counter() - toc
                seconds["render"] += toc - tic
                anim.write(fr.image)
                for k, w in enumerate(masks):
                    grey = (fr.masks[k] * 255 + 0.5).astype(np.uint8)
                    w.write(np.repeat(grey[..., None], 3, axis=2))
                if on_frame is not None:
                    on_frame(fr)
                shown = draw_outlines(fr.image, sc, t) if preview else None
                yield shown, (None if step is None else step.backward), (
                    None if step is None else step.forward)

        res = flows_to_noise(steps(), out / "noise.safetensors", plan,
                             (sc.frames, sc.height, sc.width), meta,
                             preview=out / "preview.mp4" if preview else None, progress=progress)
    s = res.seconds | seconds
    # "flow" is the time spent producing the steps: flows, rendering and the video writes.
    s["videos"] = max(s.pop("flow") - seconds["flows"] - seconds["render"], 0.0)
    notes = [f"layer {name!r} is entirely outside the frame in {len(ts)} frames "
             f"({ts[0]}..{ts[-1]}): nothing of it is seen or carried there; what of it comes "
             "back in gets fresh noise" for name, ts in leaving_frames(sc).items()]
    return MotionResult(res, anim_path, mask_paths, res.preview, s, notes)


def load_scene(motion: Motion, image_path: str | os.PathLike,
               base: str | os.PathLike | None = None) -> tuple[Scene, np.ndarray]:
    """The scene of ``motion`` for the first frame of ``image_path`` (resized to the motion's
    ``size`` if it gives one), and that frame."""
    img = first_frame(image_path, None if motion.size is None else tuple(motion.size))
    return scene(motion, (img.shape[1], img.shape[0]), base), img

