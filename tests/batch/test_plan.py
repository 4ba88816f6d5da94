"""Planning a batch: inputs, manifests, per-row options, outputs and per-video seeds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from warpnoise.batch.plan import coerce_options, find_videos, plan_jobs, read_manifest, video_seed


@dataclasses.dataclass
class Options:  # a stand-in with the field types of warpnoise.pipeline.NoiseOptions
    method: str = "integral"
    channels: int = 4
    downsample: int = 1
    seed: int = 0
    scale: float | None = None
    size: tuple[int, int] | None = None
    method_options: dict | None = None


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_video_seed_is_stable_and_differs_between_videos_and_batch_seeds() -> None:
    assert video_seed(0, "a.mp4") == video_seed(0, "a.mp4")
    assert video_seed(0, "a.mp4") != video_seed(0, "b.mp4")
    assert video_seed(0, "a.mp4") != video_seed(1, "a.mp4")
    assert 0 <= video_seed(123, "x/y.mp4") < 2**63


def test_find_videos_recurses_skips_hidden_non_videos_and_the_output_folder(tmp_path: Path
                                                                             ) -> None:
    touch(tmp_path / "b.mp4")
    touch(tmp_path / "sub" / "a.AVI")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.mp4")
    touch(tmp_path / ".cache" / "c.mp4")
    touch(tmp_path / "out" / "d.mp4")
    found = [p.relative_to(tmp_path).as_posix()
             for p in find_videos(tmp_path, exclude=tmp_path / "out")]
    assert found == ["b.mp4", "sub/a.AVI"]


def test_plan_over_a_folder_mirrors_paths_into_outdir_with_derived_seeds(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "x" / "a.mp4")
    touch(tmp_path / "in" / "b.mov")
    jobs = plan_jobs(tmp_path / "in", tmp_path / "out", {"method": "random", "seed": 99},
                     seed=7)
    assert [j.key for j in jobs] == ["b.mov", "x/a.mp4"]
    assert jobs[1].output == str(tmp_path / "out" / "x" / "a.safetensors")
    assert jobs[1].options == {"method": "random", "seed": video_seed(7, "x/a.mp4")}


def test_plan_seed_does_not_depend_on_where_the_dataset_lives(tmp_path: Path) -> None:
    touch(tmp_path / "one" / "v.mp4")
    touch(tmp_path / "two" / "deeper" / "v.mp4")
    a = plan_jobs(tmp_path / "one", tmp_path / "o1", seed=3)
    b = plan_jobs(tmp_path / "two" / "deeper", tmp_path / "o2", seed=3)
    assert a[0].options["seed"] == b[0].options["seed"]


def test_csv_manifest_per_row_options_are_converted_and_override_batch_options(tmp_path: Path
                                                                               ) -> None:
    touch(tmp_path / "clips" / "a.mp4")
    touch(tmp_path / "clips" / "b.mp4")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,channels,seed,size,scale,method_options\n"
                        "clips/a.mp4,16,5,64x48,0.5,\"{\"\"upsample\"\": 2}\"\n"
                        "clips/b.mp4,,,,,\n")
    jobs = plan_jobs(manifest, tmp_path / "out", {"channels": 4, "method": "random"},
                     options_type=Options, seed=1)
    assert jobs[0].options == {"channels": 16, "method": "random", "seed": 5, "size": (64, 48),
                               "scale": 0.5, "method_options": {"upsample": 2}}
    assert jobs[1].options == {"channels": 4, "method": "random",
                               "seed": video_seed(1, "clips/b.mp4")}
    assert jobs[0].output == str(tmp_path / "out" / "clips" / "a.safetensors")


def test_jsonl_manifest_keeps_json_types_and_honours_output_column(tmp_path: Path) -> None:
    video = touch(tmp_path / "elsewhere" / "v.mp4")
    manifest = tmp_path / "m" / "list.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"path": str(video), "output": "named/n1", "channels": 3})
                        + "\n\n")
    (job,) = plan_jobs(manifest, tmp_path / "out", options_type=Options, suffix=".npy")
    assert job.input == str(video)
    assert job.output == str(tmp_path / "out" / "named" / "n1.npy")
    assert job.options["channels"] == 3


def test_unknown_manifest_column_is_an_error_naming_it_unless_ignored(tmp_path: Path) -> None:
    touch(tmp_path / "a.mp4")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,caption,chanels\na.mp4,a dog,4\n")
    with pytest.raises(ValueError, match="'caption', 'chanels'"):
        plan_jobs(manifest, tmp_path / "out", options_type=Options)
    (job,) = plan_jobs(manifest, tmp_path / "out", options_type=Options,
                       ignore_extra_columns=True)
    assert "caption" not in job.options


@pytest.mark.parametrize("content, message", [
    ("file,x\na.mp4,1\n", "'path' column"),
    ("path,channels\na.mp4,four\n", "channels"),
    ("path,output\na.mp4,../escape\n", "inside the output folder"),
    ("path,output\na.mp4,o\nb.mp4,o\n", "would both write"),
])
def test_bad_csv_manifests_raise_value_error(tmp_path: Path, content: str, message: str) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text(content)
    with pytest.raises(ValueError, match=message):
        plan_jobs(manifest, tmp_path / "out", options_type=Options)


def test_bad_jsonl_line_names_its_line_number(tmp_path: Path) -> None:
    manifest = tmp_path / "list.jsonl"
    manifest.write_text('{"path": "a.mp4"}\n{"path": \n')
    with pytest.raises(ValueError, match="line 2"):
        read_manifest(manifest)


def test_missing_or_empty_inputs_raise_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        plan_jobs(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no videos"):
        plan_jobs(tmp_path / "empty", tmp_path / "out")
    touch(tmp_path / "a.txt")
    with pytest.raises(ValueError, match="neither a folder"):
        plan_jobs(tmp_path / "a.txt", tmp_path / "out")
    touch(tmp_path / "in" / "v.mp4")
    with pytest.raises(ValueError, match="is a file"):
        plan_jobs(tmp_path / "in", tmp_path / "a.txt")


def test_same_stem_in_one_folder_is_a_collision(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "a.mp4")
    touch(tmp_path / "in" / "a.avi")
    with pytest.raises(ValueError, match="would both write"):
        plan_jobs(tmp_path / "in", tmp_path / "out")


def test_fingerprint_changes_with_options_and_input_file(tmp_path: Path) -> None:
    video = touch(tmp_path / "in" / "a.mp4")
    first = plan_jobs(tmp_path / "in", tmp_path / "out", {"channels": 4})[0].fingerprint
    assert plan_jobs(tmp_path / "in", tmp_path / "out", {"channels": 4})[0].fingerprint == first
    assert plan_jobs(tmp_path / "in", tmp_path / "out", {"channels": 3})[0].fingerprint != first
    video.write_bytes(b"longer")
    assert plan_jobs(tmp_path / "in", tmp_path / "out", {"channels": 4})[0].fingerprint != first


def test_coerce_options_reads_bools_and_optional_numbers() -> None:
    @dataclasses.dataclass
    class Opts:
        flag: bool = False
        value: float | None = None

    assert coerce_options({"flag": "yes", "value": "2.5"}, Opts) == {"flag": True, "value": 2.5}
    with pytest.raises(ValueError, match="flag"):
        coerce_options({"flag": "maybe"}, Opts)


def test_relative_folder_gives_keys_and_inputs_relative_to_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    touch(tmp_path / "data" / "videos" / "cup.mp4")
    touch(tmp_path / "data" / "videos" / "sub" / "dog.mp4")
    monkeypatch.chdir(tmp_path / "data")
    relative = plan_jobs("videos/", "noise/", seed=0)
    assert [j.key for j in relative] == ["cup.mp4", "sub/dog.mp4"]  # no folder name in keys
    assert all(Path(j.input).is_file() for j in relative)
    assert relative[0].output == str(tmp_path / "data" / "noise" / "cup.safetensors")
    # The same videos named through an absolute path: same keys, so the same seeds.
    absolute = plan_jobs(tmp_path / "data" / "videos", "noise", seed=0)
    assert [j.options["seed"] for j in absolute] == [j.options["seed"] for j in relative]
    assert relative[0].options["seed"] == video_seed(0, "cup.mp4")


def test_bad_option_values_fail_the_plan_with_the_row(tmp_path: Path) -> None:
    from warpnoise.pipeline import NoiseOptions

    touch(tmp_path / "a.mp4")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "a.mp4"}) + "\n"
                        + json.dumps({"path": "a.mp4", "output": "b", "method": "magic"}) + "\n")
    with pytest.raises(ValueError, match=r"row 2 \(a.mp4\): unknown method 'magic'"):
        plan_jobs(manifest, tmp_path / "out", options_type=NoiseOptions)
    with pytest.raises(ValueError, match="bad options for method 'random'"):
        plan_jobs(tmp_path, tmp_path / "out", {"method": "random",
                                               "method_options": {"nonsense": 1}},
                  options_type=NoiseOptions)
    manifest.write_text(json.dumps({"path": "a.mp4", "seed": 2**64}) + "\n")
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        plan_jobs(manifest, tmp_path / "out", options_type=NoiseOptions)


def test_manifest_rows_override_latent_degradation_device_with_map_paths_made_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from warpnoise.pipeline import NoiseOptions

    touch(tmp_path / "data" / "a.mp4")
    touch(tmp_path / "data" / "b.mp4")
    np.save(tmp_path / "data" / "gmap.npy", np.full((4, 4), 0.25, np.float32))
    manifest = tmp_path / "data" / "list.csv"
    manifest.write_text("path,latent,degradation,degradation_map,device,record_source_path\n"
                        "a.mp4,wan2.1,0.5,,cpu,yes\n"
                        "b.mp4,,,gmap.npy,,\n")
    monkeypatch.chdir(tmp_path)  # the map is found beside the manifest, not in the cwd
    batch = {"method": "nearest", "latent": "sd", "device": "cpu"}
    a, b = plan_jobs(manifest, tmp_path / "out", batch, options_type=NoiseOptions, seed=1)
    assert a.options["latent"] == "wan2.1" and a.options["degradation"] == 0.5
    assert a.options["record_source_path"] is True and "degradation_map" not in a.options
    assert b.options["latent"] == "sd" and "degradation" not in b.options
    assert b.options["degradation_map"] == str(tmp_path / "data" / "gmap.npy")
    assert a.fingerprint != b.fingerprint


def test_latent_with_npy_output_is_refused_before_any_job(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "a.mp4")
    with pytest.raises(ValueError, match=r"to \.safetensors, not \.npy \(drop --format npy\)"):
        plan_jobs(tmp_path / "in", tmp_path / "out", {"latent": "sd"}, suffix=".npy")
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"path": "in/a.mp4", "latent": "sd"}) + "\n")
    with pytest.raises(ValueError, match=r"row 1 \(in/a.mp4\): latent 'sd'"):
        plan_jobs(manifest, tmp_path / "out", {}, suffix=".npy")
    assert len(plan_jobs(manifest, tmp_path / "out", {}, suffix=".safetensors")) == 1
