"""Warped noise for whole video datasets: one task per video on Ray, resumable.

    >>> from warpnoise.batch import plan_jobs, run_batch, RayExecutor
    >>> from warpnoise.pipeline import NoiseOptions
    >>> jobs = plan_jobs("videos/", "noise/", {"channels": 4, "downsample": 8},
    ...                  options_type=NoiseOptions, seed=0)
    >>> summary = run_batch(jobs, "noise/", RayExecutor(workers=8))
    >>> summary.finished, summary.failed, summary.videos_per_minute

Each video's seed is ``video_seed(seed, key)``, a hash of the batch seed and the video's path
relative to the dataset, so its noise does not depend on the worker or the order it ran in.

Modules: :mod:`~warpnoise.batch.plan` (which videos, outputs, options, seeds),
:mod:`~warpnoise.batch.run` (tasks on Ray, the fault model), :mod:`~warpnoise.batch.journal`
(the results manifest), :mod:`~warpnoise.batch.verify` (is a finished output still whole?).
"""

from __future__ import annotations

from .journal import JOURNAL_NAME, SUMMARY_NAME, read_journal
from .plan import BatchJob, find_videos, plan_jobs, read_manifest, video_seed
from .run import BatchSummary, RayExecutor, SerialExecutor, process_job, run_batch
from .verify import quick_check_noise_file

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
    "quick_check_noise_file",
    "read_journal",
    "read_manifest",
    "run_batch",
    "video_seed",
]
