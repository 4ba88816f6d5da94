"""Compile every Triton kernel of ``persistent`` for an H100 and print what its PTX holds.

Run as ``python -m tests.kernels._cuda_ptx`` in a process without ``TRITON_INTERPRET``: with that
variable set, ``@triton.jit`` gives interpreted functions, which Triton's compiler cannot build,
so the test that checks the compiled code starts this module in a clean child process. Prints one
JSON object: per kernel configuration, whether its PTX has an entry point, float64 code and a
fused float64 multiply-add.
"""

from __future__ import annotations

import json
import os
from typing import Any

C = 4
PTR = {"fp64": "*fp64", "fp32": "*fp32", "i1": "*i1", "u8": "*u8", "i32": "*i32", "i64": "*i64"}
TYPES = dict(H="i32", W="i32", HA="i32", WA="i32", want="i32", NCELL="i32", size="i64",
             offset="i64", gate=PTR["i32"], key="i64", N="i64", map_prev=PTR["fp64"],
             traced_prev=PTR["i1"], links=PTR["u8"], b=PTR["fp32"], f=PTR["fp32"],
             map_new=PTR["fp64"], src=PTR["fp64"], role=PTR["u8"], n_loose=PTR["i32"],
             pos=PTR["fp64"], edges=PTR["fp32"], cell0=PTR["i32"], barred=PTR["u8"],
             cells=PTR["i64"], masks=PTR["i64"], field=PTR["fp32"], ybuf=PTR["fp32"],
             d=PTR["fp32"], xa=PTR["fp32"], out=PTR["fp32"], keep=PTR["fp32"],
             traced=PTR["i1"], buf=PTR["i64"], zig=PTR["fp64"])


def configurations() -> list[tuple[str, Any, dict, bool]]:
    """(label, kernel, constants, exact) for the anchored and the loose pass and the largest
    upsample; ``exact`` marks the geometry kernels, compiled without floating-point fusion."""
    from warpnoise.kernels import triton_boxes as T

    block = dict(BLOCK=256)
    cells = dict(C=C, CP=C, NCOL=3 + C, **block)
    anchored = dict(HAS_FIELD=True, RESTRICT=False)
    loose = dict(K=1, HAS_FIELD=False, RESTRICT=True)
    return [
        ("advance", T._advance_kernel, dict(HAS_FORWARD=True, ALPHA=0.01, BETA=0.5, **block),
         True),
        ("links", T._links_kernel, dict(ALL=False, JUMP_=0.25, **block), True),
        ("boxes", T._boxes_kernel, block, True),
        ("zero", T._zero_kernel, block, False),
        ("claims", T._claims_kernel, dict(K=6, NCOL=3 + C, **anchored, **block), False),
        ("pieces anchored", T._pieces_kernel, dict(K=2, **anchored, **cells), False),
        ("pieces loose", T._pieces_kernel, dict(**loose, **cells), False),
        ("remainders", T._remainders_kernel,
         dict(FULL=15, K=2, REM_EPS_=1e-9, **anchored, **cells), False),
        ("gather", T._gather_kernel, dict(K=2, RESTRICT=False, FILL=True, **cells), False),
        ("fill", T._fill_kernel, block, False),
    ]


def compile_for_cuda(kernel: Any, consts: dict, exact: bool) -> str:
    """PTX of ``kernel`` compiled for an sm_90 GPU (H100) by Triton's own compiler and ptxas,
    which need no GPU."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = {a: "constexpr" if a in consts else TYPES[a] for a in kernel.arg_names}
    options = {"enable_fp_fusion": False} if exact else {}
    return triton.compile(ASTSource(kernel, sig, consts), target=GPUTarget("cuda", 90, 32),
                          options=options).asm["ptx"]


def main() -> None:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise SystemExit("run without TRITON_INTERPRET: the interpreter's kernels do not compile")
    report = {}
    for label, kernel, consts, exact in configurations():
        ptx = compile_for_cuda(kernel, consts, exact)
        report[label] = {"exact": exact, "entry": ".entry" in ptx, "f64": "f64" in ptx,
                         "fused_f64": "fma.rn.f64" in ptx}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
