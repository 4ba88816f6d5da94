"""MkDocs hook: the site's home page is the repository's README.md.

``docs/index.md`` holds only a placeholder; at build time it is replaced by the README with its
links rewritten for the site (``docs/x.md`` becomes ``x.md``; a link to a file outside ``docs/``
becomes the file's path in code, since the site does not contain it). So the README and the home
page cannot drift apart, and the strict build checks the README's links to the docs too.

The docstrings cross-reference in Sphinx's style (``:func:`name```), which mkdocstrings leaves as
text beside the code span: the API pages show the code span alone (and ``~a.b.c`` as ``c``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_OUTSIDE = re.compile(r"\[([^\]]+)\]\((?!docs/|https?://|#)([^)\s]+)\)")
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")


def readme_for_site(text: str) -> str:
    """The README's Markdown with links that resolve from ``docs/index.md``."""
    text = _OUTSIDE.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", text)
    return text.replace("](docs/", "](")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config.config_file_path).parent / "README.md"
    return readme_for_site(readme.read_text(encoding="utf-8"))


def strip_sphinx_roles(html: str) -> str:
    """``:func:<code>x</code>`` as ``<code>x</code>``; ``~a.b.c`` keeps its last part."""
    def code(m: re.Match[str]) -> str:
        name = m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)
        return f"<code>{name}</code>"

    return _ROLE.sub(code, html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return strip_sphinx_roles(html)
