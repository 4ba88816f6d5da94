"""Planning a batch: which videos, where each one's noise goes, with which options and seed.

Pure functions over paths and dicts; nothing here runs a video or touches Ray.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..io.atomic import check_outputs
from ..rng import check_seed

__all__ = [
    "MANIFEST_SUFFIXES",
    "VIDEO_SUFFIXES",
    "BatchJob",
    "coerce_options",
    "find_videos",
    "plan_jobs",
    "read_manifest",
    "video_seed",
]

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}
)
MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl"})
# Manifest columns that are not noise options.
PATH_COLUMN = "path"
OUTPUT_COLUMN = "output"
# Options that may name a file; tasks run in other processes (and folders), so a relative file
# name is made absolute against where it was written (the manifest's folder or the cwd).
PATH_OPTIONS = ("flow", "raft_weights", "degradation_map")


@dataclass(frozen=True)
class BatchJob:
    """One video of a batch.

    Attributes:
        key: the video's name inside the dataset, a relative POSIX path (``"a/b.mp4"``); it
            decides the output path and the derived seed, so it must not depend on where the
            dataset is mounted.
        input: the video file.
        output: where its noise file goes.
        options: keyword arguments of ``warpnoise.pipeline.NoiseOptions``; ``seed`` is resolved.
        fingerprint: changes when the options, the input file or the output format change; a
            finished output whose recorded fingerprint differs is redone.
    """

    key: str
    input: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""


def video_seed(batch_seed: int, key: str) -> int:
    """The seed of one video: a stable hash of the batch seed and the video's key.

    A video's noise then depends only on the batch seed and its name, never on which worker ran
    it or in which order, so a redone video gets exactly the same noise; and two videos get
    independent noise (one seed for all would give every clip the same first frame, a
    correlation a model trained on the set could learn).

    Returns:
        an int in ``[0, 2**63)``.
    """
    digest = hashlib.blake2b(f"{int(batch_seed)}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def find_videos(folder: str | os.PathLike, *, exclude: str | os.PathLike | None = None
                ) -> list[Path]:
    """Video files under ``folder`` (recursive, sorted), by suffix (:data:`VIDEO_SUFFIXES`).

    Hidden files and folders (a leading dot) are skipped, and so is ``exclude`` (the output
    folder when it lies inside the input folder).

    Raises:
        ValueError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"input folder {str(root)!r} does not exist or is not a folder")
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip is None or (here / d).resolve() != skip))
        found.extend(here / f for f in sorted(filenames)
                     if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES)
    return sorted(found)


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a CSV (with a header) or JSONL manifest; each row needs a ``path``.

    CSV cells are strings (empty cells are dropped, so the batch default applies); JSONL values
    keep their JSON types. Rows are returned in file order.

    Raises:
        ValueError: a missing file, an unknown suffix, malformed JSON, or a row without ``path``.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"manifest {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    rows: list[dict[str, Any]] = []
    if suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or PATH_COLUMN not in reader.fieldnames:
                raise ValueError(f"manifest {str(p)!r} needs a header with a "
                                 f"{PATH_COLUMN!r} column, got {reader.fieldnames}")
            for row in reader:
                rows.append({k.strip(): v.strip() for k, v in row.items()
                             if k is not None and v is not None and v.strip() != ""})
    elif suffix == ".jsonl":
        with p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"manifest {str(p)!r} line {n}: invalid JSON ({err.msg})"
                                     ) from None
                if not isinstance(row, dict):
                    raise ValueError(f"manifest {str(p)!r} line {n}: expected a JSON object, "
                                     f"got {type(row).__name__}")
                rows.append({k: v for k, v in row.items() if v is not None})
    else:
        raise ValueError(f"manifest {str(p)!r}: expected a .csv or .jsonl file")
    for n, row in enumerate(rows, start=1):
        if not row.get(PATH_COLUMN):
            raise ValueError(f"manifest {str(p)!r} row {n} has no {PATH_COLUMN!r}")
    return rows


def _strip_optional(tp: Any) -> Any:
    """``X | None`` -> ``X`` (the one non-None member), anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return tp


def _coerce_value(name: str, value: Any, tp: Any) -> Any:
    """Convert a manifest cell to the option's annotated type. Non-strings pass through."""
    if not isinstance(value, str):
        return value
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp) or tp
    text = value.strip()
    try:
        if tp is bool:
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if origin in (tuple, list, dict):
            # A size like "64x48" or "64,48" as well as JSON ("[64, 48]", '{"upsample": 4}').
            if origin is not dict and not text.startswith("["):
                parts = text.replace("x", ",").split(",")
                return origin(int(s) for s in parts)
            parsed = json.loads(text)
            return origin(parsed) if origin is not dict else dict(parsed)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValueError(f"option {name!r}: cannot read {value!r} as {tp}") from None
    return value


def coerce_options(row: Mapping[str, Any], options_type: type) -> dict[str, Any]:
    """Check a row's option names against ``options_type`` (a dataclass) and convert CSV strings
    to the annotated field types.

    Raises:
        ValueError: an unknown option name (the message lists the known ones) or a value that
            does not convert.
    """
    hints = typing.get_type_hints(options_type)
    names = [f.name for f in dataclasses.fields(options_type)]
    unknown = sorted(set(row) - set(names))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(names)}")
    return {k: _coerce_value(k, v, hints.get(k, Any)) for k, v in row.items()}


def _key_for(path: Path, base: Path) -> str:
    """The dataset-relative POSIX name of ``path``: relative to ``base`` when inside it, else the
    absolute path without its root."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(base.resolve()).as_posix()
    except ValueError:
        return PurePosixPath(resolved.as_posix()).relative_to("/").as_posix()


def _absolute_paths(options: Mapping[str, Any], base: Path) -> dict[str, Any]:
    out = dict(options)
    for name in PATH_OPTIONS:
        value = out.get(name)
        if isinstance(value, str) and value and (base / value).is_file():
            out[name] = os.path.abspath(base / value)
    return out


def _check_options(options_type: type | None, options: Mapping[str, Any],
                   checked: set[str]) -> None:
    """``options_type(**options).check()`` if the type has a ``check``, so a bad value fails the
    plan, before any task starts. Each distinct set of options is checked once; seeds alone are
    checked every time (they differ per video)."""
    if options_type is None or not hasattr(options_type, "check"):
        return
    signature = json.dumps({k: v for k, v in options.items() if k != "seed"}, sort_keys=True,
                           default=repr)
    if signature in checked:
        if "seed" in options:
            check_seed(options["seed"])
        return
    options_type(**options).check()
    checked.add(signature)


def _check_format(options: Mapping[str, Any], suffix: str) -> None:
    """A pipeline's latents tensor (``latent``) goes to ``.safetensors`` only: refused here,
    before any task, rather than once per video."""
    if options.get("latent") is not None and suffix != ".safetensors":
        raise ValueError(f"latent {options['latent']!r} writes the pipeline's latents tensor to "
                         f".safetensors, not {suffix} (drop --format {suffix[1:]})")


def _safe_relative(name: str, what: str) -> PurePosixPath:
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"{what} {name!r} must be a relative path inside the output folder")
    return rel


def _fingerprint(key: str, input_path: Path, options: Mapping[str, Any], suffix: str) -> str:
    try:
        st = input_path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = None  # a missing input fails in its task, with its own message
    blob = json.dumps({"key": key, "input": stamp, "options": options, "suffix": suffix},
                      sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def plan_jobs(
    source: str | os.PathLike,
    outdir: str | os.PathLike,
    options: Mapping[str, Any] | None = None,
    *,
    options_type: type | None = None,
    seed: int = 0,
    suffix: str = ".safetensors",
    ignore_extra_columns: bool = False,
) -> list[BatchJob]:
    """The jobs of a batch over a folder of videos or a manifest.

    Convention:
        ``source`` is a folder (every video under it, see :func:`find_videos`) or a ``.csv`` /
        ``.jsonl`` manifest with a ``path`` per row (relative to the manifest's folder), an
        optional ``output`` (relative to ``outdir``), and optional per-row noise options that
        override ``options``. The output of video ``key`` is ``outdir/key`` with ``suffix``.
        Its seed is ``video_seed(seed, key)``; a row's own ``seed`` is used as it is (a
        ``seed`` in ``options`` is ignored: the batch seed is ``seed``).

    Args:
        options: batch-wide noise options (``NoiseOptions`` keyword arguments).
        options_type: the options dataclass; when given, names are checked and CSV strings are
            converted to its field types.
        seed: the batch seed each video's seed derives from.
        suffix: ``".safetensors"`` or ``".npy"`` (not with a ``latent`` option: a pipeline's
            latents tensor is written to ``.safetensors`` only).
        ignore_extra_columns: drop manifest columns that are not options instead of failing
            (manifests of training sets often carry captions and such).

    Raises:
        ValueError: a missing source, a bad manifest, an unknown option or a bad option value
            (``options_type.check()``, when it has one), no videos, two videos with the same
            output, or an output folder that is a file.
    """
    if suffix not in (".safetensors", ".npy"):
        raise ValueError(f"output suffix must be '.safetensors' or '.npy', got {suffix!r}")
    src = Path(source)
    out = Path(os.path.abspath(outdir))
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(outdir)!r} is a file")
    base_options = _absolute_paths(options or {}, Path.cwd())
    base_options.pop("seed", None)
    _check_format(base_options, suffix)
    rows: list[dict[str, Any]]
    if src.is_dir():
        base = src
        # Paths relative to the folder, as a manifest's are to its own: joined to `base` below.
        rows = [{PATH_COLUMN: p.relative_to(src).as_posix()}
                for p in find_videos(src, exclude=out)]
        if not rows:
            raise ValueError(f"no videos found under {str(src)!r} "
                             f"(looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    elif src.suffix.lower() in MANIFEST_SUFFIXES:
        base = src.parent
        rows = read_manifest(src)
        if not rows:
            raise ValueError(f"manifest {str(src)!r} has no rows")
    elif src.exists():
        raise ValueError(f"input {str(src)!r} is neither a folder nor a .csv/.jsonl manifest")
    else:
        raise ValueError(f"input {str(src)!r} does not exist")

    known = ({f.name for f in dataclasses.fields(options_type)} if options_type is not None
             else None)
    checked: set[str] = set()  # distinct option sets already checked (seeds aside)
    jobs: list[BatchJob] = []
    owner: dict[str, str] = {}
    for n, row in enumerate(rows, start=1):
        row = dict(row)
        raw_path = Path(str(row.pop(PATH_COLUMN)))
        input_path = Path(os.path.abspath(base / raw_path))  # base / absolute = absolute
        key = _key_for(input_path, base)
        explicit_output = OUTPUT_COLUMN in row
        rel_out = (_safe_relative(str(row.pop(OUTPUT_COLUMN)), "output")
                   if OUTPUT_COLUMN in row else PurePosixPath(key))
        if ignore_extra_columns and known is not None:
            row = {k: v for k, v in row.items() if k in known}
        try:
            row_options = coerce_options(row, options_type) if options_type else row
        except ValueError as err:
            raise ValueError(f"{str(src)!r} row {n} ({key}): {err}") from None
        merged = {**base_options, **_absolute_paths(row_options, base)}
        if "seed" not in row_options:
            merged["seed"] = video_seed(seed, key)
        try:
            _check_format(merged, suffix)
            _check_options(options_type, merged, checked)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{str(src)!r} row {n} ({key}): {err}") from None
        if explicit_output and rel_out.suffix.lower() not in ("", suffix):
            raise ValueError(f"{str(src)!r} row {n} ({key}): output {str(rel_out)!r} must end in "
                             f"{suffix} (the --format) or have no suffix")
        output = out / rel_out.with_suffix(suffix)
        try:
            check_outputs({"the output": output}, {"the input video": input_path},
                          writable=False)  # folders are made later; outdir was checked
        except ValueError as err:
            raise ValueError(f"{str(src)!r} row {n} ({key}): {err}") from None
        out_key = output.as_posix()
        if out_key in owner:
            raise ValueError(f"{owner[out_key]!r} and {key!r} would both write {out_key!r}; "
                             f"give one an 'output' in a manifest")
        owner[out_key] = key
        jobs.append(BatchJob(key=key, input=str(input_path), output=str(output),
                             options=merged,
                             fingerprint=_fingerprint(key, input_path, merged, suffix)))
    return jobs

