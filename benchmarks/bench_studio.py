"""The studio's preview latency on a 720x480 frame: from an edit to the updated preview.

The motion is ``bench_motion.spec`` (3 dragged layers and a camera zoom, 49 frames at 720x480).
``server`` times :func:`warpnoise.studio.preview.preview` in a worker thread, single-threaded
(what the page's ``/api/preview`` runs: the motion scaled to 192 px on the longer side,
rendered with outlines, 3-channel noise warped along its exact flows, one JPEG strip), after
one warm-up call, median of ``--reps``.
``browser`` (with ``--browser``) is the whole loop in Chromium: an edit in the page (a key moved
5 px), the 120 ms debounce, the request, the strip decoded and drawn (the page's own
``studio.metrics.previewLatency``), median of ``--reps`` edits. The floor is
``torch.randn(16, 480, 720)``, timed in the same process; the ratio column is each over it.
``--processes N`` runs N fresh processes and reports medians over them.

    python benchmarks/bench_studio.py [--processes 3] [--reps 3] [--browser]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from bench_motion import H, W, floor_s, spec
from bench_warp import run_fresh

from warpnoise import motion
from warpnoise.studio.preview import preview, single_threaded

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def first_frame() -> np.ndarray:
    sample = Path(motion.example_path()).with_name("sample.mp4")
    return motion.first_frame(sample, (W, H))


def server_s(reps: int) -> float:
    """In a worker thread and on one thread (:func:`single_threaded`), as the server runs it."""
    from concurrent.futures import ThreadPoolExecutor

    sp, image = spec(49).model_copy(update={"size": (W, H)}), first_frame()

    def timed() -> float:
        t = time.perf_counter()
        with single_threaded():
            preview(sp, image)
        return time.perf_counter() - t

    with ThreadPoolExecutor(1) as pool:
        pool.submit(timed).result()  # warm-up: compiled kernels loaded, caches filled
        return statistics.median(pool.submit(timed).result() for _ in range(reps))


def browser_s(reps: int) -> float:
    import threading

    import uvicorn
    from playwright.sync_api import sync_playwright

    from warpnoise.studio import Session, create_app
    from warpnoise.studio.serve import bind

    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "first.png"
        cv2.imwrite(str(png), cv2.cvtColor(first_frame(), cv2.COLOR_RGB2BGR))
        session = Session(Path(tmp) / "studio")
        sock = bind("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn.Config(create_app(session), log_level="warning",
                                               lifespan="off"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = b.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
                page.wait_for_function("window.studio && window.studio.ready")
                page.set_input_files("#file", str(png))
                page.wait_for_function("studio.picture !== null")
                page.evaluate("m => { remember(); studio.motion = m; syncControls(); changed(); }",
                              json.loads(spec(49).model_copy(update={"size": (W, H)}).to_json()))
                page.wait_for_function("studio.metrics.previewLatency.length >= 1",
                                       timeout=600_000)
                for k in range(reps):
                    page.evaluate("() => { remember(); "
                                  "studio.motion.layers[1].keyframes[0].translate[0] += 5; "
                                  "changed(); }")
                    page.wait_for_function(f"studio.metrics.previewLatency.length >= {k + 2}",
                                           timeout=600_000)
                times = page.evaluate("studio.metrics.previewLatency")[1:]
                b.close()
        finally:
            server.should_exit = True
            sock.close()
            session.close()
    return statistics.median(times) / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--browser", action="store_true")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.json:
        out = {"floor": floor_s(), "server": server_s(args.reps)}
        if args.browser:
            out["browser"] = browser_s(args.reps)
        print(json.dumps(out))
        return
    argv = ["--reps", str(args.reps)] + (["--browser"] if args.browser else [])
    runs = run_fresh(__file__, argv, args.processes)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"studio preview, 49 frames of {W}x{H} (preview 192x128), medians over "
          f"{args.processes} process(es) x {args.reps} edits")
    print(f"{'':24} {'seconds':>9} {'x floor':>9}")
    for k, label in (("floor", "floor randn(16,480,720)"), ("server", "server preview()"),
                     ("browser", "edit -> shown (Chromium)")):
        if k in med:
            print(f"{label:24} {med[k]:9.3f} {med[k] / med['floor']:9.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
