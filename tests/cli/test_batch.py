"""``warpnoise batch`` end to end on a real local Ray cluster (one, shared by the module): a folder
with a corrupt and a too-short clip, manifests with per-row options, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.io._clips import moving_frames
from warpnoise.batch import read_journal, video_seed
from warpnoise.batch.run import PARTIAL_DIR, RayExecutor
from warpnoise.cli import load_commands
from warpnoise.io.noisefile import load_latents, load_noise, validate_noise_file
from warpnoise.io.video import write_video
from warpnoise.pipeline import NoiseOptions, video_to_noise

ray = pytest.importorskip("ray")
app = load_commands()
EXIT_SOME_FAILED = 3
GOOD = [f"clip{i}.mp4" for i in range(3)] + ["sub/clip3.mp4"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray cluster for the module; in-process commands reuse it, subprocesses connect
    to its address. It declares 2 GPUs (none need exist) for the GPU reservations."""
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def make_videos(folder: Path, names: list[str], frames: int = 6) -> None:
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(folder / name, moving_frames(frames, 48, 64, dx=1 + i % 2, seed=i))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four good clips (one in a subfolder), a corrupt file and a one-frame clip."""
    folder = tmp_path_factory.mktemp("videos")
    make_videos(folder, GOOD)
    (folder / "corrupt.mp4").write_bytes(os.urandom(3000))
    write_video(folder / "short.mp4", moving_frames(1, 48, 64))
    return folder


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["batch", *map(str, args), "--quiet"])
    return result.exit_code, result.output


@pytest.mark.slow
def test_folder_with_corrupt_and_short_clips_finishes_and_reports_them(
        cluster: str, videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = invoke(videos, "-o", out, "--method", "random", "--seed", "5")
    assert code == EXIT_SOME_FAILED, output
    assert "4 done, 0 already done, 2 failed" in output
    records = {r["key"]: r for r in read_journal(out / "results.jsonl")}
    assert sorted(records) == sorted([*GOOD, "corrupt.mp4", "short.mp4"])
    assert records["corrupt.mp4"]["status"] == "failed"
    assert "cannot open" in records["corrupt.mp4"]["error"]
    assert records["short.mp4"]["status"] == "failed"
    assert "too short" in records["short.mp4"]["error"]
    for key in GOOD:
        assert records[key]["status"] == "ok" and records[key]["frames"] == 6
        assert records[key]["seconds"]["total"] > 0
        assert validate_noise_file(out / Path(key).with_suffix(".safetensors"))["frames"] == 6
    assert not (out / "corrupt.safetensors").exists()
    assert not (out / PARTIAL_DIR).exists()
    assert (out / "results.csv").read_text().count("\n") == 7


@pytest.mark.slow
def test_readme_example_works_verbatim_with_relative_paths_from_another_folder(
        cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_videos(tmp_path / "videos", ["cup.mp4", "sub/dog.mp4"])
    monkeypatch.chdir(tmp_path)
    # README: warpnoise batch videos/ -o noise/ --workers 8 --downsample 8 --seed 0
    code, output = invoke("videos/", "-o", "noise/", "--workers", "8", "--downsample", "8",
                          "--seed", "0")
    assert code == 0, output
    records = read_journal(tmp_path / "noise" / "results.jsonl")
    assert sorted(r["key"] for r in records) == ["cup.mp4", "sub/dog.mp4"]  # no "videos/"
    for r in records:
        assert r["status"] == "ok" and r["seed"] == video_seed(0, r["key"]), r
        noise, meta = load_noise(tmp_path / "noise" / Path(r["key"]).with_suffix(".safetensors"))
        assert noise.shape == (6, 4, 6, 8) and meta["seed"] == str(video_seed(0, r["key"]))


def test_batch_output_is_what_warpnoise_noise_writes_with_the_derived_seed(
        cluster: str, videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    invoke(videos, "-o", out, "--method", "random", "--seed", "5", "-c", "3")
    batch_noise, batch_meta = load_noise(out / "sub" / "clip3.safetensors")
    single = tmp_path / "single.safetensors"
    video_to_noise(videos / "sub" / "clip3.mp4", single,
                   NoiseOptions(method="random", channels=3, seed=video_seed(5, "sub/clip3.mp4")))
    noise, meta = load_noise(single)
    assert torch.equal(batch_noise, noise)
    assert batch_meta == meta


def test_csv_manifest_with_per_row_options(cluster: str, videos: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,channels,size,seed,method,caption\n"
                        f"{videos / 'clip0.mp4'},2,32x24,7,,a box\n"
                        f"{videos / 'clip1.mp4'},,,,fixed,a tree\n")
    out = tmp_path / "out"
    code, output = invoke(manifest, "-o", out, "--method", "random", "--ignore-extra-columns")
    assert code == 0, output
    first, meta0 = load_noise(next(out.rglob("clip0.safetensors")))
    second, meta1 = load_noise(next(out.rglob("clip1.safetensors")))
    assert first.shape == (6, 2, 24, 32) and meta0["seed"] == "7"
    assert meta0["method"] == "random" and meta1["method"] == "fixed"
    assert second.shape == (6, 4, 48, 64)
    assert torch.equal(second[0], second[-1])  # "fixed": the per-row method was used


def test_jsonl_manifest_unknown_option_is_a_one_line_error(cluster: str, videos: Path,
                                                          tmp_path: Path) -> None:
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"path": str(videos / "clip0.mp4"), "chanels": 2}) + "\n")
    code, output = invoke(manifest, "-o", tmp_path / "out")
    assert code == 2
    assert "unknown option(s) 'chanels'" in output and "Traceback" not in output


def test_missing_ray_says_how_to_install_it(videos: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, output = invoke(videos, "-o", tmp_path / "out")
    assert code == 2
    assert "pip install 'warpnoise[batch]'" in output


def _batch_process(videos: Path, out: Path, address: str) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from warpnoise.cli import main; main()", "batch", str(videos),
           "-o", str(out), "--address", address, "--workers", "1", "--method", "integral",
           "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


@pytest.mark.slow
def test_killed_batch_rerun_loses_nothing_and_duplicates_nothing(
        cluster: str, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    good = [f"v{i:02d}.mp4" for i in range(12)]
    make_videos(videos, good, frames=8)
    (videos / "corrupt.mp4").write_bytes(os.urandom(3000))
    out = tmp_path / "out"
    first = _batch_process(videos, out, cluster)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if sum(r["status"] == "ok" for r in read_journal(out / "results.jsonl")) >= 1:
            break
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = [r["key"] for r in read_journal(out / "results.jsonl") if r["status"] == "ok"]
    assert 1 <= len(done_before) < len(good), "the kill should land part-way through"
    # A torn output that a resume must not trust, as if written by something that crashed.
    torn = out / "v11.safetensors"
    torn.write_bytes(b"\x00" * 64)

    second = _batch_process(videos, out, cluster)
    output, _ = second.communicate(timeout=180)
    assert second.returncode == EXIT_SOME_FAILED, output
    assert f"{len(done_before)} already done" in output
    records = read_journal(out / "results.jsonl")
    assert sorted(r["key"] for r in records) == sorted([*good, "corrupt.mp4"])  # one each
    by_key = {r["key"]: r for r in records}
    assert by_key["corrupt.mp4"]["status"] == "failed"
    for key in good:
        assert by_key[key]["status"] == "ok"
        assert validate_noise_file(out / Path(key).with_suffix(".safetensors"))["frames"] == 8
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".part")]
    assert leftovers == [] and not (out / PARTIAL_DIR).exists()


def test_npy_format_writes_go_with_the_flow_layout(cluster: str, videos: Path, tmp_path: Path
                                                    ) -> None:
    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({"path": str(videos / "clip2.mp4"), "output": "c2"}) + "\n")
    code, output = invoke(manifest, "-o", tmp_path / "out", "--format", "npy", "-m", "random")
    assert code == 0, output
    arr = np.load(tmp_path / "out" / "c2.npy")
    assert arr.shape == (6, 48, 64, 4) and arr.dtype == np.float16


# One local cluster of its own (seconds to start), the other moments on the shared one.
@pytest.mark.parametrize(("moment", "own_cluster"), [
    ("start-up", False), ("ray starting", False), ("videos running", False),
    ("videos running", True)])
def test_sigterm_at_any_moment_exits_143_with_one_line(
        cluster: str, tmp_path: Path, moment: str, own_cluster: bool) -> None:
    videos = tmp_path / "videos"
    make_videos(videos, [f"v{i}.mp4" for i in range(6)], frames=8)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from warpnoise.cli import main; main()", "batch", str(videos),
           "-o", str(out), "--workers", "1", "--method", "integral", "--quiet",
           *([] if own_cluster else ["--address", cluster])]
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        if moment == "start-up":
            time.sleep(0.5)
        else:
            deadline = time.monotonic() + 180
            journal = out / "results.jsonl"
            while proc.poll() is None and time.monotonic() < deadline:
                if moment == "ray starting" and (out / PARTIAL_DIR).exists():  # then Ray starts
                    break
                if moment == "videos running" and journal.exists() and read_journal(journal):
                    break
                time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.splitlines() == [
        "warpnoise: error: terminated (SIGTERM); no output was left half-written"], stderr
    assert [p for p in out.rglob("*") if p.is_file() and ".part" in p.name] == []


def test_latent_batch_writes_what_warpnoise_noise_writes_and_resumes(
        cluster: str, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    make_videos(videos, ["a.mp4", "b.mp4"])
    out = tmp_path / "out"
    args = ["-m", "nearest", "--latent", "wan2.1", "--degradation", "0.5", "--frames", "5"]
    code, output = invoke(videos, "-o", out, "--seed", "4", *args)
    assert code == 0, output
    records = read_journal(out / "results.jsonl")
    assert sorted(r["key"] for r in records) == ["a.mp4", "b.mp4"]
    for r in records:
        single = tmp_path / f"single-{r['key']}.safetensors"
        result = CliRunner().invoke(app, ["noise", str(videos / r["key"]), "-o", str(single),
                                          "--seed", str(r["seed"]), "-q", *args])
        assert result.exit_code == 0, result.output
        batch_latents, batch_meta = load_latents(out / Path(r["key"]).with_suffix(".safetensors"))
        latents, meta = load_latents(single)
        assert batch_latents.shape == (1, 16, 2, 6, 8) and r["shape"] == [1, 16, 2, 6, 8]
        assert torch.equal(batch_latents, latents) and batch_meta == meta
        assert r["frames"] == 5 and meta["degradation"] == "0.5"
    code, output = invoke(videos, "-o", out, "--seed", "4", *args)  # the quick check reads them
    assert code == 0 and "0 done, 2 already done" in output, output


def test_device_cuda_without_cuda_exits_2_with_one_line_before_any_work(
        videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the options were checked")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ray, "init", started)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["batch", str(videos), "-o", str(out), "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "warpnoise: error: device cuda was asked for but CUDA is not available"]
    assert not out.exists()


def test_job_options_leave_out_later_fields_at_their_defaults() -> None:
    from warpnoise.cli.batch import job_options

    # The options the first batches ran with: their fingerprints must not change.
    assert set(job_options(NoiseOptions())) == {
        "method", "channels", "downsample", "flow", "dis_preset", "raft_weights", "dtype",
        "size", "scale", "start", "frames", "stride", "method_options"}
    assert job_options(NoiseOptions(latent="sd", device="cpu"))["latent"] == "sd"
    assert "device" not in job_options(NoiseOptions(latent="sd", device="cpu"))


def test_gpus_per_worker_reserves_each_video_its_own_gpu(cluster: str) -> None:
    def visible(item: int) -> tuple[list, str | None]:
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    with RayExecutor(gpus_per_worker=1) as ex:
        assert ex.concurrency == 2  # 2 GPUs, one each
        seen = [result for _, result in ex.map_unordered(visible, range(4))]
    for ids, env in seen:
        assert len(ids) == 1 and env == str(ids[0]), (ids, env)
    with RayExecutor(cpus_per_worker=1, gpus_per_worker=0.5) as ex:
        assert ex.concurrency == 2  # 4 half-GPU slots, but 2 CPUs
    with pytest.raises(ValueError, match="needs 3 GPU"), RayExecutor(gpus_per_worker=3):
        pass
    assert ray.is_initialized()  # the module's cluster is left as it was
