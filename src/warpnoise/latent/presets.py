"""Per-model presets: warped noise as exactly the tensor a diffusers pipeline's ``latents=`` takes.

A preset says how a model's VAE and transformer see a clip: latent channels, spatial factor ``s``
(pixels per latent pixel), temporal factor ``r`` (pixel frames per latent frame), the frame and
size rules, the tensor layout and any packing into tokens. Checked against the diffusers 0.42
sources (``prepare_latents``, ``check_inputs``, ``_pack_latents`` of each pipeline):

============== ====== ==== === ====== ======== ===========================================
preset         latent s    r   frames H, W     ``latents=``
============== ====== ==== === ====== ======== ===========================================
wan2.1         16     8    4   4k+1   mult. 16 ``(B, 16, F, H/8, W/8)``
wan2.2-a14b    16     8    4   4k+1   mult. 16 same as wan2.1
wan2.2-ti2v-5b 48     16   4   4k+1   mult. 32 ``(B, 48, F, H/16, W/16)``
cogvideox      16     8    4   4k+1   mult. 16 ``(B, F, 16, H/8, W/8)`` (frames first)
cogvideox1.5   16     8    4   4k+1   mult. 16 as cogvideox, F padded to even (at the front)
hunyuanvideo   16     8    4   4k+1   mult. 16 ``(B, 16, F, H/8, W/8)``
ltx-video      128    32   8   8k+1   mult. 32 tokens ``(B, F·H/32·W/32, 128)``
sd             4      8    1   any    mult. 8  ``(T, 4, H/8, W/8)``: the frames are the batch
sdxl           4      8    1   any    mult. 8  ``(T, 4, H/8, W/8)``
flux           16     8    1   any    mult. 16 tokens ``(T, H/16·W/16, 64)`` (2x2 patches)
============== ====== ==== === ====== ======== ===========================================

``F = (T − 1) / r + 1``. Temporal compression keeps unit variance by *subsampling*: latent frame
``k`` is pixel frame ``k r`` (Go-with-the-Flow's ``round(i·48/12)`` for 49 → 13 frames). An
average of ``r`` warped frames would not be unit variance, because they are correlated.
CogVideoX 1.5's transformer patches 2 latent frames at a time; its pipeline pads the latent frames
at the front to an even count and drops the padding after denoising, so the padding frames here
are fresh N(0, 1) draws from the caller's generator (what ``randn_tensor`` would put there).

The pieces are separate so that a stream (or a ComfyUI node) can use them frame by frame:
:func:`check_video` (the rules, before any work), :func:`keeps_frame` (which pixel frames survive
temporal compression), :func:`~warpnoise.diffusion.degrade` per kept frame, and
:func:`arrange_latents` (padding, layout, packing) once at the end. :func:`latents_for` chains
them for a whole clip; :func:`split_latents` undoes :func:`arrange_latents`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..field import block_integrate
from ..rng import make_generator
from .degradation import degrade
from .layout import to_video_latents

__all__ = [
    "PRESETS",
    "LatentPreset",
    "arrange_latents",
    "check_video",
    "keeps_frame",
    "latent_preset",
    "latents_for",
    "pack_tokens",
    "split_latents",
    "unpack_tokens",
]


@dataclass(frozen=True)
class LatentPreset:
    """How one model family takes initial noise (see the module table).

    Attributes:
        name: the preset's key in :data:`PRESETS`.
        title: the model's name for messages.
        pipeline: the diffusers pipeline class whose ``latents=`` this matches.
        channels: latent channels.
        spatial: VAE spatial compression ``s``.
        temporal: VAE temporal compression ``r`` (1 for image models: the frames are the batch).
        size_multiple: H and W (pixels) must be multiples of this (VAE × transformer patch).
        layout: ``"bcfhw"``, ``"bfchw"`` (frames before channels) or ``"bchw"`` (image models).
        patch: ``(p_t, p)`` token packing of ``_pack_latents``, or None for an unpacked tensor.
        frame_multiple: latent frames padded (at the front) to a multiple of this.
    """

    name: str
    title: str
    pipeline: str
    channels: int
    spatial: int
    temporal: int
    size_multiple: int
    layout: str
    patch: tuple[int, int] | None = None
    frame_multiple: int = 1

    @property
    def is_video(self) -> bool:
        return self.layout != "bchw"

    def latent_frames(self, frames: int) -> int:
        """Latent frames the pipeline's VAE makes of ``frames`` pixel frames (before padding)."""
        return (frames - 1) // self.temporal + 1

    def frame_rule(self) -> str:
        r = self.temporal
        return "any number of frames" if r == 1 else f"{r}k+1 frames (1, {r + 1}, {2 * r + 1}, ...)"


_WAN21 = dict(channels=16, spatial=8, temporal=4, size_multiple=16, layout="bcfhw")
_COG = dict(pipeline="CogVideoXPipeline", channels=16, spatial=8, temporal=4, size_multiple=16,
            layout="bfchw")
#: Every preset by name.
PRESETS: dict[str, LatentPreset] = {p.name: p for p in (
    LatentPreset("wan2.1", "Wan 2.1", "WanPipeline", **_WAN21),
    LatentPreset("wan2.2-a14b", "Wan 2.2 A14B", "WanPipeline", **_WAN21),
    LatentPreset("wan2.2-ti2v-5b", "Wan 2.2 TI2V-5B", "WanPipeline", channels=48, spatial=16,
                 temporal=4, size_multiple=32, layout="bcfhw"),
    LatentPreset("cogvideox", "CogVideoX", **_COG),
    LatentPreset("cogvideox1.5", "CogVideoX 1.5", frame_multiple=2, **_COG),
    LatentPreset("hunyuanvideo", "HunyuanVideo", "HunyuanVideoPipeline", channels=16, spatial=8,
                 temporal=4, size_multiple=16, layout="bcfhw"),
    LatentPreset("ltx-video", "LTX-Video", "LTXPipeline", channels=128, spatial=32, temporal=8,
                 size_multiple=32, layout="bcfhw", patch=(1, 1)),
    LatentPreset("sd", "Stable Diffusion 1.x/2.x", "StableDiffusionPipeline", channels=4,
                 spatial=8, temporal=1, size_multiple=8, layout="bchw"),
    LatentPreset("sdxl", "Stable Diffusion XL", "StableDiffusionXLPipeline", channels=4, spatial=8,
                 temporal=1, size_multiple=8, layout="bchw"),
    LatentPreset("flux", "FLUX.1", "FluxPipeline", channels=16, spatial=8, temporal=1,
                 size_multiple=16, layout="bchw", patch=(1, 2)),
)}


def latent_preset(model: str | LatentPreset) -> LatentPreset:
    """The preset named ``model`` (or ``model`` itself). Raises ValueError naming the choices."""
    if isinstance(model, LatentPreset):
        return model
    try:
        return PRESETS[model]
    except (KeyError, TypeError):
        raise ValueError(f"unknown latent model {model!r}; choose one of "
                         f"{', '.join(PRESETS)}") from None


def check_video(model: str | LatentPreset, frames: int, height: int, width: int) -> LatentPreset:
    """Check a clip of ``frames`` pixel frames of ``height x width`` pixels against the model's
    frame and size rules; return the preset.

    Raises:
        ValueError: naming the rule broken and the nearest sizes that keep it.
    """
    p = latent_preset(model)
    if frames < 1:
        raise ValueError(f"{p.title} needs at least 1 frame, got {frames}")
    r = p.temporal
    if (frames - 1) % r:
        lo = (frames - 1) // r * r + 1
        # Only fewer frames can be selected from the clip (--frames keeps the first ones).
        raise ValueError(f"{p.title} takes {p.frame_rule()}; got {frames}: use {lo} "
                         f"(--frames {lo})")
    m = p.size_multiple
    if height % m or width % m:
        raise ValueError(f"{p.title} needs height and width that are multiples of {m} (VAE "
                         f"x{p.spatial} and transformer patch); got {width}x{height}: use e.g. "
                         f"{max(m, width // m * m)}x{max(m, height // m * m)} (--size)")
    return p


def keeps_frame(model: str | LatentPreset, index: int) -> bool:
    """Whether pixel frame ``index`` becomes a latent frame (every ``r``-th, from frame 0)."""
    return index % latent_preset(model).temporal == 0


def pack_tokens(latents: Tensor, patch_t: int, patch: int) -> Tensor:
    """``(B, C, F, h, w)`` to tokens ``(B, F/p_t · h/p · w/p, C · p_t · p · p)``.

    The order of diffusers' ``LTXPipeline._pack_latents`` (tokens frame-major, then rows, then
    columns; features channel-major, then the patch offsets); with ``F = 1`` and ``p_t = 1`` it is
    ``FluxPipeline._pack_latents`` too.
    """
    b, c, f, h, w = latents.shape
    if f % patch_t or h % patch or w % patch:
        raise ValueError(f"latents {tuple(latents.shape)} do not split into {patch_t}x{patch}x"
                         f"{patch} patches")
    x = latents.reshape(b, c, f // patch_t, patch_t, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(
        b, (f // patch_t) * (h // patch) * (w // patch), c * patch_t * patch * patch)


def unpack_tokens(tokens: Tensor, frames: int, height: int, width: int, patch_t: int,
                  patch: int) -> Tensor:
    """Inverse of :func:`pack_tokens`: tokens to ``(B, C, frames, height, width)`` (latent
    sizes)."""
    b, n, d = tokens.shape
    f, h, w = frames // patch_t, height // patch, width // patch
    if n != f * h * w or d % (patch_t * patch * patch):
        raise ValueError(f"tokens {tuple(tokens.shape)} do not match {frames} frames of "
                         f"{height}x{width} with {patch_t}x{patch}x{patch} patches")
    c = d // (patch_t * patch * patch)
    x = tokens.reshape(b, f, h, w, c, patch_t, patch, patch)
    return x.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, c, frames, height, width)


def arrange_latents(
    frames: Tensor,
    model: str | LatentPreset,
    *,
    batch_size: int = 1,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Latent frames ``(F, C, h, w)`` (already subsampled) as the pipeline's ``latents=`` tensor.

    Pads the frames at the front when the model needs it (CogVideoX 1.5: fresh N(0, 1) from
    ``seed``/``generator``), then lays them out and packs them. Video models repeat the clip
    ``batch_size`` times; image models take the frames as the batch (``batch_size`` must be 1).

    Raises:
        ValueError: a shape that does not fit the preset.
    """
    p = latent_preset(model)
    if frames.ndim != 4 or frames.shape[1] != p.channels:
        raise ValueError(f"{p.title} latent frames must be (F, {p.channels}, h, w), got "
                         f"{tuple(frames.shape)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not p.is_video:
        if batch_size != 1:
            raise ValueError(f"{p.title} is an image model: the frames are the batch, so "
                             f"batch_size must be 1, got {batch_size}")
        if p.patch is None:
            return frames.contiguous()
        return pack_tokens(frames.unsqueeze(2), *p.patch)
    pad = -frames.shape[0] % p.frame_multiple
    if pad:
        gen = make_generator(seed, generator, frames.device)
        fresh = torch.randn((pad, *frames.shape[1:]), generator=gen, device=frames.device,
                            dtype=torch.float32).to(frames.dtype)
        frames = torch.cat([fresh, frames])
    out = to_video_latents(frames, p.layout, batch_size=batch_size)
    return out if p.patch is None else pack_tokens(out, *p.patch)


def split_latents(latents: Tensor, model: str | LatentPreset, height: int, width: int,
                  frames: int | None = None) -> Tensor:
    """Inverse of :func:`arrange_latents` for batch element 0: back to ``(F, C, h, w)``.

    ``height``/``width`` are the *pixel* size of the clip (needed to unpack tokens); ``frames``
    the pixel frame count, needed to drop CogVideoX 1.5's padding (None: keep every frame).
    """
    p = latent_preset(model)
    h, w = height // p.spatial, width // p.spatial
    if not p.is_video:
        x = latents
        if p.patch is not None:
            x = unpack_tokens(latents, 1, h, w, *p.patch)[:, :, 0]
        return x
    x = latents[:1]
    if p.patch is not None:
        n = x.shape[1] // (h * w)
        x = unpack_tokens(x, n, h, w, *p.patch)
    x = (x.permute(0, 2, 1, 3, 4) if p.layout == "bcfhw" else x)[0]
    if frames is not None:
        x = x[x.shape[0] - p.latent_frames(frames):]
    return x


def latents_for(
    noise: Tensor,
    model: str | LatentPreset,
    *,
    grid: str = "latent",
    degradation: float | Tensor = 0.0,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    batch_size: int = 1,
) -> Tensor:
    """Warped noise as the exact ``latents=`` tensor of ``model``'s diffusers pipeline.

    Steps (each also public, for streams): integrate ``s x s`` blocks when ``grid="pixel"``
    (sum / s: i.i.d. N(0, 1) on the latent grid, Chang et al. 2024); keep every ``r``-th frame
    (:func:`keeps_frame`); degrade each kept frame in order (:func:`~warpnoise.diffusion.degrade`,
    γ = ``degradation``, a number or an ``(h, w)`` map); :func:`arrange_latents`. Fresh draws
    (degradation, CogVideoX 1.5 padding) come from ``seed``/``generator``, in that order.

    Convention:
        ``noise`` is ``(T, C, H, W)`` with ``C`` the preset's channels: at pixel resolution
        (``grid="pixel"``, ``H x W`` the video's size) or on the latent grid (``grid="latent"``,
        ``H·s x W·s`` the video's size). ``T`` pixel frames follow the preset's frame rule.

    Example:
        >>> n = torch.randn(9, 16, 4, 6)                                 # 9 frames, 32x48 video
        >>> latents_for(n, "wan2.1").shape
        torch.Size([1, 16, 3, 4, 6])
        >>> latents_for(n, "cogvideox", degradation=0.5, seed=1).shape
        torch.Size([1, 3, 16, 4, 6])

    Raises:
        ValueError: an unknown model or grid, wrong channels, or a frame count or size that
            breaks the model's rules (the message names the rule).
    """
    p = latent_preset(model)
    if noise.ndim != 4 or noise.shape[1] != p.channels:
        raise ValueError(f"{p.title} needs noise of shape (T, {p.channels}, H, W), got "
                         f"{tuple(noise.shape)} (warp with channels={p.channels})")
    if grid == "pixel":
        check_video(p, noise.shape[0], noise.shape[2], noise.shape[3])
        noise = block_integrate(noise, p.spatial)
    elif grid != "latent":
        raise ValueError(f"grid must be 'latent' or 'pixel', got {grid!r}")
    check_video(p, noise.shape[0], noise.shape[2] * p.spatial, noise.shape[3] * p.spatial)
    gen = make_generator(seed, generator, noise.device)
    # One frame at a time, in order: the bits a frame-by-frame stream gets with one generator.
    kept = torch.stack([degrade(f, degradation, generator=gen) for f in noise[:: p.temporal]])
    return arrange_latents(kept, p, batch_size=batch_size, seed=None, generator=gen)
