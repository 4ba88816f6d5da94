"""The studio's web server: one static page, a small JSON API, the session's output files.

What it serves, and nothing else: the files of its own ``static`` folder (Starlette's
``StaticFiles``, which refuses paths leading out of it) and the files a generation wrote, looked
up by job id and file name in the job's own list (never a path joined from the request).

Requests whose ``Host`` is not the studio's own address are refused when it listens locally
(DNS rebinding), and the JSON endpoints take JSON only (no cross-site form posts).
Uploads are read into memory up to a size limit, checked to decode as an image (OpenCV) or a
video (its first frame, PyAV) and only then kept, under a fresh name, in the session folder.
Every generation writes into its own folder, so two tabs never share an output; warping runs one
at a time (the compiled kernels' thread pool is process-wide).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import motion as mo
from ..io.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..latent.presets import PRESETS
from ..pipeline import NoiseOptions
from .preview import preview, single_threaded

__all__ = ["DEFAULT_MAX_UPLOAD", "STATIC", "Job", "Session", "create_app", "model_presets"]

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
#: Upload size limit in bytes.
DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024
_ID = re.compile(r"^[0-9a-f]{32}$")

#: Common output sizes (W, H) and frame counts per video preset, first the usual one.
_SIZES = {
    "wan2.1": ([(832, 480), (480, 832), (1280, 720), (720, 1280)], [81, 49, 33, 17]),
    "wan2.2-a14b": ([(1280, 720), (832, 480), (720, 1280), (480, 832)], [81, 49, 33, 17]),
    "wan2.2-ti2v-5b": ([(1280, 704), (704, 1280), (832, 480)], [121, 81, 49, 17]),
    "cogvideox": ([(720, 480)], [49, 33, 17]),
    "cogvideox1.5": ([(1360, 768), (768, 1360), (720, 480)], [81, 49, 17]),
    "hunyuanvideo": ([(1280, 720), (960, 544), (720, 1280), (544, 960)], [129, 61, 33, 17]),
    "ltx-video": ([(768, 512), (704, 480), (1216, 704)], [121, 161, 97, 49, 17]),
}


def model_presets() -> list[dict[str, Any]]:
    """The video models' presets for the page: name, title, channels, size multiple, the frame
    rule ``r k + 1`` and common sizes and frame counts."""
    out = []
    for name, (sizes, frames) in _SIZES.items():
        p = PRESETS[name]
        out.append({"name": name, "title": p.title, "channels": p.channels,
                    "multiple": p.size_multiple, "temporal": p.temporal,
                    "rule": p.frame_rule(), "sizes": sizes, "frames": frames})
    return out


class ClientError(ValueError):
    """A request the page made wrong (a message for the page, HTTP 400 or the given code)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One generation: its folder, where it is, and what it wrote."""

    id: str
    folder: Path
    state: str = "queued"  # queued | running | done | error | cancelled
    stage: str = ""
    done: int = 0
    total: int = 0
    error: str | None = None
    files: list[str] = field(default_factory=list)
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "stage": self.stage, "done": self.done,
                "total": self.total, "error": self.error, "summary": self.summary,
                "files": [{"name": f, "url": f"/files/{self.id}/{f}"} for f in self.files]}


class Session:
    """The server's state: uploaded first frames and generations, all under ``root``.

    ``root`` is a fresh temporary folder unless given; :meth:`close` stops running generations
    (their partial files are removed) and removes the temporary folder, or, for a given folder,
    every job folder that did not finish.
    """

    def __init__(self, root: str | Path | None = None, *,
                 max_upload: int = DEFAULT_MAX_UPLOAD) -> None:
        self.temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="warpnoise-studio-") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_upload = max_upload
        self.images: dict[str, tuple[Path, str]] = {}  # id -> (file, name shown)
        self.jobs: dict[str, Job] = {}
        self.initial: str | None = None
        self.warp_lock = threading.Lock()
        self.closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._frames: OrderedDict[tuple[str, tuple[int, int] | None], np.ndarray] = OrderedDict()
        self._frames_lock = threading.Lock()

    # -- first frames -------------------------------------------------------------------------
    def add_image(self, path: Path, name: str) -> dict[str, Any]:
        """Register a checked image or video; its first frame's size and an id."""
        img = self.frame(path, None)
        key = uuid.uuid4().hex
        self.images[key] = (path, name)
        return {"id": key, "name": name, "width": int(img.shape[1]),
                "height": int(img.shape[0])}

    def image_path(self, key: str) -> Path:
        if not isinstance(key, str) or key not in self.images:
            raise ClientError("unknown image (load an image or a video first)", 404)
        return self.images[key][0]

    def frame(self, path: Path, size: tuple[int, int] | None) -> np.ndarray:
        """The first frame of ``path`` at ``size`` exactly as ``warpnoise motion`` reads it
        (:func:`warpnoise.motion.first_frame`), cached."""
        with self._frames_lock:
            got = self._frames.get((str(path), size))
        if got is not None:
            return got
        img = mo.first_frame(path, size)
        with self._frames_lock:
            self._frames[(str(path), size)] = img
            while len(self._frames) > 8:
                self._frames.popitem(last=False)
        return img

    # -- generations --------------------------------------------------------------------------
    def start_job(self, image: Path, spec: mo.Motion, options: NoiseOptions) -> Job:
        """Check everything, then generate in a thread into a fresh job folder."""
        if self.closing.is_set():
            raise ClientError("the studio is shutting down", 503)
        plan = options.plan()
        sc, first = mo.load_scene(spec, image)
        from ..pipeline import check_frame_shape

        check_frame_shape(plan, sc.frames, sc.height, sc.width)
        key = uuid.uuid4().hex
        job = Job(key, self.root / "jobs" / key)
        self.jobs[key] = job
        t = threading.Thread(target=self._run, args=(job, sc, first, options), daemon=True,
                             name=f"studio-job-{key[:8]}")
        self._threads.append(t)
        t.start()
        return job

    def _run(self, job: Job, sc: mo.Scene, first: np.ndarray, options: NoiseOptions) -> None:
        def progress(stage: str, done: int, total: int) -> None:
            if self.closing.is_set():
                raise KeyboardInterrupt
            job.stage, job.done, job.total = stage, done, total

        try:
            with self.warp_lock:
                if self.closing.is_set():
                    raise KeyboardInterrupt
                job.state = "running"
                res = mo.write(first, sc, job.folder, options, progress=progress)
            (job.folder / "motion.json").write_text(_pretty(sc.spec), encoding="utf-8")
            job.files = [res.noise.output.name, res.animation.name,
                         *(p.name for p in res.masks), "motion.json"]
            what = "noise" if options.latent is None else f"{options.latent} latents="
            job.summary = f"{what} {tuple(res.noise.shape)}, seed {options.seed}"
            job.state = "done"
        except KeyboardInterrupt:
            job.state = "cancelled"
            shutil.rmtree(job.folder, ignore_errors=True)
        except Exception as e:  # shown in the page; the server keeps serving
            job.state, job.error = "error", " ".join(str(e).split()) or type(e).__name__
            shutil.rmtree(job.folder, ignore_errors=True)

    def job(self, key: str) -> Job:
        if not _ID.match(key) or key not in self.jobs:
            raise ClientError("no such generation", 404)
        return self.jobs[key]

    def close(self, timeout: float = 30.0) -> None:
        """Stop generations (they stop at their next frame) and remove what is unfinished."""
        self.closing.set()
        for t in self._threads:
            t.join(timeout)
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for job in self.jobs.values():
            if job.state != "done":
                shutil.rmtree(job.folder, ignore_errors=True)
        shutil.rmtree(self.root / "uploads", ignore_errors=True)


def _pretty(spec: mo.Motion) -> str:
    return json.dumps(json.loads(spec.to_json()), indent=2) + "\n"


def _motion(body: dict[str, Any]) -> mo.Motion:
    spec = mo.parse(body.get("motion"), "motion")
    if spec.size is None:
        raise ClientError("motion: size is missing (the page sends the output size)")
    if any(layer.mask is not None for layer in spec.layers):
        raise ClientError("motion: mask layers cannot be edited in the studio (use polygons)")
    return spec


async def _json(request: Request) -> dict[str, Any]:
    # Only JSON: a form on another site cannot post one without the browser asking first (CORS).
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ClientError("send JSON (Content-Type: application/json)", 415)
    try:
        body = await request.json()
    except ValueError:
        raise ClientError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise ClientError("the request is not a JSON object")
    return body


def _handler(fn: Callable[[Session, Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            out = await fn(request.app.state.session, request)
        except ClientError as e:
            return JSONResponse({"error": str(e)}, e.status)
        except ValueError as e:  # bad motion, options, frame rules: a message for the page
            return JSONResponse({"error": " ".join(str(e).split())}, 400)
        except Exception as e:  # a bug: the page says so and the server keeps serving
            logger.exception("studio request %s failed", request.url.path)
            return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, 500)
        return out if isinstance(out, Response) else JSONResponse(out)

    return endpoint


async def _config(session: Session, request: Request) -> dict[str, Any]:
    initial = None
    if session.initial is not None:
        path, name = session.images[session.initial]
        img = session.frame(path, None)
        initial = {"id": session.initial, "name": name, "width": int(img.shape[1]),
                   "height": int(img.shape[0])}
    return {"presets": model_presets(), "initial": initial, "max_upload": session.max_upload}


def _check_upload(data: bytes, name: str, folder: Path) -> Path:
    """Keep ``data`` as ``folder/<fresh id><suffix>`` if it decodes as an image or a video."""
    import cv2

    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
        raise ClientError(f"{name!r} is not an image or a video (expected one of "
                          f"{', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})", 415)
    if not data:
        raise ClientError(f"{name!r} is empty")
    if suffix in IMAGE_EXTENSIONS and cv2.imdecode(np.frombuffer(data, np.uint8),
                                                   cv2.IMREAD_COLOR) is None:
        raise ClientError(f"{name!r} is not a readable image (broken or not really "
                          f"{suffix[1:]})", 415)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(data)
    try:
        mo.first_frame(path)
    except Exception:
        path.unlink(missing_ok=True)
        kind = "image" if suffix in IMAGE_EXTENSIONS else "video"
        raise ClientError(f"{name!r} is not a readable {kind} (broken, or no frame could be "
                          "decoded)", 415) from None
    return path


async def _upload(session: Session, request: Request) -> dict[str, Any]:
    from urllib.parse import unquote

    name = unquote(request.headers.get("x-filename", "upload"))
    name = Path(name.replace("\\", "/")).name or "upload"
    limit = session.max_upload
    mb = f"{limit / 2**20:.0f} MB"
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ClientError(f"{name!r} is larger than the upload limit of {mb}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(f"{name!r} is larger than the upload limit of {mb}", 413)
        chunks.append(chunk)
    path = await run_in_threadpool(_check_upload, b"".join(chunks), name,
                                   session.root / "uploads")
    return await run_in_threadpool(session.add_image, path, name)


async def _sample(session: Session, request: Request) -> dict[str, Any]:
    path = Path(mo.example_path()).with_name("sample.mp4")
    return await run_in_threadpool(session.add_image, path, "sample.mp4")


def _size_param(request: Request) -> tuple[int, int] | None:
    try:
        w, h = int(request.query_params["w"]), int(request.query_params["h"])
    except (KeyError, ValueError):
        return None
    if not (1 <= w <= 8192 and 1 <= h <= 8192):
        raise ClientError(f"size {w}x{h} is out of range (1 to 8192)")
    return w, h


async def _image(session: Session, request: Request) -> Response:
    import cv2

    path = session.image_path(request.path_params["key"])
    img = await run_in_threadpool(session.frame, path, _size_param(request))
    _, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return Response(png.tobytes(), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


async def _preview(session: Session, request: Request) -> dict[str, Any]:
    body = await _json(request)
    path = session.image_path(body.get("image"))
    spec = _motion(body)
    seed = _seed(body)

    def work() -> dict[str, Any]:
        img = session.frame(path, tuple(spec.size))
        with session.warp_lock, single_threaded():
            return preview(spec, img, seed=seed).to_json()

    return await run_in_threadpool(work)


def _seed(body: dict[str, Any]) -> int:
    seed = body.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ClientError(f"seed must be an integer from 0 to 2**64-1, got {seed!r}")
    return seed


async def _validate(session: Session, request: Request) -> dict[str, Any]:
    body = await _json(request)
    spec = mo.parse(body.get("motion"), "motion")
    return {"json": _pretty(spec), "motion": json.loads(spec.to_json())}


async def _generate(session: Session, request: Request) -> dict[str, Any]:
    body = await _json(request)
    path = session.image_path(body.get("image"))
    spec = _motion(body)
    latent = body.get("preset") or None
    if latent is not None and latent not in PRESETS:
        raise ClientError(f"unknown preset {latent!r}")
    degradation = body.get("degradation", 0.0)
    if not isinstance(degradation, (int, float)) or not 0.0 <= degradation <= 1.0:
        raise ClientError(f"degradation must be a number in [0, 1], got {degradation!r}")
    options = NoiseOptions(seed=_seed(body), latent=latent, degradation=float(degradation))
    job = await run_in_threadpool(session.start_job, path, spec, options)
    return job.to_json()


async def _job(session: Session, request: Request) -> dict[str, Any]:
    return session.job(request.path_params["key"]).to_json()


async def _file(session: Session, request: Request) -> Response:
    job = session.job(request.path_params["key"])
    name = request.path_params["name"]
    if job.state != "done" or name not in job.files:
        raise ClientError("no such file", 404)
    return FileResponse(job.folder / name, filename=name)


async def _index(session: Session, request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


def create_app(session: Session, allowed_hosts: list[str] | None = None) -> Starlette:
    """The studio's ASGI app for ``session``. ``allowed_hosts``: the ``Host`` headers accepted
    (a page elsewhere that points its own name at 127.0.0.1 then cannot read the studio); None
    accepts any."""
    routes = [
        Route("/", _handler(_index)),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/api/config", _handler(_config)),
        Route("/api/upload", _handler(_upload), methods=["POST"]),
        Route("/api/sample", _handler(_sample), methods=["POST"]),
        Route("/api/image/{key}", _handler(_image)),
        Route("/api/preview", _handler(_preview), methods=["POST"]),
        Route("/api/motion", _handler(_validate), methods=["POST"]),
        Route("/api/generate", _handler(_generate), methods=["POST"]),
        Route("/api/jobs/{key}", _handler(_job)),
        Route("/files/{key}/{name}", _handler(_file)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [] if allowed_hosts is None else [
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.session = session
    return app
