"""Train the bundled pixel-space denoiser (``src/warpnoise/data/denoiser.safetensors``).

An ε-prediction DDPM (Ho et al. 2020, Eq. 14: ``|ε - ε_θ(sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) ε, t)|²``
with t uniform) on random RGB crops of real images:

- scikit-image's sample images (``skimage.data``: astronaut, coffee, chelsea, rocket,
  immunohistochemistry, and the grayscale camera, brick, grass, gravel as RGB);
- excerpts of OpenCV's sample data bundled in ``src/warpnoise/data/train_images/`` (frames 0, 250,
  330, 400 of ``box.mp4`` at 320x240 — the demo clip, frames 110-140, is *not* among them — frames 0
  and 60 of ``tree.avi``, and Middlebury RubberWhale / Basketball frame 1).

Reproducible: every random draw comes from generators seeded by ``--seed``; on CPU two runs give
the same weights (checked: identical sha256). Uses CUDA when present (faster; GPU kernels are not
bit-reproducible).

    python scripts/train_denoiser.py            # 1000 steps of 12x48²: the bundled weights,
                                                # 23 min on a busy 2-core CPU (1 thread)
    python scripts/train_denoiser.py --out /tmp/d.safetensors --steps 50   # smoke run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _training import Trainer, seeded_init
from PIL import Image

from warpnoise.editing.denoiser import denoiser_config, new_denoiser, save_denoiser

ROOT = Path(__file__).resolve().parents[1]
TRAIN_DIR = ROOT / "src" / "warpnoise" / "data" / "train_images"
COLOR = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"]
GRAY = ["camera", "brick", "grass", "gravel"]


def load_images() -> list[torch.Tensor]:
    """Training images as ``(3, H, W)`` float tensors in [-1, 1], each at scales 1, 3/4 and 1/2
    (more scales of texture for a model that will see bicubic-upsampled frames)."""
    import skimage.data

    arrays = [getattr(skimage.data, n)()[..., :3] for n in COLOR]
    arrays += [np.repeat(getattr(skimage.data, n)()[..., None], 3, axis=2) for n in GRAY]
    arrays += [np.asarray(Image.open(p).convert("RGB")) for p in sorted(TRAIN_DIR.glob("*.jpg"))]
    out = []
    for a in arrays:
        x = torch.from_numpy(np.array(a)).permute(2, 0, 1).float()[None] / 127.5 - 1
        for s in (1.0, 0.75, 0.5):
            y = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear",
                                                 antialias=True, align_corners=False)
            out.append(y[0].clamp(-1, 1))
    return out


def random_batch(images: list[torch.Tensor], n: int, crop: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 3, crop, crop)`` random crops with random horizontal flips."""
    idx = torch.randint(len(images), (n,), generator=g).tolist()
    batch = []
    for i in idx:
        im = images[i]
        _, h, w = im.shape
        y = int(torch.randint(h - crop + 1, (1,), generator=g))
        x = int(torch.randint(w - crop + 1, (1,), generator=g))
        c = im[:, y:y + crop, x:x + crop]
        if bool(torch.rand((), generator=g) < 0.5):
            c = c.flip(-1)
        batch.append(c)
    return torch.stack(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (1 is fastest on a busy 2-core machine, and deterministic)")
    ap.add_argument("--save-every", type=int, default=100,
                    help="also write the EMA weights every N steps (resumable inspection)")
    ap.add_argument("--out", type=Path, default=ROOT / "src/warpnoise/data/denoiser.safetensors")
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    config = denoiser_config()
    unet, scheduler = seeded_init(lambda: new_denoiser(config), args.seed)
    unet.to(device).train()
    alphas = scheduler.alphas_cumprod.to(device)

    images = load_images()
    g_data = torch.Generator().manual_seed(args.seed + 1)
    g_noise = torch.Generator(device=device).manual_seed(args.seed + 2)
    print(f"{len(images)} images (3 scales), {sum(p.numel() for p in unet.parameters())/1e6:.2f}M "
          f"parameters, {args.steps} steps of {args.batch}x{args.crop}² on {device}", flush=True)
    trainer = Trainer(unet, args.steps, args.lr, args.ema)

    for step in range(args.steps):
        x0 = random_batch(images, args.batch, args.crop, g_data).to(device)
        t = torch.randint(scheduler.config.num_train_timesteps, (args.batch,), generator=g_noise,
                          device=device)
        eps = torch.randn(x0.shape, generator=g_noise, device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(unet(xt, t).sample, eps)
        trainer.step(step, loss)
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            save_denoiser(trainer.ema, config, args.out)
    save_denoiser(trainer.ema, config, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
