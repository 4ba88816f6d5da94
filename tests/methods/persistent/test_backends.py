"""The backends of ``persistent`` (numba, torch, Triton) give the same noise from the same seed:
the same geometry phase by phase (roles, maps, links, boxes, first cells, claims to the bit) and
the same values to float rounding, on a scene that rotates, zooms and has a layer moving over it
with occlusions (forward flows), across re-anchorings. Triton runs in its interpreter on CPU
tensors (slow: short sequences)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import warpnoise
from warpnoise.kernels import boxes as nbk
from warpnoise.kernels import counter_offsets
from warpnoise.methods.persistent import advance, integrate_boxes
from warpnoise.methods.persistent.rule import step_key
from warpnoise.methods.persistent.torch_backend import pieces

from .. import _flows as F
from .._layers import Scene

C, K = 4, 2
TOL = 1e-5


def _flows(scene: Scene, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame t's backward flow and frame t-1's forward flow: the scene's layer moving and turning
    over a background that rotates by 1.5 degrees and zooms by 1.5% per frame."""
    h, w = scene.h, scene.w
    bg = F.rotation(h, w, 1.5) + F.zoom(h, w, 1.015)
    b, f = scene.flows(t)
    b = torch.where(scene.mask(t), b, bg)
    f = torch.where(scene.mask(t - 1), f, -bg)
    return b, f


def _sequence(backend: object, scene: Scene, frames: int, anchor_every: int,
              seed: int = 0) -> tuple[torch.Tensor, str, int, int]:
    """``(noise (T, C, H, W), backend name, anchors after frame 0, frames with loose pixels)``."""
    w = warpnoise.NoiseWarper(C, scene.h, scene.w, seed=seed, backend=backend,
                              anchor_every=anchor_every)
    out, anchors, partial = [w.noise], 0, 0
    for t in range(1, frames + 1):
        out.append(w.step(*_flows(scene, t)))
        anchors += w._state.age == 0
        partial += not bool(w._state.traced.all())
    return torch.stack(out), w.backend, anchors, partial


SCENE = Scene(48, 64, 20, 14, 12, dx=1.7, dy=0.6, spin=4.0)


@pytest.mark.slow
def test_torch_and_numba_give_the_same_noise() -> None:
    """30 frames of 4 x 48 x 64, re-anchored every 8 frames: every value within 1e-5."""
    ref, name_n, anchors, partial = _sequence("numba", SCENE, 30, 8)
    got, name_t, _, _ = _sequence("torch", SCENE, 30, 8)
    assert (name_n, name_t) == ("numba", "torch")
    assert anchors >= 3 and partial >= 10  # re-anchorings, occlusions and frame edges
    assert (ref - got).abs().max() < TOL


def test_torch_and_numba_give_the_same_noise_on_a_short_sequence() -> None:
    """10 frames, re-anchored every 4."""
    ref, _, anchors, partial = _sequence("numba", SCENE, 10, 4)
    got = _sequence("torch", SCENE, 10, 4)[0]
    assert anchors >= 2 and partial >= 5
    assert (ref - got).abs().max() < TOL
    assert not torch.equal(ref[1], ref[0])


def _triton() -> object:
    pytest.importorskip("triton", reason="triton is not installed")
    from warpnoise.methods.persistent.triton_backend import TritonBackend

    return TritonBackend()


def test_interpreted_triton_gives_the_numba_noise_on_a_short_sequence() -> None:
    scene = Scene(24, 32, 10, 7, 6, dx=1.7, dy=0.6, spin=4.0)
    tri = _triton()
    ref = _sequence("numba", scene, 4, 2)[0]
    got, name, anchors, _ = _sequence(tri, scene, 4, 2)
    assert name == "triton" and anchors >= 1
    assert (ref - got).abs().max() < TOL


@pytest.mark.slow
def test_interpreted_triton_gives_the_numba_noise() -> None:
    scene = Scene(40, 48, 16, 12, 10, dx=1.7, dy=0.6, spin=4.0)
    tri = _triton()
    ref, _, anchors, partial = _sequence("numba", scene, 12, 5)
    got = _sequence(tri, scene, 12, 5)[0]
    assert anchors >= 2 and partial >= 4
    assert (ref - got).abs().max() < TOL


def _claim_words(counts: torch.Tensor, least: int) -> np.ndarray:
    """``(Ha Wa,)`` uint64 words with bit e set where value e is claimed ``least`` times or more
    (the numba kernel's claimed / conflict words)."""
    bits = (counts >= least).long() << torch.arange(counts.shape[1])
    return bits.sum(1).numpy().view(np.uint64)


def _numba_pass(ws: nbk.Workspace, pos: np.ndarray, role: np.ndarray, want: int,
                xa: np.ndarray, field: np.ndarray, barred: np.ndarray | None, key: int,
                base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One integration pass of the numba kernel: ``(noise, has, links)``."""
    c, h, w = xa.shape
    ws.role[:] = role
    out = np.full((c, h, w), np.nan, np.float32)  # the loose pass writes pixels with an area
    keep = np.zeros((c, h, w), np.float32)
    traced = np.zeros((h, w), np.bool_)
    links = np.zeros((h, w), np.uint8)
    nbk.integrate(ws, np.ascontiguousarray(pos[0]), np.ascontiguousarray(pos[1]), want, xa, field,
                  K, barred, np.uint64(key), base, out, keep, traced, links)
    return out, traced if barred is None else ~np.isnan(out[0]), links


def test_every_phase_agrees_between_numba_and_torch() -> None:
    """Frame by frame, from the numba backend's own state: ``advance`` gives the same roles,
    maps and source positions to the bit; the anchored pass the same links, float32 box edges,
    first cells, claims and conflicts to the bit and its cover to rounding; both passes the same
    noise within 1e-5."""
    scene = SCENE
    h, wd = scene.h, scene.w
    w = warpnoise.NoiseWarper(C, h, wd, seed=1, backend="numba", anchor_every=6)
    checked_loose = 0
    for t in range(1, 15):
        st = w._state
        ws = st.workspace
        cur = ws.current
        prev_map, prev_traced = ws.maps[cur].copy(), ws.traced[cur].copy()
        links, keep = ws.links.copy(), ws.keep[cur].copy()
        anchor, field = st.anchor.numpy(), st.field.numpy()
        b, f = _flows(scene, t)
        key = step_key(st.root, st.frame + 1)

        # Phase 1: advance.
        new_map, src = np.zeros((2, h, wd)), np.zeros((2, h, wd))
        role = np.zeros((h, wd), np.uint8)
        nbk.advance(prev_map, prev_traced, links, b[0].numpy(), b[1].numpy(), f[0].numpy(),
                    f[1].numpy(), True, new_map, src, role)
        t_map, t_src, t_role = advance(torch.from_numpy(prev_map), torch.from_numpy(prev_traced),
                                       torch.from_numpy(links), b, f)
        assert np.array_equal(t_role.numpy(), role), t
        assert np.array_equal(t_map.numpy(), new_map), t
        loose = role == nbk.LOOSE
        assert np.array_equal(t_src.numpy()[:, loose], src[:, loose]), t

        # Phase 2: the anchored pass's geometry.
        ref = nbk.Workspace.empty(C, h, wd)
        out, has, ref_links = _numba_pass(ref, new_map, role, nbk.ANCHORED, anchor, field, None,
                                          key, 0)
        anchored = torch.from_numpy(role == nbk.ANCHORED)
        pc = pieces(t_map, anchored, h, wd, K)
        assert np.array_equal(pc.links.numpy(), ref_links), t
        edges = pc.edges.float().numpy().transpose(1, 2, 0)
        on = anchored.numpy()
        assert np.array_equal(edges[on], ref.edges[on]), t
        boxed = ref.cell0[..., 0] >= 0
        cell0 = pc.cell0.numpy().transpose(1, 2, 0)
        assert np.array_equal(cell0[..., 0] >= 0, boxed), t
        assert np.array_equal(cell0[boxed], ref.cell0[boxed]), t
        used = ref.used().reshape(-1)
        assert np.array_equal(pc.cover.numpy() > 0, used), t
        assert np.abs(pc.cover.numpy()[used] - ref.cover.reshape(-1)[used]).max() < 1e-12
        for q, least in ((0, 1), (1, 2)):  # claimed, conflict
            assert np.array_equal(_claim_words(pc.claims, least)[used],
                                  ref.claims[q].reshape(-1)[used]), (t, q)

        # Phase 3: the noise of both passes.
        noise, t_has, _ = integrate_boxes(t_map, anchored, st.anchor, st.field, K, None, key)
        assert np.array_equal(t_has.numpy(), has), t
        assert np.abs(noise.float().numpy() - out).max() < TOL, t
        if loose.any():
            base = counter_offsets(h, wd, C)[3]
            l_out, l_has, _ = _numba_pass(ref, src, role, nbk.LOOSE, keep, nbk._NO_FIELD,
                                          prev_traced, key, base)
            l_noise, lt_has, _ = integrate_boxes(torch.from_numpy(src), torch.from_numpy(loose),
                                                 torch.from_numpy(keep), None, K,
                                                 torch.from_numpy(prev_traced), key, base)
            assert np.array_equal(lt_has.numpy(), l_has), t
            diff = np.abs(l_noise.float().numpy() - l_out)[:, l_has]
            assert diff.size == 0 or diff.max() < TOL, t
            checked_loose += int(l_has.sum())
        w.step(b, f)
    assert checked_loose > 50


def test_cli_noise_is_the_same_with_numba_and_torch(tmp_path: Path) -> None:
    """``warpnoise noise --backend numba`` and ``--backend torch`` on one clip and seed."""
    from typer.testing import CliRunner

    from tests.io._clips import moving_frames, write_png_folder
    from warpnoise.cli import load_commands
    from warpnoise.io.noisefile import load_noise

    clip = write_png_folder(tmp_path / "clip", moving_frames(5, 48, 64, dx=2, dy=1))
    app, runner = load_commands(), CliRunner()
    got = {}
    for backend in ("numba", "torch"):
        out = tmp_path / f"{backend}.safetensors"
        r = runner.invoke(app, ["noise", str(clip), "-o", str(out), "--seed", "7", "--backend",
                                backend, "--option", "anchor_every=3", "-q"])
        assert r.exit_code == 0, r.stdout + r.stderr
        got[backend] = load_noise(out)[0]
    assert got["numba"].shape == (5, 4, 48, 64)
    assert (got["numba"] - got["torch"]).abs().max() < TOL
