"""The results manifest of a batch: an append-only JSON-lines journal, compacted when a run ends.

One line per finished attempt: ``key`` (the video's path relative to the input), ``input``,
``output`` (the noise file, relative to the output folder), ``status`` (``"ok"`` or
``"failed"``), ``frames``, ``shape``, ``seconds`` (per stage and ``total``), ``error``, ``seed``,
``fingerprint``, ``host``, ``pid``, ``finished_at`` (Unix time).

Lines are flushed and fsynced one by one, so a killed batch keeps every result it recorded; a
line cut short by the kill is ignored on reading. Compaction rewrites the file atomically with
the last record of each output, so the finished manifest has one line per video.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_output

__all__ = [
    "JOURNAL_NAME",
    "LOCK_NAME",
    "SUMMARY_NAME",
    "Journal",
    "batch_lock",
    "compact_journal",
    "read_journal",
    "write_summary_csv",
]

JOURNAL_NAME = "results.jsonl"
SUMMARY_NAME = "results.csv"
LOCK_NAME = ".warpnoise-batch.lock"
SUMMARY_COLUMNS = ("key", "status", "frames", "shape", "seconds", "error", "input", "output",
                   "seed")


def read_journal(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete record of a journal, in file order; a missing file reads as empty.

    Lines that are not a JSON object with an ``output`` (a line cut short when the batch was
    killed) are skipped.
    """
    p = Path(path)
    if not p.exists():
        return []
    records: list[dict[str, Any]] = []
    with p.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "output" in rec:
                records.append(rec)
    return records


def latest_by_output(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each output path."""
    return {str(r["output"]): dict(r) for r in records}


def compact_journal(path: str | os.PathLike, order: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rewrite the journal atomically with one record per output (the last one).

    Outputs named in ``order`` come first, in that order; outputs of earlier batches into the
    same folder follow, so their results are kept.

    Returns:
        the records written.
    """
    latest = latest_by_output(read_journal(path))
    ordered = [latest.pop(o) for o in order if o in latest]
    ordered.extend(latest.values())
    with atomic_output(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for rec in ordered:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return ordered


def write_summary_csv(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """A spreadsheet view of the results (one row per video, total seconds), written atomically."""
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SUMMARY_COLUMNS)
        for rec in records:
            seconds = rec.get("seconds") or {}
            total = seconds.get("total") if isinstance(seconds, dict) else seconds
            shape = rec.get("shape")
            writer.writerow([
                rec.get("key", ""), rec.get("status", ""), rec.get("frames", ""),
                "x".join(map(str, shape)) if shape else "",
                "" if total is None else f"{total:.3f}", rec.get("error") or "",
                rec.get("input", ""), rec.get("output", ""), rec.get("seed", ""),
            ])


class Journal:
    """Appends records to a journal file, one fsynced line each.

    Example:
        >>> with Journal(outdir / "results.jsonl") as j:
        ...     j.append({"output": "a.safetensors", "status": "ok"})
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = self.path.open("a+", encoding="utf-8")
        # A kill can cut the last line short; start on a fresh line so the next record is whole.
        self._fh.seek(0, os.SEEK_END)
        if self._fh.tell() > 0:
            self._fh.seek(self._fh.tell() - 1)
            if self._fh.read(1) != "\n":
                self._fh.write("\n")

    def append(self, record: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(dict(record), sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def batch_lock(outdir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``outdir`` for one batch at a time.

    The lock is an OS file lock, so a killed batch releases it with its process.

    Raises:
        ValueError: another batch holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): run unguarded
        yield
        return
    with (Path(outdir) / LOCK_NAME).open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another warpnoise batch is writing to {str(outdir)!r}") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
