"""MkDocs hook: the site's home page is the repository's README.md.

``docs/index.md`` holds only a placeholder; at build time it is replaced by the README with its
links rewritten for the site (``docs/x.md`` becomes ``x.md``; a link to a file outside ``docs/``
becomes the file's path in code, since the site does not contain it). So the README and the home
page cannot drift apart, and the strict build checks the README's links to the docs too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_OUTSIDE = re.compile(r"\[([^\]]+)\]\((?!docs/|https?://|#)([^)\s]+)\)")


def readme_for_site(text: str) -> str:
    """The README's Markdown with links that resolve from ``docs/index.md``."""
    text = _OUTSIDE.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", text)
    return text.replace("](docs/", "](")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config.config_file_path).parent / "README.md"
    return readme_for_site(readme.read_text(encoding="utf-8"))
