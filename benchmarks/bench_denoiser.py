"""Denoising quality of the bundled model against classical denoisers (PSNR, dB).

Held-out real images (none were seen in training): the 16-frame demo clip (frames 0, 5, 10, 15 of
``data/sr_clip.npz``, cut from box.mp4 frames 110-140; training used frames 0/250/330/400) and
256x256 crops of scikit-image's ``retina`` and ``hubble_deep_field``. Each gets Gaussian noise of
std σ (in 0-255 units, fixed seed); the model denoises in one step (x̂0 from ε̂ at the DDPM time
whose noise level matches σ); the classical baselines are a Gaussian blur and TV (Chambolle)
with their parameter chosen per σ *by looking at the ground truth* (an oracle: an upper bound
on what they can do). The floor row is the noisy input itself.

    python benchmarks/bench_denoiser.py
"""

from __future__ import annotations

import numpy as np
import torch

from warpnoise.editing.demo import load_sr_clip
from warpnoise.editing.denoiser import load_denoiser

SIGMAS = (10, 25, 50, 100)


def images() -> list[np.ndarray]:
    import skimage.data

    clip = load_sr_clip()
    out = [clip[i].astype(np.float64) / 255 for i in (0, 5, 10, 15)]
    for name in ("retina", "hubble_deep_field"):
        im = getattr(skimage.data, name)()
        h, w = im.shape[:2]
        out.append(im[h // 2 - 128:h // 2 + 128, w // 2 - 128:w // 2 + 128, :3] / 255.0)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def model_denoise(unet, sched, y: np.ndarray, sigma: float) -> np.ndarray:
    """One-step x̂0 at the DDPM time t with sqrt((1-ᾱ_t)/ᾱ_t) = σ (in [-1, 1] units)."""
    s = 2 * sigma / 255
    ratio = ((1 - sched.alphas_cumprod) / sched.alphas_cumprod).sqrt()
    t = int((ratio - s).abs().argmin())
    a = sched.alphas_cumprod[t]
    x = torch.from_numpy(y * 2 - 1).permute(2, 0, 1)[None].float()
    xt = a.sqrt() * x
    with torch.no_grad():
        eps = unet(xt, t).sample
    x0 = (xt - (1 - a).sqrt() * eps) / a.sqrt()
    return ((x0[0].permute(1, 2, 0).double().numpy() + 1) / 2).clip(0, 1)


def best_of(fn, params, y: np.ndarray, x: np.ndarray) -> float:
    return max(psnr(fn(y, p), x) for p in params)


def main() -> None:
    from scipy.ndimage import gaussian_filter
    from skimage.restoration import denoise_tv_chambolle

    unet, sched = load_denoiser()
    ims = images()
    rows: dict[str, list[float]] = {"noisy input (floor)": [], "Gaussian blur (oracle σ)": [],
                                    "TV Chambolle (oracle weight)": [], "bundled model": []}
    g = np.random.default_rng(0)
    for sigma in SIGMAS:
        acc: dict[str, list[float]] = {k: [] for k in rows}
        for x in ims:
            y = x + g.standard_normal(x.shape) * sigma / 255
            acc["noisy input (floor)"].append(psnr(y, x))
            acc["Gaussian blur (oracle σ)"].append(best_of(
                lambda im, p: gaussian_filter(im, (p, p, 0)), (0.5, 0.75, 1, 1.5, 2, 3, 4), y, x))
            acc["TV Chambolle (oracle weight)"].append(best_of(
                lambda im, p: denoise_tv_chambolle(im, weight=p, channel_axis=2),
                (0.02, 0.05, 0.1, 0.2, 0.4), y, x))
            acc["bundled model"].append(psnr(model_denoise(unet, sched, y, sigma), x))
        for k in rows:
            rows[k].append(float(np.mean(acc[k])))
    head = "| denoiser | " + " | ".join(f"σ={s}" for s in SIGMAS) + " | gain over floor, median |"
    print(f"PSNR (dB), mean over {len(ims)} held-out images; σ in 0-255 units")
    print(head)
    print("|" + " --- |" * (len(SIGMAS) + 2))
    floor = rows["noisy input (floor)"]
    for k, v in rows.items():
        gain = float(np.median(np.array(v) - np.array(floor)))
        print(f"| {k} | " + " | ".join(f"{p:.2f}" for p in v) + f" | {gain:+.2f} dB |")


if __name__ == "__main__":
    main()
