"""``warpnoise motion``: noise, driving animation and masks from a motion you author. Thin:
parse, check everything, call :func:`warpnoise.motion.write`, print."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..methods import DEFAULT_METHOD
from . import app
from ._common import handle_errors, progress_bar
from .options import (
    BackendOpt,
    ChannelsOpt,
    DegradationMapOpt,
    DegradationOpt,
    DeviceOpt,
    DtypeOpt,
    LatentOpt,
    MethodOpt,
    OptionOpt,
    QuietOpt,
    SeedOpt,
    noise_options,
)

_CAMERA = "Ready-made camera moves (instead of a motion file)"


def _pair(text: str, name: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{name} must be two numbers DX,DY, got {text!r}") from None
    if not all(map(math.isfinite, (x, y))):
        raise ValueError(f"{name} must be finite numbers, got {text!r}")
    return x, y


@app.command("motion")
@handle_errors
def motion_command(
    image: Annotated[Path, typer.Argument(
        help="The first frame: an image (png, jpg, ...) or a video (its first frame).",
        show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Output folder: noise.safetensors, animation.mp4, "
        "mask_<k>_<name>.mp4 per layer, preview.mp4 (with --preview).")],
    motion: Annotated[Path | None, typer.Argument(
        help="Motion file (JSON): camera keyframes and layers to cut and drag. See "
        "docs/motion.md; an example: warpnoise/data/motion_example.json.",
        show_default=False)] = None,
    frames: Annotated[int | None, typer.Option(
        "--frames", help="Number of frames (overrides the motion file's; default 49 for the "
        "ready-made moves).")] = None,
    pan: Annotated[str | None, typer.Option(
        "--pan", help="Move the picture by DX,DY pixels over the clip.", rich_help_panel=_CAMERA)
    ] = None,
    zoom: Annotated[float | None, typer.Option(
        "--zoom", help="Magnify the picture S times over the clip (about its centre).",
        rich_help_panel=_CAMERA)] = None,
    rotate: Annotated[float | None, typer.Option(
        "--rotate", help="Turn the picture DEG degrees clockwise over the clip.",
        rich_help_panel=_CAMERA)] = None,
    fps: Annotated[float, typer.Option(
        "--fps", help="Frame rate of the ready-made moves' videos.", rich_help_panel=_CAMERA)
    ] = 16.0,
    method: MethodOpt = DEFAULT_METHOD,
    channels: ChannelsOpt = 4,
    seed: SeedOpt = 0,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    option: OptionOpt = None,
    backend: BackendOpt = "auto",
    latent: LatentOpt = None,
    degradation: DegradationOpt = 0.0,
    degradation_map: DegradationMapOpt = None,
    preview: Annotated[bool, typer.Option(
        "--preview", help="Also write preview.mp4: animation with layer outlines | flow | "
        "noise.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Noise for motion you author: cut-and-drag layers and camera moves, exact flows.

    Reads the first frame of IMAGE and a motion file (or --pan/--zoom/--rotate), computes the
    exact flows of the motion, warps noise along them (i.i.d. N(0,1) in every frame) and writes
    the noise, the driving animation (layers cut out and moved, holes inpainted) and one mask
    video per layer into the output folder. Everything is checked before any work.
    """
    from .. import motion as mo

    opts = noise_options(method=method, channels=channels, seed=seed, dtype=dtype,
                         device=device, option=option, backend=backend, latent=latent,
                         degradation=degradation, degradation_map=degradation_map)
    opts.plan()  # every noise option checked before the motion is read
    camera = pan is not None or zoom is not None or rotate is not None
    if motion is not None and camera:
        raise ValueError("give a motion file or --pan/--zoom/--rotate, not both (put the camera "
                         "move in the file's 'camera')")
    if motion is None and not camera:
        raise ValueError("give a motion file, or a ready-made move with --pan, --zoom or "
                         "--rotate")
    if frames is not None and frames < 2:
        raise ValueError(f"--frames must be at least 2, got {frames}")
    if motion is not None:
        spec = mo.load(motion)
        if frames is not None:
            spec = spec.with_frames(frames)
    else:
        if zoom is not None and not (zoom > 0 and math.isfinite(zoom)):
            raise ValueError(f"--zoom must be a positive number, got {zoom}")
        if rotate is not None and not math.isfinite(rotate):
            raise ValueError(f"--rotate must be a finite number, got {rotate}")
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"--fps must be a positive number, got {fps}")
        spec = mo.camera_move(49 if frames is None else frames,
                              pan=(0.0, 0.0) if pan is None else _pair(pan, "--pan"),
                              zoom=1.0 if zoom is None else zoom,
                              rotate=0.0 if rotate is None else rotate, fps=fps)
    sc, first = mo.load_scene(spec, image, None if motion is None else motion.parent)
    with progress_bar(quiet) as progress:
        res = mo.write(first, sc, output, opts, preview=preview, progress=progress,
                       inputs={"IMAGE": image, "MOTION": motion})
    for note in res.notes:
        typer.echo(f"note: {note}", err=True)
    s = res.seconds
    what = "noise" if latent is None else f"{latent} latents="
    typer.echo(f"wrote {res.noise.output}: {what} {tuple(res.noise.shape)}, seed {seed}; "
               f"{res.animation.name}, {len(res.masks)} mask video(s)"
               + (f", {res.preview.name}" if res.preview else "") + f" in {output}")
    typer.echo(f"time {s['total']:.2f} s for {sc.frames} frames of {sc.width}x{sc.height}: "
               f"flows {s['flows']:.2f} s, render {s['render']:.2f} s, warp {s['warp']:.2f} s, "
               f"videos {s['videos']:.2f} s, write {s['write']:.2f} s")
