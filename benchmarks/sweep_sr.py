"""Where the noise matters and the bundled super-resolver still beats bicubic: a sampling sweep.

For each sampling setting (DDIM η, strength, steps; the reverse process starts from the model's
posterior mean noised to ``strength · T``, :func:`warpnoise.editing.sr.super_resolve`), on
the held-out sets of ``bench_sr.py`` (the demo's three clips, and scikit-image's ``chelsea``,
``coffee``, ``rocket``): PSNR and SSIM against bicubic (Δ, mean over sets' items and seeds), and
how much of the output the noise decides: the RMS of the hallucinated detail (output minus the
noise-free output of the same sampling, every draw zero; 0-255) and its share of what the model
adds to bicubic, ``RMS(out - noise_free) / RMS(out - bicubic)``. η = 0 is the deterministic
sampler, fed noise at the start only.

    python benchmarks/sweep_sr.py                      # the grid below, 1 seed, whole images
    python benchmarks/sweep_sr.py --crop 256 --seeds 2 --settings 1:0.2:20 0:0.5:20
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_sr import held_out_sets, sample
from diffusers import DDIMScheduler

from warpnoise.editing.edit import bicubic_up, downsample
from warpnoise.editing.metrics import psnr, ssim
from warpnoise.editing.sr import ETA, STEPS, STRENGTH, load_sr_model

#: ``eta:strength:steps``; the first is the model's former default.
GRID = [f"{ETA:g}:{STRENGTH:g}:{STEPS}", "1:0.1:20", "1:0.1:40", "1:0.15:20", "1:0.2:20",
        "1:0.2:10", "1:0.3:10", "0.5:0.2:20", "0.5:0.3:20", "0:0.2:20", "0:0.3:20", "0:0.5:20",
        "0:0.5:10", "0:0.7:10"]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=GRID, help="eta:strength:steps ...")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--crop", type=int, default=None, help="the images' central CROP² only")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--only", choices=("clips", "images"), default=None, help="one set only")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    net, trained = load_sr_model(args.weights)
    sched = DDIMScheduler.from_config(trained.config)
    sets = held_out_sets(args.crop)
    if args.only:
        sets = {args.only: sets[args.only]}
    prepared = {name: [(gt, bicubic_up(downsample(gt, 4), 4)) for gt in items]
                for name, items in sets.items()}
    print("| η | strength | steps (run) |" + "".join(
        f" ΔPSNR {s} (dB) | ΔSSIM {s} | detail RMS {s} (0-255) | noise share {s} |"
        for s in sets) + " s |")
    print("|---:|---:|---:|" + "---:|" * (4 * len(sets) + 1))
    for setting in args.settings:
        eta, strength, steps = (float(v) for v in setting.split(":"))
        steps = int(steps)
        tic = time.perf_counter()
        cells = []
        for items in prepared.values():
            dp, ds, drms, share = [], [], [], []
            for gt, up in items:
                free = sample(net, sched, up, None, strength, steps, eta)
                for seed in range(args.seeds):
                    out = sample(net, sched, up, seed, strength, steps, eta)
                    dp.append(psnr(out, gt) - psnr(up, gt))
                    ds.append(ssim(out, gt) - ssim(up, gt))
                    d = out.astype(np.int16) - free
                    drms.append(rms(d))
                    share.append(rms(d) / max(rms(out.astype(np.int16) - up), 1e-9))
            cells += [f"{np.mean(dp):+.2f}", f"{np.mean(ds):+.4f}", f"{np.mean(drms):.2f}",
                      f"{np.mean(share):.2f}"]
        run = max(1, int(steps * strength))
        print(f"| {eta:g} | {strength:g} | {steps} ({run}) | " + " | ".join(cells)
              + f" | {time.perf_counter() - tic:.0f} |", flush=True)


if __name__ == "__main__":
    main()
