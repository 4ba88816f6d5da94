"""``warpnoise edit --model FOLDER|HUB_ID``: tiny random-weight diffusers pipelines saved to a
temp folder, run end to end; the noise entering the UNet is proved to be ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch
from typer.testing import CliRunner

import warpnoise.editing.models as pipelines
from tests.editing._tiny import if_pipeline, sd_pipeline, sdxl_pipeline
from warpnoise.cli import load_commands
from warpnoise.diffusion import WarpedNoiseSampler, sdedit_timesteps
from warpnoise.estimate import estimate_flows
from warpnoise.io.video import read_frames, write_video

runner = CliRunner()


def invoke(*args: str | Path) -> Any:
    return runner.invoke(load_commands(), [str(a) for a in args])


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pipes")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (32, 32 + 8, 3), dtype=np.uint8)
    write_video(tmp / "in.mp4", np.stack([base[:, 2 * i:2 * i + 32] for i in range(4)]))
    return {"sd": sd_pipeline(tmp / "sd"), "if": if_pipeline(tmp / "if"),
            "sdxl": sdxl_pipeline(tmp / "sdxl"), "clip": tmp / "in.mp4"}


class UNetInputs:
    """Wraps load_pipeline so the loaded UNet records every input it is called with."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = []
        self.pipe: Any = None
        original = pipelines.load_pipeline

        def load(*a: Any, **k: Any) -> Any:
            self.pipe = original(*a, **k)
            self.pipe.unet.register_forward_pre_hook(
                lambda mod, args, kw: self.calls.append((args[0].clone(), args[1], kw)),
                with_kwargs=True)
            return self.pipe

        monkeypatch.setattr(pipelines, "load_pipeline", load)


def reference_first_input(clip: Path, pipe: Any, channels: int, factor: int, seed: int,
                          steps: int, strength: float, prefetch: int) -> tuple[Any, ...]:
    """``add_noise(x0, ε, t0)`` with ε warped independently here from the same seed."""
    frames = read_frames(clip)
    backward, forward = estimate_flows(frames, "dis", preset="medium")
    eps = WarpedNoiseSampler(backward, channels, "persistent", factor=factor, seed=seed,
                             forward_flows=forward, prefetch=prefetch)()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    if getattr(pipe, "vae", None) is not None:
        with torch.no_grad():
            x = pipe.vae.encode(x).latent_dist.mode() * pipe.vae.config.scaling_factor
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    timesteps, _ = sdedit_timesteps(sched, steps, strength)
    t0 = timesteps[:1].repeat(x.shape[0])
    return sched.add_noise(x, eps, t0), x, eps, sched.alphas_cumprod[int(timesteps[0])]


@pytest.mark.parametrize("kind, channels, factor", [("sd", 4, 8), ("if", 3, 1), ("sdxl", 4, 8)])
@pytest.mark.slow
def test_edit_runs_a_saved_pipeline_and_feeds_it_our_warped_noise(
        folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
        channels: int, factor: int) -> None:
    rec = UNetInputs(monkeypatch)
    out = tmp_path / "out.mp4"
    # eta 0: DDIM takes noise only at the start, so one warped draw (prefetch 1) is all there is.
    r = invoke("edit", folders["clip"], "-o", out, "--model", folders[kind], "--prompt",
               "a cat", "--negative-prompt", "dog", "--guidance", "3", "--steps", "4",
               "--strength", "0.5", "--eta", "0", "--seed", "5", "-q")
    assert r.exit_code == 0, r.output
    assert read_frames(out).shape == (4, 32, 32, 3)
    assert len(rec.calls) == 2  # int(4 * 0.5) steps, one batched call each
    x_in, _, kw = rec.calls[0]
    assert x_in.shape == (8, channels, 32 // factor, 32 // factor)  # CFG: [uncond, cond]
    if kind == "sdxl":  # pooled text and (original size, crop, target size) ids, per row
        added = kw["added_cond_kwargs"]
        assert added["text_embeds"].shape == (8, 16)
        assert added["time_ids"].tolist() == [[32, 32, 0, 0, 32, 32]] * 8
    expect, x0, eps, a_t = reference_first_input(folders["clip"], rec.pipe, channels, factor,
                                                 5, 4, 0.5, 1)
    torch.testing.assert_close(x_in[:4], expect, rtol=0, atol=1e-5)
    torch.testing.assert_close(x_in[4:], expect, rtol=0, atol=1e-5)
    # The noise in the model's input, solved for, is the warped draw; another seed's is not.
    solved = (x_in[4:] - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    torch.testing.assert_close(solved, eps, rtol=0, atol=1e-3)
    other = reference_first_input(folders["clip"], rec.pipe, channels, factor, 6, 4, 0.5, 1)[2]
    assert float((solved - other).abs().mean()) > 0.5


@pytest.mark.slow
def test_stochastic_scheduler_gets_a_fresh_warped_draw_every_step(
        folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[torch.Tensor] = []
    original = WarpedNoiseSampler.__call__

    def spy(self: WarpedNoiseSampler, *a: Any) -> torch.Tensor:
        draws.append(original(self, *a))
        return draws[-1]

    monkeypatch.setattr(WarpedNoiseSampler, "__call__", spy)
    r = invoke("edit", folders["clip"], "-o", tmp_path / "o.mp4", "--model", folders["if"],
               "--scheduler", "ddpm", "--steps", "6", "--strength", "0.5", "-q")
    assert r.exit_code == 0, r.output
    # the start + every step but the last (sigma 0), each a (T, 3, 32, 32) warped sequence
    assert len(draws) == 3 and all(d.shape == (4, 3, 32, 32) for d in draws)


def test_hub_id_goes_through_from_pretrained(folders: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers

    seen: list[str] = []
    original = diffusers.DiffusionPipeline.from_pretrained

    def fake(spec: str, **kw: Any) -> Any:  # stands in for the hub: loads the local folder
        seen.append(spec)
        return original(folders["sd"], **kw)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", fake)
    r = invoke("edit", folders["clip"], "-o", tmp_path / "o.mp4", "--model", "someorg/tiny-sd",
               "--steps", "2", "--strength", "0.5", "-q")
    assert r.exit_code == 0, r.output
    assert seen == ["someorg/tiny-sd"]


def test_unreachable_hub_id_is_one_line_exit_2(folders: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers

    def offline(spec: str, **kw: Any) -> Any:  # what diffusers raises with no network
        raise OSError(f"Cannot load model {spec}: the model is not fully cached locally\nmore")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", offline)
    out = tmp_path / "o.mp4"
    r = invoke("edit", folders["clip"], "-o", out, "--model", "someorg/absent", "-q")
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert "someorg/absent" in r.stderr and "hf download" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("extra, match", [
    (["--scheduler", "heun"], "scheduler must be one of"),
    (["--dtype", "float8"], "dtype must be one of"),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"],
     "device"),
    (["--prompt", "a cat"], "need a text-conditioned"),
    (["--guidance", "-1", "--model", "SD"], "guidance must be"),
    (["--model", "EMPTY"], "no model_index.json"),
    (["--model", "not a model"], "not 'bundled'"),
])
def test_bad_pipeline_options_exit_2_before_work(folders: dict[str, Path], tmp_path: Path,
                                                 extra: list[str], match: str) -> None:
    (tmp_path / "empty").mkdir()
    subst = {"SD": str(folders["sd"]), "EMPTY": str(tmp_path / "empty")}
    out = tmp_path / "o.mp4"
    r = invoke("edit", folders["clip"], "-o", out, "-q", *[subst.get(a, a) for a in extra])
    assert r.exit_code == 2, r.output
    assert match in r.stderr and "Traceback" not in r.output
    assert not out.exists()


def test_transformer_pipelines_are_refused_with_a_pointer() -> None:
    class Flux:
        transformer = object()

    with pytest.raises(ValueError, match="latents_for"):
        pipelines.pipeline_edit_model(Flux())
