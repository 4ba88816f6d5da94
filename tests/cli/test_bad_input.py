"""The bad-input matrix: every command against a table of bad inputs.

Each row of :data:`ROWS` is a command line, the exit code it must give, a piece of its one-line
message, and whether the error must come *before any work*: no frame decoded, no model or noise
file loaded, no Ray cluster started (the calls in :data:`WORK` then fail the row). For every row:
stderr is exactly one line ``warpnoise: error: ...`` holding the piece, there is no traceback,
and no file is created, changed or removed in the input or output folders (every command proves
its outputs writable by creating and removing a file, and a row that fails mid-way may have made
and removed temporary files: nothing is left but a newer folder mtime, which is not compared).

Rows that fail only after decoding pass ``-q`` (progress bars are not messages). A new option
joins by adding rows. Placeholders in the command line:

- ``{clip}``: a 4-frame 64x48 mp4;  ``{videos}``: a folder of two such clips (for ``batch``);
- ``{noise}``: a 2-frame 1x8x8 noise file;  ``{flows8}``: a flow file of 3 flows of 8x8;
- ``{flows_cut}``: a flow file for ``{clip}`` cut short;  ``{flows_inf}``: one for ``{clip}``
  whose last step holds inf (found only when that step is read: the noise file must not appear);
- ``{file}``: a regular file (``{file}/x`` is a path whose folder is a file: the way to make a
  write fail when the tests run as root);
- ``{bad_row}``: a manifest whose second row has an unknown method; ``{extra_col}``: a manifest
  with a column that is no option;
- ``{clip_link}`` / ``{clip_hard}``: a symlink / a hard link to ``{clip}``; ``{clip_st}`` and
  ``{noise_png}``: symlinks to ``{clip}`` and ``{noise}`` under other suffixes;
  ``{gmap}``: a degradation map (.npy); ``{self_row}``: a manifest whose row's output is its
  own input when OUTDIR is ``{root}``, the folder of all these; ``{txt_row}``: a manifest
  whose row asks for an ``x.txt`` output; ``{latent_npy_row}``: one whose row asks for
  ``latent`` (refused with ``--format npy``);
- ``{out}``: the (empty) output folder of the row.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.io._clips import moving_frames
from warpnoise.cli import load_commands
from warpnoise.io.flowfile import save_flows
from warpnoise.io.noisefile import save_noise
from warpnoise.io.video import write_video

HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None
HAS_RAY = importlib.util.find_spec("ray") is not None
HAS_CUDA = torch.cuda.is_available()


@dataclass(frozen=True)
class Row:
    """One bad command line: ``args`` (split on spaces, placeholders filled), the exit code, a
    piece of the message, and whether it must fail before any work starts."""

    args: str
    message: str
    code: int = 2
    early: bool = True


ROWS: list[Row] = [
    # noise: every option
    Row("noise {clip} -o {out}/n.safetensors --method magic", "unknown method 'magic'"),
    Row("noise {clip} -o {out}/n.safetensors --option nonsense=1", "bad options for method"),
    Row("noise {clip} -o {out}/n.safetensors --option upsample=0", "upsample must be"),
    Row("noise {clip} -o {out}/n.safetensors -m control-a-video --option tau=-1", "tau must be"),
    Row("noise {clip} -o {out}/n.safetensors -m control-a-video --option frames=1",
        "takes its frames from the input video"),
    Row("noise {clip} -o {out}/n.safetensors --option upsample=7", "upsample <= 6"),
    Row("noise {clip} -o {out}/n.safetensors --option novalue", "KEY=VALUE"),
    Row("noise {clip} -o {out}/n.safetensors --option upsample=true",
        "option upsample of method 'persistent' must be a number, got true"),
    Row("batch {videos} -o {out}/b --option upsample=false", "must be a number, got false"),
    Row("noise {clip} -o {out}/n.safetensors -q --latent cogvideox", "use 1 (--frames 1)",
        early=False),
    Row("noise {clip} -o {out}/n.safetensors --channels 0", "channels must be a positive"),
    Row("noise {clip} -o {out}/n.safetensors --downsample 0", "downsample must be a positive"),
    Row("noise {clip} -o {out}/n.safetensors --dtype int8", "dtype must be"),
    Row("noise {clip} -o {out}/n.safetensors --seed 18446744073709551616",
        "seed must be in [0, 2**64)"),
    Row("noise {clip} -o {out}/n.safetensors --seed -1", "seed must be in [0, 2**64)"),
    Row("noise {clip} -o {out}/n.safetensors --device gpu0", "unknown device 'gpu0'"),
    Row("noise {clip} -o {out}/n.safetensors --flow magic", "neither a flow method"),
    Row("noise {clip} -o {out}/n.safetensors --latent nope", "unknown latent model 'nope'"),
    Row("noise {clip} -o {out}/n.safetensors --latent wan2.1 --channels 3",
        "sets 16 channels and downsample 8"),
    Row("noise {clip} -o {out}/n.safetensors --degradation 1.5",
        "degradation must be a number in [0, 1]"),
    Row("noise {clip} -o {out}/n.safetensors --degradation nan",
        "degradation must be a number in [0, 1]"),
    Row("noise {clip} -o {out}/n.safetensors --flow raft", "RAFT needs a local weights file"),
    Row("noise {clip} -o {out}/n.safetensors --raft-weights {out}/r.pth",
        "RAFT weights file"),
    Row("noise {clip} -o {out}/n.safetensors --dis-preset slow", "unknown DIS preset"),
    Row("noise {clip} -o {out}/n.safetensors --size 64", "WxH"),
    Row("noise {clip} -o {out}/n.safetensors --size 64x48 --scale 0.5", "either size or scale"),
    Row("noise {clip} -o {out}/n.safetensors --scale 0", "scale must be a positive number"),
    Row("noise {clip} -o {out}/n.safetensors --scale nan", "scale must be a positive number"),
    Row("noise {clip} -o {out}/n.safetensors --start -1", "start must be >= 0"),
    Row("noise {clip} -o {out}/n.safetensors --frames 0", "frames must be >= 1"),
    Row("noise {clip} -o {out}/n.safetensors --stride 0", "stride must be >= 1"),
    Row("noise {clip} -o {out}/n.pt", "must end in .safetensors"),
    Row("noise {clip} -o {out}/nodir/n.safetensors", "does not exist"),
    Row("noise {clip} -o {file}/n.safetensors", "is not a folder"),
    Row("noise {clip} -o {out}", "is a folder"),
    Row("noise {clip} -o {out}/n.safetensors --preview {out}/p.gif", "must be an .mp4"),
    Row("noise {clip} -o {out}/n.safetensors --preview {file}/p.mp4", "is not a folder"),
    Row("noise {out}/missing.mp4 -o {out}/n.safetensors", "does not exist"),
    Row("noise {file} -o {out}/n.safetensors -q", "cannot open", early=False),
    Row("noise {clip} -o {out}/n.safetensors -q --downsample 5", "not divisible", early=False),
    Row("noise {clip} -o {out}/n.safetensors -q --start 50", "keeps no frame", early=False),
    Row("noise {clip} -o {out}/n.safetensors -q --flow {flows8}", "8x8", early=False),
    Row("noise {clip} -o {out}/n.safetensors --flow {flows_cut}", "truncated"),
    Row("noise {clip} -o {out}/n.safetensors -q --flow {flows_inf} --preview {out}/p.mp4",
        "backward[2] contains non-finite values (0 NaN, 1 inf)", early=False),
    # an output that is an input (same path, symlink, hard link) or an unwritable folder
    Row("noise {clip} -o {out}/n.safetensors --preview {clip}", "same file as the input video"),
    Row("noise {clip} -o {out}/n.safetensors --preview {clip_link}",
        "same file as the input video"),
    Row("noise {clip} -o {out}/n.safetensors --preview {clip_hard}",
        "same file as the input video"),
    Row("noise {clip} -o {flows8} --flow {flows8}", "same file as --flow"),
    Row("noise {clip} -o {gmap} --degradation-map {gmap}", "same file as --degradation-map"),
    Row("flow {clip_st} -o {clip_st}", "same file as the input video"),
    Row("edit {clip} -o {clip}", "same file as the input video"),
    Row("edit {clip} -o {clip_link}", "same file as the input video"),
    Row("stats {noise_png} --plot {noise_png}", "same file as the noise file"),
    Row("batch {self_row} -o {root}", "same file as the input video"),
    Row("batch {txt_row} -o {out}/b", "output 'x.txt' must end in .safetensors"),
    Row("noise {clip} -o /proc/n.safetensors", "cannot write"),
    Row("noise {clip} -o {out}/n.safetensors --preview /sys/p.mp4", "cannot write"),
    Row("flow {clip} -o /proc/f.safetensors", "cannot write"),
    Row("edit {clip} -o /proc/e.mp4", "cannot write"),
    Row("stats {noise} --plot /proc/m.png", "cannot write"),
    Row("batch {videos} -o /proc/b", "cannot write"),
    Row("demo -o /proc/d", "cannot write"),
    # flow
    Row("flow {clip} -o {out}/f.npy", ".safetensors or .npz"),
    Row("flow {clip} -o {file}/f.safetensors", "is not a folder"),
    Row("flow {clip} -o {out}/f.safetensors --flow magic", "unknown flow method"),
    Row("flow {clip} -o {out}/f.safetensors --flow raft", "RAFT needs a local weights file"),
    Row("flow {clip} -o {out}/f.safetensors --dis-preset slow", "unknown DIS preset"),
    Row("flow {clip} -o {out}/f.safetensors --size 0x5", "WxH"),
    Row("flow {clip} -o {out}/f.safetensors --scale -1", "scale must be a positive number"),
    Row("flow {clip} -o {out}/f.safetensors --frames 0", "frames must be >= 1"),
    Row("flow {clip} -o {out}/f.safetensors --stride 0", "stride must be >= 1"),
    Row("flow {clip} -o {out}/f.safetensors -q --frames 1", "at least 2 frames", early=False),
    # stats
    Row("stats {out}/missing.safetensors", "does not exist", early=False),
    Row("stats {noise} --plot {out}/m.jpg", "must be a .png"),
    Row("stats {noise} --plot {file}/m.png", "is not a folder"),
    Row("stats {noise} --radius -1", "radius must be between 0 and 16"),
    Row("stats {noise} --plot {out}/m.png --radius 1000", "radius must be between 0 and 16"),
    Row("stats {noise} --plot {out}/m.png --radius 8", "does not fit frames", early=False),
    Row("stats {noise} --flows {flows8}", "3 flows", early=False),
    # batch: also no Ray cluster started
    Row("batch {videos} -o {out}/b --option nonsense=1", "bad options for method"),
    Row("batch {videos} -o {out}/b --option upsample=0", "upsample must be"),
    Row("batch {videos} -o {out}/b --method magic", "unknown method"),
    Row("batch {videos} -o {out}/b --channels 0", "channels must be a positive"),
    Row("batch {videos} -o {out}/b --downsample 0", "downsample must be a positive"),
    Row("batch {videos} -o {out}/b --dtype int8", "dtype must be"),
    Row("batch {videos} -o {out}/b --flow magic", "neither a flow method"),
    Row("batch {videos} -o {out}/b --dis-preset slow", "unknown DIS preset"),
    Row("batch {videos} -o {out}/b --size 64", "WxH"),
    Row("batch {videos} -o {out}/b --scale 0", "scale must be a positive number"),
    Row("batch {videos} -o {out}/b --frames 0", "frames must be >= 1"),
    Row("batch {videos} -o {out}/b --stride 0", "stride must be >= 1"),
    Row("batch {videos} -o {out}/b --start -1", "start must be >= 0"),
    Row("batch {videos} -o {out}/b --seed -1", "--seed must be in [0, 2**64)"),
    Row("batch {videos} -o {out}/b --workers 0", "--workers must be at least 1"),
    Row("batch {videos} -o {out}/b --cpus-per-worker 0", "--cpus-per-worker must be at least 1"),
    Row("batch {videos} -o {out}/b --min-frames 0", "--min-frames must be at least 1"),
    Row("batch {videos} -o {out}/b --verify maybe", "--verify must be quick or full"),
    Row("batch {videos} -o {out}/b --format pt", "--format must be safetensors or npy"),
    Row("batch {videos} -o {out}/b --address 127.0.0.1:1", "cannot reach the Ray cluster"),
    Row("batch {videos} -o {out}/b --latent wan2.1 --format npy",
        "latents tensor to .safetensors, not .npy (drop --format npy)"),
    Row("batch {videos} -o {out}/b --latent nope", "unknown latent model 'nope'"),
    Row("batch {videos} -o {out}/b --latent wan2.1 --channels 3",
        "sets 16 channels and downsample 8"),
    Row("batch {videos} -o {out}/b --degradation 1.5", "degradation must be a number in [0, 1]"),
    Row("batch {videos} -o {out}/b --degradation-map {out}/none.png", "does not exist"),
    Row("batch {videos} -o {out}/b --degradation 0.5 --degradation-map {gmap}", "not both"),
    Row("batch {videos} -o {out}/b --device gpu0", "unknown device 'gpu0'"),
    Row("batch {videos} -o {out}/b --gpus-per-worker -1", "--gpus-per-worker must be a number"),
    Row("batch {videos} -o {out}/b --gpus-per-worker nan", "--gpus-per-worker must be a number"),
    Row("batch {videos} -o {out}/b --backend triton", "runs on CUDA devices, not on cpu"),
    Row("batch {videos} -o {out}/b --backend torch --option backend=numba", "not both"),
    Row("batch {latent_npy_row} -o {out}/b --format npy",
        "row 1 (videos/v0.mp4): latent 'sd' writes the pipeline's latents tensor"),
    Row("batch {videos} -o {file}", "is a file"),
    Row("batch {videos} -o {file}/b", "is a file"),
    Row("batch {out}/missing -o {out}/b", "does not exist"),
    Row("batch {bad_row} -o {out}/b", "row 2 (videos/v1.mp4): unknown method 'magic'"),
    Row("batch {extra_col} -o {out}/b", "unknown option(s) 'caption'"),
    # edit
    Row("edit {clip} -o {out}/e.avi", "must be an .mp4"),
    Row("edit {clip} -o {file}/e.mp4", "is not a folder"),
    Row("edit {clip} -o {out}/e.mp4 --method nope", "unknown noise method"),
    Row("edit {clip} -o {out}/e.mp4 --method random --noise nearest", "not both"),
    Row("edit {clip} -o {out}/e.mp4 --backend triton", "runs on CUDA devices, not on cpu"),
    Row("edit {clip} -o {out}/e.mp4 --option nonsense=1", "bad options for method"),
    Row("edit {clip} -o {out}/e.mp4 --task colorize", "task must be"),
    Row("edit {clip} -o {out}/e.mp4 --strength 0", "strength must be in (0, 1]"),
    Row("edit {clip} -o {out}/e.mp4 --strength 1.5", "strength must be in (0, 1]"),
    Row("edit {clip} -o {out}/e.mp4 --steps 0", "steps must be >= 1"),
    Row("edit {clip} -o {out}/e.mp4 --eta -1", "eta must be >= 0"),
    Row("edit {clip} -o {out}/e.mp4 --eta inf", "eta must be >= 0"),
    Row("edit {clip} -o {out}/e.mp4 --batch-size 0", "batch size must be >= 1"),
    Row("edit {clip} -o {out}/e.mp4 --seed 18446744073709551616", "seed must be in [0, 2**64)"),
    Row("edit {clip} -o {out}/e.mp4 --dis-preset slow", "unknown DIS preset"),
    Row("edit {clip} -o {out}/e.mp4 --scheduler nope", "scheduler must be one of"),
    Row("edit {clip} -o {out}/e.mp4 --dtype int8", "dtype must be one of"),
    Row("edit {clip} -o {out}/e.mp4 --device gpu0", "unknown device 'gpu0'"),
    Row("edit {clip} -o {out}/e.mp4 --guidance -1", "guidance must be a finite number >= 0"),
    Row("edit {clip} -o {out}/e.mp4 --prompt hello", "need a text-conditioned"),
    Row("edit {clip} -o {out}/e.mp4 --size 20x20", "divisible by 8"),
    Row("edit {clip} -o {out}/e.mp4 --task sr4 --steps 0", "steps must be >= 1"),
    Row("edit {clip} -o {out}/e.mp4 --task sr4 --strength 2", "strength must be in (0, 1]"),
    Row("edit {clip} -o {out}/e.mp4 --method control-a-video --option tau=2", "tau must be"),
    Row("edit {clip} -o {out}/e.mp4 --scale 0", "scale must be a positive number"),
    Row("edit {clip} -o {out}/e.mp4 --frames 0", "frames must be >= 1"),
    Row("edit {clip} -o {out}/e.mp4 --stride 0", "stride must be >= 1"),
    Row("edit {clip} -o {out}/e.mp4 --fps 0", "--fps must be a positive number"),
    Row("edit {clip} -o {out}/e.mp4 --fps inf", "--fps must be a positive number"),
    Row("edit {clip} -o {out}/e.mp4 -q --model {out}/none.safetensors", "weights not found",
        early=False),
    Row("edit {out}/none.mp4 -o {out}/e.mp4 -q", "does not exist", early=False),
    # demo
    Row("demo -o {out}/d --frames 0", "at least 2 frames"),
    Row("demo -o {out}/d --frames 1", "at least 2 frames"),
    Row("demo -o {out}/d --frames -1", "at least 2 frames"),
    Row("demo -o {file}", "is a file"),
    Row("demo -o {file}/d", "is a file"),
    Row("demo -o {out}/d --noise nope", "unknown noise method"),
    Row("demo -o {out}/d --strength 0", "strength must be in (0, 1]"),
    Row("demo -o {out}/d --steps 0", "steps must be >= 1"),
    Row("demo -o {out}/d --clip tree", "unknown clip 'tree'"),
    Row("demo -o {out}/d --eta -1", "eta must be >= 0"),
    Row("demo -o {out}/d --seed 18446744073709551616", "seed must be in [0, 2**64)"),
]
if not HAS_CUDA:
    ROWS += [Row("noise {clip} -o {out}/n.safetensors --device cuda", "CUDA is not available"),
             Row("edit {clip} -o {out}/e.mp4 --device cuda", "CUDA is not available"),
             Row("batch {videos} -o {out}/b --device cuda", "CUDA is not available")]

#: Calls that mean work has started: decoding video, loading a model, the demo's clip or a noise
#: file, starting Ray. Early rows must fail before any of them.
WORK: list[str] = ["av.open", "warpnoise.io.noisefile.load_noise"]
if HAS_DIFFUSERS:
    WORK += ["warpnoise.editing.denoiser.load_denoiser", "warpnoise.editing.demo.load_clip",
             "warpnoise.editing.sr.load_sr_model"]
if HAS_RAY:
    WORK += ["ray.init"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    write_video(root / "clip.mp4", moving_frames(4, 48, 64))
    (root / "videos").mkdir()
    for i in range(2):
        write_video(root / "videos" / f"v{i}.mp4", moving_frames(3, 48, 64, seed=i))
    g = torch.Generator().manual_seed(0)
    save_noise(root / "noise.safetensors", torch.randn(2, 1, 8, 8, generator=g))
    save_flows(root / "flows8.safetensors", torch.zeros(3, 2, 8, 8))
    save_flows(root / "flows_cut.safetensors", torch.zeros(3, 2, 48, 64))
    data = (root / "flows_cut.safetensors").read_bytes()
    (root / "flows_cut.safetensors").write_bytes(data[: len(data) // 2])
    flows = torch.zeros(3, 2, 48, 64)
    flows[2, 0, 5, 5] = float("inf")
    np.save(root / "flows_inf.npy", flows.numpy())
    (root / "afile").write_bytes(b"a regular file")
    (root / "bad_row.jsonl").write_text(
        json.dumps({"path": "videos/v0.mp4"}) + "\n"
        + json.dumps({"path": "videos/v1.mp4", "method": "magic"}) + "\n")
    (root / "extra_col.csv").write_text("path,caption\nvideos/v0.mp4,a box\n")
    (root / "clip_link.mp4").symlink_to(root / "clip.mp4")
    os.link(root / "clip.mp4", root / "clip_hard.mp4")
    (root / "clip_st.safetensors").symlink_to(root / "clip.mp4")
    (root / "noise.png").symlink_to(root / "noise.safetensors")
    np.save(root / "gmap.npy", np.full((48, 64), 0.5, np.float32))
    (root / "self_row.jsonl").write_text(json.dumps({"path": "noise.safetensors"}) + "\n")
    (root / "latent_npy_row.jsonl").write_text(
        json.dumps({"path": "videos/v0.mp4", "latent": "sd"}) + "\n")
    (root / "txt_row.jsonl").write_text(json.dumps({"path": "videos/v0.mp4", "output": "x.txt"})
                                        + "\n")
    return {"root": root, "clip_link": root / "clip_link.mp4",
            "clip_hard": root / "clip_hard.mp4", "clip_st": root / "clip_st.safetensors",
            "noise_png": root / "noise.png", "gmap": root / "gmap.npy",
            "self_row": root / "self_row.jsonl", "txt_row": root / "txt_row.jsonl",
            "latent_npy_row": root / "latent_npy_row.jsonl",
            "clip": root / "clip.mp4", "videos": root / "videos",
            "noise": root / "noise.safetensors", "flows8": root / "flows8.safetensors",
            "flows_cut": root / "flows_cut.safetensors", "flows_inf": root / "flows_inf.npy",
            "file": root / "afile", "bad_row": root / "bad_row.jsonl",
            "extra_col": root / "extra_col.csv"}


def _snapshot(*folders: Path, folder_times: bool = True) -> dict[Path, tuple[int, int]]:
    """Every file and folder under ``folders`` (hidden ones too) with its size and mtime.

    Without ``folder_times`` a folder's mtime is left out: a run that fails mid-way may have
    made and removed its temporary files there, which leaves nothing but a newer folder mtime.
    """
    out = {}
    for folder in folders:
        for p in [folder, *folder.rglob("*")]:
            st = p.lstat()
            out[p] = (st.st_size, st.st_mtime_ns if folder_times or not p.is_dir() else 0)
    return out


def _work_sentinel(name: str) -> Callable[..., None]:
    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"work started before the options were checked: {name}")
    return started


def _needs(row: Row) -> list[pytest.MarkDecorator]:
    command = row.args.split()[0]
    if command in ("edit", "demo") and not HAS_DIFFUSERS:
        return [pytest.mark.skip(reason="needs diffusers")]
    return []


@pytest.mark.parametrize("row", [pytest.param(r, id=r.args, marks=_needs(r)) for r in ROWS])
def test_bad_input_exits_with_one_line_and_leaves_nothing(
        row: Row, inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = [part.format(out=out, **inputs) for part in row.args.split()]
    if row.early:
        for name in WORK:
            monkeypatch.setattr(name, _work_sentinel(name))
    monkeypatch.delenv("WARPNOISE_DEBUG", raising=False)
    monkeypatch.chdir(inputs["clip"].parent)  # a file made at a relative path is seen too
    before = _snapshot(out, inputs["clip"].parent, folder_times=False)

    r = CliRunner().invoke(load_commands(), args)

    lines = r.stderr.splitlines()  # no blank line either
    assert r.exit_code == row.code, (r.exit_code, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("warpnoise: error: "), r.stderr
    assert row.message in lines[0], lines[0]
    assert "Traceback" not in r.output + r.stderr
    assert _snapshot(out, inputs["clip"].parent, folder_times=False) == before
