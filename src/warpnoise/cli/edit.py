"""``warpnoise edit`` and ``warpnoise demo``: a video edited by an image diffusion model with
warped noise, and the offline reproduction of the paper's comparison. Thin: parse, call
:mod:`warpnoise.diffusion`, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..methods import DEFAULT_METHOD, methods
from . import app
from ._common import handle_errors, progress_bar
from .io_commands import (
    FramesOpt,
    InputArg,
    PresetOpt,
    QuietOpt,
    ScaleOpt,
    StartOpt,
    StrideOpt,
    _method_options,
    _size,
)

_DIFFUSION = "Diffusion"


@app.command("edit")
@handle_errors
def edit_command(
    input: InputArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Edited video (.mp4).")],
    noise: Annotated[str, typer.Option(
        "--noise", "-n", help=f"Noise method: {', '.join(methods())}.")] = DEFAULT_METHOD,
    model: Annotated[str, typer.Option(
        "--model", help="'bundled' (the project's small pixel-space denoiser) or a .safetensors "
        "saved by warpnoise.diffusion.model.save_denoiser (config .json beside it).",
        rich_help_panel=_DIFFUSION)] = "bundled",
    task: Annotated[str, typer.Option(
        "--task", help="sdedit: re-noise and denoise the frames; sr4: 4x super-resolution "
        "(SDEdit from the bicubic upsampling of the input).", rich_help_panel=_DIFFUSION)
    ] = "sdedit",
    strength: Annotated[float, typer.Option(
        "--strength", help="SDEdit strength t0/T in (0, 1].", rich_help_panel=_DIFFUSION)] = 0.2,
    steps: Annotated[int, typer.Option(
        "--steps", help="Steps of the full schedule; strength x steps of them run.",
        rich_help_panel=_DIFFUSION)] = 50,
    eta: Annotated[float, typer.Option(
        "--eta", help="DDIM eta: 1 puts fresh warped noise in at every step, 0 only at the "
        "start.", rich_help_panel=_DIFFUSION)] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Frames per model call (memory vs speed).",
        rich_help_panel=_DIFFUSION)] = 8,
    dis_preset: PresetOpt = "medium",
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="Noise method option KEY=VALUE (JSON value), repeatable.")] = None,
    size: Annotated[str | None, typer.Option(
        "--size", help="Resize input frames to WxH (multiples of 8; of 2 for --task sr4).")
    ] = None,
    scale: ScaleOpt = None,
    start: StartOpt = 0,
    frames: FramesOpt = None,
    stride: StrideOpt = 1,
    fps: Annotated[float, typer.Option("--fps", help="Frame rate of the output.")] = 12.0,
    quiet: QuietOpt = False,
) -> None:
    """Edit a video frame by frame with a pixel-space diffusion model fed warped noise.

    The noise is warped along DIS optical flow of the input (at output resolution) and enters
    at the start (add_noise) and, with --eta > 0, at every DDIM step.

    Needs the whole clip: its frames, flows and noise are held in memory (pick a part with
    --start/--frames/--stride).
    """
    from ..diffusion.model import load_denoiser
    from ..diffusion.video import EditOptions, edit_frames
    from ..io.atomic import check_writable
    from ..io.video import read_frames, write_video

    opts = EditOptions(method=noise, task=task, strength=strength, steps=steps, eta=eta,
                       seed=seed, batch_size=batch_size, dis_preset=dis_preset,
                       method_options=_method_options(option or []))
    opts.check()
    out = check_writable(output)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"output {str(out)!r} must be an .mp4 file")
    unet, scheduler = load_denoiser(None if model == "bundled" else model)
    with progress_bar(quiet) as progress:
        clip = read_frames(input, size=_size(size), scale=scale, start=start, frames=frames,
                           stride=stride)
        result = edit_frames(clip, opts, unet=unet, scheduler=scheduler, progress=progress)
    write_video(out, result.frames, fps=fps)
    s = result.seconds
    t, h, w = result.frames.shape[:3]
    typer.echo(f"wrote {out}: {t} frames {w}x{h}, task {task}, noise {noise}, seed {seed}")
    typer.echo(f"time {s['total']:.1f} s: flow {s['flow']:.1f} s, noise {s['noise']:.1f} s, "
               f"diffusion {s['diffusion']:.1f} s")


@app.command("demo")
@handle_errors
def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")
                      ] = Path("demo_out"),
    frames: Annotated[int | None, typer.Option(
        "--frames", help="Use the first N frames of the 16-frame clip (faster).")] = None,
    strength: Annotated[float, typer.Option("--strength", rich_help_panel=_DIFFUSION)] = 0.2,
    steps: Annotated[int, typer.Option("--steps", rich_help_panel=_DIFFUSION)] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    noise: Annotated[list[str] | None, typer.Option(
        "--noise", "-n", help="Methods to compare (repeatable); default random, fixed, "
        f"bilinear, integral and {DEFAULT_METHOD}.")] = None,
    noise_preview: Annotated[bool, typer.Option(
        "--noise-preview/--no-noise-preview", help="Also turn the bundled sample.mp4 into warped "
        "noise + a preview video (the basic `warpnoise noise` path).")] = True,
    quiet: QuietOpt = False,
) -> None:
    """4x video super-resolution of a bundled real clip with the bundled model, once per noise
    method: side_by_side.mp4, comparison.png, frame_strip.png, results.json, results.md."""
    from ..diffusion.demo import run_demo

    for m in noise or []:
        if m not in methods():
            raise ValueError(f"unknown noise method {m!r}; choose one of {', '.join(methods())}")
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {str(output)!r} exists and is not a folder")

    def log(msg: str) -> None:
        if not quiet:
            typer.echo(msg, err=True)

    with progress_bar(quiet) as progress:
        result = run_demo(output, strength=strength, steps=steps, seed=seed, frames=frames,
                          methods=noise, noise_preview=noise_preview, progress=progress,
                          log=log)
    typer.echo((output / "results.md").read_text().rstrip())
    typer.echo(f"wrote {output}/: side_by_side.mp4, comparison.png, frame_strip.png, "
               f"results.json, results.md in {result['seconds_total']:.0f} s")
