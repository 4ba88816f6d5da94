"""The demo's per-clip table over several runs (seeds): each measure as ``first (min-max)``.

    warpnoise demo -o run0
    warpnoise demo -o run1 --seed 1 --no-former --no-noise-preview
    python scripts/demo_ranges.py run0/results.json run1/results.json > table.md

Rows missing from a run (the former sampling above) show that run's value alone.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

KEYS = (("follows_motion", ".3f"), ("sticks_to_screen", ".3f"), ("warping_error", ".2f"),
        ("detail", ".2f"), ("psnr", ".2f"), ("ssim", ".4f"), ("noise_rms", ".2f"))
HEAD = ("| noise | follows motion ↑ | sticks to screen ↓ | warping error ↓ (0-255) | "
        "detail (GT = 1) | PSNR ↑ (dB) | SSIM ↑ | noise RMS (0-255) |")


def cell(values: list[Any], fmt: str) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    first = format(vals[0], fmt)
    if len(vals) == 1 or min(vals) == max(vals):
        return first
    return f"{first} ({format(min(vals), fmt)}–{format(max(vals), fmt)})"


def main(paths: list[str]) -> None:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    default = runs[0]["settings"]["default_method"]
    table: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = defaultdict(dict)
    for run in runs:
        for row in run["rows"]:
            table[row["clip"]].setdefault((row["noise"], row["sampling"]), []).append(row)
    for clip, rows in table.items():
        info = runs[0]["clips"][clip]
        print(f"**{clip}** ({info['what']}; median {info['median_px']:.2f} px/frame, 90th "
              f"percentile {info['p90_px']:.2f})\n")
        print(HEAD)
        print("| --- |" + " ---: |" * len(KEYS))
        for (noise, sampling), rs in rows.items():
            name = noise + (" (default)" if noise == default else "")
            name += ", former sampling" if sampling == "former" else ""
            print(f"| {name} | " + " | ".join(cell([r[k] for r in rs], f) for k, f in KEYS)
                  + " |")
        print()
    print(f"{len(runs)} runs (seeds {', '.join(str(r['settings']['seed']) for r in runs)}): "
          "the first run's value, then the range over the runs.")


if __name__ == "__main__":
    main(sys.argv[1:])
