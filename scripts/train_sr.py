"""Train the bundled 4x super-resolver (``src/warpnoise/data/sr4.safetensors``).

The SR3-style residual model of :mod:`warpnoise.editing.sr`: with ``up`` the bicubic 4x
upsampling of the 4x area-downsampled crop ``x0`` (the degradation the demo and ``warpnoise edit
--task sr4`` use, :func:`~warpnoise.editing.edit.downsample` then
:func:`~warpnoise.editing.edit.bicubic_up`, uint8 at each stage as there), the residual
``r = k (x0 - up)`` is diffused and the network, given ``[r_t, up]`` and ``t``, is trained on
``|v - v_θ|²`` with ``v = sqrt(ᾱ_t) ε - sqrt(1-ᾱ_t) r`` (Salimans & Ho 2022, §4), for half of each
batch with ``t = ⌊(T-1) u²⌋``, u uniform (low noise levels, where the sampler runs, weigh more;
every level below ``T-1`` is trained). The other half trains the posterior-mean mode that the
sampler starts from (:func:`~warpnoise.editing.sr.predicted_residual`): input ``r_t = 0`` at
``t = T-1``, target the ``v`` whose x0-prediction is ``r``, i.e. the regression of ``E[r | up]``.
Measured while designing this: with t uniform only, that mean was learnt slowly (correlation
0.08-0.15 with the true residual after 750 steps, where a plain regression of the same network
reached 0.2-0.5 after 200); at ``t = T-1`` from noise instead of zeros, 0.08-0.32 after 1600.

Training images (real photographs only; none of them from ``box.mp4``, the demo clip's video):

- scikit-image's ``astronaut``, ``immunohistochemistry``, ``stereo_motorcycle`` (left view), and
  the grayscale ``camera``, ``brick``, ``grass``, ``gravel``, ``moon``, ``coins``, ``clock`` as RGB;
- excerpts of OpenCV's sample data in ``src/warpnoise/data/train_images/``: Middlebury
  RubberWhale and Basketball frame 1, ``tree.avi`` frames 0 and 60.

Each at scales 1, 3/4 and 1/2 (antialiased), random crops with the 8 flips/rotations. Held out for
``benchmarks/bench_sr.py``: ``chelsea``, ``coffee``, ``rocket`` and the demo clip.

Length: the learning rate follows a 2400-step schedule (``--steps``) and the bundled weights are
the EMA after step 1500 of it (``--stop-after``): the full 2400 did not fit in an hour on this
shared 2-core machine under load (0.7 s per step when it was quiet, 1.5-2.6 s when loaded), and the
step-1500 weights already beat bicubic (``benchmarks/bench_sr.py``).

Reproducible: every random draw comes from generators seeded by ``--seed``; on a CPU, the same
thread count gives the same weights (sha256 printed at the end; checked by running twice).

    python scripts/train_sr.py                                   # the bundled weights
    python scripts/train_sr.py --out /tmp/sr.safetensors --steps 40   # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _training import Trainer, seeded_init
from PIL import Image

from warpnoise.editing.edit import bicubic_up, downsample, to_model
from warpnoise.editing.sr import new_sr_model, save_sr_model, sr_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN_DIR = ROOT / "src" / "warpnoise" / "data" / "train_images"
COLOR = ["astronaut", "immunohistochemistry"]
GRAY = ["camera", "brick", "grass", "gravel", "moon", "coins", "clock"]
EXCERPTS = ["rubberwhale1.jpg", "basketball1.jpg", "tree_000.jpg", "tree_060.jpg"]
SCALES = (1.0, 0.75, 0.5)
FACTOR = 4


def load_images() -> list[np.ndarray]:
    """The training images as ``(H, W, 3)`` uint8 arrays, each at every scale of ``SCALES``."""
    import skimage.data

    arrays = [getattr(skimage.data, n)()[..., :3] for n in COLOR]
    arrays.append(skimage.data.stereo_motorcycle()[0])
    arrays += [np.repeat(getattr(skimage.data, n)()[..., None], 3, axis=2) for n in GRAY]
    arrays += [np.asarray(Image.open(TRAIN_DIR / n).convert("RGB")) for n in EXCERPTS]
    out = []
    for a in arrays:
        x = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float()
        for s in SCALES:
            y = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear",
                                                 antialias=True, align_corners=False)
            out.append(y[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return out


def random_crops(images: list[np.ndarray], n: int, crop: int, g: torch.Generator) -> np.ndarray:
    """``(n, crop, crop, 3)`` uint8 crops, each under one of the 8 flips/rotations."""
    idx = torch.randint(len(images), (n,), generator=g).tolist()
    out = []
    for i in idx:
        im = images[i]
        y = int(torch.randint(im.shape[0] - crop + 1, (), generator=g))
        x = int(torch.randint(im.shape[1] - crop + 1, (), generator=g))
        c = im[y:y + crop, x:x + crop]
        k = int(torch.randint(8, (), generator=g))
        c = np.rot90(c, k % 4)
        out.append(c[:, ::-1] if k >= 4 else c)
    return np.ascontiguousarray(np.stack(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2400,
                    help="length of the learning-rate schedule (warm-up, cosine decay)")
    ap.add_argument("--stop-after", type=int, default=1500,
                    help="stop after this many steps and write the EMA weights then (0: --steps); "
                         "the bundled weights are step 1500 of the 2400-step schedule")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=64, help="high-resolution crop size (pixels)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2,
                    help="CPU threads (1 and 2 gave the same bits; 1 is faster on a busy machine)")
    ap.add_argument("--save-every", type=int, default=250,
                    help="also write the EMA weights every N steps (inspect a run in progress)")
    ap.add_argument("--out", type=Path, default=ROOT / "src/warpnoise/data/sr4.safetensors")
    args = ap.parse_args()
    if args.crop % FACTOR:
        ap.error(f"--crop must be a multiple of {FACTOR}")
    if args.stop_after < 0:
        ap.error("--stop-after must be >= 0")
    run = min(args.stop_after, args.steps) if args.stop_after else args.steps

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    net, scheduler = seeded_init(lambda: new_sr_model(sr_config()), args.seed)
    net.to(device).train()
    alphas = scheduler.alphas_cumprod.to(device)
    k = net.config["residual_scale"]
    last = scheduler.config.num_train_timesteps - 1
    half = args.batch // 2

    images = load_images()
    g_data = torch.Generator().manual_seed(args.seed + 1)
    g_noise = torch.Generator(device=device).manual_seed(args.seed + 2)
    print(f"{len(images)} images ({len(SCALES)} scales), "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M parameters, {run} steps (of a "
          f"{args.steps}-step schedule) of {args.batch}x{args.crop}² on {device}, "
          f"{args.threads} threads", flush=True)
    trainer = Trainer(net, args.steps, args.lr, args.ema)

    cpu0 = time.process_time()
    for step in range(run):
        hr = random_crops(images, args.batch, args.crop, g_data)
        x0, up = to_model(hr).to(device), to_model(bicubic_up(downsample(hr, FACTOR), FACTOR))
        up = up.to(device)
        r = k * (x0 - up)
        # Timesteps biased to low noise (density ∝ t^-1/2: 55% below 300), where the sampler
        # runs; the last one is kept for the posterior-mean mode.
        t = (torch.rand(args.batch, generator=g_noise, device=device).square() * last).long()
        t[:half] = last
        eps = torch.randn(r.shape, generator=g_noise, device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        rt = a.sqrt() * r + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * r
        # Posterior-mean mode: input r_t = 0, target the v whose x0-prediction is r.
        rt[:half] = 0
        v[:half] = -r[:half] / (1 - a[:half]).sqrt()
        loss = F.mse_loss(net(torch.cat([rt, up], 1), t), v)
        trainer.step(step, loss)
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < run:
            save_sr_model(trainer.ema, args.out)
    save_sr_model(trainer.ema, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    # CPU time beside wall time: on a shared machine the wall time says more about the neighbours.
    wall, cpu = time.time() - trainer.t0, time.process_time() - cpu0
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {wall:.0f} s wall, "
          f"{cpu:.0f} s CPU; sha256 {digest}", flush=True)


if __name__ == "__main__":
    main()
