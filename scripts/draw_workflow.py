"""Draw a ComfyUI workflow JSON as a diagram (a drawing of the graph, not a screenshot).

    python scripts/draw_workflow.py \
        comfyui/warpnoise_nodes/example_workflows/wan2.1_warped_noise.json docs/comfyui_workflow.png

Boxes sit where the JSON puts the nodes (``pos``, ``size``); links are drawn from output to input
slot, coloured by type as ComfyUI colours them. Widget values are listed with their names: the
pack's own nodes name them from their ``INPUT_TYPES``, core nodes from the table below.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, PathPatch
from matplotlib.path import Path as MplPath

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "comfyui" / "warpnoise_nodes"
TITLE_H, ROW_H = 30.0, 20.0
# ComfyUI's default link colours per type.
COLOURS = {"MODEL": "#B39DDB", "CLIP": "#FFD500", "VAE": "#FF6E6E", "CONDITIONING": "#FFA931",
           "LATENT": "#FF9CF9", "IMAGE": "#64B5F6", "NOISE": "#A0A0A0", "GUIDER": "#66FFFF",
           "SAMPLER": "#ECB4B4", "SIGMAS": "#CDFFCD", "VIDEO": "#7FB3D5", "AUDIO": "#9CCC65",
           "FLOAT": "#AAEE88"}
# Widget names of the core nodes the example uses, in ComfyUI's order ("": drawn without a name;
# None: a button, not drawn).
CORE_WIDGETS: dict[str, list[str | None]] = {
    "LoadVideo": ["file", None], "ImageFromBatch": ["batch_index", "length"],
    "UNETLoader": ["unet_name", "weight_dtype"], "ModelSamplingSD3": ["shift"],
    "CLIPLoader": ["clip_name", "type", "device"], "CLIPTextEncode": ["text"],
    "CFGGuider": ["cfg"], "KSamplerSelect": ["sampler_name"],
    "BasicScheduler": ["scheduler", "steps", "denoise"],
    "EmptyHunyuanLatentVideo": ["width", "height", "length", "batch_size"],
    "VAELoader": ["vae_name"], "CreateVideo": ["fps"],
    "SaveVideo": ["filename_prefix", "format", "codec"], "Note": [""],
}


def pack_widget_names() -> dict[str, list[str | None]]:
    """Widget names of the pack's nodes, in the order ComfyUI stores their values (a seed with
    ``control_after_generate`` is followed by its control value)."""
    spec = importlib.util.spec_from_file_location(str(PACK).replace(".", "_x_"),
                                                  PACK / "__init__.py")
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out: dict[str, list[str | None]] = {}
    for name, cls in module.NODE_CLASS_MAPPINGS.items():
        names: list[str | None] = []
        for section in ("required", "optional"):
            for key, spec_ in cls.INPUT_TYPES().get(section, {}).items():
                kind, opts = spec_[0], spec_[1] if len(spec_) > 1 else {}
                if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                    names.append(key)
                    if opts.get("control_after_generate"):
                        names.append("control after generate")
        out[name] = names
    return out


def _short(value: Any, width: int) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _slot_y(node: dict[str, Any], index: int) -> float:
    return node["pos"][1] + TITLE_H + (index + 0.5) * ROW_H


def draw(workflow: dict[str, Any], output: Path, *, ours: str = "Warpnoise") -> None:
    names = CORE_WIDGETS | pack_widget_names()
    nodes = {n["id"]: n for n in workflow["nodes"]}
    xs = [n["pos"][0] + d for n in nodes.values() for d in (0, n["size"][0])]
    ys = [n["pos"][1] + d for n in nodes.values() for d in (0, n["size"][1])]
    x0, x1, y0, y1 = min(xs) - 40, max(xs) + 40, min(ys) - 60, max(ys) + 60
    fig = plt.figure(figsize=((x1 - x0) / 100, (y1 - y0) / 100), dpi=90)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.axis("off")
    fig.patch.set_facecolor("#202020")
    for _, src, sslot, dst, dslot, kind in workflow["links"]:
        a, b = nodes[src], nodes[dst]
        p0 = (a["pos"][0] + a["size"][0], _slot_y(a, sslot))
        p1 = (b["pos"][0], _slot_y(b, dslot))
        bend = max(60.0, abs(p1[0] - p0[0]) / 2)
        verts = [p0, (p0[0] + bend, p0[1]), (p1[0] - bend, p1[1]), p1]
        codes = [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4]
        ax.add_patch(PathPatch(MplPath(verts, codes), fill=False, lw=2.2, zorder=1,
                               edgecolor=COLOURS.get(kind, "#DDDDDD")))
    for n in nodes.values():
        x, y = n["pos"]
        w, h = n["size"]
        mine = n["type"].startswith(ours)
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=8",
                                    facecolor="#353535", zorder=2, lw=3 if mine else 1,
                                    edgecolor="#F0B030" if mine else "#555555"))
        ax.add_patch(FancyBboxPatch((x, y), w, TITLE_H, boxstyle="round,pad=0,rounding_size=8",
                                    facecolor="#6A5010" if mine else "#2A2A2A", zorder=3, lw=0))
        ax.text(x + 10, y + TITLE_H / 2, _short(n.get("title") or n["type"], int(w / 7.5)),
                color="white", va="center", fontsize=8.5, weight="bold", zorder=4)
        for i, slot in enumerate(n.get("inputs", [])):
            sy = _slot_y(n, i)
            ax.plot(x, sy, "o", ms=6, zorder=4, color=COLOURS.get(slot["type"], "#DDDDDD"))
            ax.text(x + 10, sy, slot["name"], color="#CCCCCC", va="center", fontsize=7, zorder=4)
        for i, slot in enumerate(n.get("outputs", [])):
            sy = _slot_y(n, i)
            ax.plot(x + w, sy, "o", ms=6, zorder=4, color=COLOURS.get(slot["type"], "#DDDDDD"))
            ax.text(x + w - 10, sy, slot["name"], color="#CCCCCC", va="center", ha="right",
                    fontsize=7, zorder=4)
        rows = max(len(n.get("inputs", [])), len(n.get("outputs", [])))
        wy = y + TITLE_H + rows * ROW_H + 12
        labels = names.get(n["type"], [])
        lines = []
        for j, value in enumerate(n.get("widgets_values") or []):
            if j < len(labels) and labels[j] is None:
                continue
            label = f"{labels[j]}: " if j < len(labels) and labels[j] else ""
            text = repr(value) if value == "" else str(value)  # show an empty string as ''
            for part in text.split("\n"):
                lines += textwrap.wrap(f"{label}{part}", int(w / 5.6)) or [""]
                label = ""
        for line in lines:
            if wy > y + h - 8:
                break
            ax.text(x + 10, wy, line, color="#E8E8E8", va="center", fontsize=7, zorder=4)
            wy += 15
    ax.text(x0 + 20, y1 - 22, "Diagram drawn from the workflow JSON by scripts/draw_workflow.py "
            "(not a ComfyUI screenshot)", color="#AAAAAA", fontsize=8)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, facecolor=fig.get_facecolor())
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    draw(json.loads(args.workflow.read_text()), args.output)


if __name__ == "__main__":
    main()
