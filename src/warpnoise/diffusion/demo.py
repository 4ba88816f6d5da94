"""The comparison of the paper, offline: 4x video super-resolution with the bundled conditional
model, one run per noise (every baseline the paper names; same seed, model, steps), scored for
temporal coherence and fidelity (Chang et al., "How I Warped Your Noise", ICLR 2024, §6.2 and
Table 2), plus the paper's noise figure (a frame of each noise and its covariance maps).

The clip is a real one (16 frames, 128x128, a box carried across OpenCV's ``box.mp4``, bundled as
``data/sr_clip.npz``; no training image of the model comes from that video); the low-resolution
input is its 4x area-downsampling; the model samples conditioned on its bicubic upsampling
(:mod:`warpnoise.diffusion.sr`), the noise entering at the start and at every DDIM step. Noise is
warped along DIS flow estimated on the bicubic input (what a user has; Control-A-Video's mask uses
those frames); the warping error uses DIS flow of the ground-truth video (what is really there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..methods import DEFAULT_METHOD
from .metrics import detail_ratio, psnr, ssim, warping_error
from .video import EditOptions, bicubic_up, downsample, edit_frames

__all__ = ["DemoRow", "demo_methods", "load_sr_clip", "run_demo"]

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


def load_sr_clip() -> np.ndarray:
    """The bundled ground-truth clip, ``(16, 128, 128, 3)`` uint8."""
    path = resources.files("warpnoise") / "data" / "sr_clip.npz"
    with resources.as_file(path) as p, np.load(p) as z:
        return np.ascontiguousarray(z["frames"])


@dataclass
class DemoRow:
    """One line of the results table."""

    name: str
    warping_error: float
    psnr: float
    ssim: float
    detail: float
    seconds: float


def _score(name: str, out: np.ndarray, gt: np.ndarray, flows: tuple[Any, Any],
           seconds: float) -> DemoRow:
    we, _ = warping_error(out, *flows)
    return DemoRow(name, we * 255.0, psnr(out, gt), ssim(out, gt), detail_ratio(out, gt), seconds)


def _table(rows: list[DemoRow], settings: dict[str, Any]) -> str:
    lines = [
        "| noise | warping error ↓ (0-255) | PSNR ↑ (dB) | SSIM ↑ | detail (GT = 1) | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    def cell(value: float, spec: str, meaningful: bool = True) -> str:
        # "–" where a score means nothing: PSNR of the ground truth with itself (inf), the
        # seconds of rows that run no noise or diffusion.
        return format(value, spec) if meaningful and math.isfinite(value) else "–"

    for r in rows:
        lines.append(f"| {r.name} | {cell(r.warping_error, '.2f')} | {cell(r.psnr, '.2f')} | "
                     f"{cell(r.ssim, '.4f')} | {cell(r.detail, '.2f')} | "
                     f"{cell(r.seconds, '.1f', r.seconds > 0)} |")
    s = settings
    lines.append("")
    lines.append(f"4x SR of {s['frames']} frames of {s['size']} with the bundled conditional "
                 f"model, DDIM eta {s['eta']}, strength {s['strength']}, {s['steps']} steps "
                 f"({s['run_steps']} run), seed {s['seed']}. Warping error: mean "
                 "|O_t - warp(O_t-1)| on pixels visible in both frames, DIS flow of the ground "
                 "truth. Detail: mean |Laplacian| of luma relative to the ground truth (below 1 = "
                 "blurrier). Seconds: noise + diffusion.")
    return "\n".join(lines) + "\n"


def _plot(rows: list[DemoRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_output

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, key, label in zip(axes, ("warping_error", "psnr", "ssim", "detail"),
                              ("warping error ↓ (0-255)", "PSNR ↑ (dB)", "SSIM ↑",
                               "detail (ground truth = 1)"), strict=True):
        # The ground truth scores PSNR = inf and SSIM = 1 against itself: leave it out there.
        shown = [r for r in rows if key in ("warping_error", "detail") or r.name != "ground truth"]
        vals = [getattr(r, key) for r in shown]
        colors = ["0.6" if r.name in ("ground truth", "bicubic input") else "C0" for r in shown]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)), [r.name for r in shown], rotation=35, ha="right",
                      fontsize=8)
        ax.set_title(label, fontsize=10)
        if key in ("psnr", "ssim"):
            lo = min(vals)
            ax.set_ylim(lo - 0.1 * abs(lo), max(vals) + 0.05 * abs(max(vals)))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _strip(videos: dict[str, np.ndarray], flows: tuple[Any, Any], path: Path,
           frames: tuple[int, ...]) -> None:
    """Rows: each video; columns: a few frames and the |O_t - warp(O_t-1)| map of the last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..flow import forward_backward_occlusion, pixel_grid, sample
    from ..io.atomic import atomic_output
    from .metrics import to_float_frames

    b, f = flows
    last = frames[-1]
    n = len(videos)
    fig, axes = plt.subplots(n, len(frames) + 1, figsize=(1.6 * (len(frames) + 1), 1.6 * n))
    for i, (name, v) in enumerate(videos.items()):
        x = to_float_frames(v[last - 1:last + 1])
        h, w = x.shape[2:]
        warped = sample(x[0], pixel_grid(h, w) + b[last - 1])
        err = (x[1] - warped).abs().mean(0)
        err[forward_backward_occlusion(b[last - 1], f[last - 1])] = 0
        for j, t in enumerate(frames):
            axes[i, j].imshow(v[t])
            if i == 0:
                axes[i, j].set_title(f"frame {t}", fontsize=8)
        axes[i, -1].imshow(torch.clamp(err * 4, 0, 1).numpy(), cmap="magma", vmin=0, vmax=1)
        if i == 0:
            axes[i, -1].set_title(f"|O{last}-warp(O{last - 1})|x4", fontsize=8)
        axes[i, 0].set_ylabel(name, fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout(pad=0.3)  # 1.6 in at 80 dpi: one screen pixel per frame pixel
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
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


def run_demo(
    out_dir: str | Path,
    *,
    strength: float | None = None,
    steps: int | None = None,
    eta: float = 1.0,
    seed: int = 0,
    frames: int | None = None,
    methods: list[str] | None = None,
    noise_preview: bool = True,
    progress: Progress | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run the super-resolution comparison and write its outputs into ``out_dir``.

    Writes ``side_by_side.mp4`` (ground truth | bicubic | one panel per method), ``comparison.png``
    (bar charts), ``frame_strip.png`` (frames and a warping-error map per method),
    ``noise_figure.png`` (a frame of each noise and its covariance maps), ``results.json`` and
    ``results.md``; with ``noise_preview`` also ``sample_noise.safetensors`` and
    ``sample_noise_preview.mp4`` from :func:`warpnoise.pipeline.video_to_noise` on the bundled
    ``sample.mp4``. ``strength``/``steps`` default to the model's
    (:data:`~warpnoise.diffusion.sr.STRENGTH`, ``STEPS``). Every file appears atomically.

    Returns:
        The content of ``results.json``.
    """
    from ..estimate import estimate_flows
    from ..io import jsontext
    from ..io.atomic import atomic_output, check_output_folder
    from ..io.video import write_video
    from .sr import STEPS, STRENGTH, load_sr_model

    say = log or (lambda _msg: None)
    names = methods or demo_methods()
    strength = STRENGTH if strength is None else strength
    steps = STEPS if steps is None else steps
    # Every argument is checked before the folder is made or anything runs.
    out = check_output_folder(out_dir)
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int)
                               or frames < 2):
        raise ValueError(f"the demo needs at least 2 frames, got frames={frames!r}")
    for name in names:
        EditOptions(method=name, task="sr4", strength=strength, steps=steps, eta=eta,
                    seed=seed).check()
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    gt = load_sr_clip()[:frames]
    preview = None
    if noise_preview:  # first: it takes seconds, and it shows the basic path works
        preview = _noise_preview(out)
        say(f"noise: bundled sample.mp4 -> {preview['output']} {tuple(preview['shape'])} in "
            f"{preview['seconds']['total']:.1f} s, preview sample_noise_preview.mp4")
    lr = downsample(gt, 4)
    up = bicubic_up(lr, 4)
    say(f"clip: {gt.shape[0]} frames {gt.shape[2]}x{gt.shape[1]}, input {lr.shape[2]}x"
        f"{lr.shape[1]} -> 4x; methods: {', '.join(names)}")
    gt_flows = estimate_flows(gt, "dis", preset="medium")
    in_flows = estimate_flows(up, "dis", preset="medium")
    net, scheduler = load_sr_model()

    rows = [_score("ground truth", gt, gt, gt_flows, 0.0),
            _score("bicubic input", up, gt, gt_flows, 0.0)]
    videos = {"ground truth": gt, "bicubic input": up}
    noises = {}
    for k, name in enumerate(names):
        opts = EditOptions(method=name, task="sr4", strength=strength, steps=steps, eta=eta,
                           seed=seed)

        def step_progress(stage: str, done: int, total: int, _name: str = name) -> None:
            if progress is not None:
                progress(f"{_name}", done, total)

        res = edit_frames(lr, opts, unet=net, scheduler=scheduler, flows=in_flows,
                          progress=step_progress)
        seconds = res.seconds["noise"] + res.seconds["diffusion"]
        row = _score(name, res.frames, gt, gt_flows, seconds)
        rows.append(row)
        videos[name] = res.frames
        noises[name] = res.noise
        say(f"[{k + 1}/{len(names)}] {name}: warping error {row.warping_error:.2f}, PSNR "
            f"{row.psnr:.2f} dB, SSIM {row.ssim:.4f}, {seconds:.1f} s")

    settings = {"frames": int(gt.shape[0]), "size": f"{gt.shape[2]}x{gt.shape[1]}",
                "strength": strength, "steps": steps, "eta": eta, "seed": seed,
                "run_steps": max(1, int(steps * strength)), "default_method": DEFAULT_METHOD,
                "flow": "DIS medium (noise: on the bicubic input; metric: on the ground truth)"}
    panels = np.concatenate(list(videos.values()), axis=2)
    write_video(out / "side_by_side.mp4", panels, fps=8.0)
    _plot(rows, out / "comparison.png")
    show = [0, gt.shape[0] // 3, 2 * gt.shape[0] // 3, gt.shape[0] - 1]
    _strip(videos, gt_flows, out / "frame_strip.png", tuple(show))
    _noise_figure(noises, in_flows[0], out / "noise_figure.png", show[1])
    result: dict[str, Any] = {"settings": settings, "panels": list(videos),
                              "rows": [asdict(r) for r in rows]}
    if preview is not None:
        result["noise_preview"] = preview
    result["seconds_total"] = time.perf_counter() - t_all
    with atomic_output(out / "results.md") as tmp:
        tmp.write_text(_table(rows, settings))
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
