"""The noise options of ``warpnoise noise``, ``warpnoise batch`` and ``warpnoise edit``, declared
once: same flags, help text and help panel in every command that takes them.

A command takes an option by annotating a parameter with its alias and the default of the
library's field (``method: MethodOpt = DEFAULT_METHOD``; Typer keeps defaults in the signature,
and ``tests/cli/test_options.py`` checks every command's default against ``NoiseOptions``), then
hands the parsed values to :func:`noise_options`, the one place the CLI's spellings (``WxH``
text, ``KEY=VALUE`` pairs, ``--backend``, paths) become a :class:`warpnoise.pipeline.NoiseOptions`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..methods import methods

if TYPE_CHECKING:
    from ..pipeline import NoiseOptions

__all__ = [
    "BackendOpt",
    "ChannelsOpt",
    "DegradationMapOpt",
    "DegradationOpt",
    "DeviceOpt",
    "DownsampleOpt",
    "DtypeOpt",
    "FlowOpt",
    "FramesOpt",
    "InputArg",
    "LatentOpt",
    "MethodOpt",
    "OptionOpt",
    "PresetOpt",
    "QuietOpt",
    "RaftOpt",
    "RecordSourcePathOpt",
    "ScaleOpt",
    "SeedOpt",
    "SizeOpt",
    "StartOpt",
    "StrideOpt",
    "latent_models",
    "method_options",
    "noise_options",
    "option_pairs",
    "size_option",
]

NOISE = "Noise"
FLOW = "Optical flow"
SELECT = "Frame selection"
LATENT = "Diffusion models"

OCCLUSION_HELP = (
    "Pixels failing the forward-backward check |b + f(x+b)|² > 0.01 (|b|² + |f(x+b)|²) + 0.5 px² "
    "(Sundaram et al. 2010) are disoccluded and get fresh noise."
)


def latent_models() -> list[str]:
    """The ``--latent`` model names (:data:`warpnoise.latent.presets.PRESETS`)."""
    from ..latent.presets import PRESETS

    return list(PRESETS)


InputArg = Annotated[Path, typer.Argument(
    help="Video file (mp4, avi, mov, webm, gif, ...) or a folder of images (natural order).",
    show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]

# Noise
MethodOpt = Annotated[str, typer.Option(
    "--method", "-m", help=f"Warping method: {', '.join(methods())}. control-a-video masks by "
    "frame differences normalised over the whole clip (--option tau=0.1).",
    rich_help_panel=NOISE)]
ChannelsOpt = Annotated[int, typer.Option("--channels", "-c", help="Noise channels.",
                                          rich_help_panel=NOISE)]
DownsampleOpt = Annotated[int, typer.Option(
    "--downsample", help="Integrate FxF blocks (sum / F) after warping at pixel resolution: "
    "latent noise for a VAE with factor F, still i.i.d. N(0,1).", rich_help_panel=NOISE)]
SeedOpt = Annotated[int, typer.Option(
    "--seed", help="Random seed, 0 to 2**64-1 (same seed, same noise).", rich_help_panel=NOISE)]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="float32 or float16 (.safetensors; .npy is always float16).",
    rich_help_panel=NOISE)]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="Where the warper runs: cpu or cuda (flow runs on the CPU).",
    rich_help_panel=NOISE)]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", help="Method option KEY=VALUE (JSON value), repeatable, e.g. upsample=4.",
    rich_help_panel=NOISE)]
BackendOpt = Annotated[str, typer.Option(
    "--backend", help="Kernels of the persistent method: auto (Triton on CUDA, numba on the "
    "CPU; if they fail on the first frame, a warning and the torch path), numba, triton or "
    "torch (an explicit choice fails instead of falling back).", rich_help_panel=NOISE)]
RecordSourcePathOpt = Annotated[bool, typer.Option(
    "--record-source-path", help="Store the full paths of the input video and flow/map files "
    "in the noise file's metadata (default: file names only, so a shared file does not reveal "
    "your folders).", rich_help_panel=NOISE)]

# Optical flow
FlowOpt = Annotated[str, typer.Option(
    "--flow", help="dis, farneback, raft, or a flow file (.safetensors/.npz from `warpnoise "
    "flow`, .npy, .flo or a folder of .flo). " + OCCLUSION_HELP, rich_help_panel=FLOW)]
PresetOpt = Annotated[str, typer.Option(
    "--dis-preset", help="DIS preset: ultrafast, fast or medium.", rich_help_panel=FLOW)]
RaftOpt = Annotated[Path | None, typer.Option(
    "--raft-weights", help="Local torchvision RAFT weights (.pth) for --flow raft; needs "
    "torchvision. Nothing is downloaded.", rich_help_panel=FLOW)]

# Diffusion models
LatentOpt = Annotated[str | None, typer.Option(
    "--latent", help="Write exactly the latents= tensor of this model's diffusers pipeline "
    f"(.safetensors, tensor 'latents'): {', '.join(latent_models())}. Sets channels and "
    "downsample; checks the frame and size rules. Holds the latent frames in memory until "
    "the end (the tensor is arranged whole; a small fraction of the pixel noise).",
    rich_help_panel=LATENT)]
DegradationOpt = Annotated[float, typer.Option(
    "--degradation", help="Go-with-the-Flow's degradation γ in [0, 1]: Q <- ((1-γ)Q + γζ) / "
    "sqrt((1-γ)²+γ²), ζ fresh N(0,1) from the seed; 0 = warped noise, 1 = fresh noise.",
    rich_help_panel=LATENT)]
DegradationMapOpt = Annotated[Path | None, typer.Option(
    "--degradation-map", help="A per-pixel γ instead of --degradation: a grayscale image "
    "(black 0, white 1; 8 or 16 bits) or a .npy of (H, W) values in [0, 1], with the frames' "
    "aspect ratio; area-averaged to the noise grid.", rich_help_panel=LATENT)]

# Frame selection
SizeOpt = Annotated[str | None, typer.Option(
    "--size", help="Resize frames to WxH pixels, e.g. 512x384.", rich_help_panel=SELECT)]
ScaleOpt = Annotated[float | None, typer.Option(
    "--scale", help="Resize frames by this factor (instead of --size).", rich_help_panel=SELECT)]
StartOpt = Annotated[int, typer.Option("--start", help="First frame to use (0-based).",
                                       rich_help_panel=SELECT)]
FramesOpt = Annotated[int | None, typer.Option(
    "--frames", help="Use at most this many frames (default: all).", rich_help_panel=SELECT)]
StrideOpt = Annotated[int, typer.Option("--stride", help="Use every N-th frame.",
                                        rich_help_panel=SELECT)]


def size_option(text: str | None) -> tuple[int, int] | None:
    """``--size WxH`` as ``(W, H)``; None stays None."""
    from ..io.video import parse_size

    return None if text is None else parse_size(text)


def option_pairs(items: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` items as a dict; a value is JSON if it parses, else the text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def method_options(option: list[str] | None, backend: str = "auto") -> dict[str, Any]:
    """The method options of ``--option`` items and ``--backend`` (``auto``, the methods'
    default, is left out)."""
    options = option_pairs(option or [])
    if backend == "auto":
        return options
    if "backend" in options:
        raise ValueError("give --backend or --option backend=..., not both")
    return {**options, "backend": backend}


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def noise_options(*, size: str | None = None, option: list[str] | None = None,
                  backend: str = "auto", raft_weights: Path | None = None,
                  degradation_map: Path | None = None, **fields: Any) -> NoiseOptions:
    """The :class:`~warpnoise.pipeline.NoiseOptions` of a command's parsed values.

    ``size`` is the ``--size`` text, ``option`` the ``--option`` items and ``backend`` the
    ``--backend`` choice (both go into ``method_options``), ``raft_weights`` and
    ``degradation_map`` the given paths; every other keyword is a ``NoiseOptions`` field passed
    as it is (the fields left out keep the library's defaults). Nothing is checked here: call
    ``.check()``.
    """
    from ..pipeline import NoiseOptions

    return NoiseOptions(size=size_option(size), method_options=method_options(option, backend),
                        raft_weights=_text(raft_weights),
                        degradation_map=_text(degradation_map), **fields)
