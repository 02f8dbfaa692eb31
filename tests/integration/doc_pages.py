"""The documentation the tests read: README.md and every page of the MkDocs site, and their code blocks.

``docs/_incoming/`` holds notes from other branches that are not part of the site yet (``mkdocs.yml`` excludes
it): they are left out here too, so a note is checked once it is folded into a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
INCOMING = DOCS / "_incoming"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One fenced code block: the page it is on (relative to the repository root), its first line, its code."""

    page: str
    line: int
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def doc_pages() -> list[Path]:
    """README.md and every Markdown page under docs/, less docs/_incoming/."""
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [page for page in pages if page.is_file() and INCOMING not in page.parents]


def code_blocks(*languages: str) -> list[Block]:
    """The fenced blocks in ``languages`` of every page, in page order."""
    blocks = []
    for page in doc_pages():
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group(1) in languages:
                line = text.count("\n", 0, match.start()) + 1
                blocks.append(Block(str(page.relative_to(ROOT)), line, match.group(1), match.group(2)))
    return blocks
