"""The studio's server: it serves nothing outside its static folder and its jobs' files, refuses
oversized and broken uploads with a message and keeps serving, and a generation from the page
is bit-identical to ``warpnoise motion`` on the saved motion file, also with two at once."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.io._clips import texture
from tests.studio._live import running
from warpnoise.cli import load_commands
from warpnoise.io.noisefile import load_latents
from warpnoise.studio import Session, create_app
from warpnoise.studio.server import STATIC

MOTION = {"size": [64, 48], "frames": 5, "fps": 8,
          "camera": {"keyframes": [{"frame": 4, "pan": [3, 0], "zoom": 1.05}]},
          "layers": [{"name": "box", "polygon": [[10, 10], [30, 10], [30, 30], [10, 30]],
                      "keyframes": [{"frame": 4, "translate": [8, 2], "rotation": 10}]}]}


@pytest.fixture
def session(tmp_path: Path) -> Session:
    s = Session(tmp_path / "studio", max_upload=200_000)
    yield s
    s.close()


@pytest.fixture
def client(session: Session) -> TestClient:
    return TestClient(create_app(session))


@pytest.fixture
def png(tmp_path: Path) -> Path:
    p = tmp_path / "first.png"
    cv2.imwrite(str(p), texture(48, 64, seed=5))
    return p


def upload(client: TestClient, data: bytes, name: str) -> Any:
    return client.post("/api/upload", content=data, headers={"X-Filename": name})


def wait(client: TestClient, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = client.get(f"/api/jobs/{job}").json()
        if state["state"] not in ("queued", "running"):
            return state
        time.sleep(0.1)
    raise AssertionError("the generation did not finish")


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client normalises ``..`` or ``%2e``)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_page_and_its_static_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "studio.js" in page.text
    for name in ("studio.js", "studio.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes()
    config = client.get("/api/config").json()
    names = {p["name"] for p in config["presets"]}
    assert {"wan2.1", "wan2.2-a14b", "cogvideox", "hunyuanvideo", "ltx-video"} <= names


@pytest.mark.parametrize("path", [
    "/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
    "/static/%2e%2e%2fserver.py", "/static/..%5cserver.py", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/..%2f..%2fetc/passwd",
    "/files/../../etc/passwd", "/files/%2e%2e/%2e%2e/etc/passwd",
    "/api/image/..%2f..%2fetc%2fpasswd", "/static/%252e%252e/server.py",
])
def test_no_file_outside_the_static_folder_is_served(session: Session, path: str) -> None:
    secret = session.root / "uploads" / "secret.png"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"SECRET")
    with running(session) as url:
        status, body = raw_get(url, path)
        assert status in (400, 404), (path, status)
        assert b"root:" not in body and b"SECRET" not in body and b"import" not in body
        # the session's own files are not reachable by any path either
        for p in (f"/files/{'0' * 32}/..%2fuploads%2fsecret.png", "/files/uploads/secret.png",
                  f"/static/{secret}", f"/static/..%2f..%2f{secret.parent.name}/secret.png"):
            status, body = raw_get(url, p)
            assert status in (400, 404) and b"SECRET" not in body, p


def test_oversized_upload_is_refused_and_the_server_goes_on(client: TestClient,
                                                          png: Path) -> None:
    r = upload(client, b"\0" * 300_000, "big.png")
    assert r.status_code == 413 and "upload limit" in r.json()["error"]
    assert upload(client, png.read_bytes(), "first.png").status_code == 200


@pytest.mark.parametrize("data, name, words", [
    (b"not an image at all", "photo.png", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "cut.png", "not a readable image"),
    (b"\0\0\0\x18ftypmp42" + b"\1" * 500, "clip.mp4", "not a readable video"),
    (b"hello", "notes.txt", "not an image or a video"),
    (b"", "empty.jpg", "is empty"),
])
def test_broken_upload_gets_a_message_and_keeps_nothing(client: TestClient, session: Session,
                                                        png: Path, data: bytes, name: str,
                                                        words: str) -> None:
    r = upload(client, data, name)
    assert r.status_code in (400, 415) and words in r.json()["error"]
    assert name in r.json()["error"]
    assert not list((session.root / "uploads").glob("*"))
    ok = upload(client, png.read_bytes(), "first.png").json()
    assert (ok["width"], ok["height"]) == (64, 48)


def test_bad_motion_is_a_message_naming_the_field(client: TestClient, png: Path) -> None:
    image = upload(client, png.read_bytes(), "first.png").json()["id"]
    bad = json.loads(json.dumps(MOTION))
    bad["layers"][0]["keyframes"][0]["scale"] = -1
    r = client.post("/api/preview", json={"image": image, "motion": bad})
    assert r.status_code == 400 and "layers[0].keyframes[0].scale" in r.json()["error"]
    r = client.post("/api/generate", json={"image": image, "motion": MOTION, "preset": "wan2.1",
                                          "degradation": 2})
    assert r.status_code == 400 and "degradation" in r.json()["error"]
    r = client.post("/api/generate", json={"image": "nope", "motion": MOTION})
    assert r.status_code == 404
    six = dict(MOTION, frames=6)
    r = client.post("/api/generate", json={"image": image, "motion": six, "preset": "wan2.1"})
    assert r.status_code == 400 and "4k+1" in r.json()["error"]


def test_preview_shows_every_frame_and_the_layer_paths(client: TestClient, png: Path) -> None:
    image = upload(client, png.read_bytes(), "first.png").json()["id"]
    p = client.post("/api/preview", json={"image": image, "motion": MOTION}).json()
    assert (p["width"], p["height"], p["frames"]) == (64, 48, 5)
    jpeg = base64.b64decode(p["strip"].split(",", 1)[1])
    strip = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (5 * 48, 2 * 64, 3)
    anchor = p["anchors"][0]
    assert anchor == pytest.approx([20, 20], abs=1e-3)  # the square's centroid
    assert p["paths"][0][0] == pytest.approx(anchor)
    assert p["paths"][0][4] == pytest.approx([28, 22])  # anchor + the last key's translate
    assert np.allclose(p["outlines"][0][0], MOTION["layers"][0]["polygon"])


def test_saved_motion_fed_to_the_cli_gives_bit_identical_noise(
        client: TestClient, png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two generations at once (two tabs), then the CLI on the saved file: the same bits."""
    image = upload(client, png.read_bytes(), "first.png").json()["id"]
    saved = client.post("/api/motion", json={"motion": MOTION}).json()["json"]
    (tmp_path / "motion.json").write_text(saved)
    jobs = {seed: client.post("/api/generate", json={
        "image": image, "motion": json.loads(saved), "preset": "wan2.1", "degradation": 0.5,
        "seed": seed}).json()["id"] for seed in (3, 4)}
    app = load_commands()
    monkeypatch.chdir(tmp_path)
    for seed, job in jobs.items():
        state = wait(client, job)
        assert state["state"] == "done", state
        names = [f["name"] for f in state["files"]]
        assert names[:3] == ["noise.safetensors", "animation.mp4", "mask_0_box.mp4"]
        (tmp_path / f"studio{seed}.safetensors").write_bytes(
            client.get(f"/files/{job}/noise.safetensors").content)
        r = CliRunner().invoke(app, ["motion", "first.png", "motion.json", "--latent", "wan2.1",
                                     "--degradation", "0.5", "--seed", str(seed), "-o",
                                     f"cli{seed}"])
        assert r.exit_code == 0, r.stderr
        ours = load_latents(tmp_path / f"studio{seed}.safetensors")[0]
        theirs = load_latents(tmp_path / f"cli{seed}" / "noise.safetensors")[0]
        assert ours.shape == (1, 16, 2, 6, 8) and torch.equal(ours, theirs)
    a, b = (load_latents(tmp_path / f"studio{s}.safetensors")[0] for s in (3, 4))
    assert not torch.equal(a, b)


def test_job_files_are_only_those_the_job_wrote(client: TestClient, png: Path) -> None:
    image = upload(client, png.read_bytes(), "first.png").json()["id"]
    job = client.post("/api/generate", json={"image": image, "motion": MOTION}).json()["id"]
    assert wait(client, job)["state"] == "done"
    assert client.get(f"/files/{job}/motion.json").json()["frames"] == 5
    for name in ("..", "x.safetensors", ".noise.safetensors.part"):
        assert client.get(f"/files/{job}/{name}").status_code == 404
    assert client.get(f"/files/{'f' * 32}/noise.safetensors").status_code == 404
    assert client.get("/files/NOTANID/noise.safetensors").status_code == 404


def test_foreign_host_names_and_non_json_posts_are_refused(session: Session) -> None:
    """A page elsewhere that points its own name at 127.0.0.1 cannot use the studio."""
    local = TestClient(create_app(session, ["127.0.0.1", "localhost"]),
                       base_url="http://127.0.0.1:8000")
    assert local.get("/api/config").status_code == 200
    evil = TestClient(create_app(session, ["127.0.0.1", "localhost"]),
                      base_url="http://rebound.example:8000")
    assert evil.get("/api/config").status_code == 400
    r = local.post("/api/motion", content=json.dumps({"motion": MOTION}),
                   headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
