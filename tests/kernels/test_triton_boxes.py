"""The Triton kernels of ``persistent`` (:mod:`warpnoise.kernels.triton_boxes`).

Without a GPU they run in Triton's interpreter on CPU tensors, at small sizes (48^2 for the
comparisons, 4 x 96^2 for the statistics, with bounds twice as wide as at 192^2); where a CUDA
device exists the tests marked ``cuda`` run the same checks compiled, at full size. The kernels
follow the numba kernel phase for phase: the same roles, maps, links, boxes, first cells and
claims to the bit, the same cover to the fixed point's rounding, and the same noise to float32
rounding (every draw is the same counter-based value). Every frame is exact, and the same seed
gives the same bits.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import warpnoise
from warpnoise.flow import pixel_grid
from warpnoise.kernels import boxes as nbk
from warpnoise.kernels import field_size
from warpnoise.methods import persistent
from warpnoise.methods.persistent.triton_backend import TritonBackend

from ..methods import _flows as F
from ..methods._checks import exactness_failures

pytest.importorskip("triton", reason="triton is not installed (it has no wheel for this platform)")
from warpnoise.kernels import triton_boxes as T

CUDA = torch.cuda.is_available()
DEVICES = [
    pytest.param("cpu", id="interpreted"),
    pytest.param("cuda", id="cuda", marks=[
        pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA device")]),
]
K, C = 2, 4


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def _triton(device: torch.device) -> object:
    """``backend=`` for the Triton kernels on ``device``: by name on CUDA, an instance on CPU
    tensors (interpreted; the name is refused there)."""
    return "triton" if device.type == "cuda" else TritonBackend()


def _small(device: torch.device) -> bool:
    return device.type == "cpu"


def _sources(h: int, w: int, k: int = K, c: int = C) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(c, h, w, generator=g), torch.randn(h, w, field_size(k), c, generator=g)


def _numba_phases(flow: torch.Tensor, anchor: torch.Tensor, field: torch.Tensor, k: int
                  ) -> tuple[nbk.Workspace, np.ndarray, np.ndarray]:
    """One step of the CPU kernel from the anchor, anchored pass only: its workspace (roles,
    map, boxes, links, cover, claims), noise and traced pixels."""
    c, h, w = anchor.shape
    ws = nbk.Workspace.empty(c, h, w)
    ws.reset()
    dummy = np.zeros((1, 1), np.float32)
    nbk.advance(ws.maps[0], ws.traced[0], ws.links, flow[0].numpy(), flow[1].numpy(), dummy,
                dummy, False, ws.maps[1], ws.src, ws.role)
    out = np.empty((c, h, w), np.float32)
    traced = np.empty((h, w), np.bool_)
    nbk.integrate(ws, ws.maps[1, 0], ws.maps[1, 1], nbk.ANCHORED, anchor.numpy(), field.numpy(), k,
                  None, np.uint64(7), 0, out, ws.keep[1], traced, ws.links)
    return ws, out, traced


@pytest.mark.parametrize("forward", [False, True])
def test_advance_matches_the_cpu_kernel_bit_for_bit(device: torch.device, forward: bool) -> None:
    """Same roles (forward-backward test per corner, anchored before loose), the same link-aware
    composition of the map and the same source positions, to the bit, on a swirl over a map
    with random links and holes."""
    h, w = (48, 40) if _small(device) else (192, 160)
    b = F.swirl(h, w, 20.0, h / 4)
    prev = pixel_grid(h, w, dtype=torch.float64) + 0.3 * F.rotation(h, w, 5.0).double()
    traced = torch.rand(h, w, generator=torch.Generator().manual_seed(1)) > 0.2
    links = torch.randint(0, 4, (h, w), generator=torch.Generator().manual_seed(2),
                          dtype=torch.uint8)
    f = -b if forward else None
    new_map, src = np.empty((2, h, w)), np.empty((2, h, w))
    role = np.empty((h, w), np.uint8)
    dummy = np.zeros((1, 1), np.float32)
    n_loose = nbk.advance(prev.numpy(), traced.numpy(), links.numpy(), b[0].numpy(),
                          b[1].numpy(), (-b[0]).numpy() if forward else dummy,
                          (-b[1]).numpy() if forward else dummy, forward, new_map, src, role)
    ws = T.Workspace.empty(1, h, w, device)
    ws.maps[0].copy_(prev)
    ws.traced[0].copy_(traced)
    ws.links.copy_(links)
    T.advance(ws, b.to(device), None if f is None else f.to(device))
    assert np.array_equal(ws.role.cpu().numpy(), role)
    assert 0 < (role == T.ANCHORED).mean() < 1 and (role == T.LOOSE).any()
    anchored, loose = role == T.ANCHORED, role == T.LOOSE
    assert np.array_equal(ws.maps[1].cpu().numpy()[:, anchored], new_map[:, anchored])
    assert np.array_equal(ws.src.cpu().numpy()[:, loose], src[:, loose])
    assert int(ws.n_loose) == n_loose


@pytest.mark.parametrize(("motion", "k", "c"), [
    ("translation", 2, 4), ("rotation", 2, 4), ("zoom", 2, 4),
    ("rotation", 6, 3),  # 64 values a cell: the claims word's sign bit is a corner's
    ("zoom", 1, 1),
    ("occlusion", 2, 4),  # no forward flow: covered background and layer claim the same values
])
@pytest.mark.slow
def test_boxes_links_claims_and_pieces_match_the_cpu_kernel(device: torch.device, motion: str,
                                                            k: int, c: int) -> None:
    """Same boxes (float32 edges, to the bit), links, first cells, cover and claims, for any
    upsample and channel count. A quarter-pixel translation and a 0.9 zoom draw nothing fresh,
    and the noise the same to float32 rounding: fresh draws (slivers between centres,
    remainders, pixels without a pre-image) are the same counter-based values."""
    h = w = 48 if _small(device) else 192
    flow = {"translation": F.translation(h, w, 0.25, 0.5), "rotation": F.rotation(h, w, 7.0),
            "zoom": F.zoom(h, w, 0.9),
            "occlusion": F.layered(h, w, 1, size=h // 3, dx=2.6, dy=0.3, top=h // 3, left=4)[0]
            }[motion]
    anchor, field = _sources(h, w, k, c)
    ref, ref_out, ref_traced = _numba_phases(flow, anchor, field, k)
    ws = T.Workspace.empty(c, h, w, device)
    ws.reset()
    T.advance(ws, flow.to(device), None)
    out = torch.empty(c, h, w, device=device)
    traced = torch.empty(h, w, dtype=torch.bool, device=device)
    T.integrate(ws, ws.maps[1], T.ANCHORED, anchor.to(device), field.to(device), k, None,
                7, out, ws.keep[1], traced)
    mine = ref.role == nbk.ANCHORED
    assert np.array_equal(ws.role.cpu().numpy(), ref.role)
    assert np.array_equal(ws.maps[1].cpu().numpy()[:, mine], ref.maps[1][:, mine])
    assert np.array_equal(ws.links.cpu().numpy(), ref.links)
    edges = ws.edges.cpu().numpy().transpose(1, 2, 0)
    assert np.array_equal(edges[mine], ref.edges[mine])
    cell0 = ws.cell0.cpu().numpy().transpose(1, 2, 0)
    has = ref.cell0[..., 0] >= 0
    assert np.array_equal(cell0[..., 0] >= 0, has) and np.array_equal(cell0[has], ref.cell0[has])
    cells = ws.cells.cpu().numpy().reshape(h, w, -1)
    used = ref.used()  # the CPU kernel leaves cells no piece reaches as they were
    cover = np.where(used, ref.cover, 0.0)
    claims = np.where(used, ref.claims, np.uint64(0))
    assert np.abs(cells[..., 0] / T.FIX - cover).max() < 1e-9  # fixed point, 2^-33 a piece
    for q in range(2):  # claimed, conflict
        assert np.array_equal(cells[..., 1 + q], claims[q].view(np.int64)), q
    assert (claims[0] != 0).mean() > 0.9
    assert (claims[1] != 0).any() == (motion == "occlusion")
    assert np.array_equal(traced.cpu().numpy(), ref_traced)
    assert np.abs(out.cpu().numpy() - ref_out).max() < 1e-5


@pytest.mark.slow
def test_steps_match_the_cpu_kernel(device: torch.device) -> None:
    """A layer moving by whole pixels over a static background, with forward flows: anchored,
    loose and fresh pixels are the same on both paths, every value is the same to float32
    rounding, and loose pixels carry their noise on."""
    h = w = 48 if _small(device) else 192
    s = h // 3
    paths = []
    for on_device in (False, True):
        dev = device if on_device else torch.device("cpu")
        warper = warpnoise.NoiseWarper(C, h, w, seed=3, device=dev,
                                       backend=_triton(device) if on_device else "numba")
        frames, traced = [], []
        for t in range(1, 4):
            b, f, _ = F.layered(h, w, t, size=s, dx=3.0, top=s, left=4)
            frames.append(warper.step(b.to(dev), f.to(dev)).cpu())
            traced.append(warper._state.traced.cpu().clone())
        paths.append((torch.stack(frames), torch.stack(traced)))
    (ref, ref_traced), (got, got_traced) = paths
    assert torch.equal(ref_traced, got_traced) and not ref_traced.all()
    assert (ref - got).abs().max() < 1e-5
    # Background uncovered at frame 1 and still uncovered at frame 3: loose, carried (x - Y + Y).
    rows, cols = slice(s + 1, 2 * s - 1), slice(4, 7)
    for frames in (ref, got):
        assert torch.allclose(frames[2][:, rows, cols], frames[0][:, rows, cols], atol=1e-5)


@pytest.mark.slow
def test_same_seed_gives_same_bits(device: torch.device) -> None:
    """Fresh draws (disocclusions, loose pass, slivers) included: integer atomics only."""
    h = w = 48 if _small(device) else 192
    s = h // 3

    def run(seed: int) -> torch.Tensor:
        warper = warpnoise.NoiseWarper(C, h, w, seed=seed, device=device,
                                       backend=_triton(device))
        out = []
        for t in range(1, 3):  # frame 2 has a loose pass (pixels disoccluded at frame 1)
            b, f, _ = F.layered(h, w, t, size=s, dx=2.6, dy=0.7, top=s, left=4)
            out.append(warper.step(b.to(device) + 0.1 * F.rotation(h, w, 3.0).to(device),
                                   f.to(device)))
        return torch.stack(out)

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


MOTIONS = {
    "translation": lambda n: F.translation(n, n, 0.37, 0.21),
    "rotation": lambda n: F.rotation(n, n, 2.0),
    "zoom_in": lambda n: F.zoom(n, n, 1.03),
    "zoom_out": lambda n: F.zoom(n, n, 1 / 1.03),
}


@pytest.mark.parametrize("motion", sorted(MOTIONS))
@pytest.mark.slow
def test_every_frame_is_iid_standard_normal(device: torch.device, motion: str) -> None:
    n, frames, scale = (96, 2, 2.0) if _small(device) else (192, 8, 1.0)
    warper = warpnoise.NoiseWarper(C, n, n, seed=1, device=device, backend=_triton(device))
    flow = MOTIONS[motion](n).to(device)
    for t in range(1, frames + 1):
        noise = warper.step(flow).cpu()
        assert noise.shape == (C, n, n) and noise.dtype == torch.float32
        assert exactness_failures(noise, scale) == [], f"{motion} frame {t}"


def _lag1(frames: list[torch.Tensor]) -> list[float]:
    """Correlation of each frame with the one before, over all values."""
    return [float(torch.corrcoef(torch.stack([b.flatten(), a.flatten()]))[0, 1])
            for a, b in itertools.pairwise(frames)]


@pytest.mark.slow
def test_noise_is_carried_as_on_the_cpu_kernel(device: torch.device) -> None:
    """Temporal coherence: under a (0.37, 0.21) px/frame translation consecutive frames
    correlate as much as the CPU kernel's (0.48, 0.42, 0.57 ... at upsample 2, ideal 0.498;
    the value depends on how the boxes fall on the sub-pixels, so it is compared frame by
    frame), far above fresh noise (0 +- 0.005)."""
    n, frames = (96, 3) if _small(device) else (192, 8)
    flow = F.translation(n, n, 0.37, 0.21)
    paths = []
    for dev in (torch.device("cpu"), device):
        warper = warpnoise.NoiseWarper(C, n, n, seed=4, device=dev,
                                       backend=_triton(device) if dev == device else "numba")
        paths.append(_lag1([warper.noise.cpu()]
                           + [warper.step(flow.to(dev)).cpu() for _ in range(frames)]))
    ref, got = paths
    assert min(ref) > 0.25
    assert max(abs(a - b) for a, b in zip(ref, got, strict=True)) < 0.01, (ref, got)


@pytest.mark.slow
def test_layered_scene_keeps_layers_apart(device: torch.device) -> None:
    """A square moving 3 px/frame over a static background, with forward flows: every frame is
    exact, the layer carries its noise along, and the uncovered background is new noise."""
    n, frames, scale = (96, 4, 2.0) if _small(device) else (192, 4, 1.0)
    size, dx, top, left = n // 3, 3, n // 3, n // 5
    warper = warpnoise.NoiseWarper(C, n, n, seed=2, device=device, backend=_triton(device))
    prev = warper.noise.cpu()
    rows = slice(top + 4, top + size - 4)
    uncovered, partners = [], []
    for t in range(1, frames + 1):
        b, f, _ = F.layered(n, n, t, size=size, dx=float(dx), top=top, left=left)
        noise = warper.step(b.to(device), f.to(device)).cpu()
        assert exactness_failures(noise, scale) == [], f"frame {t}"
        x0 = left + t * dx
        inner = noise[:, rows, x0 + 4:x0 + size - 4]
        assert torch.allclose(inner, prev[:, rows, x0 + 4 - dx:x0 + size - 4 - dx], atol=1e-4)
        uncovered.append(noise[:, rows, x0 - dx:x0].flatten())
        partners.append(noise[:, rows, x0:x0 + dx].flatten())
        prev = noise
    u = torch.cat(uncovered)
    c = torch.corrcoef(torch.stack([u, torch.cat(partners)]))[0, 1]
    assert abs(float(c)) < 4.0 / u.numel() ** 0.5  # duplicated noise would give about 1


@pytest.mark.slow
def test_state_stays_on_the_device_in_reused_buffers(device: torch.device) -> None:
    """Every step (re-anchors included) writes the same workspace; a returned frame is new
    memory that later steps leave alone."""
    h = w = 32 if _small(device) else 192
    warper = warpnoise.NoiseWarper(C, h, w, seed=0, device=device, anchor_every=2,
                                   backend=_triton(device))
    ws = warper._state.workspace
    assert isinstance(ws, T.Workspace) and ws.cells.device.type == device.type
    ptrs = {k: v.data_ptr() for k, v in vars(ws).items() if isinstance(v, torch.Tensor)}
    flow = F.rotation(h, w, 1.5).to(device)
    first = warper.step(flow)
    kept = first.clone()
    for _ in range(3):
        warper.step(flow, -flow)
        assert warper._state.workspace is ws and warper._state.field.device.type == device.type
    assert ptrs == {k: v.data_ptr() for k, v in vars(ws).items() if isinstance(v, torch.Tensor)}
    assert torch.equal(first, kept)


def test_dispatch_picks_triton_on_cuda_only() -> None:
    assert persistent.backend_for(torch.device("cuda"))[0] == "triton"
    assert persistent.backend_for(torch.device("cpu"))[0] != "triton"
    assert persistent.backend_for(torch.device("mps"))[0] == "torch"
    assert persistent.backend_for(torch.device("cuda"), "torch")[0] == "torch"


@pytest.mark.slow
def test_public_entry_points_run_the_triton_step(device: torch.device, tmp_path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``NoiseWarper``, ``warp_noise``, ``WarpedNoiseSampler`` and (on CUDA) ``warpnoise noise
    --device cuda`` all step through the Triton kernels."""
    from warpnoise.diffusion.noise import WarpedNoiseSampler

    calls = []
    step = T.step
    monkeypatch.setattr(T, "step", lambda *a: calls.append(1) or step(*a))
    h = w = 16 if _small(device) else 64
    flows = F.translation(h, w, 0.3, 0.2)[None].to(device)  # one step: two frames
    tri = _triton(device)
    warper = warpnoise.NoiseWarper(C, h, w, seed=0, device=device, backend=tri)
    assert isinstance(warper._state.workspace, T.Workspace) and warper.backend == "triton"
    warper.step(flows[0])
    noise = warpnoise.warp_noise(flows, C, seed=0, backend=tri)
    assert noise.device.type == device.type and noise.shape == (2, C, h, w)
    sampler = WarpedNoiseSampler(flows, C, seed=0, backend=tri)
    assert sampler().shape == (2, C, h, w)
    assert len(calls) == 3
    if device.type == "cuda":
        from typer.testing import CliRunner

        from tests.io._clips import moving_frames, write_png_folder
        from warpnoise.cli import load_commands

        clip = write_png_folder(tmp_path / "clip", moving_frames(3, 48, 64, dx=1))
        out = tmp_path / "n.safetensors"
        r = CliRunner().invoke(load_commands(), ["noise", str(clip), "-o", str(out), "--device",
                                                 "cuda", "-q"])
        assert r.exit_code == 0, r.stdout
        assert len(calls) == 5


@pytest.mark.slow
def test_every_kernel_compiles_for_cuda_without_fused_float64_geometry() -> None:
    """The interpreter does not compile: here Triton's compiler builds each kernel for an H100,
    for the anchored and the loose pass and the largest upsample (and the field's fill), and the
    geometry kernels (whose float64 must round as the CPU kernel's) contain no fused
    multiply-add. It runs in a child process without ``TRITON_INTERPRET``, under which
    ``@triton.jit`` gives interpreted functions that cannot be compiled."""
    pytest.importorskip("triton.backends.nvidia.compiler", reason="no CUDA backend in triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    run = subprocess.run([sys.executable, "-m", "tests.kernels._cuda_ptx"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(report) == 10
    for label, ptx in report.items():
        assert ptx["entry"], label
        if ptx["exact"]:
            assert ptx["f64"] and not ptx["fused_f64"], label
