"""The package's layers hold: imports point down or sideways, private names stay in their
module, no cycle between packages. The import parse and the layers are those of
``scripts/draw_layout.py`` (which draws them to docs/layout.png), loaded from its file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "draw_layout.py"
_spec = importlib.util.spec_from_file_location("draw_layout", _SCRIPT)
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)

#: ``(importing module, imported module, private name)`` -> why it must cross modules. Keep it
#: empty: a name another module needs is public (drop the underscore, or move it down).
ALLOWED_PRIVATE: dict[tuple[str, str, str], str] = {}

IMPORTS = layout.imports()


def _failures(found: list[str], what: str) -> str:
    found = list(dict.fromkeys(found))  # one line per statement, not per name it imports
    return f"{len(found)} {what}:\n" + "\n".join(found)


def test_parse_resolves_relative_local_and_absolute_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "warpnoise"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n\n\ndef f():\n    from .sub.c import _x, y\n")
    (pkg / "b.py").write_text("import os\nimport warpnoise.a\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\nfrom ..sub import c\n")
    (pkg / "sub" / "c.py").write_text("if True:\n    from ..b import z\n")
    got = {(i.source, i.line, i.target, i.name) for i in layout.imports(tmp_path / "src")}
    assert got == {
        ("warpnoise.a", 1, "warpnoise.b", None),
        ("warpnoise.a", 5, "warpnoise.sub.c", "_x"),
        ("warpnoise.a", 5, "warpnoise.sub.c", "y"),
        ("warpnoise.b", 2, "warpnoise.a", None),
        ("warpnoise.sub", 1, "warpnoise.a", None),
        ("warpnoise.sub", 2, "warpnoise.sub.c", None),
        ("warpnoise.sub.c", 2, "warpnoise.b", "z"),
    }


def test_every_package_has_a_layer() -> None:
    missing = sorted({layout.box(m) for m in layout.modules()} - set(layout.LAYER_OF))
    assert not missing, f"not in draw_layout.LAYERS (give each its layer): {missing}"


def test_no_module_imports_a_higher_layer() -> None:
    up = [
        f"{layout.where(i)}  ({layout.box(i.source)} -> {layout.box(i.target)}: "
        f"{layout.LAYERS[layout.LAYER_OF[layout.box(i.source)]][0]} imports "
        f"{layout.LAYERS[layout.LAYER_OF[layout.box(i.target)]][0]})"
        for i in IMPORTS
        if layout.LAYER_OF.get(layout.box(i.target), -1)
        > layout.LAYER_OF.get(layout.box(i.source), len(layout.LAYERS))
    ]
    assert not up, _failures(up, "imports of a higher layer")


def test_no_private_name_imported_from_another_module() -> None:
    # Private modules imported as a whole (``from . import _interrupt``, ``from ._common import
    # fail``) are fine: the name taken is public. Dunders (``__version__``) are not private.
    private = [
        f"{layout.where(i)}  ({i.name} is private to {i.target})"
        for i in IMPORTS
        if i.name
        and i.name.startswith("_")
        and not i.name.startswith("__")
        and i.target != i.source
        and (i.source, i.target, i.name) not in ALLOWED_PRIVATE
    ]
    assert not private, _failures(private, "private names imported from another module")


def test_no_import_cycle_between_packages() -> None:
    links = layout.edges(IMPORTS)
    cyclic = sorted(layout.in_cycles(set(links)))
    found = [f"{layout.where(i)}  ({a} -> {b})" for a, b in cyclic for i in links[a, b]]
    assert not cyclic, _failures(found, f"imports on cycles between packages {cyclic}")
