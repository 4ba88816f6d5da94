"""``warpnoise.diagnostics``: the doctor's report, the compile notice and the warm-up."""

from __future__ import annotations

import json

import pytest
import torch

from warpnoise import diagnostics
from warpnoise.kernels import boxes


def test_report_names_versions_devices_backend_and_caches() -> None:
    r = diagnostics.report()
    assert set(r["versions"]) >= {"warpnoise", "torch", "numba", "triton", "opencv", "av",
                                  "diffusers", "ray"}
    assert r["versions"]["torch"] == torch.__version__
    cpu = r["devices"][0]
    assert cpu["device"] == "cpu" and cpu["backend"] == "numba" and "numba" in cpu["why"]
    assert len(r["devices"]) == 1 + torch.cuda.device_count()
    numba = r["kernels"]["numba"]
    assert numba["installed"] and numba["cached"] in (True, False)
    assert numba["cache_dir"] == boxes.cache_dir()
    assert r["video"]["sample_clip_decodes"] is True
    assert json.loads(json.dumps(r)) == r  # plain JSON data


def test_cache_status_follows_numba_index(monkeypatch) -> None:
    """Kernels compiled in this process are in the cache, for every channel count at once (one
    compiled set serves all); an unreadable index is 'unknown'."""
    import warpnoise

    warpnoise.NoiseWarper(4, 16, 16).step(torch.zeros(2, 16, 16))
    assert boxes.cache_status(4) is True and boxes.cache_status(16) is True
    monkeypatch.setattr(boxes.advance, "_cache", None)
    assert boxes.cache_status(4) is None


def test_compile_notice_only_when_kernels_will_compile(monkeypatch) -> None:
    monkeypatch.setattr(boxes, "cache_status", lambda channels=4: channels != 16)
    assert diagnostics.compile_notice("persistent", 4, "cpu") is None
    notice = diagnostics.compile_notice("persistent", 16, "cpu")
    assert notice is not None and "CPU kernels" in notice and "warpnoise warmup" in notice
    assert diagnostics.compile_notice("persistent", 16, "cpu", {"backend": "torch"}) is None
    assert diagnostics.compile_notice("integral", 16, "cpu") is None


def test_warm_up_compiles_and_reports(monkeypatch) -> None:
    """The warm-up says it compiled when the cache lacked the kernels, and leaves them cached."""
    real = boxes.cache_status
    calls = []
    monkeypatch.setattr(boxes, "cache_status",
                        lambda c=4: False if not calls.append(c) else None)
    seen = []
    results = diagnostics.warm_up([4], ["cpu"], on_result=seen.append)
    assert results == seen and len(results) == 1
    r = results[0]
    assert (r.device, r.channels, r.backend, r.compiled) == ("cpu", 4, "numba", True)
    assert r.seconds > 0 and calls == [4]
    assert real(4) is True


def test_warm_up_refuses_bad_channels_and_devices() -> None:
    with pytest.raises(ValueError, match="channels must be positive"):
        diagnostics.warm_up([0], ["cpu"])
    with pytest.raises(ValueError, match="unknown device"):
        diagnostics.warm_up([4], ["gpu"])
