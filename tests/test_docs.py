"""The documentation: generated tables in sync with docs/results, README size, local links."""

from __future__ import annotations

import importlib.util
import re
import sys
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 12 * 1024  # bytes
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def tables() -> ModuleType:
    """docs/tables.py, imported by path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("spikeforge_docs_tables", ROOT / "docs/tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    text = FENCE.sub("", path.read_text())
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
        slug = "".join(
            c for c in plain if c in " -_" or unicodedata.category(c)[0] in "LN"
        ).replace(" ", "-")
        candidate, n = slug, 1
        while candidate in found:
            candidate, n = f"{slug}-{n}", n + 1
        found.add(candidate)
    return found


def test_generated_tables_are_up_to_date(tables: ModuleType) -> None:
    stale = tables.update(check=True)
    assert not stale, f"stale generated blocks (run `make docs`): {stale}"


def test_every_table_is_placed_and_every_block_known(tables: ModuleType) -> None:
    used = tables.used_tables()
    assert used <= set(tables.TABLES), f"unknown blocks: {sorted(used - set(tables.TABLES))}"
    assert set(tables.TABLES) <= used, f"tables placed nowhere: {sorted(set(tables.TABLES) - used)}"


def test_check_reports_a_stale_block(tables: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- table: imp-patterns -->\n| old |\n<!-- /table -->\nmore\n")
    assert tables.update(check=True, files=[page]) == [f"{page}: imp-patterns"]
    assert "| old |" in page.read_text()  # --check writes nothing
    assert tables.update(files=[page]) == [f"{page}: imp-patterns"]
    assert tables.update(check=True, files=[page]) == []
    text = page.read_text()
    assert text.startswith("text\n<!-- table: imp-patterns -->\n| setting (w: 9 pts")
    assert text.endswith("<!-- /table -->\nmore\n")
    page.write_text("<!-- table: no-such-table -->\n<!-- /table -->\n")
    with pytest.raises(KeyError, match="no-such-table"):
        tables.update(check=True, files=[page])


def test_main_check_exit_status(tables: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert tables.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_readme_is_short() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT}"


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text()[:400]
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_resolve(path: Path) -> None:
    text = FENCE.sub("", path.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(target)
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"
