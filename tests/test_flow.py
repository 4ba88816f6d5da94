from __future__ import annotations

import numpy as np
import pytest
import torch

from warpnoise.flow import (
    as_flow,
    as_flows,
    compose_map,
    forward_backward_occlusion,
    pixel_grid,
    sample,
)

from .methods import _flows as F


def test_as_flow_accepts_numpy_and_moves_to_float32() -> None:
    f = as_flow(np.zeros((2, 5, 7), dtype=np.float64), 5, 7)
    assert f.dtype == torch.float32 and f.shape == (2, 5, 7)


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        (torch.zeros(5, 7, 2), r"shape \(2, H, W\), got \(5, 7, 2\).*OpenCV"),
        (torch.zeros(3, 5, 7), r"shape \(2, H, W\), got \(3, 5, 7\)"),
        (torch.zeros(2, 6, 7), r"expected \(2, 5, 7\)"),
        ("not a flow", "torch.Tensor or numpy.ndarray"),
    ],
)
def test_bad_flow_shapes_are_named(flow, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_flow(flow, 5, 7)


@pytest.mark.parametrize(("value", "what"), [(float("nan"), "1 NaN"), (float("inf"), "1 inf")])
def test_non_finite_flows_are_named(value: float, what: str) -> None:
    f = torch.zeros(2, 4, 4)
    f[0, 1, 2] = value
    with pytest.raises(ValueError, match=what):
        as_flow(f)


def test_as_flows_checks_the_batch_shape() -> None:
    with pytest.raises(ValueError, match=r"\(T, 2, H, W\)"):
        as_flows(torch.zeros(2, 4, 4))


def test_sample_reads_pixel_centres_exactly() -> None:
    field = torch.arange(12.0).view(1, 3, 4)
    pts = pixel_grid(3, 4)
    assert torch.allclose(sample(field, pts), field, atol=1e-5)
    half = sample(field, pts[:, :1, :1] + torch.tensor([[[0.5]], [[0.0]]]))
    assert abs(float(half) - 0.5) < 1e-5


def test_composed_translation_is_exact() -> None:
    b = F.translation(16, 16, 0.3, -0.2).double()
    m = pixel_grid(16, 16, dtype=torch.float64)
    for _ in range(5):
        m = compose_map(m, b)
    expected = pixel_grid(16, 16, dtype=torch.float64) + 5 * b
    assert torch.allclose(m, expected, atol=1e-9)


def test_forward_backward_check_marks_disoccluded_background() -> None:
    b, f, _fg = F.layered(64, 64, 1, size=16, dx=4.0, top=10, left=10)
    occ = forward_backward_occlusion(b, f)
    # Uncovered: columns the square left (10..13), rows of the square.
    assert occ[10:26, 10:14].all()
    assert not occ[10:26, 16:28].any()  # the square itself is consistent
    assert not occ[40:, :].any()  # static background far away


def test_flows_that_require_grad_are_detached() -> None:
    flow = torch.zeros(2, 4, 4, requires_grad=True) + 0.5  # non-leaf, as from a flow network
    for checked in (as_flow(flow), as_flows(torch.stack([flow]))):
        assert not checked.requires_grad
        assert torch.equal(checked.flatten(), torch.full((checked.numel(),), 0.5))
