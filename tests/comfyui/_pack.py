"""The node pack as ComfyUI sees it: loading by path, the legacy node API's rules, the sampler.

Everything here follows ComfyUI's sources (nodes.py ``load_custom_node``, server.py
``node_info``, execution.py input validation, comfy_extras/nodes_custom_sampler.py
``SamplerCustomAdvanced``), without ComfyUI itself, which is not installable here.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

PACK = Path(__file__).resolve().parents[2] / "comfyui" / "warpnoise_nodes"

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
OPTION_KEYS = {"default", "min", "max", "step", "round", "tooltip", "multiline", "placeholder",
               "control_after_generate", "forceInput", "lazy", "label_on", "label_off",
               "display", "dynamicPrompts", "advanced", "rawLink"}


def comfy_module_name(module_path: str) -> str:
    """The ``sys.modules`` name ComfyUI gives a custom-node folder: its path, dots escaped."""
    return module_path.replace(".", "_x_")


def load_pack(folder: Path = PACK) -> ModuleType:
    """Import the pack exactly as ComfyUI's ``load_custom_node`` does (by path, as a package)."""
    name = comfy_module_name(str(folder))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(str(folder), "__init__.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _check_widget(node: str, name: str, kind: Any, opts: dict[str, Any]) -> list[str]:
    where = f"{node}.{name}"
    bad = [f"{where}: unknown option {k!r}" for k in opts if k not in OPTION_KEYS]
    default = opts.get("default")
    if isinstance(kind, (list, tuple)):
        if not kind or not all(isinstance(v, str) for v in kind) or len(set(kind)) != len(kind):
            bad.append(f"{where}: a combo needs distinct string choices, got {kind!r}")
        if "default" in opts and default not in kind:
            bad.append(f"{where}: default {default!r} is not one of the choices")
        return bad
    if kind == "INT" or kind == "FLOAT":
        number = int if kind == "INT" else (int, float)
        typed = True
        for key in ("default", "min", "max", "step"):
            v = opts.get(key)
            if key in opts and (not isinstance(v, number) or isinstance(v, bool)):
                bad.append(f"{where}: {key} {v!r} is not a {kind}")
                typed = False
        if typed and "default" in opts:
            if opts.get("min", default) > default or opts.get("max", default) < default:
                bad.append(f"{where}: default {default} is outside [min, max]")
            if opts.get("step", 1) <= 0:
                bad.append(f"{where}: step must be positive")
        control = opts.get("control_after_generate")
        if control and kind != "INT":
            bad.append(f"{where}: control_after_generate belongs on an INT seed")
        # comfy_api's ControlAfterGenerate: a bool (True: randomize) or the starting mode.
        if control is not None and control not in (True, False, "fixed", "increment",
                                                   "decrement", "randomize"):
            bad.append(f"{where}: control_after_generate {control!r} is not a bool or a mode")
    elif kind == "STRING" and "default" in opts and not isinstance(default, str):
        bad.append(f"{where}: default {default!r} is not a STRING")
    elif kind == "BOOLEAN" and "default" in opts and not isinstance(default, bool):
        bad.append(f"{where}: default {default!r} is not a BOOLEAN")
    return bad


def declaration_problems(node: str, cls: type) -> list[str]:
    """Everything about ``cls`` that breaks the legacy node API's rules (empty: none)."""
    bad: list[str] = []
    inputs = cls.INPUT_TYPES()
    if not isinstance(inputs, dict) or "required" not in inputs:
        return [f"{node}: INPUT_TYPES() must return a dict with 'required'"]
    bad += [f"{node}: INPUT_TYPES section {k!r}" for k in inputs
            if k not in ("required", "optional", "hidden")]
    declared: dict[str, bool] = {}
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            declared[name] = section == "required"
            if not name.isidentifier():
                bad.append(f"{node}: input name {name!r} is not an identifier")
            if not isinstance(spec, tuple) or len(spec) not in (1, 2):
                bad.append(f"{node}.{name}: spec must be (TYPE,) or (TYPE, options)")
                continue
            kind, opts = spec[0], spec[1] if len(spec) == 2 else {}
            if not isinstance(opts, dict):
                bad.append(f"{node}.{name}: options must be a dict")
                continue
            if isinstance(kind, str) and kind not in WIDGET_TYPES:
                if not kind.isupper():
                    bad.append(f"{node}.{name}: type {kind!r} is not an upper-case type name")
                continue
            bad += _check_widget(node, name, kind, opts)
    returns = getattr(cls, "RETURN_TYPES", None)
    if not isinstance(returns, tuple) or not all(isinstance(t, str) and t.isupper()
                                                 for t in returns):
        bad.append(f"{node}: RETURN_TYPES must be a tuple of upper-case type names")
        returns = ()
    names = getattr(cls, "RETURN_NAMES", returns)
    if not isinstance(names, tuple) or len(names) != len(returns) or len(set(names)) != len(names):
        bad.append(f"{node}: RETURN_NAMES must name each of the {len(returns)} outputs once")
    tips = getattr(cls, "OUTPUT_TOOLTIPS", ("",) * len(returns))
    if len(tips) != len(returns):
        bad.append(f"{node}: OUTPUT_TOOLTIPS must have one entry per output")
    if not isinstance(getattr(cls, "CATEGORY", None), str) or not cls.CATEGORY:
        bad.append(f"{node}: CATEGORY must be a non-empty string")
    if not isinstance(getattr(cls, "OUTPUT_NODE", False), bool):
        bad.append(f"{node}: OUTPUT_NODE must be a bool")
    fn = getattr(cls, getattr(cls, "FUNCTION", ""), None)
    if not callable(fn):
        return [*bad, f"{node}: FUNCTION must name a method"]
    params = inspect.signature(fn).parameters
    for name, required in declared.items():
        if name not in params:
            bad.append(f"{node}.{cls.FUNCTION}: no parameter for input {name!r}")
        elif not required and params[name].default is inspect.Parameter.empty:
            bad.append(f"{node}: optional input {name!r} needs a default in the function")
    for name, p in params.items():
        if name != "self" and name not in declared and p.default is inspect.Parameter.empty \
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            bad.append(f"{node}: parameter {name!r} is not an input and has no default")
    return bad


def widget_defaults(cls: type) -> dict[str, Any]:
    """Every widget input at its default, as ComfyUI sends an untouched node."""
    out = {}
    inputs = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            kind, opts = spec[0], spec[1] if len(spec) == 2 else {}
            if isinstance(kind, (list, tuple)):
                out[name] = opts.get("default", kind[0])
            elif kind in WIDGET_TYPES:
                out[name] = opts["default"]
    return out


def run_node(cls: type, **inputs: Any) -> tuple[Any, ...]:
    """Call a node as ComfyUI's executor does: an instance, FUNCTION, keyword inputs."""
    result = getattr(cls(), cls.FUNCTION)(**(widget_defaults(cls) | inputs))
    assert isinstance(result, tuple) and len(result) == len(cls.RETURN_TYPES)
    for kind, value in zip(cls.RETURN_TYPES, result, strict=True):
        assert output_problems(kind, value) == [], (kind, output_problems(kind, value))
    return result


def output_problems(kind: str, value: Any) -> list[str]:
    """What is wrong with ``value`` as a ComfyUI ``kind`` (IMAGE, MASK, LATENT or NOISE)."""
    if kind == "IMAGE":
        ok = (isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[-1] == 3
              and value.dtype == torch.float32 and value.device.type == "cpu"
              and float(value.min()) >= 0 and float(value.max()) <= 1)
        return [] if ok else [f"IMAGE must be [B, H, W, 3] float32 in [0, 1], got {value!r:.80}"]
    if kind == "MASK":
        ok = (isinstance(value, torch.Tensor) and value.ndim == 3
              and value.dtype == torch.float32 and value.device.type == "cpu"
              and float(value.min()) >= 0 and float(value.max()) <= 1)
        return [] if ok else [f"MASK must be [B, H, W] float32 in [0, 1], got {value!r:.80}"]
    if kind == "LATENT":
        ok = isinstance(value, dict) and isinstance(value.get("samples"), torch.Tensor)
        return [] if ok else ["LATENT must be a dict with a 'samples' tensor"]
    if kind == "NOISE":
        ok = isinstance(getattr(value, "seed", None), int) and callable(
            getattr(value, "generate_noise", None))
        return [] if ok else ["NOISE must have an int seed and generate_noise(input_latent)"]
    return [f"unexpected output type {kind}"]


class RecordingGuider:
    """Stands in for ComfyUI's CFGGuider: records what ``sample`` receives and noises the latent
    the way a flow-matching model's ``noise_scaling`` does (``σ·noise + (1 − σ)·latent``)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def sample(self, noise: torch.Tensor, latent_image: torch.Tensor, sampler: Any,
               sigmas: torch.Tensor, denoise_mask: Any = None, callback: Any = None,
               disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
        if noise.shape != latent_image.shape:  # what the model would fail on
            raise RuntimeError(f"noise {tuple(noise.shape)} vs latent {tuple(latent_image.shape)}")
        s = sigmas[0]
        x = s * noise + (1 - s) * latent_image
        self.calls.append({"noise": noise, "x": x, "sigma": float(s), "seed": seed})
        return x


def sampler_custom_advanced(noise: Any, guider: RecordingGuider, sigmas: torch.Tensor,
                            latent_image: dict[str, Any]) -> dict[str, Any]:
    """``SamplerCustomAdvanced.execute``'s use of its NOISE input (ComfyUI's own order)."""
    latent = latent_image
    samples = latent["samples"]
    latent = latent.copy()
    latent["samples"] = samples
    noise_mask = latent.get("noise_mask")
    out = guider.sample(noise.generate_noise(latent), samples, None, sigmas,
                        denoise_mask=noise_mask, callback=None, disable_pbar=True,
                        seed=noise.seed)
    return latent | {"samples": out}
