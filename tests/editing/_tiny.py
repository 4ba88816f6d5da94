"""Tiny random-weight diffusers pipelines built offline (nothing is downloaded).

Each mimics a real model's structure at toy size: an SD-like latent pipeline (UNet2DCondition +
AutoencoderKL x8 + CLIP text model with a tokenizer made from a small vocab/merges file), an
IF-like pixel pipeline (learned-variance UNet + T5 encoder), and Wan / CogVideoX video-to-video
pipelines with the real latent channels and compression factors.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """diffusers/transformers initialise weights from torch's default generator: seed it inside
    a forked RNG state so the same weights come every time and no other test is affected."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


F = TypeVar("F", bound=Callable[..., Any])


def _built_seeded(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with seeded(0):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def clip_tokenizer(folder: Path, max_length: int = 8) -> Any:
    """A CLIP BPE tokenizer over single letters, from a vocab.json and merges.txt we write."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                         model_max_length=max_length)


def t5_tokenizer(max_length: int = 16) -> Any:
    """A T5 (Unigram) tokenizer over single letters, built in memory with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in LETTERS + "▁"]
    tk = Tokenizer(models.Unigram(vocab, unk_id=2))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    return T5TokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>",
                           unk_token="<unk>", extra_ids=0, model_max_length=max_length)


def _t5_config(umt5: bool = False) -> Any:
    from transformers import T5Config, UMT5Config

    cls = UMT5Config if umt5 else T5Config
    return cls(vocab_size=3 + len(LETTERS) + 1, d_model=16, d_ff=32, num_layers=1, num_heads=2,
               d_kv=8, pad_token_id=0, eos_token_id=1)


@_built_seeded
def sd_pipeline(folder: Path) -> Path:
    """An SD-like pipeline (4 latent channels, VAE x8, CLIP text) saved to ``folder``."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = clip_tokenizer(folder.parent / (folder.name + "_tok"))
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1,
        pad_token_id=1, projection_dim=16))
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(4, 4, 4, 4),
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1,
                        norm_num_groups=2, sample_size=32)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler(clip_sample=False, steps_offset=1),
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


@_built_seeded
def if_pipeline(folder: Path) -> Path:
    """An IF-like pixel-space pipeline (3 channels in, 6 out: learned variance; T5 text)."""
    from diffusers import DDPMScheduler, IFPipeline, UNet2DConditionModel
    from transformers import T5EncoderModel

    unet = UNet2DConditionModel(
        sample_size=16, in_channels=3, out_channels=6, block_out_channels=(8, 16),
        layers_per_block=1, down_block_types=("SimpleCrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "SimpleCrossAttnUpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=4, encoder_hid_dim=16, addition_embed_type="text",
        addition_embed_type_num_heads=2, mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        act_fn="gelu", resnet_time_scale_shift="scale_shift")
    sched = DDPMScheduler(variance_type="learned_range", beta_schedule="squaredcos_cap_v2",
                          thresholding=True, dynamic_thresholding_ratio=0.95,
                          sample_max_value=1.5, clip_sample=True)
    pipe = IFPipeline(tokenizer=t5_tokenizer(), text_encoder=T5EncoderModel(_t5_config()),
                      unet=unet, scheduler=sched, safety_checker=None, feature_extractor=None,
                      watermarker=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


@_built_seeded
def wan_v2v() -> Any:
    """A Wan 2.1-shaped video-to-video pipeline: 16 latent channels, VAE x8 spatial, x4 time."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanTransformer3DModel,
        WanVideoToVideoPipeline,
    )
    from transformers import UMT5EncoderModel

    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=16, freq_dim=256, ffn_dim=32, num_layers=1,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                    flow_shift=3.0)
    return WanVideoToVideoPipeline(tokenizer=t5_tokenizer(),
                                   text_encoder=UMT5EncoderModel(_t5_config(umt5=True)),
                                   vae=vae, transformer=transformer, scheduler=sched)


@_built_seeded
def cogvideox_v2v() -> Any:
    """A CogVideoX-shaped video-to-video pipeline: 16 latent channels, x8, x4, frames first."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXTransformer3DModel,
        CogVideoXVideoToVideoPipeline,
    )
    from transformers import T5EncoderModel

    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
        latent_channels=16, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=16, out_channels=16,
        time_embed_dim=2, text_embed_dim=16, num_layers=1, sample_width=4, sample_height=4,
        sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16)
    return CogVideoXVideoToVideoPipeline(tokenizer=t5_tokenizer(),
                                         text_encoder=T5EncoderModel(_t5_config()), vae=vae,
                                         transformer=transformer,
                                         scheduler=CogVideoXDDIMScheduler())


@_built_seeded
def sdxl_pipeline(folder: Path) -> Path:
    """An SDXL-like pipeline: two CLIP text encoders (the second with a projection: pooled
    embeddings) and a UNet with ``text_time`` added conditioning, saved to ``folder``."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok = clip_tokenizer(folder.parent / (folder.name + "_tok"))
    cfg = CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=4, attention_head_dim=4, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(4, 4, 4, 4),
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1,
                        norm_num_groups=2, sample_size=32)
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(cfg), text_encoder_2=CLIPTextModelWithProjection(cfg),
        tokenizer=tok, tokenizer_2=tok, unet=unet,
        scheduler=DDIMScheduler(clip_sample=False, steps_offset=1))
    pipe.save_pretrained(folder)
    return folder
