"""The motion node: a first frame and a motion (JSON text, or camera widgets) to warped noise,
the driving animation and the layers' masks. It declares inputs and outputs and calls
:mod:`warpnoise.motion.comfyui`, where the work and its tests live."""

from __future__ import annotations

from typing import Any

try:
    import torch

    from warpnoise.integrations.comfyui import WarpedNoise, arrange, custom_preset
    from warpnoise.motion.comfyui import camera_or_file, noise_from_motion
except ImportError as e:  # ComfyUI logs this message when it skips the pack
    raise ImportError(
        "warpnoise_nodes needs the warpnoise package (with its ComfyUI and motion modules) in the "
        "Python that runs ComfyUI: python -m pip install \"PATH/TO/warpnoise[comfyui]\" (see the "
        f"pack's README.md); import failed: {e}") from e

from .nodes import (
    CATEGORY,
    LATENT_OUTPUT_TIP,
    NOISE_OUTPUT_TIP,
    _frame_callback,
    _seed_input,
    _shared_inputs,
)

_MOTION_TIP = ("A warpnoise motion description (JSON): camera keyframes and layers cut from the "
               "first frame and dragged (see docs/motion.md). Leave empty to use the camera "
               "widgets below.")


class WarpnoiseNoiseFromMotion:
    """Warped noise for motion you author (cut-and-drag layers, camera moves): NOISE, the same
    noise as LATENT, the driving animation as IMAGE and the layers' masks as MASK."""

    DESCRIPTION = ("Noise for motion-controlled video models (e.g. Go-with-the-Flow LoRAs): the "
                   "first frame's layers and camera move as the motion says; their exact flows "
                   "warp the noise (exactly i.i.d. N(0,1) per latent frame). Feed 'noise' to "
                   "SamplerCustomAdvanced and 'animation' to the image-to-video model.")
    CATEGORY = CATEGORY
    FUNCTION = "make"
    RETURN_TYPES = ("NOISE", "LATENT", "IMAGE", "MASK")
    RETURN_NAMES = ("noise", "latent", "animation", "masks")
    OUTPUT_TOOLTIPS = (
        NOISE_OUTPUT_TIP,
        LATENT_OUTPUT_TIP,
        "The driving animation: the first frame with its layers moved, holes inpainted.",
        "Per frame, where the layers are seen (1 on a layer, 0 on the background).",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        shared = _shared_inputs()
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first frame (the first of a batch)."}),
                "motion": ("STRING", {"default": "", "multiline": True, "tooltip": _MOTION_TIP}),
                "model": shared["model"],
                "seed": _seed_input("Seeds the warped noise and its degradation."),
                "degradation": shared["degradation"],
                "layout": shared["layout"],
                "frames": ("INT", {"default": 49, "min": 0, "max": 1025,
                                   "tooltip": "Frames of the clip (4k+1 for Wan/CogVideoX/"
                                              "HunyuanVideo); 0 keeps the motion's own."}),
                "pan_x": ("FLOAT", {"default": 0.0, "min": -8192.0, "max": 8192.0, "step": 1.0,
                                    "tooltip": "Camera (no motion text): pixels the picture "
                                               "moves right over the clip."}),
                "pan_y": ("FLOAT", {"default": 0.0, "min": -8192.0, "max": 8192.0, "step": 1.0,
                                    "tooltip": "Camera: pixels the picture moves down."}),
                "zoom": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 20.0, "step": 0.01,
                                   "tooltip": "Camera: magnification at the last frame."}),
                "rotate": ("FLOAT", {"default": 0.0, "min": -360.0, "max": 360.0, "step": 0.5,
                                     "tooltip": "Camera: degrees turned clockwise."}),
                "channels": ("INT", {"default": 16, "min": 1, "max": 256,
                                     "tooltip": "custom model only: latent channels."}),
                "spatial_compression": ("INT", {"default": 8, "min": 1, "max": 64,
                                                "tooltip": "custom model only: VAE pixels per "
                                                           "latent pixel."}),
                "temporal_compression": ("INT", {"default": 4, "min": 1, "max": 16,
                                                 "tooltip": "custom model only: pixel frames "
                                                            "per latent frame."}),
            },
        }

    def make(self, image: torch.Tensor, motion: str, model: str, seed: int, degradation: float,
             layout: str, frames: int, pan_x: float, pan_y: float, zoom: float, rotate: float,
             channels: int, spatial_compression: int,
             temporal_compression: int) -> tuple[Any, ...]:
        preset = (custom_preset(channels, spatial_compression, temporal_compression)
                  if model == "custom" else model)
        spec = camera_or_file(motion, frames, (pan_x, pan_y), zoom, rotate)
        out = noise_from_motion(image, spec, preset, seed=seed, degradation=degradation,
                                on_frame=_frame_callback(spec.frames))
        return (WarpedNoise(out.noise, seed=seed, layout=layout),
                {"samples": arrange(out.noise, layout)}, out.animation, out.masks)


NODE_CLASS_MAPPINGS = {"WarpnoiseNoiseFromMotion": WarpnoiseNoiseFromMotion}
NODE_DISPLAY_NAME_MAPPINGS = {"WarpnoiseNoiseFromMotion": "Warped Noise from Motion (warpnoise)"}
