"""``warpnoise doctor`` and ``warpnoise warmup``: what runs where, and compiling the kernels ahead.
Thin: :mod:`warpnoise.diagnostics` does the work."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from . import app
from ._common import handle_errors


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _doctor_text(r: dict[str, Any]) -> list[str]:
    v = r["versions"]
    lines = [f"warpnoise {v['warpnoise']}, Python {r['python']}, {r['platform']}"]
    have = [f"{k} {x}" for k, x in v.items() if k != "warpnoise" and x]
    missing = [k for k, x in v.items() if not x]
    lines.append("packages: " + ", ".join(have) + (f" (not installed: {', '.join(missing)})"
                                                   if missing else ""))
    lines.append(f"devices (backend of the default method, {r['default_method']}):")
    for d in r["devices"]:
        extra = [d.get("name")]
        if "memory_gib" in d:
            extra += [f"{d['memory_gib']} GiB", f"compute capability {d['capability']}"]
        if "threads" in d:
            extra.append(f"{d['threads']} threads")
        desc = ", ".join(str(x) for x in extra if x)
        lines.append(f"  {d['device']} ({desc}): {d['backend']} ({d['why']})")
    nb, tr = r["kernels"]["numba"], r["kernels"]["triton"]
    if nb["installed"]:
        hint = "" if nb["cached"] else " (`warpnoise warmup` compiles them)"
        lines.append(f"numba kernels cached: {_yes(nb['cached'])}, for every channel count"
                     f"{hint}; cache {nb['cache_dir']}")
    else:
        lines.append("numba kernels: numba not installed (the CPU runs the slower torch path)")
    if tr["installed"]:
        lines.append(f"triton kernel cache: {tr['cache_entries']} entries in {tr['cache_dir']}")
    else:
        lines.append("triton: not installed (CUDA runs the slower torch path)")
    vid = r["video"]
    if vid["pyav"]:
        dec = ", ".join(f"{c} {_yes(ok)}" for c, ok in vid["decoders"].items())
        lines.append(f"video: PyAV yes (decoders: {dec}); OpenCV {_yes(vid['opencv'])}; "
                     f"bundled clip decodes: {_yes(vid['sample_clip_decodes'])}")
    else:
        lines.append(f"video: PyAV not installed (no video files; folders of images only); "
                     f"OpenCV {_yes(vid['opencv'])}")
    lines.append("caches: " + ", ".join(f"{k} {p}" for k, p in r["caches"].items()))
    return lines


@app.command("doctor")
@handle_errors
def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """What a bug report needs: versions, devices, which backend the default method runs on each
    device and why, whether its compiled kernels are cached, video support, cache folders."""
    from ..diagnostics import report

    r = report()
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    for line in _doctor_text(r):
        typer.echo(line)


@app.command("warmup")
@handle_errors
def warmup_command(
    channels: Annotated[list[int] | None, typer.Option(
        "--channels", "-c", help="Channel counts to compile for, repeatable (default 4 and 16; "
        "on the CPU every count shares one compiled set, Triton compiles each apart).")] = None,
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="Devices to compile for, repeatable (default: cpu and every CUDA "
        "device).")] = None,
) -> None:
    """Compile the default method's kernels and write them to the caches (numba on the CPU,
    Triton on CUDA), so the first real run starts at once: for container images and ComfyUI
    installs. Run it again after upgrading warpnoise, numba or triton."""
    from ..diagnostics import CHANNELS, WarmupResult, warm_up

    def show(res: WarmupResult) -> None:
        what = {True: "compiled and cached", False: "already cached, loaded",
                None: "compiled or loaded"}[res.compiled]
        typer.echo(f"{res.device}, {res.channels} channels: {res.backend} kernels {what} in "
                   f"{res.seconds:.1f} s")

    results = warm_up(channels or CHANNELS, device, on_result=show)
    if not results:
        typer.echo("nothing to compile: no device here runs compiled kernels (see `warpnoise "
                   "doctor`)")
