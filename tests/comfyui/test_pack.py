"""The pack as ComfyUI loads it: by path, without ComfyUI, on the legacy node API's rules."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from tests.comfyui._pack import PACK, declaration_problems, load_pack, run_node
from warpnoise.io.noisefile import save_noise

pack = load_pack()

LOAD_LIKE_COMFYUI = """
import importlib.util, os, sys
path = {path!r}
name = path.replace(".", "_x_")  # ComfyUI's load_custom_node
spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
comfy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("comfy", "comfy_extras", "folder_paths", "execution", "server"))
print(sorted(module.NODE_CLASS_MAPPINGS), sorted(module.NODE_DISPLAY_NAME_MAPPINGS), comfy)
"""


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_pack_imports_by_path_as_comfyui_does_with_comfyui_absent(tmp_path: Path) -> None:
    out = run_python(LOAD_LIKE_COMFYUI.format(path=str(PACK)), tmp_path)
    assert out.returncode == 0, out.stderr
    nodes = "['WarpnoiseLoadNoiseFile', 'WarpnoiseNoiseFromMotion', 'WarpnoiseNoiseFromVideo']"
    assert out.stdout.strip() == f"{nodes} {nodes} []"


@pytest.mark.slow
def test_without_warpnoise_the_pack_says_how_to_install_it(tmp_path: Path) -> None:
    block = textwrap.dedent("""
        import sys
        class NoWarpnoise:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "warpnoise":
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, NoWarpnoise())
    """)
    out = run_python(block + LOAD_LIKE_COMFYUI.format(path=str(PACK)), tmp_path)
    assert out.returncode != 0
    assert "python -m pip install" in out.stderr and "warpnoise[comfyui]" in out.stderr


@pytest.mark.slow
def test_the_comfyui_extra_is_enough_to_run_both_nodes(tmp_path: Path) -> None:
    # Only torch, numpy and the comfyui extra (numba, OpenCV, safetensors): no video decoding,
    # plotting, diffusers or CLI packages, which a ComfyUI install need not have.
    block = textwrap.dedent("""
        import sys
        ABSENT = {"av", "matplotlib", "diffusers", "transformers", "typer", "rich", "ray",
                  "scipy", "skimage", "sentencepiece", "ftfy", "imageio_ffmpeg"}
        class Absent:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ABSENT:
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Absent())
    """)
    run = textwrap.dedent(f"""
        import torch
        from safetensors.torch import save_file
        video = module.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]()
        noise, latent, preview = video.make(
            torch.rand(5, 32, 48, 3), "wan2.1", "persistent", 0, 0.5, "dis-medium", "auto",
            0, 0, 16, 8, 4, "cpu")
        print(tuple(latent["samples"].shape), tuple(preview.shape))
        save_file({{"noise": torch.randn(5, 16, 4, 6)}}, {str(tmp_path / "n.safetensors")!r})
        load = module.NODE_CLASS_MAPPINGS["WarpnoiseLoadNoiseFile"]()
        noise, latent = load.load({str(tmp_path / "n.safetensors")!r}, "wan2.1", 0.0, "auto", 0, 4)
        print(tuple(latent["samples"].shape))
    """)
    out = run_python(block + LOAD_LIKE_COMFYUI.format(path=str(PACK)) + run, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["(1, 16, 2, 4, 6) (2, 32, 144, 3)", "(1, 16, 2, 4, 6)"]


@pytest.mark.parametrize("name", sorted(pack.NODE_CLASS_MAPPINGS))
def test_every_node_follows_the_legacy_node_api(name: str) -> None:
    cls = pack.NODE_CLASS_MAPPINGS[name]
    assert declaration_problems(name, cls) == []
    assert pack.NODE_DISPLAY_NAME_MAPPINGS[name].endswith("(warpnoise)")


class Broken:
    CATEGORY = "x"
    FUNCTION = "run"
    RETURN_TYPES = ("NOISE", "latent")
    RETURN_NAMES = ("noise",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "seed": ("INT", {"default": -1, "min": 0, "max": 10, "control_after_generat": True}),
            "mode": (["a", "b"], {"default": "c"}),
            "strength": ("FLOAT", {"default": "0.5"}),
        }, "optional": {"extra": ("STRING", {"default": ""})}}

    def run(self, seed: int, mode: str, extra: str, other: int) -> tuple:
        return ()


def test_the_declaration_check_catches_each_broken_rule() -> None:
    problems = "\n".join(declaration_problems("Broken", Broken))
    for expected in ("default -1 is outside [min, max]", "unknown option 'control_after_generat'",
                     "default 'c' is not one of the choices", "default '0.5' is not a FLOAT",
                     "RETURN_TYPES must be a tuple of upper-case", "RETURN_NAMES must name",
                     "no parameter for input 'strength'", "'extra' needs a default",
                     "parameter 'other' is not an input"):
        assert expected in problems


def fake_comfyui(monkeypatch: pytest.MonkeyPatch, input_dir: Path, stop_after: int) -> dict:
    """Stand-ins for the ComfyUI modules the nodes use when present: a progress bar, the
    Cancel button (raising after ``stop_after`` frames) and the input folder."""
    seen: dict[str, Any] = {"updates": []}

    class ProgressBar:
        def __init__(self, total: int) -> None:
            seen["total"] = total

        def update_absolute(self, value: int, total: int | None = None) -> None:
            seen["updates"].append(value)

    class Interrupted(Exception):
        pass

    def throw_exception_if_processing_interrupted() -> None:
        if len(seen["updates"]) >= stop_after:
            raise Interrupted("cancelled")

    comfy, utils, mm, folders = (ModuleType(n) for n in (
        "comfy", "comfy.utils", "comfy.model_management", "folder_paths"))
    utils.ProgressBar = ProgressBar  # type: ignore[attr-defined]
    mm.throw_exception_if_processing_interrupted = (  # type: ignore[attr-defined]
        throw_exception_if_processing_interrupted)
    comfy.utils, comfy.model_management = utils, mm  # type: ignore[attr-defined]
    folders.get_input_directory = lambda: str(input_dir)  # type: ignore[attr-defined]
    for m in (comfy, utils, mm, folders):
        monkeypatch.setitem(sys.modules, m.__name__, m)
    seen["error"] = Interrupted
    return seen


def test_inside_comfyui_the_node_reports_progress_and_stops_on_cancel(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    images = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    seen = fake_comfyui(monkeypatch, tmp_path, stop_after=99)
    run_node(cls, images=images, model="sd", method="random")
    assert seen["total"] == 5 and seen["updates"] == [1, 2, 3, 4, 5]
    seen = fake_comfyui(monkeypatch, tmp_path, stop_after=2)
    with pytest.raises(seen["error"]):
        run_node(cls, images=images, model="sd", method="random")
    assert seen["updates"] == [1, 2]


def test_load_node_finds_files_in_comfyuis_input_folder_and_reruns_when_they_change(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseLoadNoiseFile"]
    fake_comfyui(monkeypatch, tmp_path, stop_after=99)
    save_noise(tmp_path / "n.safetensors", torch.randn(5, 16, 4, 6))
    noise, latent = run_node(cls, path="n.safetensors", model="wan2.1", seed=4)
    assert latent["samples"].shape == (1, 16, 2, 4, 6) and noise.seed == 4
    before = cls.IS_CHANGED(path="n.safetensors", model="wan2.1")
    save_noise(tmp_path / "n.safetensors", torch.randn(9, 16, 4, 6))
    assert cls.IS_CHANGED(path="n.safetensors", model="wan2.1") != before
    with pytest.raises(ValueError, match="does not exist"):
        run_node(cls, path="missing.safetensors")


def test_load_node_refuses_files_outside_comfyuis_input_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseLoadNoiseFile"]
    inside = tmp_path / "input"
    (inside / "clips").mkdir(parents=True)
    fake_comfyui(monkeypatch, inside, stop_after=99)
    save_noise(tmp_path / "private.safetensors", torch.randn(5, 16, 4, 6))
    save_noise(inside / "clips" / "n.safetensors", torch.randn(5, 16, 4, 6))
    monkeypatch.chdir(tmp_path)  # ComfyUI's working folder holds a file of the same name
    assert run_node(cls, path="clips/n.safetensors", model="wan2.1")[1]["samples"].shape[2] == 2
    with pytest.raises(ValueError, match=r"input/private\.safetensors. does not exist"):
        run_node(cls, path="private.safetensors", model="wan2.1")  # not the working folder's
    for bad in (str(tmp_path / "private.safetensors"), "../private.safetensors"):
        with pytest.raises(ValueError, match="outside ComfyUI's input folder"):
            run_node(cls, path=bad, model="wan2.1")
        assert cls.IS_CHANGED(path=bad, model="wan2.1") == "refused"


def test_width_and_height_go_together() -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    with pytest.raises(ValueError, match="both width and height"):
        run_node(cls, images=torch.rand(5, 32, 32, 3), width=64)


def test_the_seed_widgets_whole_range_works() -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    opts = cls.INPUT_TYPES()["required"]["seed"][1]
    images = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    for seed in (opts["min"], opts["max"]):
        noise = run_node(cls, images=images, model="sd", seed=seed, degradation=0.5)[0]
        assert noise.seed == seed


def test_the_nodes_work_under_inference_mode_as_comfyui_runs_them() -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    images = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        noise = run_node(cls, images=images, model="wan2.1", degradation=0.5)[0]
    out = noise.generate_noise({"samples": torch.zeros(1, 16, 2, 4, 4)})
    out.mul_(2.0)  # the sampler may scale it in place, outside inference mode


def _all_nodes() -> list[type]:
    return list(pack.NODE_CLASS_MAPPINGS.values())


def test_seed_widgets_default_to_fixed() -> None:
    # A new node must not re-warp with a new seed on every queue (35 s at 832x480).
    for cls in _all_nodes():
        assert cls.INPUT_TYPES()["required"]["seed"][1]["control_after_generate"] == "fixed"


def test_tooltips_name_only_widgets_the_node_has() -> None:
    load = pack.NODE_CLASS_MAPPINGS["WarpnoiseLoadNoiseFile"]
    tip = load.INPUT_TYPES()["required"]["model"][1]["tooltip"]
    assert "three numbers" not in tip and "temporal_compression" in tip


def test_nothing_promises_the_noise_takes_a_b_t_c_h_w_latent_under_auto() -> None:
    # ComfyUI reshapes an empty [B, T, C, H, W] latent before the NOISE sees it.
    texts = [str(cls.INPUT_TYPES()) for cls in _all_nodes()]
    texts.append((PACK / "README.md").read_text())
    assert not any("also accepts" in t for t in texts)


def test_slow_methods_are_flagged_in_the_method_list() -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    tip = cls.INPUT_TYPES()["required"]["method"][1]["tooltip"]
    assert "integral" in tip and "s per frame" in tip and "bridge" in tip


def test_width_and_height_snap_to_the_models_multiple_and_say_so(
        caplog: pytest.LogCaptureFixture) -> None:
    cls = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
    assert cls.INPUT_TYPES()["required"]["width"][1]["step"] == 16
    images = torch.rand(5, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    with caplog.at_level("WARNING"):
        noise = run_node(cls, images=images, model="wan2.2-ti2v-5b", method="random",
                         width=80, height=48)[0]
    assert noise.noise.frames.shape[-2:] == (32 // 16, 64 // 16)  # 64x32: multiples of 32
    assert "80x48 snapped to 64x32" in caplog.text
