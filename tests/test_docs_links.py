"""Every relative link in README.md and docs/ reaches a file, and every #anchor a heading.

The README points newcomers into docs/ pages that point back and at each other; a moved section
or a renamed heading would otherwise leave a dead link that nothing notices.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://", "mailto:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a bash block is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to '-'."""
    found: set[str] = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in found:  # GitHub numbers repeated headings: x, x-1, x-2
                n += 1
                candidate = f"{slug}-{n}"
            found.add(candidate)
    return found


def local_links(page: Path) -> list[str]:
    """The link targets of a page that are not external URLs (code spans stripped first)."""
    targets = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if not target.startswith(EXTERNAL):
                targets.append(target)
    return targets


def test_pages_are_found() -> None:
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in local_links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT.parent)}")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading '#{fragment}' in {resolved.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    """The checks above can fail: a missing file and a missing heading are both seen."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[a](missing.md) [b](#nowhere) [c](#title)\n```\n# not a heading\n```\n"
    )
    assert local_links(page) == ["missing.md", "#nowhere", "#title"]
    assert anchors(page) == {"title"}
