"""The example workflow: a valid ComfyUI workflow JSON (nodes, links, widgets_values) whose
warpnoise node matches the pack's declarations and whose NOISE fits its own empty latent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.comfyui._pack import (
    PACK,
    WIDGET_TYPES,
    RecordingGuider,
    load_pack,
    run_node,
    sampler_custom_advanced,
)
from tests.io._clips import sample_path
from warpnoise.io.video import read_frames

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = PACK / "example_workflows" / "wan2.1_warped_noise.json"
CONTROLS = ("fixed", "increment", "decrement", "randomize")
pack = load_pack()


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return json.loads(WORKFLOW.read_text())


def by_type(workflow: dict[str, Any], kind: str) -> dict[str, Any]:
    (node,) = [n for n in workflow["nodes"] if n["type"] == kind]
    return node


def test_links_connect_existing_slots_of_the_same_type(workflow: dict[str, Any]) -> None:
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]) and workflow["version"] == 0.4
    assert workflow["last_node_id"] >= max(nodes)
    assert workflow["last_link_id"] >= max(link[0] for link in workflow["links"])
    for link_id, src, sslot, dst, dslot, kind in workflow["links"]:
        out, inp = nodes[src]["outputs"][sslot], nodes[dst]["inputs"][dslot]
        assert out["type"] == inp["type"] == kind, link_id
        assert link_id in out["links"] and inp["link"] == link_id
    linked = {link[0] for link in workflow["links"]}
    for n in nodes.values():
        assert {i["link"] for i in n.get("inputs", []) if i["link"] is not None} <= linked
        for o in n.get("outputs", []):
            assert set(o["links"] or []) <= linked


def widget_specs(cls: type) -> list[tuple[str, Any, dict[str, Any]]]:
    """The widgets ComfyUI's frontend makes for a node, in the order of ``widgets_values``."""
    out = []
    inputs = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            kind, opts = spec[0], spec[1] if len(spec) == 2 else {}
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                out.append((name, kind, opts))
                if opts.get("control_after_generate"):
                    out.append(("control_after_generate", CONTROLS, {}))
    return out


def test_the_warpnoise_node_matches_the_packs_declarations(workflow: dict[str, Any]) -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    node = by_type(workflow, "WarpnoiseNoiseFromVideo")
    assert [(o["name"], o["type"]) for o in node["outputs"]] == list(
        zip(cls.RETURN_NAMES, cls.RETURN_TYPES, strict=True))
    sockets = [n for n, s in cls.INPUT_TYPES()["required"].items()
               if isinstance(s[0], str) and s[0] not in WIDGET_TYPES]
    assert [i["name"] for i in node["inputs"]] == sockets
    specs = widget_specs(cls)
    assert len(node["widgets_values"]) == len(specs)
    for (name, kind, opts), value in zip(specs, node["widgets_values"], strict=True):
        if isinstance(kind, (list, tuple)):
            assert value in kind, name
        elif kind == "INT":
            assert isinstance(value, int) and opts["min"] <= value <= opts["max"], name
        elif kind == "FLOAT":
            assert opts["min"] <= value <= opts["max"], name
        else:
            assert isinstance(value, str), name


@pytest.mark.slow
def test_the_workflows_noise_fits_its_empty_latent(workflow: dict[str, Any]) -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    node = by_type(workflow, "WarpnoiseNoiseFromVideo")
    settings = {name: v for (name, _, _), v in zip(widget_specs(cls), node["widgets_values"],
                                                    strict=True)}
    settings.pop("control_after_generate")
    start, length = by_type(workflow, "ImageFromBatch")["widgets_values"]
    width, height, frames, batch = by_type(workflow, "EmptyHunyuanLatentVideo")["widgets_values"]
    assert (start, length) == (0, frames)
    clip = read_frames(sample_path())
    clip = np.concatenate([clip, clip[::-1]])[:length]  # 33 frames from the 24 of the clip
    # The workflow's settings, with fresh noise and fast flow to keep the test short.
    noise = run_node(cls, **settings | {"method": "random", "flow": "dis-ultrafast"},
                     images=torch.from_numpy(clip).float() / 255)[0]
    # EmptyHunyuanLatentVideo: [batch, 16, ((length - 1) // 4) + 1, height // 8, width // 8]
    empty = {"samples": torch.zeros(batch, 16, (frames - 1) // 4 + 1, height // 8, width // 8)}
    out = sampler_custom_advanced(noise, RecordingGuider(), torch.tensor([1.0, 0.0]), empty)
    assert out["samples"].shape == empty["samples"].shape


@pytest.mark.slow
def test_the_committed_diagram_is_drawn_from_the_json(tmp_path: Path) -> None:
    import matplotlib.image

    out = tmp_path / "workflow.png"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "draw_workflow.py"),
                          str(WORKFLOW), str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    fresh = matplotlib.image.imread(out)
    committed = matplotlib.image.imread(ROOT / "docs" / "comfyui_workflow.png")
    assert fresh.shape == committed.shape  # the JSON's bounding box
    # The same drawing, pixel for pixel up to a few: one changed digit of a widget value
    # changes about 30 pixels, a node moved by 10 px thousands.
    changed = int((np.abs(fresh - committed).max(-1) > 0.1).sum())
    assert changed < 10, (f"{changed} pixels differ: redraw it with python "
                          f"scripts/draw_workflow.py {WORKFLOW.relative_to(ROOT)} "
                          f"docs/comfyui_workflow.png")
