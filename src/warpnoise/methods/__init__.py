"""Warping methods. Each lives in one module and registers itself by name; this list is the
registry: adding a method means adding its module here."""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its methods)
    bridge,
    control_a_video,
    integral,
    interp,
    persistent,
    pyoco,
    simple,
)
from .base import REGISTRY, WarpMethod, WarpState, get_method, needs_frames, register

DEFAULT_METHOD = "persistent"


def methods() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(REGISTRY)


__all__ = ["DEFAULT_METHOD", "WarpMethod", "WarpState", "get_method", "methods", "needs_frames",
           "register"]
