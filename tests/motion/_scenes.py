"""Small motion descriptions shared by the motion tests."""

from __future__ import annotations

from typing import Any

SQUARE = [[40.0, 50.0], [120.0, 50.0], [120.0, 130.0], [40.0, 130.0]]


def drag(dx: float, dy: float, frames: int = 9, polygon: list[list[float]] | None = None,
         **camera: Any) -> dict[str, Any]:
    """One layer dragged in a straight line by ``(dx, dy)`` per frame (linear easing), and an
    optional camera keyframe at the last frame."""
    out: dict[str, Any] = {"frames": frames, "layers": [{
        "name": "square", "polygon": polygon or SQUARE, "path": "straight", "easing": "linear",
        "keyframes": [{"frame": frames - 1,
                       "translate": [dx * (frames - 1), dy * (frames - 1)]}]}]}
    if camera:
        out["camera"] = {"easing": "linear", "keyframes": [{"frame": frames - 1, **camera}]}
    return out
