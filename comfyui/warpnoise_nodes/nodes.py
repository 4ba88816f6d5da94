"""The nodes, on ComfyUI's legacy API (INPUT_TYPES, RETURN_TYPES, RETURN_NAMES, FUNCTION, CATEGORY).

They only declare inputs and outputs and call :mod:`warpnoise.integrations.comfyui`, where the work
and its tests live. ComfyUI's own modules (progress bar, interruption, input folder) are imported
inside the calls, guarded, so the pack imports and runs without ComfyUI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

try:
    import torch

    from warpnoise import DEFAULT_METHOD, methods
    from warpnoise.diffusion import PRESETS, latent_preset
    from warpnoise.integrations.comfyui import (
        FLOWS,
        LAYOUTS,
        WarpedNoise,
        arrange,
        custom_preset,
        flow_estimator,
        latent_noise_from_images,
        load_latent_noise,
        parse_method_options,
        resolve_input_path,
    )
    from warpnoise.rng import SEED_LIMIT
except ImportError as e:  # ComfyUI logs this message when it skips the pack
    raise ImportError(
        "warpnoise_nodes needs the warpnoise package (with its ComfyUI module) in the Python that "
        "runs ComfyUI: python -m pip install \"PATH/TO/warpnoise[comfyui]\" (see the pack's "
        f"README.md); import failed: {e}") from e

CATEGORY = "sampling/noise/warpnoise"
MODELS = ["custom", *PRESETS]
SEED_MAX = SEED_LIMIT - 1
LOG = logging.getLogger("warpnoise_nodes")
_MODEL_TIP = ("The video model whose latent the noise is for (channels, spatial and temporal "
              "compression, frame and size rules). 'custom' uses channels, spatial_compression "
              "and temporal_compression below.")
_LOAD_MODEL_TIP = ("The video model whose latent the noise is for (temporal compression: which "
                   "frames of the file are kept). 'custom' keeps every temporal_compression-th "
                   "frame.")
_LAYOUT_TIP = ("How the noise is laid out. auto: ComfyUI's own latents ([B, C, T, H, W] for video "
               "models, frames as the batch for image models). B,T,C,H,W and the others force "
               "a layout. diffusers: the model's diffusers latents= tensor.")
#: Methods too slow to pick by accident, with their cost for Wan 2.1's 16 channels at 832x480 on
#: a CPU (integral: measured in ComfyUI; bridge: 140x randn in benchmarks/bench_warp.py).
_SLOW_METHODS = {"integral": "about 12 s per frame", "bridge": "a few s per frame"}
_METHOD_TIP = ("Warping method. persistent (default): exact and fast. SLOW at 832x480 on a CPU: "
               + "; ".join(f"{m} {t}" for m, t in _SLOW_METHODS.items())
               + ". random, fixed, pyoco-*, control-a-video: the papers' baselines (they do "
               "not follow the motion).")
_SIZE_TIP = ("Resize frames to this {} first (0: keep). Rounded down to the model's multiple "
             "(16 for Wan, 32 for Wan 2.2 TI2V and LTX-Video), with a note in the console.")
_DEGRADATION_TIP = ("Go-with-the-Flow's degradation: ((1-g)Q + g*fresh)/sqrt((1-g)^2+g^2), "
                    "still exactly N(0,1). 0 keeps the warped noise; 0.5 for Go-with-the-Flow "
                    "LoRAs (0.2-0.7 by task).")


#: Tooltips of the NOISE and LATENT outputs that every warping node shares.
NOISE_OUTPUT_TIP = ("Warped noise for SamplerCustomAdvanced: shaped like its latent, checked "
                    "against it.")
LATENT_OUTPUT_TIP = ("The same noise as a LATENT (unit variance, not a clean latent), in the "
                     "chosen layout.")

def _seed_input(tip: str) -> tuple[str, dict[str, Any]]:
    # "fixed": a new node keeps its seed across queues instead of re-warping with a new one.
    return ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": "fixed",
                    "tooltip": tip})


def _shared_inputs() -> dict[str, Any]:
    return {
        "model": (MODELS, {"default": "wan2.1", "tooltip": _MODEL_TIP}),
        "degradation": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": _DEGRADATION_TIP}),
        "layout": (list(LAYOUTS), {"default": "auto", "tooltip": _LAYOUT_TIP}),
    }


def _frame_callback(total: int) -> Callable[[int, int], None] | None:
    """ComfyUI's progress bar and Cancel button, when running inside ComfyUI."""
    try:
        import comfy.model_management as mm
        import comfy.utils
    except ImportError:
        return None
    bar = comfy.utils.ProgressBar(total)

    def on_frame(done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total)

    return on_frame


def _input_folder() -> str | None:
    """ComfyUI's input folder, the only place the Load node reads; None outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return None
    return str(folder_paths.get_input_directory())


def _preview_image(rows: Any) -> torch.Tensor:
    return torch.from_numpy(rows).float() / 255.0


def _snap_size(width: int, height: int, preset: Any) -> tuple[int, int]:
    """``width x height`` rounded down to the model's size multiple (at least one multiple),
    logged when it changes: the widget's arrows step by 16, some models need 32."""
    m = latent_preset(preset).size_multiple
    w, h = max(m, width // m * m), max(m, height // m * m)
    if (w, h) != (width, height):
        LOG.warning("warpnoise: %dx%d snapped to %dx%d (%s needs multiples of %d)", width,
                    height, w, h, latent_preset(preset).title, m)
    return w, h


class WarpnoiseNoiseFromVideo:
    """Warped noise from a video: NOISE for SamplerCustomAdvanced, the same noise as LATENT,
    and a preview (input | flow | noise per latent frame)."""

    DESCRIPTION = ("Gaussian noise that moves with the video, exactly i.i.d. N(0,1) in every "
                   "latent frame: warped at pixel resolution along optical flow (warpnoise, "
                   "integral noise warping), integrated to the model's latent grid, every r-th "
                   "frame kept. Feed 'noise' to SamplerCustomAdvanced.")
    CATEGORY = CATEGORY
    FUNCTION = "make"
    RETURN_TYPES = ("NOISE", "LATENT", "IMAGE")
    RETURN_NAMES = ("noise", "latent", "preview")
    OUTPUT_TOOLTIPS = (
        NOISE_OUTPUT_TIP,
        LATENT_OUTPUT_TIP,
        "Per latent frame: input | backward flow | noise (first 3 channels).",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        shared = _shared_inputs()
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video's frames in order (its pixel frames: "
                                                "4k+1 for Wan/CogVideoX/HunyuanVideo, 8k+1 for "
                                                "LTX-Video)."}),
                "model": shared["model"],
                "method": (methods(), {"default": DEFAULT_METHOD, "tooltip": _METHOD_TIP}),
                "seed": _seed_input("Seeds the warped noise and its degradation."),
                "degradation": shared["degradation"],
                "flow": (list(FLOWS), {"default": "dis-medium",
                                       "tooltip": "Optical flow estimator (OpenCV DIS presets, "
                                                  "Farneback, or RAFT from raft_weights)."}),
                "layout": shared["layout"],
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 16,
                                  "tooltip": _SIZE_TIP.format("width")}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 16,
                                   "tooltip": _SIZE_TIP.format("height")}),
                "channels": ("INT", {"default": 16, "min": 1, "max": 256,
                                     "tooltip": "custom model only: latent channels."}),
                "spatial_compression": ("INT", {"default": 8, "min": 1, "max": 64,
                                                "tooltip": "custom model only: VAE pixels per "
                                                           "latent pixel."}),
                "temporal_compression": ("INT", {"default": 4, "min": 1, "max": 16,
                                                 "tooltip": "custom model only: pixel frames "
                                                            "per latent frame (1: image model, "
                                                            "frames are the batch)."}),
                "device": (["cpu", "cuda"], {"default": "cpu",
                                             "tooltip": "Where the warper runs (the numba CPU "
                                                        "kernel is the fast path)."}),
            },
            "optional": {
                "method_options": ("STRING", {"default": "", "tooltip": "JSON object of method "
                                              "options, e.g. {\"upsample\": 4}."}),
                "raft_weights": ("STRING", {"default": "", "tooltip": "flow=raft: path of a "
                                            "torchvision RAFT .pth (never downloaded)."}),
            },
        }

    def make(self, images: torch.Tensor, model: str, method: str, seed: int, degradation: float,
             flow: str, layout: str, width: int, height: int, channels: int,
             spatial_compression: int, temporal_compression: int, device: str,
             method_options: str = "", raft_weights: str = "") -> tuple[Any, ...]:
        preset = (custom_preset(channels, spatial_compression, temporal_compression)
                  if model == "custom" else model)
        if (width == 0) != (height == 0):
            raise ValueError(f"set both width and height, or neither (0 keeps the frames' size); "
                             f"got {width}x{height}")
        if width:
            width, height = _snap_size(width, height, preset)
        noise = latent_noise_from_images(
            images, preset, estimator=flow_estimator(flow, raft_weights, device),
            method=method, seed=seed, degradation=degradation,
            size=(width, height) if width else None, device=device,
            method_options=parse_method_options(method_options), preview=True,
            on_frame=_frame_callback(int(images.shape[0])))
        return (WarpedNoise(noise, seed=seed, layout=layout), {"samples": arrange(noise, layout)},
                _preview_image(noise.preview))


class WarpnoiseLoadNoiseFile:
    """A ``warpnoise noise`` file (or Go-with-the-Flow's noises.npy) as NOISE and LATENT."""

    DESCRIPTION = ("Load warped noise written by `warpnoise noise` (.safetensors, made with "
                   "--downsample or --latent) or Go-with-the-Flow's noises.npy [T, H, W, C]; "
                   "every r-th frame is kept, degradation applied, and the NOISE checked "
                   "against the sampler's latent.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("NOISE", "LATENT")
    RETURN_NAMES = ("noise", "latent")
    OUTPUT_TOOLTIPS = (
        "The file's noise for SamplerCustomAdvanced, checked against its latent.",
        "The same noise as a LATENT, in the chosen layout.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "path": ("STRING", {"default": "noise.safetensors",
                                    "tooltip": "A noise file in ComfyUI's input folder, "
                                               "e.g. clip.safetensors or noise/clip.safetensors; "
                                               "files outside it are refused."}),
                **_shared_inputs(),
                "model": (MODELS, {"default": "wan2.1", "tooltip": _LOAD_MODEL_TIP}),
                "seed": _seed_input("Seeds the degradation (the file's warp seed gives the bits "
                                    "of warpnoise noise --degradation)."),
                "temporal_compression": ("INT", {"default": 4, "min": 1, "max": 16,
                                                 "tooltip": "custom model only: keep every r-th "
                                                            "frame of the file."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, path: str, **kwargs: Any) -> str:
        # Rerun when the file changes, not only when the widgets do.
        try:
            st = os.stat(resolve_input_path(path, _input_folder()))
        except ValueError:
            return "refused"  # the run itself reports why
        except OSError:
            return "missing"  # the run itself reports the missing file
        return f"{st.st_mtime_ns}:{st.st_size}"

    def load(self, path: str, model: str, degradation: float, layout: str, seed: int,
             temporal_compression: int) -> tuple[Any, ...]:
        noise = load_latent_noise(resolve_input_path(path, _input_folder()), model,
                                  temporal=temporal_compression, degradation=degradation,
                                  seed=seed)
        return (WarpedNoise(noise, seed=seed, layout=layout), {"samples": arrange(noise, layout)})


NODE_CLASS_MAPPINGS = {
    "WarpnoiseNoiseFromVideo": WarpnoiseNoiseFromVideo,
    "WarpnoiseLoadNoiseFile": WarpnoiseLoadNoiseFile,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "WarpnoiseNoiseFromVideo": "Warped Noise from Video (warpnoise)",
    "WarpnoiseLoadNoiseFile": "Load Warped Noise File (warpnoise)",
}
