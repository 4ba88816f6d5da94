"""Optical flow estimation from frames: OpenCV DIS and Farneback, RAFT from a local weights file.

Convention:
    Frames are ``(T, H, W, 3)`` uint8 RGB. Flows are ``(2, H, W)`` float32, dx then dy in pixels,
    pixel centres at integer coordinates. For the step from frame t-1 to frame t the estimator
    returns frame t's *backward* flow ``b`` (pixel x of frame t came from ``x + b(x)`` in frame
    t-1) and frame t-1's *forward* flow ``f`` (pixel x of frame t-1 goes to ``x + f(x)`` in
    frame t). Both are needed: the forward-backward consistency test
    (:func:`warpnoise.flow.forward_backward_occlusion`) finds the disoccluded pixels that get
    fresh noise (Chang et al. 2024, §4).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DIS_PRESETS",
    "FLOW_METHODS",
    "PairEstimator",
    "check_flow_options",
    "estimate_flows",
    "make_estimator",
]

FLOW_METHODS = ("dis", "farneback", "raft")
DIS_PRESETS = ("ultrafast", "fast", "medium")

#: ``(frame t-1, frame t)``, each ``(H, W, 3)`` uint8 RGB -> ``(backward of t, forward of t-1)``.
PairEstimator = Callable[[np.ndarray, np.ndarray], tuple[Tensor, Tensor]]


def _hw2_to_flow(hw2: np.ndarray) -> Tensor:
    # OpenCV's (H, W, 2) layout -> the (2, H, W) convention.
    return torch.from_numpy(np.ascontiguousarray(hw2.transpose(2, 0, 1), dtype=np.float32))


def _opencv_estimator(calc: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> PairEstimator:
    """Wrap an OpenCV ``calc(I0, I1) -> (H, W, 2)`` flow (``I0(x) ~ I1(x + flow(x))``)."""
    import cv2

    def estimate(prev: np.ndarray, cur: np.ndarray) -> tuple[Tensor, Tensor]:
        g0 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
        g1 = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
        try:
            backward = calc(g1, g0)
            forward = calc(g0, g1)
        except cv2.error as e:
            raise ValueError(f"OpenCV flow failed on {g0.shape[1]}x{g0.shape[0]} frames: "
                             f"{str(e).strip().splitlines()[-1]}") from None
        return _hw2_to_flow(backward), _hw2_to_flow(forward)

    return estimate


def check_flow_options(method: str | None, preset: str = "medium",
                       raft_weights: str | os.PathLike | None = None) -> None:
    """Raise ValueError, before any frame is read, for an unknown flow ``method`` (of
    :data:`FLOW_METHODS`; None: not checked, e.g. flows from a file), an unknown DIS ``preset``
    (of :data:`DIS_PRESETS`), a missing ``raft_weights`` file, or RAFT without one."""
    if method is not None and method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose one of "
                         f"{', '.join(FLOW_METHODS)}")
    if preset not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(DIS_PRESETS)}")
    if raft_weights is not None and not Path(raft_weights).is_file():
        raise ValueError(f"RAFT weights file {str(raft_weights)!r} does not exist")
    if method == "raft" and raft_weights is None:
        raise ValueError("RAFT needs a local weights file (--raft-weights PATH, e.g. torchvision's "
                         "raft_large_C_T_SKHT_V2 .pth); nothing is downloaded")


def _dis(preset: str) -> PairEstimator:
    import cv2

    check_flow_options("dis", preset)
    codes = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
             "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
             "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(codes[preset])
    return _opencv_estimator(lambda a, b: dis.calc(a, b, None))


def _farneback() -> PairEstimator:
    import cv2

    # OpenCV's sample parameters: 3-level pyramid at 0.5, 15 px window, polynomial n=5, sigma=1.2.
    return _opencv_estimator(
        lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0))


def _import_raft() -> tuple[Callable[..., torch.nn.Module], Callable[..., torch.nn.Module]]:
    try:
        from torchvision.models.optical_flow import raft_large, raft_small
    except Exception as e:  # torchvision built for another torch fails with more than ImportError
        raise ValueError(
            "RAFT needs torchvision (built for this torch) and a local weights file "
            f"(--raft-weights); torchvision could not be imported: {type(e).__name__}: {e}. "
            "Use --flow dis or --flow farneback instead."
        ) from None
    return raft_large, raft_small


def _raft(weights: str | os.PathLike | None, device: torch.device | str | None) -> PairEstimator:
    check_flow_options("raft", raft_weights=weights)
    path = Path(str(weights))
    raft_large, raft_small = _import_raft()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot load RAFT weights {str(path)!r}: {e}") from None
    model = None
    for build in (raft_large, raft_small):
        candidate = build(weights=None, progress=False)
        try:
            candidate.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError):
            continue
        model = candidate
        break
    if model is None:
        raise ValueError(f"{str(path)!r} holds neither raft_large nor raft_small weights")
    dev = torch.device(device if device is not None else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.eval().to(dev)

    @torch.inference_mode()
    def estimate(prev: np.ndarray, cur: np.ndarray) -> tuple[Tensor, Tensor]:
        h, w = prev.shape[:2]
        imgs = torch.from_numpy(np.stack([cur, prev])).to(dev).permute(0, 3, 1, 2).float()
        imgs = imgs / 127.5 - 1.0  # RAFT takes [-1, 1]
        # RAFT needs sizes divisible by 8; replicate-pad and crop the flow back.
        ph, pw = -h % 8, -w % 8
        imgs = torch.nn.functional.pad(imgs, (0, pw, 0, ph), mode="replicate")
        # One batch, both directions: (cur -> prev) is the backward flow, (prev -> cur) forward.
        flows = model(imgs, imgs.flip(0))[-1][..., :h, :w].float().cpu()
        return flows[0].contiguous(), flows[1].contiguous()

    return estimate


def make_estimator(
    method: str = "dis",
    *,
    preset: str = "medium",
    raft_weights: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> PairEstimator:
    """Build a pair estimator ``(frame t-1, frame t) -> (backward of t, forward of t-1)``.

    Args:
        method: ``dis`` (OpenCV DIS, Kroeger et al. ECCV 2016), ``farneback`` (OpenCV), or
            ``raft`` (torchvision's RAFT, Teed & Deng ECCV 2020, from ``raft_weights``).
        preset: DIS preset, ``ultrafast``, ``fast`` or ``medium``.
        raft_weights: a local torchvision RAFT state dict (large or small); never downloaded.
        device: where RAFT runs (default: CUDA if available). DIS and Farneback run on the CPU.

    Raises:
        ValueError: unknown method or preset; RAFT without torchvision or without weights.
    """
    if method == "dis":
        return _dis(preset)
    if method == "farneback":
        return _farneback()
    if method == "raft":
        return _raft(raft_weights, device)
    raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)} "
                     "or give a flow file")


def check_frames(frames: np.ndarray) -> None:
    """Raise ValueError unless ``frames`` is a ``(T, H, W, 3)`` uint8 array with T >= 1."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got shape "
                         f"{getattr(frames, 'shape', None)}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.shape[0] < 1:
        raise ValueError("frames is empty")


def estimate_flows(
    frames: np.ndarray,
    method: str = "dis",
    *,
    preset: str = "medium",
    raft_weights: str | None = None,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    estimator: PairEstimator | None = None,
) -> tuple[Tensor, Tensor]:
    """Backward and forward flows of every consecutive pair of ``frames``.

    Convention:
        ``frames`` ``(T, H, W, 3)`` uint8 RGB. Returns ``(backward, forward)``, each
        ``(T-1, 2, H, W)`` float32 on the CPU: ``backward[t-1]`` is frame t's backward flow,
        ``forward[t-1]`` is frame t-1's forward flow (see the module docstring).

    Args:
        method: see :func:`make_estimator`.
        preset: see :func:`make_estimator`.
        raft_weights: see :func:`make_estimator`.
        device: see :func:`make_estimator`.
        progress: called as ``progress(done, total)`` after each pair.
        estimator: an already built :func:`make_estimator` (then ``method`` etc. are ignored).

    Example:
        >>> frames = np.zeros((3, 32, 32, 3), np.uint8)
        >>> b, f = estimate_flows(frames)
        >>> b.shape
        torch.Size([2, 2, 32, 32])
    """
    check_frames(frames)
    if estimator is None:
        estimator = make_estimator(method, preset=preset, raft_weights=raft_weights,
                                   device=device)
    t, h, w, _ = frames.shape
    backward = torch.empty(max(t - 1, 0), 2, h, w)
    forward = torch.empty_like(backward)
    for i in range(1, t):
        backward[i - 1], forward[i - 1] = estimator(frames[i - 1], frames[i])
        if progress is not None:
            progress(i, t - 1)
    return backward, forward
