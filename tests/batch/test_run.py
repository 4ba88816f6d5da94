"""Running a batch in-process (SerialExecutor) with a stand-in pipeline: failures are recorded,
resumption skips validated outputs and redoes partial or stale ones, writes are atomic; and with
the real pipeline, each video streams."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from warpnoise.batch import SerialExecutor, plan_jobs, read_journal, run_batch
from warpnoise.batch.run import PARTIAL_DIR, RayExecutor, check_reachable, process_job
from warpnoise.io.noisefile import load_noise, save_noise, validate_noise_file

CALLS: list[str] = []


def fake_noise(input: str, output: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """A 'video' is a text file 'frames=N'; anything else is unreadable."""
    CALLS.append(Path(input).name)
    text = Path(input).read_text()
    if not text.startswith("frames="):
        raise ValueError(f"cannot decode {input!r}")
    frames = int(text.split("=")[1])
    if frames < 2:
        raise ValueError(f"{input!r} has {frames} frame(s), at least 2 are needed")
    g = torch.Generator().manual_seed(int(options["seed"]))
    noise = torch.randn(frames, int(options.get("channels", 2)), 4, 4, generator=g)
    save_noise(output, noise, {"seed": options["seed"]})
    return {"frames": frames, "shape": tuple(noise.shape), "seconds": {"warp": 0.001}}


def make_set(root: Path) -> Path:
    src = root / "videos"
    (src / "sub").mkdir(parents=True)
    for name, text in [("a.mp4", "frames=3"), ("b.mp4", "frames=4"), ("sub/c.mp4", "frames=2"),
                       ("corrupt.mp4", "\x00garbage"), ("short.mp4", "frames=1")]:
        (src / name).write_text(text)
    return src


def run(src: Path, out: Path, **kwargs: Any):
    jobs = plan_jobs(src, out, {"channels": 2}, seed=11)
    return jobs, run_batch(jobs, out, SerialExecutor(), noise_fn=fake_noise,
                           validate_fn=validate_noise_file, **kwargs)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def test_bad_videos_are_recorded_failed_and_good_ones_finish(tmp_path: Path) -> None:
    jobs, summary = run(make_set(tmp_path), tmp_path / "out")
    assert (summary.total, summary.finished, summary.failed, summary.skipped) == (5, 3, 2, 0)
    by_key = {r["key"]: r for r in summary.records}
    assert by_key["corrupt.mp4"]["status"] == "failed"
    assert "cannot decode" in by_key["corrupt.mp4"]["error"]
    assert "1 frame" in by_key["short.mp4"]["error"]
    assert not (tmp_path / "out" / "corrupt.safetensors").exists()
    for job in jobs:
        if by_key[job.key]["status"] == "ok":
            info = validate_noise_file(job.output)
            assert info["frames"] == by_key[job.key]["frames"]
            assert by_key[job.key]["seconds"]["warp"] == 0.001
    assert not (tmp_path / "out" / PARTIAL_DIR).exists()
    assert [r["key"] for r in read_journal(summary.journal)] == [j.key for j in jobs]
    assert summary.summary_csv is not None and summary.summary_csv.exists()


def test_rerun_skips_validated_outputs_and_retries_failures(tmp_path: Path) -> None:
    src = make_set(tmp_path)
    run(src, tmp_path / "out")
    CALLS.clear()
    _, summary = run(src, tmp_path / "out")
    assert sorted(CALLS) == ["corrupt.mp4", "short.mp4"]
    assert (summary.skipped, summary.finished, summary.failed) == (3, 0, 2)
    CALLS.clear()
    _, summary = run(src, tmp_path / "out", retry_failed=False)
    assert CALLS == [] and summary.skipped == 5
    assert len(read_journal(summary.journal)) == 5  # one record per video, no duplicates


def test_rerun_redoes_a_truncated_output_a_deleted_one_and_a_changed_input(tmp_path: Path
                                                                          ) -> None:
    src = make_set(tmp_path)
    jobs, _ = run(src, tmp_path / "out")
    out = {j.key: Path(j.output) for j in jobs}
    before = load_noise(out["a.mp4"])[0].clone()  # load_noise may map the file
    out["a.mp4"].write_bytes(out["a.mp4"].read_bytes()[:40])  # a torn write
    out["b.mp4"].unlink()
    (src / "sub" / "c.mp4").write_text("frames=5")
    CALLS.clear()
    _, summary = run(src, tmp_path / "out", retry_failed=False)
    assert sorted(CALLS) == ["a.mp4", "b.mp4", "c.mp4"]
    after, _ = load_noise(out["a.mp4"])
    assert torch.equal(before, after)  # the per-video seed makes a redo reproduce the noise
    assert validate_noise_file(out["sub/c.mp4"])["frames"] == 5
    assert summary.finished == 3


def test_rerun_after_a_kill_ignores_stale_partials_and_a_cut_journal_line(tmp_path: Path
                                                                         ) -> None:
    src = make_set(tmp_path)
    out = tmp_path / "out"
    jobs, _ = run(src, out)
    # What a kill mid-batch leaves: a half-written partial, a cut journal line, and an output
    # that was renamed into place but never recorded.
    (out / PARTIAL_DIR).mkdir()
    (out / PARTIAL_DIR / "x.safetensors").write_bytes(b"half")
    records = read_journal(out / "results.jsonl")
    (out / "results.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records if r["key"] != "b.mp4") + '{"outp')
    CALLS.clear()
    _, summary = run(src, out, retry_failed=False)
    assert CALLS == ["b.mp4"]
    assert not (out / PARTIAL_DIR).exists()
    final = read_journal(out / "results.jsonl")
    assert sorted(r["key"] for r in final) == sorted(j.key for j in jobs)
    assert summary.finished == 1


def test_seed_of_a_video_does_not_depend_on_batch_order(tmp_path: Path) -> None:
    src = make_set(tmp_path)
    jobs = plan_jobs(src, tmp_path / "o1", {"channels": 2}, seed=11)
    run_batch(jobs[::-1], tmp_path / "o1", SerialExecutor(), noise_fn=fake_noise,
              validate_fn=validate_noise_file)
    run(src, tmp_path / "o2")
    a, _ = load_noise(tmp_path / "o1" / "a.safetensors")
    b, _ = load_noise(tmp_path / "o2" / "a.safetensors")
    assert torch.equal(a, b)


def test_process_job_never_raises_and_leaves_no_partial(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_text("frames=3")
    (job,) = plan_jobs(tmp_path, tmp_path / "out", seed=0)
    partial = tmp_path / "partial"
    partial.mkdir()

    def broken(input: str, output: Path, options: Mapping[str, Any]) -> None:
        output.write_bytes(b"half")
        raise RuntimeError("out of memory")

    rec = process_job(job, str(partial), noise_fn=broken, validate_fn=validate_noise_file)
    assert rec["status"] == "failed" and rec["error"] == "RuntimeError: out of memory"
    assert list(partial.iterdir()) == []
    assert not Path(job.output).exists()


def test_an_output_that_fails_validation_is_never_published(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_text("frames=3")
    (job,) = plan_jobs(tmp_path, tmp_path / "out", seed=0)

    def writes_garbage(input: str, output: Path, options: Mapping[str, Any]) -> dict:
        output.write_bytes(b"not a safetensors file")
        return {"frames": 3}

    summary = run_batch([job], tmp_path / "out", SerialExecutor(), noise_fn=writes_garbage,
                        validate_fn=validate_noise_file)
    assert summary.failed == 1 and "safetensors" in summary.records[0]["error"]
    assert not Path(job.output).exists()


def test_unreachable_cluster_address_fails_fast_with_value_error() -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match="cannot reach the Ray cluster"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    check_reachable("auto")  # left to Ray


def test_ray_executor_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="workers"):
        RayExecutor(workers=0)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        RayExecutor(cpus_per_worker=0)
    with pytest.raises(ValueError, match="gpus_per_worker"):
        RayExecutor(gpus_per_worker=-0.5)


def test_quick_resume_reads_headers_only_full_resume_validates_every_output(tmp_path: Path
                                                                           ) -> None:
    src = make_set(tmp_path)
    run(src, tmp_path / "out")
    jobs = plan_jobs(src, tmp_path / "out", {"channels": 2}, seed=11)
    checked: list[str] = []

    def counting_validate(path: Path) -> dict[str, Any]:
        checked.append(path.name)
        return validate_noise_file(path)

    for verify, expected in [("quick", 0), ("full", 3)]:
        checked.clear()
        summary = run_batch(jobs, tmp_path / "out", SerialExecutor(), verify=verify,
                            retry_failed=False, noise_fn=fake_noise,
                            validate_fn=counting_validate)
        assert summary.skipped == 5 and len(checked) == expected
    with pytest.raises(ValueError, match="verify"):
        run_batch(jobs, tmp_path / "out", SerialExecutor(), verify="maybe")


def test_resume_still_matches_after_the_output_folder_moves(tmp_path: Path) -> None:
    src = make_set(tmp_path)
    run(src, tmp_path / "out")
    (tmp_path / "out").rename(tmp_path / "moved")
    CALLS.clear()
    _, summary = run(src, tmp_path / "moved", retry_failed=False)
    assert CALLS == [] and summary.skipped == 5
    assert {r["output"] for r in summary.records} >= {"a.safetensors", "sub/c.safetensors"}


def test_real_pipeline_streams_each_video_and_validates_it_frame_by_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``batch`` runs the streaming pipeline per video, and its full check of an output reads one
    frame at a time: no whole clip and no whole noise file is ever held."""
    from tests._streaming import live_frames
    from tests.io._clips import moving_frames
    from warpnoise.io.video import VideoWriter
    from warpnoise.pipeline import LOOKAHEAD, NoiseOptions

    src = tmp_path / "videos"
    src.mkdir()
    for name, n in (("a.mp4", 30), ("b.mp4", 12)):
        with VideoWriter(src / name, fps=30) as writer:
            for frame in moving_frames(n, 48, 64, dx=1):
                writer.write(frame)

    def no_whole_file(*args: object) -> None:
        raise AssertionError("a noise file must be validated one frame at a time")

    monkeypatch.setattr("warpnoise.io.noisefile.load_noise", no_whole_file)
    monkeypatch.setattr("warpnoise.pipeline.read_frames", no_whole_file)
    # A method that follows the flows: `random` and `fixed` decode no frames for the work pass.
    jobs = plan_jobs(src, tmp_path / "out", {"method": "nearest", "downsample": 8,
                                             "dis_preset": "ultrafast"},
                     options_type=NoiseOptions)
    with live_frames(monkeypatch) as live:
        summary = run_batch(jobs, tmp_path / "out", SerialExecutor(), verify="full")
    assert summary.failed == 0 and summary.finished == 2, [
        r.get("error") for r in summary.records]
    records = {Path(r["input"]).name: r for r in summary.records}
    assert (records["a.mp4"]["frames"], records["b.mp4"]["frames"]) == (30, 12)
    assert live.decoded == 42
    assert 2 <= live.most <= LOOKAHEAD + 2
