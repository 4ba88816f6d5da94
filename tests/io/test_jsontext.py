"""Reports are strict JSON: no NaN or Infinity, which strict parsers reject."""

from __future__ import annotations

import json
import math

import pytest

from warpnoise.io import jsontext


def strict_loads(text: str) -> object:
    """``json.loads`` that fails on NaN / Infinity, as JavaScript's JSON.parse does."""
    def reject(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=reject)


def test_non_finite_numbers_become_null_everywhere() -> None:
    report = {"p": math.nan, "rows": [{"psnr": math.inf}, (1.5, -math.inf)], "n": 3, "s": "x"}
    assert strict_loads(jsontext.dumps(report)) == {
        "p": None, "rows": [{"psnr": None}, [1.5, None]], "n": 3, "s": "x"}


def test_plain_json_would_not_be_strict() -> None:  # what the module is for
    with pytest.raises(ValueError, match="NaN"):
        strict_loads(json.dumps({"p": math.nan}))
