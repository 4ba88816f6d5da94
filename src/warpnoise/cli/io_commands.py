"""``warpnoise flow``, ``warpnoise noise`` and ``warpnoise stats``: from a video to noise and back
to a report. Thin: parse, call :mod:`warpnoise.pipeline` / :mod:`warpnoise.report`, print."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from ..methods import DEFAULT_METHOD
from . import app
from ._common import handle_errors, progress_bar
from .options import (
    FLOW,
    BackendOpt,
    ChannelsOpt,
    DegradationMapOpt,
    DegradationOpt,
    DeviceOpt,
    DownsampleOpt,
    DtypeOpt,
    FlowOpt,
    FramesOpt,
    InputArg,
    LatentOpt,
    MethodOpt,
    OptionOpt,
    PresetOpt,
    QuietOpt,
    RaftOpt,
    RecordSourcePathOpt,
    ScaleOpt,
    SeedOpt,
    SizeOpt,
    StartOpt,
    StrideOpt,
    noise_options,
)


@app.command("flow")
@handle_errors
def flow_command(
    input: InputArg,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Flow file to write: .safetensors or .npz with tensors 'backward' "
        "and 'forward', (T-1, 2, H, W), dx then dy in pixels.")],
    flow: Annotated[str, typer.Option(
        "--flow", help="Estimator: dis (OpenCV DIS), farneback or raft.",
        rich_help_panel=FLOW)] = "dis",
    dis_preset: PresetOpt = "medium",
    raft_weights: RaftOpt = None,
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    start: StartOpt = 0,
    frames: FramesOpt = None,
    stride: StrideOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Estimate backward and forward optical flow for every pair of consecutive frames.

    backward[t-1]: pixel x of frame t came from x + b(x) in frame t-1; forward[t-1]: pixel x of
    frame t-1 goes to x + f(x) in frame t. Pass the file to `warpnoise noise --flow FILE`.

    Streams: a first pass decodes the clip to count its frames and check them (nothing kept),
    the second estimates and writes each flow as it goes; memory does not grow with the clip's
    length (the file does: 16 bytes per pixel and frame).
    """
    from ..pipeline import video_to_flows

    opts = noise_options(flow=flow, dis_preset=dis_preset, raft_weights=raft_weights, size=size,
                         scale=scale, start=start, frames=frames, stride=stride)
    with progress_bar(quiet) as progress:
        res = video_to_flows(input, output, opts, progress=progress)
    typer.echo(f"wrote {output}: {res.flows} backward + {res.flows} forward flows, "
               f"{res.width}x{res.height}")


@app.command("noise")
@handle_errors
def noise_command(
    input: InputArg,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Noise file: .safetensors (tensor 'noise' (T, C, H, W) + metadata) "
        "or .npy (Go-with-the-Flow's [T, H, W, C] float16).")],
    method: MethodOpt = DEFAULT_METHOD,
    channels: ChannelsOpt = 4,
    downsample: DownsampleOpt = 1,
    flow: FlowOpt = "dis",
    dis_preset: PresetOpt = "medium",
    raft_weights: RaftOpt = None,
    seed: SeedOpt = 0,
    dtype: DtypeOpt = "float32",
    preview: Annotated[Path | None, typer.Option(
        "--preview", help="Also write an mp4: input | flow (colour wheel) | noise.")] = None,
    device: DeviceOpt = "cpu",
    option: OptionOpt = None,
    backend: BackendOpt = "auto",
    latent: LatentOpt = None,
    degradation: DegradationOpt = 0.0,
    degradation_map: DegradationMapOpt = None,
    record_source_path: RecordSourcePathOpt = False,
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    start: StartOpt = 0,
    frames: FramesOpt = None,
    stride: StrideOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Turn a video into warped Gaussian noise: i.i.d. N(0,1) per frame, moving with the video.

    Output: the noise file (written atomically) and, with --preview, a side-by-side mp4.
    Check it with `warpnoise stats OUTPUT`.

    Streams: a first pass decodes the clip to count its frames and check they decode (nothing
    is kept; the file's header states its length); the second decodes, estimates flow, warps and
    writes frame by frame, holding a few frames and flows whatever the clip's length (see
    docs/memory.md). control-a-video normalises frame differences over the whole clip: it reads
    the input once more.
    """
    from ..diagnostics import compile_notice
    from ..pipeline import video_to_noise

    opts = noise_options(
        method=method, channels=channels, downsample=downsample, flow=flow,
        dis_preset=dis_preset, raft_weights=raft_weights, seed=seed, dtype=dtype, device=device,
        option=option, backend=backend, latent=latent, degradation=degradation,
        degradation_map=degradation_map, record_source_path=record_source_path, size=size,
        scale=scale, start=start, frames=frames, stride=stride)
    plan = opts.plan()  # every option checked, once, before any work
    notice = None if quiet else compile_notice(method, plan.target.channels, device,
                                               opts.method_options)
    if notice is not None:
        typer.echo(notice, err=True)
    with progress_bar(quiet) as progress:
        result = video_to_noise(input, output, plan, preview=preview, progress=progress)
    s = result.seconds
    steps = max(result.frames - 1, 1)
    shape = tuple(result.shape)
    kind = dtype
    if output.suffix.lower() == ".npy":  # stored channels last: say the shape as stored
        t, c, h, w = shape
        shape, kind = (t, h, w, c), "float16 [T, H, W, C]"
    what = "noise"
    if latent is not None:
        what = f"{latent} latents="
    typer.echo(
        f"wrote {result.output}: {what} {shape} {kind}, method {method}, seed {seed}"
        + (f"; preview {result.preview}" if result.preview else ""))
    def rate(stage: str) -> str:
        return f"{steps / s[stage]:.1f} frames/s" if s[stage] > 1e-3 else "-"

    typer.echo(
        f"time {s['total']:.2f} s ({result.frames / max(s['total'], 1e-9):.1f} frames/s "
        f"overall): decode {s['decode']:.2f} s, flow {s['flow']:.2f} s ({rate('flow')}), "
        f"warp {s['warp']:.2f} s ({rate('warp')}), write {s['write']:.2f} s")


def _fmt(v: float, spec: str) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else format(v, spec)


@app.command("stats")
@handle_errors
def stats_command(
    noise: Annotated[Path, typer.Argument(
        help="Noise file (.safetensors from `warpnoise noise`, or a [T, H, W, C] .npy).",
        show_default=False)],
    flows: Annotated[Path | None, typer.Option(
        "--flows", help="Flow file of the clip (from `warpnoise flow`) for the temporal check. "
        "Default: re-estimate from the source video named in the noise file, if it is found "
        "(a recorded full path, or the file name beside the noise file or in the current "
        "folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write a PNG of the paper's covariance maps: a pixel with its "
        "neighbours in frame t and in frame t-1 (along the motion).")] = None,
    radius: Annotated[int, typer.Option(
        "--radius", help="Neighbourhood radius of the --plot maps, 0 to 16.")] = 3,
) -> None:
    """Fidelity report of a noise file: is it N(0,1), does it move with the video?

    Per frame: mean, std, KS p-value, Moran's I, lag-1 spatial and channel correlation. With
    flows: the correlation with frame t-1 along the motion (disoccluded pixels excluded) and at
    fixed pixels. Verdict thresholds are 5 standard errors (see warpnoise.report).

    Needs the whole clip: the noise file and its flows are held in memory (T x C x H x W floats
    plus 16 bytes per pixel and frame for the flows).
    """
    from ..io import jsontext
    from ..io.atomic import check_outputs
    from ..io.flowfile import load_flows
    from ..io.noisefile import load_noise
    from ..pipeline import source_flows
    from ..report import check_radius, covariance_maps, noise_report

    check_radius(radius)
    if plot is not None and plot.suffix.lower() != ".png":
        raise ValueError(f"--plot {str(plot)!r} must be a .png file")
    check_outputs({"--plot": plot}, {"the noise file": noise, "--flows": flows})
    x, meta = load_noise(noise)
    if plot is not None:
        check_radius(radius, *x.shape[2:])
    backward = forward = None
    flow_note = "none"
    if flows is not None:
        backward, forward = load_flows(flows)
        flow_note = f"flows from {flows}"
    elif x.shape[0] > 1:
        found = source_flows(meta, near=noise)
        if found is not None:
            backward, forward, flow_note = found
    report = noise_report(x, backward, forward)
    if plot is not None:
        from ..viz import plot_covariance_maps

        spatial, temporal = covariance_maps(x, backward, radius=radius)
        plot_covariance_maps(spatial, temporal, plot, title=f"{noise.name} "
                              f"({meta.get('method', '?')})")
    if as_json:
        out = report.as_dict() | {"file": str(noise), "metadata": meta, "flows": flow_note,
                                  "verdict": report.verdict()}
        typer.echo(jsontext.dumps(out, indent=2))  # NaN/inf as null: strict parsers read it
        return
    _print_report(noise, meta, report, flow_note, plot)


def _print_report(path: Path, meta: dict[str, str], report: Any, flow_note: str,
                  plot: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=132)  # pipes and logs: no wrapping of the table
    t, c, h, w = report.shape
    console.print(f"[bold]{path}[/]: {t} frames x {c} channels x {h} x {w}"
                  + (f", method {meta['method']}, seed {meta.get('seed', '?')}"
                     if "method" in meta else "")
                  + (f", backend {meta['backend']}" if "backend" in meta else ""),
                  highlight=False)
    temporal = {s["frame"]: s for s in (report.temporal or [])}
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col in ("frame", "mean", "std", "KS p", "lag1 x", "lag1 y", "chan", "Moran z",
                "corr motion", "corr fixed", "occl %", "check"):
        table.add_column(col, justify="right", no_wrap=True)
    for fr in report.frames:
        tm = temporal.get(fr["frame"])
        table.add_row(
            str(fr["frame"]), _fmt(fr["mean"], "+.4f"), _fmt(fr["std"], ".4f"),
            _fmt(fr["ks_p"], ".3f"), _fmt(fr["lag1_x"], "+.4f"), _fmt(fr["lag1_y"], "+.4f"),
            _fmt(fr["channel_corr"], ".4f"), _fmt(fr["morans_z"], "+.2f"),
            "" if tm is None else _fmt(tm["corr_motion"], ".3f"),
            "" if tm is None else _fmt(tm["corr_static"], ".3f"),
            "" if tm is None else _fmt(100 * tm["occluded"], ".1f"),
            "[green]ok[/]" if not fr["fails"] else "[red]FAIL[/]")
    console.print(table)
    failing = [fr for fr in report.frames if fr["fails"]]
    for fr in failing[:5]:
        console.print(f"frame {fr['frame']} fails: {'; '.join(fr['fails'])}", highlight=False)
    if len(failing) > 5:
        console.print(f"... and {len(failing) - 5} more failing frames", highlight=False)
    console.print(f"temporal check: {flow_note}", highlight=False)
    if meta:
        console.print("[bold]metadata[/]", highlight=False)
        width = max(map(len, meta))
        for key in sorted(meta):
            console.print(f"  {key:<{width}}  {meta[key]}", highlight=False, markup=False)
    for line in report.verdict():
        ok = ": yes" in line
        console.print(("[green]" if ok else "[yellow]" if "not checked" in line else "[red]")
                      + line + "[/]", highlight=False)
    if plot is not None:
        console.print(f"wrote {plot}")
