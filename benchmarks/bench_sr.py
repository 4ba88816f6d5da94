"""4x super-resolution quality of the bundled model against bicubic upsampling (the floor).

Held-out real images, none of them seen in training (``scripts/train_sr.py`` lists what was):
scikit-image's ``chelsea``, ``coffee`` and ``rocket`` (whole, cropped to multiples of 4) and the
demo's three 16-frame clips (:data:`warpnoise.editing.demo.CLIPS`, from ``box.mp4``, a video no
training image comes from).
Each is area-downsampled 4x and upsampled again, by bicubic interpolation (the floor) and by the
model, sampling with i.i.d. noise (DDIM η = 1, fresh noise at every step) from several seeds.
Printed: PSNR and SSIM per set (the images together, each clip alone) with their differences to
bicubic, the spread between two seeds' outputs (PSNR of one against the other: infinite if the
noise did not matter), and the seconds per megapixel of output. Without ``--strength``,
``--steps``, ``--eta``: two rows, the model's default sampling (:mod:`warpnoise.editing.sr`)
and the demo's (:data:`warpnoise.editing.demo.SAMPLING`, where the noise matters more).

    python benchmarks/bench_sr.py                       # the model's and the demo's sampling
    python benchmarks/bench_sr.py --strength 0.5 --steps 20 --seeds 3 --weights /tmp/sr.safetensors
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from diffusers import DDIMScheduler

from warpnoise.editing.demo import CLIPS, SAMPLING, load_clip
from warpnoise.editing.edit import bicubic_up, downsample, to_model, to_uint8
from warpnoise.editing.metrics import psnr, ssim
from warpnoise.editing.sr import ETA, STEPS, STRENGTH, load_sr_model, super_resolve

HELD_OUT = ("chelsea", "coffee", "rocket")


def held_out_sets(crop: int | None = None, per_clip: bool = False,
                  ) -> dict[str, list[np.ndarray]]:
    """``{"images": [(1, H, W, 3) uint8 ...], "clips": [(16, 128, 128, 3) uint8 ...]}``; with
    ``crop``, the images' central ``crop x crop`` (at most); with ``per_clip``, one set per clip
    (named as the clip) instead of ``"clips"``."""
    import skimage.data

    images = []
    for name in HELD_OUT:
        im = getattr(skimage.data, name)()[..., :3]
        h, w = im.shape[0] // 4 * 4, im.shape[1] // 4 * 4
        if crop is not None:
            ch, cw = min(h, crop // 4 * 4), min(w, crop // 4 * 4)
            y, x = (h - ch) // 8 * 4, (w - cw) // 8 * 4
            im, h, w = im[y:y + ch, x:x + cw], ch, cw
        images.append(np.ascontiguousarray(im[None, :h, :w]))
    if per_clip:
        return {"images": images} | {name: [load_clip(name)] for name in CLIPS}
    return {"images": images, "clips": [load_clip(name) for name in CLIPS]}


def sample(net, sched, up: np.ndarray, seed: int | None, strength: float, steps: int,
           eta: float = ETA) -> np.ndarray:
    """One 4x super-resolution of ``up`` (the bicubic frames) with i.i.d. noise from ``seed``
    (``None``: every draw zero, the noise-free output)."""
    g = None if seed is None else torch.Generator().manual_seed(seed)
    shape = (up.shape[0], 3, up.shape[1], up.shape[2])

    def noise(*_: object) -> torch.Tensor:
        return torch.zeros(shape) if g is None else torch.randn(shape, generator=g)

    with torch.no_grad():
        out = super_resolve(net, sched, to_model(up), noise, strength=strength, steps=steps,
                            eta=eta, batch_size=4)
    return to_uint8(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="a model saved by scripts/train_sr.py")
    ap.add_argument("--strength", type=float, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--eta", type=float, default=None, help="DDIM eta (0: noise at the start only)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--crop", type=int, default=None,
                    help="use the images' central CROP x CROP only (quicker)")
    args = ap.parse_args()
    model = {"strength": STRENGTH, "steps": STEPS, "eta": ETA}
    if (args.strength, args.steps, args.eta) == (None, None, None):
        samplings = {"model, its default sampling": model, "model, the demo's sampling": SAMPLING}
    else:
        given = {k: v for k, v in (("strength", args.strength), ("steps", args.steps),
                                   ("eta", args.eta)) if v is not None}
        samplings = {"model": model | given}

    net, trained = load_sr_model(args.weights)
    sched = DDIMScheduler.from_config(trained.config)
    rows: dict[str, dict[str, list[float]]] = {}
    spread: dict[str, list[float]] = {}
    seconds, pixels = 0.0, 0
    sets = held_out_sets(args.crop, per_clip=True)
    for set_name, clips in sets.items():
        for gt in clips:
            up = bicubic_up(downsample(gt, 4), 4)
            scores = {"bicubic (floor)": [(psnr(up, gt), ssim(up, gt))]}
            for label, s in samplings.items():
                outs = []
                for seed in range(args.seeds):
                    tic = time.perf_counter()
                    outs.append(sample(net, sched, up, seed, s["strength"], s["steps"],
                                       s["eta"]))
                    seconds += time.perf_counter() - tic
                    pixels += gt.shape[0] * gt.shape[1] * gt.shape[2]
                name = f"{label} (η {s['eta']:g}, strength {s['strength']:g}, {s['steps']} steps)"
                scores[name] = [(psnr(o, gt), ssim(o, gt)) for o in outs]
                if len(outs) > 1:
                    spread.setdefault(name, []).append(psnr(outs[0], outs[1]))
            for k, v in scores.items():
                acc = rows.setdefault(k, {})
                acc.setdefault(f"{set_name} psnr", []).extend(p for p, _ in v)
                acc.setdefault(f"{set_name} ssim", []).extend(s for _, s in v)

    print(f"4x SR, held-out: {', '.join(HELD_OUT)} (images) and the demo's clips "
          f"({', '.join(CLIPS)}); DDIM, i.i.d. noise, mean over {args.seeds} seeds; "
          f"{seconds / max(pixels, 1) * 1e6:.1f} s per output megapixel")
    print("| upsampler |" + "".join(f" PSNR {s} (dB) | Δ | SSIM {s} | Δ |" for s in sets))
    print("|---|" + "---:|" * (4 * len(sets)))
    floor = rows["bicubic (floor)"]
    for name, acc in rows.items():
        cells = []
        for s in sets:
            p, q = float(np.mean(acc[f"{s} psnr"])), float(np.mean(acc[f"{s} ssim"]))
            p0, q0 = float(np.mean(floor[f"{s} psnr"])), float(np.mean(floor[f"{s} ssim"]))
            cells += [f"{p:.2f}", f"{p - p0:+.2f}", f"{q:.4f}", f"{q - q0:+.4f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, v in spread.items():
        print(f"seed 0 vs seed 1, {name}: PSNR {np.mean(v):.2f} dB over the sets (the noise "
              "changes the output)")


if __name__ == "__main__":
    main()
