"""The trivial baselines declare that they ignore flows, so that callers skip estimating them."""

from __future__ import annotations

import pytest

from warpnoise.methods import uses_flows


@pytest.mark.parametrize("name", ["random", "fixed"])
def test_random_and_fixed_declare_they_use_no_flows(name: str) -> None:
    assert uses_flows(name) is False


def test_flow_methods_still_use_flows() -> None:
    assert uses_flows("persistent") and uses_flows("nearest")
