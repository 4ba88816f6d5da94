"""Running a batch: one task per video on Ray (or in this process), resumable.

Fault model:
    * a video that fails (unreadable, too short, any error in its task) is recorded as failed
      with its reason; the batch goes on;
    * a worker process that dies is retried by Ray (``max_retries``), then recorded as failed;
    * a killed batch, run again, skips each output that is complete (its header and exact size,
      or a full validation with ``verify="full"``) *and* whose last record is ``ok`` with the
      same fingerprint (options, input file, format); everything else is redone.
      Per-video seeds are deterministic, so a redone video gets exactly the same noise.

Every output is written to ``OUTDIR/.warpnoise-partial/`` and renamed into place only once
complete and validated (``os.replace`` on the same file system), so ``OUTDIR`` never holds a
half-written noise file; the partial folder is cleared when a batch starts and ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .._interrupt import kept_signal_handlers
from .journal import (
    JOURNAL_NAME,
    SUMMARY_NAME,
    Journal,
    batch_lock,
    compact_journal,
    latest_by_output,
    read_journal,
    write_summary_csv,
)
from .plan import BatchJob
from .verify import quick_check_noise_file

__all__ = [
    "PARTIAL_DIR",
    "BatchSummary",
    "Executor",
    "RayExecutor",
    "SerialExecutor",
    "process_job",
    "run_batch",
]

PARTIAL_DIR = ".warpnoise-partial"
#: Seconds to wait for the cancelled tasks of an interrupted batch on a shared cluster to end.
_CANCEL_WAIT = 10.0
RAY_MISSING = ("Ray is not installed; install the batch extra: pip install 'warpnoise[batch]'")

NoiseFn = Callable[[str, Path, Mapping[str, Any]], Any]
ValidateFn = Callable[[Path], Mapping[str, Any]]


def _default_noise_fn(input: str, output: Path, options: Mapping[str, Any]) -> Any:
    from ..pipeline import NoiseOptions, video_to_noise

    return video_to_noise(input, output, NoiseOptions(**options))


def _default_validate_fn(path: Path) -> Mapping[str, Any]:
    from ..pipeline import validate_noise_file

    return validate_noise_file(path)


def _field(result: Any, name: str) -> Any:
    return result.get(name) if isinstance(result, Mapping) else getattr(result, name, None)


def _record(job: BatchJob, status: str, **extra: Any) -> dict[str, Any]:
    return {"key": job.key, "input": job.input, "output": job.output,
            "seed": job.options.get("seed"), "fingerprint": job.fingerprint, "status": status,
            "frames": None, "shape": None, "seconds": {}, "error": None,
            "finished_at": round(time.time(), 3), **extra}


def _limit_threads(n: int) -> None:
    """Keep a task to its CPUs: torch, numba's parallel kernels and OpenCV each default to every
    core of the machine, which oversubscribes it when several workers share it."""
    import torch

    torch.set_num_threads(n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass


def process_job(
    job: BatchJob,
    partial_dir: str,
    *,
    min_frames: int = 2,
    threads: int | None = None,
    noise_fn: NoiseFn | None = None,
    validate_fn: ValidateFn | None = None,
) -> dict[str, Any]:
    """Make one video's noise file; never raises for a bad video.

    Writes to a unique file in ``partial_dir``, validates it, then renames it to
    ``job.output``. Runs inside a Ray worker (or in this process).

    Args:
        min_frames: a video with fewer frames fails as too short (one frame has no motion).
        threads: threads (torch, numba, OpenCV) for this task; ``None`` leaves the defaults.
        noise_fn: ``(input, output, options) -> result with frames, shape, seconds``; default
            ``warpnoise.pipeline.video_to_noise``.
        validate_fn: ``(path) -> {"frames", ...}``, raising ``ValueError`` for a bad file;
            default ``warpnoise.pipeline.validate_noise_file``.

    Returns:
        the job's record: ``status`` ``"ok"`` (with frames, shape, seconds) or ``"failed"``
        (with ``error``).
    """
    if threads is not None:
        _limit_threads(threads)
    noise_fn = noise_fn or _default_noise_fn
    validate_fn = validate_fn or _default_validate_fn
    target = Path(job.output)
    stem = hashlib.sha1(job.output.encode()).hexdigest()[:12]
    partial = Path(partial_dir) / f"{stem}-{uuid.uuid4().hex[:8]}{target.suffix}"
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    start = time.perf_counter()
    try:
        result = noise_fn(job.input, partial, dict(job.options))
        info = validate_fn(partial)
        if int(info["frames"]) < min_frames:
            raise ValueError(f"too short: {info['frames']} frame(s), at least {min_frames} "
                             "needed")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)
    except Exception as err:  # one bad video must not stop the batch: record why it failed
        message = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        seconds = {"total": round(time.perf_counter() - start, 4)}
        return _record(job, "failed", error=message or type(err).__name__, seconds=seconds,
                       **where)
    finally:
        partial.unlink(missing_ok=True)
    seconds = {k: round(float(v), 4) for k, v in (_field(result, "seconds") or {}).items()}
    seconds["total"] = round(time.perf_counter() - start, 4)
    shape = _field(result, "shape") or info.get("shape")
    return _record(job, "ok", frames=int(info["frames"]),
                   shape=list(shape) if shape is not None else None, seconds=seconds, **where)


class Executor(Protocol):
    """Runs ``fn`` over items, yielding ``(item, result or exception)`` as each finishes."""

    concurrency: int
    threads: int | None  # threads per task, None: the libraries' defaults

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def map_unordered(self, fn: Callable[..., Any], items: Iterable[Any], **kwargs: Any
                      ) -> Iterator[tuple[Any, Any]]: ...


class SerialExecutor:
    """Runs every task in this process, in order: no Ray needed (tests, debugging)."""

    concurrency = 1
    threads = None

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map_unordered(self, fn: Callable[..., Any], items: Iterable[Any], **kwargs: Any
                      ) -> Iterator[tuple[Any, Any]]:
        for item in items:
            try:
                yield item, fn(item, **kwargs)
            except Exception as err:
                yield item, err


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` (or ``ray://HOST:PORT``) nobody listens on: Ray itself
    retries for minutes. ``auto`` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"cannot reach the Ray cluster at {address!r}: {err}") from None


class RayExecutor:
    """Runs tasks on Ray: a local cluster of ``workers`` CPUs, or the cluster at ``address``.

    If Ray is already initialised in this process, that connection is used and left open.

    Args:
        address: an existing cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            ``None`` starts a local cluster.
        workers: tasks run at once; default: the local CPU count, or the cluster's CPUs divided
            by ``cpus_per_worker``.
        cpus_per_worker: CPUs reserved per task, and its threads.
        gpus_per_worker: GPUs reserved per task (a fraction packs several tasks on one GPU);
            Ray then runs the task on a node with that much GPU free and shows it only its own
            GPUs (``CUDA_VISIBLE_DEVICES``), so the task's ``cuda`` is its GPU. 0: none reserved.
        max_retries: Ray's retries of a task whose worker process died.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, *,
                 cpus_per_worker: int = 1, gpus_per_worker: float = 0.0,
                 max_retries: int = 2) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker must be >= 1, got {cpus_per_worker}")
        if not 0 <= gpus_per_worker < math.inf:
            raise ValueError(f"gpus_per_worker must be a number >= 0, got {gpus_per_worker}")
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.max_retries = max_retries
        self.concurrency = workers or 1
        self.threads = cpus_per_worker
        self._owns = False
        self._depth = 0

    def __enter__(self) -> RayExecutor:
        try:
            import ray
        except ImportError:
            raise ImportError(RAY_MISSING) from None
        self._depth += 1
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": "ERROR"}
            if self.address is None:
                kwargs["num_cpus"] = (self.workers or os.cpu_count() or 1) * self.cpus_per_worker
            else:
                check_reachable(self.address)
                kwargs["address"] = self.address
            try:
                with kept_signal_handlers():  # Ray's handlers exit 15 and dump stacks
                    ray.init(**kwargs)
            except ConnectionError as err:
                raise ValueError(f"cannot connect to the Ray cluster at {self.address!r}: {err}"
                                 ) from None
            self._owns = True
        resources = ray.cluster_resources()
        fit = max(1, int(resources.get("CPU", 1)) // self.cpus_per_worker)
        if self.gpus_per_worker:
            gpus = resources.get("GPU", 0)
            if gpus < self.gpus_per_worker:
                self.__exit__()
                raise ValueError(f"each video needs {self.gpus_per_worker:g} GPU(s) but the Ray "
                                 f"cluster has {gpus:g}")
            fit = min(fit, int(gpus / self.gpus_per_worker + 1e-9))
        self.concurrency = self.workers or fit
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._owns and self._depth == 0:
            import ray

            ray.shutdown()
            self._owns = False

    def map_unordered(self, fn: Callable[..., Any], items: Iterable[Any], **kwargs: Any
                      ) -> Iterator[tuple[Any, Any]]:
        import ray

        remote = ray.remote(_apply).options(num_cpus=self.cpus_per_worker,
                                            num_gpus=self.gpus_per_worker,
                                            max_retries=self.max_retries)
        # Injected functions and options are shipped once, not once per task.
        shared = ray.put((fn, kwargs))
        pending: dict[Any, Any] = {}
        todo = iter(items)
        # Exactly `concurrency` tasks in flight: on a shared cluster --workers is a cap, and a
        # video takes seconds, so the round trip to submit the next one costs nothing.
        limit = self.concurrency

        def fill() -> None:
            for item in todo:
                pending[remote.remote(shared, item)] = item
                if len(pending) >= limit:
                    return

        try:
            fill()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # the worker died for good, or Ray failed
                        result = err
                    yield item, result
                fill()
        finally:
            # Interrupted: do not leave orphans computing on a shared cluster. A cluster of our
            # own is shut down with its workers; cancelling there too races the replies of the
            # killed tasks, which Ray's core worker can abort on ("task that was not pending").
            if not self._owns and pending:
                for ref in pending:
                    ray.cancel(ref, force=True)
                # Until their workers are gone they may still write into the partial folder,
                # which the batch clears once this returns.
                with contextlib.suppress(Exception):  # leaving anyway: best effort
                    ray.wait(list(pending), num_returns=len(pending), timeout=_CANCEL_WAIT)


def _apply(shared: tuple[Callable[..., Any], dict[str, Any]], item: Any) -> Any:
    """The Ray task: ``fn(item, **kwargs)`` (Ray resolves ``shared`` from the object store)."""
    fn, kwargs = shared
    return fn(item, **kwargs)


@dataclass
class BatchSummary:
    """What a batch run did.

    Attributes:
        total: videos in the batch.
        finished: videos done by this run.
        skipped: videos already done by an earlier run (their output validated).
        failed: videos that failed in this run.
        seconds: wall time of this run.
        startup: of which planning the resume and starting the executor (Ray: the cluster or
            the connection), before the first task.
        records: the final record of every video, in batch order.
        journal: the results manifest (JSON lines); ``summary_csv`` the same as a table.
    """

    total: int
    finished: int
    skipped: int
    failed: int
    seconds: float
    startup: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)
    journal: Path | None = None
    summary_csv: Path | None = None

    @property
    def videos_per_minute(self) -> float:
        """Throughput of this run over the videos it processed (finished or failed), from the
        first task on (start-up excluded)."""
        done = self.finished + self.failed
        busy = self.seconds - self.startup
        return 60.0 * done / busy if busy > 0 else 0.0


def _task_error(err: BaseException) -> str:
    """One line for a task Ray could not finish (its message carries a whole traceback)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"task lost: {type(err).__name__}: {lines[-1] if lines else ''}"


def _already_done(job: BatchJob, last: Mapping[str, Any] | None, validate_fn: ValidateFn,
                  retry_failed: bool) -> bool:
    if last is None or last.get("fingerprint") != job.fingerprint:
        return False
    if last.get("status") == "failed":
        return not retry_failed
    if last.get("status") != "ok":
        return False
    try:
        info = validate_fn(Path(job.output))
    except (ValueError, OSError):
        return False
    return info.get("frames") == last.get("frames")


def run_batch(
    jobs: Sequence[BatchJob],
    outdir: str | os.PathLike,
    executor: Executor | None = None,
    *,
    retry_failed: bool = True,
    verify: str = "quick",
    min_frames: int = 2,
    threads: int | None = None,
    noise_fn: NoiseFn | None = None,
    validate_fn: ValidateFn | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Run (or resume) a batch of jobs from :func:`warpnoise.batch.plan_jobs`.

    Args:
        executor: where tasks run; default a :class:`RayExecutor` on a local cluster. It is
            entered only if something is left to do.
        retry_failed: redo videos whose last record is a failure (default); else keep them.
        verify: how a finished output is checked before it is skipped: ``"quick"`` reads its
            header and checks the file's exact size (every output was fully validated before it
            was renamed into place); ``"full"`` reads and validates all of it.
        min_frames: videos with fewer frames are recorded as failed (too short).
        threads: threads per task (``None``: the executor's, one per reserved CPU on Ray).
        noise_fn, validate_fn: see :func:`process_job` (for tests and custom pipelines).
        on_start: called with (videos to run, videos already done) once the executor is up,
            before the first task.
        on_result: called with each new record as it is written to the journal.

    Returns:
        a :class:`BatchSummary`; the results manifest is ``outdir/results.jsonl`` (one record
        per video) and ``outdir/results.csv``.

    Raises:
        ValueError: ``outdir`` is a file, or another batch is writing to it.
    """
    if verify not in ("quick", "full"):
        raise ValueError(f"verify must be 'quick' or 'full', got {verify!r}")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)
    validate = (validate_fn or _default_validate_fn) if verify == "full" else (
        quick_check_noise_file)
    journal_path = out / JOURNAL_NAME
    # Absolute: tasks run in worker processes whose working directory is not ours.
    partial_dir = Path(os.path.abspath(out / PARTIAL_DIR))
    start = time.perf_counter()
    startup = 0.0
    finished = failed = 0
    with batch_lock(out):
        # Whatever is in the partial folder belongs to a batch that was killed: we hold the lock.
        shutil.rmtree(partial_dir, ignore_errors=True)
        if journal_path.exists():
            compact_journal(journal_path)  # also drops a last line cut short by a kill
        # Records name outputs relative to OUTDIR, so a resume still matches them when the
        # folder is mounted elsewhere (another head node, another machine).
        root = os.path.abspath(out)
        names = {j.output: Path(os.path.relpath(j.output, root)).as_posix() for j in jobs}
        latest = latest_by_output(read_journal(journal_path))
        todo = [j for j in jobs
                if not _already_done(j, latest.get(names[j.output]), validate, retry_failed)]
        if not todo and on_start is not None:
            on_start(0, len(jobs))
        if todo:
            partial_dir.mkdir()
            executor = executor if executor is not None else RayExecutor()
            try:
                with Journal(journal_path) as journal, executor as ex:
                    startup = time.perf_counter() - start
                    if on_start is not None:
                        on_start(len(todo), len(jobs) - len(todo))
                    for job, result in ex.map_unordered(
                            process_job, todo, partial_dir=str(partial_dir),
                            min_frames=min_frames,
                            threads=threads if threads is not None else ex.threads,
                            noise_fn=noise_fn, validate_fn=validate_fn):
                        if isinstance(result, BaseException):
                            result = _record(job, "failed", error=_task_error(result))
                        result["output"] = names[job.output]
                        journal.append(result)
                        if result["status"] == "ok":
                            finished += 1
                        else:
                            failed += 1
                        if on_result is not None:
                            on_result(result)
            finally:
                # Interrupted too: the tasks are over (a cluster of our own is shut down, tasks
                # on a shared one cancelled), so nothing of this batch is left half-written.
                shutil.rmtree(partial_dir, ignore_errors=True)
        records = compact_journal(journal_path, order=list(names.values()))
        mine = set(names.values())
        records = [r for r in records if r["output"] in mine]
        write_summary_csv(out / SUMMARY_NAME, records)
    return BatchSummary(total=len(jobs), finished=finished, skipped=len(jobs) - len(todo),
                        failed=failed, seconds=time.perf_counter() - start, startup=startup,
                        records=records,
                        journal=journal_path, summary_csv=out / SUMMARY_NAME)
