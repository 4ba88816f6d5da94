"""Pretrained diffusers pipelines as SDEdit models: load one, take its parts, pick a scheduler.

``warpnoise edit --model`` takes the bundled denoiser, a ``.safetensors`` saved by
:func:`~warpnoise.editing.denoiser.save_denoiser`, a local diffusers pipeline folder
(``save_pretrained`` / a downloaded snapshot) or a hub id (``from_pretrained``: downloads when a
network is there). Whatever the source, it becomes an :class:`EditModel`: the UNet, its
scheduler, the VAE (latent models) and the prompt's text embeddings, which is what
:func:`~warpnoise.integrations.sdedit` needs. Latent models get noise warped at pixel resolution and
integrated over the VAE's ``s x s`` blocks (``factor``), exactly N(0, 1) on the latent grid.

Supported: pipelines whose denoiser is a UNet called as ``unet(x, t, encoder_hidden_states=...)``
(Stable Diffusion 1.x/2.x, SDXL with its pooled-text and size embeddings, DeepFloyd IF stage I,
unconditional DDPM/DDIM pipelines). Transformer pipelines (SD3, Flux, video models) are refused
with a pointer to :func:`~warpnoise.diffusion.latents_for`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..rng import check_device  # re-exported: one device check for the warper and the model

__all__ = [
    "DTYPES",
    "SCHEDULERS",
    "EditModel",
    "check_device",
    "load_edit_model",
    "load_pipeline",
    "make_scheduler",
    "pipeline_edit_model",
]

#: ``--dtype`` names.
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: ``--scheduler`` names: diffusers class and config overrides; ``pipeline`` keeps the model's own.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "dpm-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "pipeline": None,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class EditModel:
    """Everything :func:`~warpnoise.integrations.sdedit` needs from a model, plus how to feed it.

    Attributes:
        unet: called as ``unet(x, t, encoder_hidden_states=...)`` (or ``unet(x, t)``).
        scheduler: the model's own scheduler (its config seeds ``--scheduler``).
        vae: ``AutoencoderKL``-like for latent models, else None.
        channels: channels of the noise (the UNet's input channels).
        factor: VAE spatial factor (1 for pixel models): noise is warped at pixel resolution and
            integrated over ``factor x factor`` blocks.
        size_multiple: frame sizes (pixels) must be multiples of this.
        encoder_hidden_states / negative_encoder_hidden_states: prompt embeddings (batch 1).
        size_kwargs: for UNets conditioned on the image size too (SDXL): called with the frame
            ``(height, width)``, returns ``(cond_kwargs, negative_cond_kwargs)`` for
            :func:`~warpnoise.integrations.sdedit`.
        guidance_scale: classifier-free guidance (1: none).
        device, dtype: where and in what precision the model runs.
        name: for messages.
    """

    unet: Any
    scheduler: Any
    vae: Any = None
    channels: int = 3
    factor: int = 1
    size_multiple: int = 8
    encoder_hidden_states: torch.Tensor | None = None
    negative_encoder_hidden_states: torch.Tensor | None = None
    size_kwargs: Callable[[int, int], tuple[dict[str, Any], dict[str, Any] | None]] | None = None
    guidance_scale: float = 1.0
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    name: str = "bundled"

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def make_scheduler(name: str, scheduler: Any) -> Any:
    """The scheduler ``name`` (:data:`SCHEDULERS`) built from ``scheduler``'s config (its β
    schedule, prediction type, thresholding, ...); ``"pipeline"`` returns ``scheduler``."""
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    spec = SCHEDULERS[name]
    if spec is None:
        return scheduler
    import diffusers

    cls_name, overrides = spec
    return getattr(diffusers, cls_name).from_config(scheduler.config, **overrides)


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."


def load_pipeline(spec: str, *, dtype: str = "float32", device: str = "cpu") -> Any:
    """A diffusers pipeline from a local folder (``model_index.json`` inside) or a hub id.

    Raises:
        ValueError: a folder without ``model_index.json``, a spec that is neither, or a load that
            fails (unreachable hub, missing files, incompatible versions), in one line.
    """
    torch_dtype = _dtype(dtype)
    dev = check_device(device)
    path = Path(spec)
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ValueError(f"--model {spec!r} is not a diffusers pipeline folder (no "
                             "model_index.json in it)")
        where = "folder"
    elif _HUB_ID.match(spec):
        where = "hub"
    else:
        raise ValueError(f"--model {spec!r} is not 'bundled', a .safetensors file, a diffusers "
                         "pipeline folder or a hub id (org/name)")
    from diffusers import DiffusionPipeline

    try:
        with warnings.catch_warnings():  # newer diffusers prefer dtype=; older take torch_dtype=
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            pipe = DiffusionPipeline.from_pretrained(spec, torch_dtype=torch_dtype)
    except Exception as e:  # any failure of a hub or folder load is the user's input problem
        hint = (" (no such local folder, and no network or no such model on the hub: "
                f"download it where there is one, e.g. `hf download {spec} --local-dir DIR`, "
                "and pass --model DIR)" if where == "hub" else "")
        raise ValueError(f"cannot load diffusers pipeline {spec!r}: {_first_line(e)}{hint}"
                         ) from None
    return pipe.to(dev)


def pipeline_edit_model(pipe: Any, *, prompt: str = "", negative_prompt: str = "",
                        guidance_scale: float = 7.5) -> EditModel:
    """Take a loaded pipeline apart for :func:`~warpnoise.integrations.sdedit`.

    Text-conditioned pipelines (an ``encode_prompt`` and a text encoder) get the prompt's
    embeddings, and the negative prompt's when ``guidance_scale > 1``.

    Raises:
        ValueError: a pipeline without a UNet, or one whose UNet needs extra conditioning that
            this loop does not build (SDXL's pooled text and size embeddings, class labels).
    """
    name = type(pipe).__name__
    unet = getattr(pipe, "unet", None)
    if unet is None:
        raise ValueError(f"{name} has no UNet; warpnoise edit runs UNet pipelines (Stable "
                         "Diffusion 1.x/2.x, SDXL, DeepFloyd IF stage I, DDPM). For transformer "
                         "and video models use warpnoise.diffusion.latents_for (see README)")
    cfg = unet.config
    sdxl = getattr(cfg, "addition_embed_type", None) == "text_time" and hasattr(
        pipe, "_get_add_time_ids")
    if (getattr(cfg, "addition_embed_type", None) not in (None, "text") and not sdxl) or \
            getattr(cfg, "class_embed_type", None) is not None:
        raise ValueError(f"{name}'s UNet needs extra conditioning (addition_embed_type "
                         f"{cfg.addition_embed_type!r}, class_embed_type "
                         f"{cfg.class_embed_type!r}) that warpnoise edit does not build")
    vae = getattr(pipe, "vae", None)
    factor = 1
    if vae is not None:
        factor = getattr(pipe, "vae_scale_factor", None) or 2 ** (
            len(vae.config.block_out_channels) - 1)
    cond = neg = size_kwargs = None
    if hasattr(pipe, "encode_prompt") and getattr(pipe, "text_encoder", None) is not None:
        cfg_on = guidance_scale > 1
        with torch.no_grad():
            out = pipe.encode_prompt(prompt=prompt, device=unet.device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=cfg_on,
                                     negative_prompt=negative_prompt if cfg_on else None)
        cond, neg = out[0], (out[1] if cfg_on else None)
        if sdxl:
            size_kwargs = _sdxl_size_kwargs(pipe, out[2], out[3] if cfg_on else None)
    elif prompt or negative_prompt:
        raise ValueError(f"{name} takes no prompt (it has no text encoder)")
    # UNet2DConditionModel pads odd sizes itself; UNet2DModel needs sizes its blocks can halve.
    halvings = 1 if hasattr(cfg, "cross_attention_dim") else 2 ** (len(cfg.block_out_channels) - 1)
    return EditModel(
        unet=unet, scheduler=pipe.scheduler, vae=vae, channels=int(cfg.in_channels),
        factor=int(factor), size_multiple=int(factor) * halvings, encoder_hidden_states=cond,
        negative_encoder_hidden_states=neg, size_kwargs=size_kwargs,
        guidance_scale=float(guidance_scale),
        device=unet.device, dtype=unet.dtype, name=name)


def _sdxl_size_kwargs(pipe: Any, pooled: torch.Tensor, negative_pooled: torch.Tensor | None
                      ) -> Callable[[int, int], tuple[dict[str, Any], dict[str, Any] | None]]:
    """SDXL's added conditioning for frames of ``(h, w)``: pooled text embeddings and the size
    ids ``(h, w, 0, 0, h, w)`` (original size, crop corner, target size), as its pipeline builds
    them when nothing else is asked for."""
    enc2 = getattr(pipe, "text_encoder_2", None)
    proj = int(pooled.shape[-1]) if enc2 is None else enc2.config.projection_dim

    def build(h: int, w: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        ids = pipe._get_add_time_ids((h, w), (0, 0), (h, w), dtype=pooled.dtype,
                                     text_encoder_projection_dim=proj).to(pooled.device)
        cond = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids}}
        neg = None if negative_pooled is None else {
            "added_cond_kwargs": {"text_embeds": negative_pooled, "time_ids": ids}}
        return cond, neg

    return build


def load_edit_model(spec: str = "bundled", *, prompt: str | None = None,
                    negative_prompt: str | None = None, guidance_scale: float | None = None,
                    dtype: str = "float32", device: str = "cpu", task: str = "sdedit",
                    ) -> EditModel:
    """The :class:`EditModel` behind ``warpnoise edit --model spec --task task``.

    ``"bundled"``: the project's conditional 4x super-resolver for ``task="sr4"``
    (:mod:`~warpnoise.editing.sr`), its pixel-space denoiser otherwise. A ``.safetensors``
    file: either format, told apart by the config beside it (a super-resolver only for
    ``sr4``). Neither takes a prompt. A folder or a hub id: :func:`load_pipeline` +
    :func:`pipeline_edit_model` (``guidance_scale`` defaults to 7.5, the prompts to empty).

    Raises:
        ValueError: anything that cannot be loaded, and prompts or guidance for a model
            without a text encoder.
    """
    from .denoiser import load_denoiser
    from .sr import is_sr_file, load_sr_model

    torch_dtype = _dtype(dtype)
    dev = check_device(device)
    if spec == "bundled" or spec.lower().endswith(".safetensors"):
        if prompt or negative_prompt or guidance_scale is not None:
            raise ValueError("--prompt, --negative-prompt and --guidance need a text-conditioned "
                             "diffusers pipeline (--model FOLDER or hub id); the bundled "
                             "denoiser is unconditional")
        path = None if spec == "bundled" else spec
        super_resolver = task == "sr4" if path is None else is_sr_file(path)
        if super_resolver:
            if task != "sr4":
                raise ValueError(f"{spec} is a 4x super-resolution model: use it with --task sr4")
            net, scheduler = load_sr_model(path, device=dev)
            return EditModel(unet=net.to(torch_dtype), scheduler=scheduler, channels=3, factor=1,
                             size_multiple=net.unshuffle, device=dev, dtype=torch_dtype,
                             name=spec)
        unet, scheduler = load_denoiser(path, device=dev, dtype=torch_dtype)
        return EditModel(unet=unet, scheduler=scheduler, channels=3, factor=1,
                         size_multiple=2 ** (len(unet.config.block_out_channels) - 1),
                         device=dev, dtype=torch_dtype, name=spec)
    pipe = load_pipeline(spec, dtype=dtype, device=device)
    model = pipeline_edit_model(pipe, prompt=prompt or "", negative_prompt=negative_prompt or "",
                                guidance_scale=7.5 if guidance_scale is None else guidance_scale)
    model.name = spec
    return model
