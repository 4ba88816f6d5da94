"""``warpnoise batch``: warped noise for a folder of videos or a manifest, on Ray. Thin: parse,
call :mod:`warpnoise.batch`, draw a progress bar over videos, summarise."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..methods import DEFAULT_METHOD
from . import app
from ._common import fail, handle_errors
from .options import (
    NOISE,
    BackendOpt,
    ChannelsOpt,
    DegradationMapOpt,
    DegradationOpt,
    DeviceOpt,
    DownsampleOpt,
    DtypeOpt,
    FlowOpt,
    FramesOpt,
    LatentOpt,
    MethodOpt,
    OptionOpt,
    PresetOpt,
    QuietOpt,
    RaftOpt,
    RecordSourcePathOpt,
    ScaleOpt,
    SizeOpt,
    StartOpt,
    StrideOpt,
    noise_options,
)

if TYPE_CHECKING:
    from ..pipeline import NoiseOptions

EXIT_SOME_FAILED = 3
_RUN = "Cluster"
#: NoiseOptions fields the batch's jobs carry only when they differ from the default: a job's
#: fingerprint hashes its options, and these came after the first batches were run, which must
#: resume without redoing their videos.
_LATER_FIELDS = ("device", "latent", "degradation", "degradation_map", "record_source_path",
                 "preview_fps")
#: A video's noise options without its seed (plan_jobs derives each video's).
_NOT_JOB_FIELDS = ("seed",)

BatchSeedOpt = Annotated[int, typer.Option(
    "--seed", help="Batch seed, 0 to 2**64-1. Each video's seed is a hash of it and the video's "
    "path relative to INPUT (without INPUT's own name), so its noise does not depend on worker "
    "or order; a manifest 'seed' column is used as it is.", rich_help_panel=NOISE)]


def job_options(opts: NoiseOptions) -> dict[str, Any]:
    """The batch-wide ``NoiseOptions`` keyword arguments every job starts from (rows of a
    manifest override them): all fields but the seed, and the fields of
    :data:`_LATER_FIELDS` only when they differ from the default."""
    defaults = type(opts)()
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)
            if f.name not in _NOT_JOB_FIELDS
            and (f.name not in _LATER_FIELDS or getattr(opts, f.name) != getattr(defaults, f.name))}


@contextmanager
def _video_bar(quiet: bool) -> Iterator[tuple[Callable[[int, int], None],
                                               Callable[[dict[str, Any]], None]]]:
    """``(on_start, on_result)`` callbacks drawing one Rich bar over videos on stderr, with the
    count of failures and the throughput in videos per minute."""
    if quiet:
        yield (lambda todo, done: None), (lambda record: None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(TextColumn("videos"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[failed]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
    state: dict[str, Any] = {"task": None, "failed": 0, "done": 0, "start": time.perf_counter()}

    def on_start(todo: int, done: int) -> None:
        bars.start()  # only now: an error before it prints its one line alone
        state["start"] = time.perf_counter()
        state["task"] = bars.add_task("videos", total=todo, rate="-- videos/min", failed="")
        if done:
            bars.console.print(f"{done} videos already done (outputs validated): skipped")

    def on_result(record: dict[str, Any]) -> None:
        state["done"] += 1
        state["failed"] += record["status"] != "ok"
        minutes = (time.perf_counter() - state["start"]) / 60
        bars.update(state["task"], advance=1,
                    rate=f"{state['done'] / max(minutes, 1e-9):.1f} videos/min",
                    failed=f"{state['failed']} failed" if state["failed"] else "")

    try:
        yield on_start, on_result
    finally:
        if state["task"] is not None:
            bars.stop()


def _print_summary(summary: Any, outdir: Path) -> None:
    typer.echo(
        f"{summary.total} videos: {summary.finished} done, {summary.skipped} already done, "
        f"{summary.failed} failed, in {summary.seconds:.1f} s ({summary.startup:.1f} s start-up; "
        f"{summary.videos_per_minute:.1f} videos/min)")
    failed = [r for r in summary.records if r["status"] != "ok"]
    for r in failed[:5]:
        typer.echo(f"  failed {r['key']}: {r['error']}")
    if len(failed) > 5:
        typer.echo(f"  ... and {len(failed) - 5} more")
    typer.echo(f"results: {summary.journal} (and {summary.summary_csv.name}); noise files "
               f"under {outdir}")


@app.command("batch")
@handle_errors
def batch_command(
    input: Annotated[Path, typer.Argument(
        help="A folder of videos (searched recursively) or a manifest: .csv with a header or "
        ".jsonl, a 'path' per row (relative to the manifest), optional 'output' (relative to "
        "OUTDIR) and optional per-row noise options named as NoiseOptions fields (method, "
        "channels, seed, size, latent, degradation, degradation_map, device, ...).",
        show_default=False)],
    outdir: Annotated[Path, typer.Option(
        "--output", "-o", help="Output folder: one noise file per video, mirroring the input "
        "paths, plus results.jsonl / results.csv.")],
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Videos processed at once (default: the CPU count of the local "
        "machine, or of the cluster with --address).", rich_help_panel=_RUN)] = None,
    address: Annotated[str | None, typer.Option(
        "--address", help="An existing Ray cluster (auto, HOST:6379, ray://HOST:10001). Default: "
        "start a local one.", rich_help_panel=_RUN)] = None,
    cpus_per_worker: Annotated[int, typer.Option(
        "--cpus-per-worker", help="CPUs (and threads) per video.", rich_help_panel=_RUN)] = 1,
    gpus_per_worker: Annotated[float | None, typer.Option(
        "--gpus-per-worker", help="GPUs Ray reserves per video (0.25: four videos share one); "
        "each video's --device cuda is then its own GPU. Default: 1 with --device cuda, else 0.",
        rich_help_panel=_RUN, show_default=False)] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="safetensors, or npy (Go-with-the-Flow's [T, H, W, C] float16; not "
        "with --latent).")
    ] = "safetensors",
    min_frames: Annotated[int, typer.Option(
        "--min-frames", help="Videos with fewer frames are reported as failed (too short).")] = 2,
    verify: Annotated[str, typer.Option(
        "--verify", help="On a re-run, how finished outputs are checked before being skipped: "
        "quick (header and exact file size) or full (read and validate every value).")
    ] = "quick",
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed/--keep-failed", help="On a re-run, retry videos that failed before.")
    ] = True,
    ignore_extra_columns: Annotated[bool, typer.Option(
        "--ignore-extra-columns", help="Ignore manifest columns that are not noise options "
        "(captions, ...) instead of failing.")] = False,
    method: MethodOpt = DEFAULT_METHOD,
    channels: ChannelsOpt = 4,
    downsample: DownsampleOpt = 1,
    flow: FlowOpt = "dis",
    dis_preset: PresetOpt = "medium",
    raft_weights: RaftOpt = None,
    seed: BatchSeedOpt = 0,
    dtype: DtypeOpt = "float32",
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
    """Warped noise for every video of a folder or manifest, in parallel on Ray.

    Outputs are written as `warpnoise noise` writes them, atomically (with --latent: the
    pipeline's latents tensor; a video whose frame count or size the model refuses fails).

    A video that fails is recorded with its reason in OUTDIR/results.jsonl; the batch goes on.

    Killed or crashed? Run the same command again: validated outputs are skipped, the rest redone.

    Exit code 0: all videos done; 3: finished, some videos failed; 2: bad input.
    """
    from ..batch import RayExecutor, plan_jobs, run_batch
    from ..batch.run import RAY_MISSING, check_reachable
    from ..io.atomic import check_output_folder
    from ..pipeline import NoiseOptions
    from ..rng import check_seed

    # Every option is checked here, before a folder is made or Ray starts.
    if verify not in ("quick", "full"):
        raise ValueError(f"--verify must be quick or full, got {verify!r}")
    if fmt not in ("safetensors", "npy"):
        raise ValueError(f"--format must be safetensors or npy, got {fmt!r}")
    for name, value in (("--workers", workers), ("--cpus-per-worker", cpus_per_worker),
                        ("--min-frames", min_frames)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if gpus_per_worker is not None and not 0 <= gpus_per_worker < math.inf:
        raise ValueError(f"--gpus-per-worker must be a number >= 0, got {gpus_per_worker}")
    check_seed(seed, "--seed")
    check_output_folder(outdir)
    if address is not None:
        check_reachable(address)  # HOST:PORT nobody listens on; Ray itself would retry for minutes
    opts = noise_options(
        method=method, channels=channels, downsample=downsample, flow=flow,
        dis_preset=dis_preset, raft_weights=raft_weights, dtype=dtype, device=device,
        option=option, backend=backend, latent=latent, degradation=degradation,
        degradation_map=degradation_map, record_source_path=record_source_path, size=size,
        scale=scale, start=start, frames=frames, stride=stride)
    # A bad batch-wide option fails now, not once per video; plan_jobs checks per-row ones.
    opts.check()
    options = job_options(opts)
    jobs = plan_jobs(input, outdir, options, options_type=NoiseOptions, seed=seed,
                     suffix=f".{fmt}", ignore_extra_columns=ignore_extra_columns)
    try:
        import ray  # noqa: F401
    except ImportError:
        fail(RAY_MISSING)
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if opts.device.startswith("cuda") else 0.0
    executor = RayExecutor(address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                           gpus_per_worker=gpus_per_worker)
    with _video_bar(quiet) as (on_start, on_result):
        summary = run_batch(jobs, outdir, executor, retry_failed=retry_failed, verify=verify,
                            min_frames=min_frames, on_start=on_start, on_result=on_result)
    _print_summary(summary, outdir)
    if summary.failed or any(r["status"] != "ok" for r in summary.records):
        raise typer.Exit(EXIT_SOME_FAILED)
