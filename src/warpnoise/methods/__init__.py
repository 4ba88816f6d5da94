"""Warping methods. Each lives in one module and registers itself by name; this list is the
registry: adding a method means adding its module here.

``warpnoise.methods`` is this package *and* callable: ``warpnoise.methods()`` lists the method
names (as :func:`methods` does), while ``import warpnoise.methods.persistent as m`` and
``warpnoise.methods.get_method`` reach the modules. Re-exporting the function under the
package's own name would shadow the package as an attribute of ``warpnoise`` and break dotted
imports; making the module callable keeps both spellings.
"""

from __future__ import annotations

import sys
import types

from . import (  # noqa: F401  (each module registers its methods)
    bridge,
    control_a_video,
    integral,
    interp,
    persistent,
    pyoco,
    simple,
    snap,
)
from .base import (
    REGISTRY,
    WarpMethod,
    WarpState,
    check_options,
    get_method,
    needs_frames,
    register,
    uses_flows,
)

DEFAULT_METHOD = "persistent"


def methods() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(REGISTRY)


class _CallableModule(types.ModuleType):
    """This package's module type: calling it calls :func:`methods` (see the module docstring)."""

    def __call__(self) -> list[str]:
        return methods()


sys.modules[__name__].__class__ = _CallableModule


__all__ = ["DEFAULT_METHOD", "WarpMethod", "WarpState", "check_options", "get_method", "methods",
           "needs_frames", "register", "uses_flows"]
