"""Warped noise for whole video datasets: one task per video on Ray, resumable.

    >>> from warpnoise.batch import plan_jobs, run_batch, RayExecutor
    >>> jobs = plan_jobs("videos/", "noise/", {"method": "integral", "channels": 4}, seed=0)
    >>> summary = run_batch(jobs, "noise/", RayExecutor(workers=8))
    >>> summary.finished, summary.failed, summary.videos_per_minute

Each video's seed is ``video_seed(seed, key)``, a hash of the batch seed and the video's path
relative to the dataset, so its noise does not depend on the worker or the order it ran in.
See :mod:`warpnoise.batch.run` for the fault model.
"""

from __future__ import annotations

from .journal import JOURNAL_NAME, SUMMARY_NAME, read_journal
from .plan import BatchJob, find_videos, plan_jobs, read_manifest, video_seed
from .run import BatchSummary, RayExecutor, SerialExecutor, process_job, run_batch

__all__ = [
    "JOURNAL_NAME",
    "SUMMARY_NAME",
    "BatchJob",
    "BatchSummary",
    "RayExecutor",
    "SerialExecutor",
    "find_videos",
    "plan_jobs",
    "process_job",
    "read_journal",
    "read_manifest",
    "run_batch",
    "video_seed",
]
