"""The results journal: tolerant reading, compaction to one record per output, the lock."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from warpnoise.batch.journal import (
    Journal,
    batch_lock,
    compact_journal,
    read_journal,
    write_summary_csv,
)


def test_reading_skips_a_line_cut_short_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"output": "a", "status": "ok"}\n{"output": "b", "sta')
    assert [r["output"] for r in read_journal(path)] == ["a"]
    assert read_journal(tmp_path / "missing.jsonl") == []


def test_appending_after_a_cut_line_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"output": "a", "status": "ok"}\n{"output": "b", "sta')
    with Journal(path) as journal:
        journal.append({"output": "c", "status": "failed"})
    assert [r["output"] for r in read_journal(path)] == ["a", "c"]


def test_compaction_keeps_the_last_record_per_output_in_the_given_order(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with Journal(path) as journal:
        for out, status in [("a", "failed"), ("old", "ok"), ("b", "ok"), ("a", "ok")]:
            journal.append({"output": out, "status": status})
    records = compact_journal(path, order=["b", "a"])
    assert [(r["output"], r["status"]) for r in records] == [("b", "ok"), ("a", "ok"),
                                                             ("old", "ok")]
    lines = path.read_text().splitlines()
    assert [json.loads(line)["output"] for line in lines] == ["b", "a", "old"]


def test_summary_csv_has_one_row_per_record(tmp_path: Path) -> None:
    write_summary_csv(tmp_path / "r.csv", [
        {"key": "a.mp4", "output": "a", "status": "ok", "frames": 3, "shape": [3, 4, 8, 8],
         "seconds": {"total": 0.25}},
        {"key": "b.mp4", "output": "b", "status": "failed", "error": "cannot read"},
    ])
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [(r["key"], r["status"], r["shape"], r["seconds"], r["error"]) for r in rows] == [
        ("a.mp4", "ok", "3x4x8x8", "0.250", ""), ("b.mp4", "failed", "", "", "cannot read")]


def test_a_second_batch_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    with batch_lock(tmp_path), pytest.raises(ValueError, match="another warpnoise batch"), \
            batch_lock(tmp_path):
        pass
    with batch_lock(tmp_path):  # released after the first one ends
        pass
