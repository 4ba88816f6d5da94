"""Strict JSON text: what every JSON parser reads.

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity`` by default, which strict parsers
(JavaScript's ``JSON.parse``, ``jq``, most databases) reject. Statistics of degenerate input
(a one-channel correlation, a constant frame) are NaN, so reports go through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite_or_none"]


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None, in nested dicts, lists
    and tuples (tuples become lists, as JSON has them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite_or_none` ``(obj)``: non-finite numbers become ``null``."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
