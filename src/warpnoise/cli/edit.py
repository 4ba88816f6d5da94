"""``warpnoise edit`` and ``warpnoise demo``: a video edited by an image diffusion model with
warped noise, and the offline reproduction of the paper's comparison. Thin: parse, call
:mod:`warpnoise.diffusion`, print."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..editing.demo import CLIPS, FORMER
from ..editing.demo import SAMPLING as DEMO_SAMPLING
from ..editing.models import SCHEDULERS
from ..editing.sr import STEPS as SR_STEPS
from ..editing.sr import STRENGTH as SR_STRENGTH
from ..methods import DEFAULT_METHOD
from . import app
from ._common import handle_errors, progress_bar
from .options import (
    BackendOpt,
    FramesOpt,
    InputArg,
    MethodOpt,
    OptionOpt,
    PresetOpt,
    QuietOpt,
    ScaleOpt,
    SeedOpt,
    SizeOpt,
    StartOpt,
    StrideOpt,
    method_options,
    size_option,
)

_DIFFUSION = "Diffusion"
#: The former name of ``edit --method``, kept working for existing scripts (hidden from --help).
NoiseAliasOpt = Annotated[str | None, typer.Option(
    "--noise", "-n", hidden=True, help="Deprecated name of --method.")]


def _method(method: str, noise: str | None) -> str:
    """``--method``, or the deprecated ``--noise`` given instead of it (a note on stderr)."""
    if noise is None:
        return method
    if method not in (DEFAULT_METHOD, noise):
        raise ValueError(f"give --method or its former name --noise, not both (got {method!r} "
                         f"and {noise!r})")
    typer.echo("warpnoise: note: edit --noise is deprecated; use --method", err=True)
    return noise


def _quiet_hub_logs() -> None:
    """diffusers/transformers print load bars and advice on stderr; the command has its own."""
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    try:
        import transformers
    except ImportError:  # pragma: no cover - transformers comes with the diffusion extra
        return
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command("edit")
@handle_errors
def edit_command(
    input: InputArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Edited video (.mp4).")],
    method: MethodOpt = DEFAULT_METHOD,
    noise: NoiseAliasOpt = None,
    model: Annotated[str, typer.Option(
        "--model", help="'bundled' (the project's models: a small pixel-space denoiser for "
        "--task sdedit, the conditional 4x super-resolver for --task sr4), a .safetensors saved "
        "by warpnoise.editing.denoiser.save_denoiser or diffusion.sr.save_sr_model (config .json "
        "beside it), a local diffusers pipeline folder, or a hub id (from_pretrained; needs a "
        "network). UNet pipelines: Stable Diffusion 1.x/2.x, SDXL, DeepFloyd IF stage I, DDPM.",
        rich_help_panel=_DIFFUSION)] = "bundled",
    prompt: Annotated[str | None, typer.Option(
        "--prompt", help="Text prompt (text-conditioned pipelines).", rich_help_panel=_DIFFUSION)
    ] = None,
    negative_prompt: Annotated[str | None, typer.Option(
        "--negative-prompt", help="Negative prompt, used with --guidance > 1.",
        rich_help_panel=_DIFFUSION)] = None,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", help="Classifier-free guidance scale (text pipelines; default 7.5).",
        rich_help_panel=_DIFFUSION)] = None,
    scheduler: Annotated[str, typer.Option(
        "--scheduler", help=f"{', '.join(SCHEDULERS)}: built from the model's scheduler config; "
        "'pipeline' keeps the model's own. Stochastic steps get fresh warped noise (ddim with "
        "--eta > 0, ddpm, euler-a, dpm-sde).", rich_help_panel=_DIFFUSION)] = "ddim",
    dtype: Annotated[str, typer.Option(
        "--dtype", help="Model precision: float32, float16 or bfloat16.",
        rich_help_panel=_DIFFUSION)] = "float32",
    device: Annotated[str, typer.Option(
        "--device", help="Where the model and the warper run: cpu, cuda, cuda:N, mps.",
        rich_help_panel=_DIFFUSION)] = "cpu",
    task: Annotated[str, typer.Option(
        "--task", help="sdedit: re-noise and denoise the frames; sr4: 4x super-resolution "
        "(sampled conditioned on the bicubic upsampling; with a plain denoiser, SDEdit from "
        "it).", rich_help_panel=_DIFFUSION)] = "sdedit",
    strength: Annotated[float | None, typer.Option(
        "--strength", help="Share t0/T of the reverse process that runs, in (0, 1] (SDEdit "
        f"strength). Default: 0.2 for sdedit, {SR_STRENGTH} for sr4 with the bundled model.",
        rich_help_panel=_DIFFUSION, show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Steps of the full schedule; strength x steps of them run. Default: 50 "
        f"for sdedit, {SR_STEPS} for sr4 with the bundled model.", rich_help_panel=_DIFFUSION,
        show_default=False)] = None,
    eta: Annotated[float, typer.Option(
        "--eta", help="DDIM eta: 1 puts fresh warped noise in at every step, 0 only at the "
        "start.", rich_help_panel=_DIFFUSION)] = 1.0,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Frames per model call (memory vs speed).",
        rich_help_panel=_DIFFUSION)] = 8,
    dis_preset: PresetOpt = "medium",
    option: OptionOpt = None,
    backend: BackendOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    start: StartOpt = 0,
    frames: FramesOpt = None,
    stride: StrideOpt = 1,
    fps: Annotated[float, typer.Option("--fps", help="Frame rate of the output.")] = 12.0,
    report: Annotated[bool, typer.Option(
        "--report", help="Also measure what the noise did (one more run, noise-free): follows "
        "motion, sticks to screen, warping error, detail, with the input's flows as the motion "
        "and the input as the detail reference.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Edit a video frame by frame with an image diffusion model fed warped noise.

    The noise is warped along DIS optical flow of the input (at output resolution, integrated
    to the latent grid for latent models) and enters at the start (add_noise) and at every
    stochastic step (DDIM with --eta > 0, DDPM, Euler ancestral, DPM-Solver SDE).

    Needs the whole clip: its frames, flows and noise are held in memory (pick a part with
    --start/--frames/--stride). The bundled denoiser's sdedit needs sizes in multiples of 8
    (--size).
    """
    from ..backends import check_available
    from ..editing.edit import (
        EditOptions,
        check_frame_size,
        edit_frames,
        edit_measures,
        input_frames,
    )
    from ..editing.models import load_edit_model
    from ..estimate import estimate_flows
    from ..io.atomic import check_outputs
    from ..io.video import check_selection, read_frames, write_video
    from ..rng import check_device

    method = _method(method, noise)
    opts = EditOptions(method=method, task=task, strength=strength, steps=steps, eta=eta,
                       seed=seed, scheduler=scheduler, batch_size=batch_size,
                       dis_preset=dis_preset,
                       method_options=method_options(option, backend))
    opts.check()
    if "backend" in opts.method_options:  # an explicit backend the device cannot run: now
        check_available(opts.method_options["backend"], check_device(device))
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
    frame_size = size_option(size)
    check_selection(frame_size, scale, start, frames, stride)
    if frame_size is not None and model == "bundled" and task == "sdedit":
        check_frame_size(*frame_size, task)  # other models' multiple: once loaded; sr4: any size
    if not 0 < fps < math.inf:
        raise ValueError(f"--fps must be a positive number, got {fps}")
    out = output
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"output {str(out)!r} must be an .mp4 file")
    if not input.exists():
        raise ValueError(f"input {str(input)!r} does not exist")
    check_outputs({"output": out}, {"the input video": input,
                                    "--model": model if Path(model).is_file() else None})
    _quiet_hub_logs()
    edit_model = load_edit_model(model, prompt=prompt, negative_prompt=negative_prompt,
                                 guidance_scale=guidance, dtype=dtype, device=device,
                                 task=task)
    with progress_bar(quiet) as progress:
        clip = read_frames(input, size=frame_size, scale=scale, start=start, frames=frames,
                           stride=stride)
        flows = None
        if report:  # once, for the noise and the measures
            flows = estimate_flows(input_frames(clip, task), opts.flow, preset=dis_preset)
        result = edit_frames(clip, opts, model=edit_model, progress=progress, flows=flows)
        measures = edit_measures(clip, opts, result.frames, model=edit_model,
                                 flows=flows) if report else None
    write_video(out, result.frames, fps=fps)
    s = result.seconds
    t, h, w = result.frames.shape[:3]
    typer.echo(f"wrote {out}: {t} frames {w}x{h}, task {task}, model {edit_model.name}, "
               f"method {method}, seed {seed}")
    typer.echo(f"time {s['total']:.1f} s: flow {s['flow']:.1f} s, noise {s['noise']:.1f} s, "
               f"diffusion {s['diffusion']:.1f} s")
    if measures is not None:
        m = measures
        typer.echo(f"report: follows motion {m['follows_motion']:.3f}, sticks to screen "
                   f"{m['sticks_to_screen']:.3f}, warping error {m['warping_error']:.2f} (0-255), "
                   f"detail {m['detail']:.2f} (input = 1)")


@app.command("demo")
@handle_errors
def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")
                      ] = Path("demo_out"),
    frames: Annotated[int | None, typer.Option(
        "--frames", help="Use the first N frames of each 16-frame clip (faster).")] = None,
    strength: Annotated[float | None, typer.Option(
        "--strength", help="Share of the reverse process that runs (default: "
        f"{DEMO_SAMPLING['strength']}, where the noise matters and the model still beats "
        "bicubic).", rich_help_panel=_DIFFUSION, show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", help=f"Steps of the full schedule (default: {DEMO_SAMPLING['steps']}).",
        rich_help_panel=_DIFFUSION, show_default=False)] = None,
    eta: Annotated[float | None, typer.Option(
        "--eta", help=f"DDIM eta (default: {DEMO_SAMPLING['eta']}; 0: noise at the start "
        "only).", rich_help_panel=_DIFFUSION, show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed, 0 to 2**64-1.")] = 0,
    noise: Annotated[list[str] | None, typer.Option(
        "--noise", "-n", help="Methods to compare (repeatable); default every baseline of the "
        f"paper (random, fixed, nearest, bilinear, bicubic, pyoco-mixed, pyoco-progressive, "
        f"control-a-video), bridge, integral and {DEFAULT_METHOD}.")] = None,
    clip: Annotated[list[str] | None, typer.Option(
        "--clip", help=f"Bundled clips to run (repeatable): {', '.join(CLIPS)} (default: all).")
    ] = None,
    former: Annotated[bool, typer.Option(
        "--former/--no-former", help="Also run random and the default method with the former "
        "default sampling (eta {eta:g}, strength {strength:g}, {steps} steps), where the noise "
        "hardly matters.".format(**FORMER))] = True,
    noise_preview: Annotated[bool, typer.Option(
        "--noise-preview/--no-noise-preview", help="Also turn the bundled sample.mp4 into warped "
        "noise + a preview video (the basic `warpnoise noise` path).")] = True,
    quiet: QuietOpt = False,
) -> None:
    """4x video super-resolution of the bundled real clips with the bundled conditional model,
    once per noise method and clip, scored by what the noise does (follows motion, sticks to the
    screen, warping error, detail; PSNR, SSIM): side_by_side.mp4, comparison.png, xt_slices.png,
    frame_strip.png, noise_figure.png, results.json, results.md."""
    from ..editing.demo import run_demo

    # run_demo checks every argument (folder, frames, methods, strength, steps, seed) first.

    def log(msg: str) -> None:
        if not quiet:
            typer.echo(msg, err=True)

    with progress_bar(quiet) as progress:
        result = run_demo(output, strength=strength, steps=steps, eta=eta, seed=seed,
                          frames=frames, methods=noise, clips=clip, former=former,
                          noise_preview=noise_preview, progress=progress, log=log)
    typer.echo((output / "results.md").read_text().rstrip())
    typer.echo(f"wrote {output}/: side_by_side.mp4, comparison.png, xt_slices.png, "
               f"frame_strip.png, noise_figure.png, results.json, results.md in "
               f"{result['seconds_total']:.0f} s")
