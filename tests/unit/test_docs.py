"""The documentation: README.md stays a short front page that keeps its two commands, and the docs/ site builds.

``mkdocs build --strict`` fails on any warning mkdocs.yml turns on: a broken link or anchor, a page left out of the
navigation. The README's links into docs/ are checked here against the built site, anchors included. (The Python
and shell blocks of every page are run by tests/integration/test_doc_snippets.py and test_readme_cli.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import vecembed

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: The README's two commands: CI and users run them verbatim, so they may not change by accident.
MAIN_JOB = ("python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
            "pip install -e '.[all]' && vecembed demo")
TESTS = ("python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
         "pip install -e '.[all,dev]' && python -m pytest")
#: The most lines the README may have: a front page, with everything else in docs/.
README_MAX_LINES = 300


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs site built with ``mkdocs build --strict`` (skips without mkdocs: it comes with the dev extra)."""
    pytest.importorskip("mkdocs", reason="pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_the_readme_is_a_short_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_readme_keeps_its_two_commands_verbatim() -> None:
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)
    assert f"{MAIN_JOB}\n" in blocks
    assert f"{TESTS}\n" in blocks


def test_the_site_builds_strictly_and_leaves_incoming_out(site: Path) -> None:
    pages = {page.stem for page in DOCS.glob("*.md")} - {"index"}
    assert pages, "docs/ has no pages"
    for page in pages:  # every page is built (mkdocs' default directory URLs: page/index.html)
        assert (site / page / "index.html").is_file(), page
    assert (site / "index.html").is_file()
    # docs/_incoming/ holds notes from other branches, excluded by mkdocs.yml until folded into a page
    assert not list(site.rglob("*_incoming*"))
    assert "_incoming" not in (site / "sitemap.xml").read_text(encoding="utf-8")


def test_the_readme_links_resolve(site: Path) -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local), "the README links nowhere into docs/"
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        if not (ROOT / path).is_file():
            broken.append(link)
            continue
        if anchor and path.startswith("docs/"):
            # the anchor as mkdocs renders it: an id on the built page
            page = Path(path).relative_to("docs").with_suffix("")
            html = site / ("index.html" if page.name == "index" else page / "index.html")
            if f'id="{anchor}"' not in html.read_text(encoding="utf-8"):
                broken.append(link)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_the_reference_names_every_public_name() -> None:
    reference = (DOCS / "reference.md").read_text(encoding="utf-8")
    missing = [name for name in vecembed.__all__ if not re.search(rf"`{re.escape(name)}\b", reference)]
    assert not missing, f"docs/reference.md does not describe these names of vecembed.__all__: {missing}"
