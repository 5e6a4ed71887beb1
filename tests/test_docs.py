"""The docs/ pages: their Python blocks run, their links resolve, the code paths they name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED = [ROOT / "README.md", ROOT / "reports" / "README.md", *DOCS]

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_CODE_PATH = re.compile(r"`((?:[\w.*<>-]+/)*[\w*<>-]+\.py)`")


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _strip_code(text):
    """The text without fenced blocks (links inside code are not links)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def test_docs_exist_and_are_indexed():
    names = {p.name for p in DOCS}
    expected = {"README.md", "conventions.md", "physics.md", "algorithms.md", "paper.md", "architecture.md"}
    assert expected <= names, f"missing docs pages: {sorted(expected - names)}"
    index = (ROOT / "docs" / "README.md").read_text()
    for name in sorted(names - {"README.md"}):
        assert f"({name})" in index, f"docs/README.md does not link {name}"


BLOCKS = [(p, i, code) for p in DOCS for i, code in enumerate(_python_blocks(p))]


@pytest.mark.parametrize("path,i,code", BLOCKS, ids=[f"{p.name}-{i}" for p, i, _ in BLOCKS])
def test_python_block_runs(path, i, code):
    """Each block runs on its own, as written (they assert what they claim)."""
    exec(compile(code, f"{path.name} block {i}", "exec"), {"__name__": f"docs_{path.stem}_{i}"})


def test_there_are_python_blocks():
    assert len(BLOCKS) >= 3


def _links(path):
    text = _strip_code(path.read_text())
    return _LINK.findall(text) + _IMAGE.findall(text)


@pytest.mark.parametrize("path", LINKED, ids=[str(p.relative_to(ROOT)) for p in LINKED])
def test_links_resolve(path):
    bad = []
    for target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # web addresses and in-page anchors
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            bad.append(target)
    assert not bad, f"{path.relative_to(ROOT)} links to files that do not exist: {bad}"


def _code_path_exists(name):
    if "<" in name:  # a placeholder such as refiners/<name>.py
        return True
    if "/" not in name:  # a bare file name, e.g. the second of "solvers/_cg.py, _gmres.py"
        return any((ROOT / "gravbench").rglob(name))
    return any(any(base.glob(name)) for base in (ROOT, ROOT / "gravbench"))


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_code_paths_named_in_docs_exist(path):
    """A ``foo/bar.py`` named in the docs exists (relative to the repository or to gravbench/)."""
    names = sorted(set(_CODE_PATH.findall(path.read_text())))
    missing = [n for n in names if not _code_path_exists(n)]
    assert not missing, f"docs/{path.name} names files that do not exist: {missing}"


def test_no_docstring_cites_files_outside_the_repository():
    """Docstrings cite docs/ pages, not the PHYSICS.md / DESIGN.md that a clone never sees."""
    bad = []
    for p in sorted((ROOT / "gravbench").rglob("*.py")):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\b(PHYSICS|DESIGN)\.md", line):
                bad.append(f"{p.relative_to(ROOT)}:{n}")
    assert not bad, f"cite docs/*.md instead: {bad}"
