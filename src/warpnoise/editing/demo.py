"""The comparison of the paper, offline: 4x video super-resolution with the bundled conditional
model, one run per noise and clip (every baseline the paper names; same seed, model, steps),
scored for what the noise does to the video (Chang et al., "How I Warped Your Noise", ICLR 2024,
§6.2 and Table 2), plus the paper's noise figure (a frame of each noise and its covariance maps).

Each baseline fails in its own visible way, and one measure shows each failure
(:mod:`warpnoise.editing.metrics`): fresh noise flickers (warping error), fixed noise sticks to
the screen (``sticks_to_screen``), interpolated noise blurs the detail away (``detail``), and
noise that moves with the video makes the detail follow the content (``follows_motion``). The
hallucinated detail is the output minus the noise-free output of the same model, input and
sampling (every draw zero).

The clips are real (:data:`CLIPS`: 16 frames of 128x128 from OpenCV's ``box.mp4``, a video no
training image of the model comes from): a slow translation, a turn towards the camera, and a
hand carrying the box away. The low-resolution input is their 4x area-downsampling; the model
samples conditioned on its bicubic upsampling (:mod:`warpnoise.editing.sr`), the noise entering
at the start and at every stochastic step. Noise is warped along DIS flow estimated on the bicubic
input (what a user has; Control-A-Video's mask uses those frames); the measures use DIS flow of
the ground-truth video (what is really there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..methods import DEFAULT_METHOD
from .edit import EditOptions, bicubic_up, downsample, edit_frames
from .metrics import coherence_measures, hallucinated_detail, psnr, ssim

__all__ = ["CLIPS", "DemoRow", "demo_methods", "load_clip", "load_sr_clip", "run_demo"]

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]
#: The noises of the paper's comparison (its baselines, Chang et al. 2024 §6, and its successor
#: ``bridge``); :data:`warpnoise.DEFAULT_METHOD` is added when different.
BASELINES = ("random", "fixed", "nearest", "bilinear", "bicubic", "pyoco-mixed",
             "pyoco-progressive", "control-a-video", "bridge", "integral")


def demo_methods() -> list[str]:
    """:data:`BASELINES` and the default method (once)."""
    out = list(BASELINES)
    if DEFAULT_METHOD not in out:
        out.append(DEFAULT_METHOD)
    return out


#: The bundled ground-truth clips, 16 frames of 128x128 from OpenCV's ``box.mp4`` (a video no
#: training image of the super-resolver comes from; ``scripts/make_clips.py`` cuts the last two):
#: name -> (file in ``warpnoise/data``, what moves).
CLIPS: dict[str, tuple[str, str]] = {
    "box": ("sr_clip.npz", "frames 110-140: the box carried slowly to the left, 2 px/frame"),
    "box-turn": ("clip_box_turn.npz", "frames 160-205 (every 3rd): the box turns and comes "
                 "closer (rotation, zoom in), up to 6 px/frame"),
    "hand-box": ("clip_hand_box.npz", "frames 345-390 (every 3rd): a hand carries the box "
                 "right and away (non-rigid arm, zoom out, occlusion)"),
}


def load_clip(name: str = "box") -> np.ndarray:
    """A bundled ground-truth clip of :data:`CLIPS`, ``(16, 128, 128, 3)`` uint8.

    Raises:
        ValueError: an unknown name.
    """
    if name not in CLIPS:
        raise ValueError(f"unknown clip {name!r}; choose one of {', '.join(CLIPS)}")
    path = resources.files("warpnoise") / "data" / CLIPS[name][0]
    with resources.as_file(path) as p, np.load(p) as z:
        return np.ascontiguousarray(z["frames"])


def load_sr_clip() -> np.ndarray:
    """The first bundled ground-truth clip (``box``), ``(16, 128, 128, 3)`` uint8."""
    return load_clip("box")


@dataclass
class DemoRow:
    """One line of the results: a clip, a noise, a sampling, its measures (None: not defined,
    e.g. the detail measures of the ground truth)."""

    clip: str
    noise: str
    sampling: str
    follows_motion: float | None
    sticks_to_screen: float | None
    warping_error: float
    detail: float
    psnr: float
    ssim: float
    noise_rms: float | None
    seconds: float


#: The demo's sampling (``benchmarks/sweep_sr.py``, docs/demo.md): 2 stochastic DDIM steps from
#: t = 100. The noise then decides about a third of what the model adds to bicubic (RMS 1.7/255
#: on the clips; the former sampling, 2 steps from t = 25: a fifth, 1.1/255) while the model still
#: beats bicubic on PSNR and SSIM on every clip. 4 steps from t = 100 (45%) fell 0.011 SSIM below
#: bicubic on ``box-turn``; more noise, or η = 0 from warped noise, costs more.
SAMPLING: dict[str, Any] = {"strength": 0.1, "steps": 20, "eta": 1.0}
#: The sampling the demo used to default to (2 stochastic steps from t = 25), kept as rows: there
#: the noise hardly changes the output.
FORMER = {"strength": 0.05, "steps": 40, "eta": 1.0}
_MEASURES = (("follows_motion", "follows motion ↑"), ("sticks_to_screen", "sticks to screen ↓"),
             ("warping_error", "warping error ↓ (0-255)"), ("detail", "detail (GT = 1)"),
             ("psnr", "PSNR ↑ (dB)"), ("ssim", "SSIM ↑"))


def _score(clip: str, noise: str, sampling: str, out: np.ndarray, gt: np.ndarray,
           flows: tuple[Any, Any], noise_free: np.ndarray | None, seconds: float) -> DemoRow:
    m = coherence_measures(out, noise_free, *flows, gt)
    rms = None if noise_free is None else float(
        hallucinated_detail(out, noise_free).square().mean().sqrt()) * 255.0
    return DemoRow(clip, noise, sampling, m["follows_motion"], m["sticks_to_screen"],
                   float(m["warping_error"] or 0.0), float(m["detail"] or 0.0), psnr(out, gt),
                   ssim(out, gt), rms, seconds)


def _cell(v: float | None, fmt: str) -> str:
    return "–" if v is None or v != v or v == float("inf") else format(v, fmt)


def _sampling_name(s: dict[str, Any]) -> str:
    run = max(1, int(s["steps"] * s["strength"]))
    return f"DDIM eta {s['eta']:g}, strength {s['strength']:g}, {s['steps']} steps ({run} run)"


def _table(rows: list[DemoRow], settings: dict[str, Any], clips: dict[str, Any]) -> str:
    lines = []
    for clip, info in clips.items():
        lines += [f"### {clip}: {info['what']}", "",
                  f"Ground-truth motion: median {info['median_px']:.2f} px/frame, 90th percentile "
                  f"{info['p90_px']:.2f}, {info['moving_share']:.0%} of pixels moving > 0.5 "
                  "px/frame.", "",
                  "| noise | follows motion ↑ | sticks to screen ↓ | warping error ↓ (0-255) | "
                  "detail (GT = 1) | PSNR ↑ (dB) | SSIM ↑ | noise RMS (0-255) | seconds |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in rows:
            if r.clip != clip:
                continue
            name = r.noise + (" (default)" if r.noise == settings["default_method"] else "")
            if r.sampling == "former":
                name += ", former sampling"
            lines.append(f"| {name} | {_cell(r.follows_motion, '.3f')} | "
                         f"{_cell(r.sticks_to_screen, '.3f')} | {r.warping_error:.2f} | "
                         f"{r.detail:.2f} | {_cell(r.psnr, '.2f')} | {r.ssim:.4f} | "
                         f"{_cell(r.noise_rms, '.2f')} | "
                         # rows that run no noise or diffusion have no time of their own
                         f"{_cell(r.seconds if r.seconds > 0 else None, '.1f')} |")
        lines.append("")
    lines.append(f"4x SR of {settings['frames']} frames of {settings['size']} per clip with the "
                 f"bundled conditional model, {_sampling_name(settings)}, seed {settings['seed']}"
                 + (f"; former sampling: {_sampling_name(FORMER)}" if settings["former"] else "")
                 + ". Follows motion: correlation of frame t's hallucinated detail (output minus "
                 "the noise-free output) with frame t-1's warped along the ground-truth flow, "
                 "visible pixels. Sticks to screen: the same without warping, on pixels moving "
                 "> 0.5 px/frame. Warping error: mean |O_t - warp(O_t-1)| on visible pixels. "
                 "Detail: mean |Laplacian| of luma relative to the ground truth. Noise RMS: the "
                 "hallucinated detail's size. Seconds: noise + diffusion.")
    return "\n".join(lines) + "\n"


def _plot(rows: list[DemoRow], clips: list[str], path: Path) -> None:
    """The measures as grouped bars: one group per noise, one bar per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_output

    rows = [r for r in rows if r.sampling == "default"]
    names = list(dict.fromkeys(r.noise for r in rows))
    fig, axes = plt.subplots(2, 3, figsize=(16, 7))
    width = 0.8 / len(clips)
    for ax, (key, label) in zip(axes.flat, _MEASURES, strict=True):
        for k, clip in enumerate(clips):
            got = {r.noise: getattr(r, key) for r in rows if r.clip == clip}
            vals = [np.nan if got.get(n) is None or got[n] == float("inf") else got[n]
                    for n in names]
            ax.bar(np.arange(len(names)) + (k - (len(clips) - 1) / 2) * width, vals, width,
                   label=clip, color=f"C{k}")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        if key in ("psnr", "ssim"):
            finite = [getattr(r, key) for r in rows if getattr(r, key) not in (None, float("inf"))]
            lo, hi = min(finite), max(finite)
            ax.set_ylim(lo - 0.1 * (hi - lo + 1e-3), hi + 0.1 * (hi - lo + 1e-3))
        ax.axhline(0, color="0.5", lw=0.5)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _strip(videos: dict[str, dict[str, np.ndarray]], flows: dict[str, tuple[Any, Any]],
           path: Path) -> None:
    """Rows: each noise; per clip, its middle and last frame and the |O_t - warp(O_t-1)| map of
    the last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..flow import forward_backward_occlusion, pixel_grid, sample
    from ..io.atomic import atomic_output
    from .metrics import to_float_frames

    names = list(next(iter(videos.values())))
    n, cols = len(names), 3 * len(videos)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n), squeeze=False)
    for c, (clip, vids) in enumerate(videos.items()):
        b, f = flows[clip]
        for i, name in enumerate(names):
            v = vids[name]
            last = v.shape[0] - 1
            x = to_float_frames(v[last - 1:last + 1])
            h, w = x.shape[2:]
            err = (x[1] - sample(x[0], pixel_grid(h, w) + b[last - 1])).abs().mean(0)
            err[forward_backward_occlusion(b[last - 1], f[last - 1])] = 0
            axes[i, 3 * c].imshow(v[last // 2])
            axes[i, 3 * c + 1].imshow(v[last])
            axes[i, 3 * c + 2].imshow(torch.clamp(err * 4, 0, 1).numpy(), cmap="magma", vmin=0,
                                      vmax=1)
            if i == 0:
                axes[i, 3 * c].set_title(f"{clip}: frame {last // 2}", fontsize=8)
                axes[i, 3 * c + 1].set_title(f"frame {last}", fontsize=8)
                axes[i, 3 * c + 2].set_title(f"|O{last}-warp(O{last - 1})|x4", fontsize=8)
            if c == 0:
                axes[i, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)  # 1.6 in at 80 dpi: one screen pixel per frame pixel
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def slice_row(backward_flows: Any) -> int:
    """The image row with the most horizontal motion (mean ``|b_x|`` over time; the outer eighth
    of the rows left out): where an x-t slice shows the motion best."""
    speed = backward_flows[:, 0].abs().mean(dim=(0, 2))
    h = speed.shape[0]
    m = max(1, h // 8)
    return m + int(speed[m:h - m].argmax())


def _xt_slices(videos: dict[str, dict[str, np.ndarray]], free: dict[str, np.ndarray],
               rows: dict[str, int], path: Path) -> None:
    """Per noise (rows) and clip: the frame with the sliced row marked, the x-t slice of the
    output (that row over time, time downwards) and the x-t slice of its hallucinated detail.
    Streaks slant with the motion where the detail follows it, run straight down where it sticks
    to the screen, and break up where it flickers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_output

    names = list(next(iter(videos.values())))
    n, cols = len(names), 3 * len(videos)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.2 * n), squeeze=False)
    for c, (clip, vids) in enumerate(videos.items()):
        y = rows[clip]
        ref = free[clip].astype(np.float32)
        scale = max(float(np.std(vids[nm].astype(np.float32)[:, y] - ref[:, y]))
                    for nm in names if nm not in ("ground truth", "bicubic input")) * 2.5 or 1.0
        for i, name in enumerate(names):
            v = vids[name]
            t = v.shape[0]
            axes[i, 3 * c].imshow(v[t // 2])
            axes[i, 3 * c].axhline(y, color="cyan", lw=0.6)
            # aspect: each frame of the slice as tall as 4 image rows, so the slant reads.
            axes[i, 3 * c + 1].imshow(v[:, y], aspect=4, interpolation="nearest")
            if name not in ("ground truth", "bicubic input"):
                d = (v[:, y].astype(np.float32) - ref[:, y]).mean(-1)
                axes[i, 3 * c + 2].imshow(d, aspect=4, cmap="RdBu_r", vmin=-scale, vmax=scale,
                                          interpolation="nearest")
            else:  # no noise, no hallucinated detail
                axes[i, 3 * c + 2].axis("off")
            if i == 0:
                axes[i, 3 * c].set_title(f"{clip}: row {y}", fontsize=8)
                axes[i, 3 * c + 1].set_title("x-t: output", fontsize=8)
                axes[i, 3 * c + 2].set_title("x-t: detail (out - noise-free)", fontsize=8)
            if c == 0:
                axes[i, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _noise_figure(noises: dict[str, Any], flows: Any, path: Path, frame: int) -> None:
    """The paper's noise figure (Chang et al. 2024, Fig. 5 style): per noise, a crop of one frame
    and its spatial and temporal (along the flow) covariance maps, radius 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_output
    from ..report import covariance_maps
    from ..viz import noise_to_rgb

    n = len(noises)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.3), squeeze=False)
    for j, (name, noise) in enumerate(noises.items()):
        spatial, temporal = covariance_maps(noise, flows, radius=2)
        crop = noise_to_rgb(noise[frame][:, :48, :48])
        axes[0, j].imshow(crop, interpolation="nearest")
        axes[0, j].set_title(name, fontsize=7)
        for i, m in ((1, spatial), (2, temporal)):
            axes[i, j].imshow(m, cmap="RdBu_r", vmin=-1, vmax=1)
            axes[i, j].text(2, 2, f"{m[2, 2]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(m[2, 2]) > 0.5 else "black")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(f"frame {frame}\n(48x48 crop)", fontsize=7)
    axes[1, 0].set_ylabel("spatial cov.\n(frame t)", fontsize=7)
    axes[2, 0].set_ylabel("temporal cov.\n(t-1, along flow)", fontsize=7)
    fig.tight_layout(pad=0.3)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _motion(backward_flows: Any) -> dict[str, float]:
    speed = backward_flows.square().sum(1).sqrt()
    return {"median_px": float(speed.median()), "p90_px": float(speed.quantile(0.9)),
            "moving_share": float((speed > 0.5).float().mean())}


def run_demo(
    out_dir: str | Path,
    *,
    strength: float | None = None,
    steps: int | None = None,
    eta: float | None = None,
    seed: int = 0,
    frames: int | None = None,
    methods: list[str] | None = None,
    clips: list[str] | None = None,
    former: bool = True,
    noise_preview: bool = True,
    progress: Progress | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run the super-resolution comparison on each clip and write its outputs into ``out_dir``.

    Writes ``side_by_side.mp4`` (one row per clip: ground truth | bicubic | one panel per
    method), ``comparison.png`` (the measures as bars per noise and clip), ``xt_slices.png`` (x-t
    slices of each output and of its hallucinated detail), ``frame_strip.png`` (frames and a
    warping-error map per method and clip), ``noise_figure.png`` (a frame of each noise and its
    covariance maps), ``results.json`` and ``results.md``; with ``noise_preview`` also
    ``sample_noise.safetensors`` and ``sample_noise_preview.mp4`` from
    :func:`warpnoise.pipeline.video_to_noise` on the bundled ``sample.mp4``. ``strength``,
    ``steps`` and ``eta`` default to :data:`SAMPLING`; ``clips`` to every clip of
    :data:`CLIPS`; with ``former``, ``random`` and the default method also run with the
    :data:`FORMER` sampling (rows marked ``sampling: "former"``). Every file appears
    atomically.

    Returns:
        The content of ``results.json``: ``settings``, ``clips`` (what moves and how fast),
        ``panels`` and ``rows`` (one per clip, noise and sampling: :class:`DemoRow`'s fields).
    """
    from ..estimate import estimate_flows
    from ..io import jsontext
    from ..io.atomic import atomic_output, check_output_folder
    from ..io.video import write_video
    from .sr import load_sr_model

    say = log or (lambda _msg: None)
    names = methods or demo_methods()
    clip_names = clips or list(CLIPS)
    strength = SAMPLING["strength"] if strength is None else strength
    steps = SAMPLING["steps"] if steps is None else steps
    eta = SAMPLING["eta"] if eta is None else eta
    # Every argument is checked before the folder is made or anything runs.
    out = check_output_folder(out_dir)
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int)
                               or frames < 2):
        raise ValueError(f"the demo needs at least 2 frames, got frames={frames!r}")
    for clip in clip_names:
        if clip not in CLIPS:
            raise ValueError(f"unknown clip {clip!r}; choose from {', '.join(CLIPS)}")
    samplings = {"default": {"strength": strength, "steps": steps, "eta": eta}}
    if former:
        samplings["former"] = dict(FORMER)
    for name in names:
        for s in samplings.values():
            EditOptions(method=name, task="sr4", seed=seed, **s).check()
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    preview = None
    if noise_preview:  # first: it takes seconds, and it shows the basic path works
        preview = _noise_preview(out)
        say(f"noise: bundled sample.mp4 -> {preview['output']} {tuple(preview['shape'])} in "
            f"{preview['seconds']['total']:.1f} s, preview sample_noise_preview.mp4")
    net, scheduler = load_sr_model()
    rows: list[DemoRow] = []
    videos: dict[str, dict[str, np.ndarray]] = {}
    gt_flows: dict[str, Any] = {}
    free_default: dict[str, np.ndarray] = {}
    clip_info: dict[str, Any] = {}
    noises: dict[str, Any] = {}
    noise_flows = None
    for clip in clip_names:
        gt = load_clip(clip)[:frames]
        lr = downsample(gt, 4)
        up = bicubic_up(lr, 4)
        flows = estimate_flows(gt, "dis", preset="medium")
        in_flows = estimate_flows(up, "dis", preset="medium")
        gt_flows[clip] = flows
        clip_info[clip] = {"what": CLIPS[clip][1], **_motion(flows[0])}
        say(f"clip {clip}: {gt.shape[0]} frames {gt.shape[2]}x{gt.shape[1]}, input "
            f"{lr.shape[2]}x{lr.shape[1]} -> 4x; median motion {clip_info[clip]['median_px']:.2f}"
            f" px/frame; methods: {', '.join(names)}")
        rows += [_score(clip, "ground truth", "default", gt, gt, flows, None, 0.0),
                 _score(clip, "bicubic input", "default", up, gt, flows, None, 0.0)]
        vids = {"ground truth": gt, "bicubic input": up}
        for sampling, s in samplings.items():
            free = edit_frames(lr, EditOptions(method=names[0], task="sr4", seed=seed, **s),
                               unet=net, scheduler=scheduler, noise_free=True).frames
            if sampling == "default":
                free_default[clip] = free
            for k, name in enumerate(names if sampling == "default"
                                     else list(dict.fromkeys(["random", DEFAULT_METHOD]))):
                opts = EditOptions(method=name, task="sr4", seed=seed, **s)

                def step_progress(stage: str, done: int, total: int,
                                  _n: str = f"{clip} {name}") -> None:
                    if progress is not None:
                        progress(_n, done, total)

                res = edit_frames(lr, opts, unet=net, scheduler=scheduler, flows=in_flows,
                                  progress=step_progress)
                seconds = res.seconds["noise"] + res.seconds["diffusion"]
                row = _score(clip, name, sampling, res.frames, gt, flows, free, seconds)
                rows.append(row)
                if sampling == "default":
                    vids[name] = res.frames
                    if clip == clip_names[0]:  # the noise figure shows the first clip's
                        noises[name] = res.noise
                say(f"[{clip} {k + 1}/{len(names)}] {name} ({sampling}): follows "
                    f"{_cell(row.follows_motion, '.3f')}, sticks "
                    f"{_cell(row.sticks_to_screen, '.3f')}, warping error "
                    f"{row.warping_error:.2f}, detail {row.detail:.2f}, PSNR {row.psnr:.2f} dB, "
                    f"SSIM {row.ssim:.4f}, {seconds:.1f} s")
        if clip == clip_names[0]:
            noise_flows = in_flows[0]
        videos[clip] = vids

    first = next(iter(videos.values()))
    settings = {"frames": int(first["ground truth"].shape[0]),
                "size": f"{first['ground truth'].shape[2]}x{first['ground truth'].shape[1]}",
                "strength": strength, "steps": steps, "eta": eta, "seed": seed,
                "run_steps": max(1, int(steps * strength)), "default_method": DEFAULT_METHOD,
                "former": FORMER if former else None,
                "flow": "DIS medium (noise: on the bicubic input; measures: on the ground truth)"}
    panels = np.concatenate([np.concatenate(list(v.values()), axis=2) for v in videos.values()],
                            axis=1)
    write_video(out / "side_by_side.mp4", panels, fps=8.0)
    _plot(rows, clip_names, out / "comparison.png")
    _strip(videos, gt_flows, out / "frame_strip.png")
    _xt_slices(videos, free_default, {c: slice_row(gt_flows[c][0]) for c in clip_names},
               out / "xt_slices.png")
    _noise_figure(noises, noise_flows, out / "noise_figure.png", settings["frames"] // 3)
    result: dict[str, Any] = {"settings": settings, "clips": clip_info, "panels": list(first),
                              "rows": [asdict(r) for r in rows]}
    if preview is not None:
        result["noise_preview"] = preview
    result["seconds_total"] = time.perf_counter() - t_all
    with atomic_output(out / "results.md") as tmp:
        tmp.write_text(_table(rows, settings, clip_info))
    with atomic_output(out / "results.json") as tmp:
        tmp.write_text(jsontext.dumps(result, indent=2) + "\n")  # PSNR of GT vs itself: null
    return result


def _noise_preview(out: Path) -> dict[str, Any]:
    """The basic path on the bundled sample clip: video -> flow -> warped noise + preview."""
    from ..pipeline import NoiseOptions, video_to_noise

    sample = resources.files("warpnoise") / "data" / "sample.mp4"
    with resources.as_file(sample) as p:
        res = video_to_noise(p, out / "sample_noise.safetensors", NoiseOptions(channels=3),
                             preview=out / "sample_noise_preview.mp4")
    return {"output": res.output.name, "shape": list(res.shape), "seconds": res.seconds}
