"""The layout figure of the package: its layers, one box per subpackage or top-level module,
and the imports between boxes, parsed from the source (not imported, so nothing is run).

Rows are the layers of ``LAYERS``, the bottom layer at the bottom; each box gives its line count.
Grey arrows point down or sideways; an import that points UP a layer is drawn in red.
``tests/test_layers.py`` checks the same parse: no upward import, no private name imported from
another module, no cycle between boxes.

    python scripts/draw_layout.py docs/layout.png
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parents[1] / "src"

#: The layers, bottom first; each lists its boxes (a subpackage or a top-level module of
#: ``warpnoise``; ``warpnoise`` itself is the package's ``__init__``). A box may import its own
#: layer and any layer below.
LAYERS: list[tuple[str, list[str]]] = [
    # Drawn in two rows: the first eight import only among themselves.
    ("core", ["_interrupt", "backends", "rng", "flow", "field", "polygon", "stats", "io",
              "kernels", "methods", "warper", "warpnoise", "latent", "report", "estimate", "viz"]),
    ("streaming", ["stream", "pipeline"]),
    ("applications", ["editing", "integrations", "motion", "batch", "studio", "diagnostics"]),
    ("compatibility", ["diffusion"]),
    ("command line", ["cli"]),
]
LAYER_OF = {box: i for i, (_, boxes) in enumerate(LAYERS) for box in boxes}


class Import(NamedTuple):
    """One import of a warpnoise module by a warpnoise file."""

    path: Path  # the importing file, from the folder above ``src``
    line: int
    source: str  # the importing module, dotted
    target: str  # the imported warpnoise module, dotted
    name: str | None  # the name taken from ``target`` (``from target import name``), if any
    text: str  # the statement as written


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package, dotted name -> file."""
    return {module_name(p, src): p for p in sorted((src / "warpnoise").rglob("*.py"))}


def box(module: str) -> str:
    """The box of a dotted module: its subpackage or top-level module (``warpnoise``: the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(src: Path = SRC) -> list[Import]:
    """Every import of a warpnoise module in the package, at any depth (function-local and
    ``TYPE_CHECKING`` ones included), relative imports resolved. ``from pkg import sub`` where
    ``sub`` is a module imports ``pkg.sub``. Imports by ``importlib`` at run time are not seen."""
    mods = modules(src)
    found = []
    for source, path in mods.items():
        text, rel = path.read_text(), path.relative_to(src.parent)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(ast.parse(text, str(path))):
            seg = ast.get_source_segment(text, node) if isinstance(
                node, ast.Import | ast.ImportFrom) else None
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "warpnoise":
                        found.append(Import(rel, node.lineno, source, alias.name, None, seg))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                if base.split(".")[0] != "warpnoise":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:
                        found.append(Import(rel, node.lineno, source, sub, None, seg))
                    else:
                        found.append(Import(rel, node.lineno, source, base, alias.name, seg))
    return found


def where(imp: Import) -> str:
    """``file:line: statement`` for a failure message."""
    return f"{imp.path}:{imp.line}: {' '.join(imp.text.split())}"


def edges(imps: list[Import]) -> dict[tuple[str, str], list[Import]]:
    """The imports between distinct boxes, (importing box, imported box) -> imports."""
    out: dict[tuple[str, str], list[Import]] = {}
    for imp in imps:
        a, b = box(imp.source), box(imp.target)
        if a != b:
            out.setdefault((a, b), []).append(imp)
    return out


def in_cycles(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges that lie on a cycle: ``(a, b)`` where ``b`` leads back to ``a``."""
    succ: dict[str, set[str]] = {}
    for a, b in pairs:
        succ.setdefault(a, set()).add(b)

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in succ.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    return {(a, b) for a, b in pairs if a in reaches(b)}


def _rows() -> list[tuple[int, list[str]]]:
    """Drawing rows bottom first, (layer, boxes); a layer of more than 8 boxes takes two rows,
    its first boxes (the lower ones: ``LAYERS`` lists them so) below."""
    rows = []
    for i, (_, boxes) in enumerate(LAYERS):
        half = (len(boxes) + 1) // 2 if len(boxes) > 8 else len(boxes)
        rows += [(i, boxes[:half])] + ([(i, boxes[half:])] if boxes[half:] else [])
    return rows


def main(out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    lines: dict[str, int] = {}
    for name, path in modules().items():
        lines[box(name)] = lines.get(box(name), 0) + len(path.read_text().splitlines())
    links = edges(imports())
    cyclic = in_cycles(set(links))
    rows = _rows()
    width, bw, bh = 14.0, 1.45, 0.5
    top, bottom = 1.15 * (len(rows) - 1) + 0.45, -0.45
    fig = plt.figure(figsize=(width, 0.8 * (top - bottom) + 0.4), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1 - 0.4 / fig.get_figheight()))
    ax.set(xlim=(-1.4, width), ylim=(bottom, top))
    ax.axis("off")
    rect, centre = {}, {}
    for r, (layer, boxes) in enumerate(rows):
        y = 1.15 * r
        first = r == 0 or rows[r - 1][0] != layer
        if first:
            n = sum(1 for lay, _ in rows if lay == layer)
            ax.add_patch(plt.Rectangle((-1.35, y - 0.42), width + 1.3, 1.15 * n - 0.31,
                                       color="#f2f2f2" if layer % 2 else "#e6eef7", zorder=0))
            ax.text(-1.25, y - 0.3, LAYERS[layer][0], fontsize=11, weight="bold", va="bottom")
        step = (width - 0.4) / len(boxes)
        for k, name in enumerate(boxes):
            x = 0.2 + step * (k + 0.5)
            label = name if name == "warpnoise" else name + ("/" if (
                SRC / "warpnoise" / name).is_dir() else ".py")
            rect[name] = FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh, zorder=3,
                                        boxstyle="round,pad=0.02", fc="white", ec="#333")
            centre[name] = (x, y)
            ax.add_patch(rect[name])
            root = "package root, " if name == "warpnoise" else ""
            ax.text(x, y + 0.06, label if not root else "__init__.py", zorder=4,
                    ha="center", fontsize=10, weight="bold")
            ax.text(x, y - 0.16, f"{root}{lines.get(name, 0)} lines", ha="center", fontsize=8,
                    color="#555", zorder=4)
    for (a, b), imps in sorted(links.items()):
        up = LAYER_OF[b] > LAYER_OF[a]
        colour = "#d62728" if up else "#ff7f0e" if (a, b) in cyclic else "#7f7f7f"
        # Within a row an arc 0.4 above the boxes (a cycle's two arrows share it: two heads).
        dx = centre[b][0] - centre[a][0]
        rad = -0.8 / dx if centre[a][1] == centre[b][1] else 0.06
        ax.add_patch(FancyArrowPatch(
            centre[a], centre[b], patchA=rect[a], patchB=rect[b], arrowstyle="-|>",
            mutation_scale=9, color=colour, lw=0.6 + 0.4 * min(len(imps), 5) ** 0.5,
            alpha=0.9 if colour != "#7f7f7f" else 0.45, zorder=5 if up else 2,
            connectionstyle=f"arc3,rad={rad}"))
    ups = sum(LAYER_OF[b] > LAYER_OF[a] for a, b in links)
    fig.suptitle(f"warpnoise: {len(lines)} boxes, {len(links)} links (importer -> imported); "
                 f"grey: down or sideways, red: up a layer ({ups}), orange: on a cycle "
                 f"({len(cyclic)})",
                 fontsize=11, y=0.99)
    fig.savefig(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/layout.png")
