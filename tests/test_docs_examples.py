"""Every ```python block in README.md and docs/*.md runs as written.

Each block runs on its own in a fresh interpreter (``sys.executable``) whose working folder is
an empty temporary folder, with the repository on ``PYTHONPATH`` (so ``import googlenet`` works
as it does from a clone) and ``MINIGRAD_DATA`` pointing into that folder (nothing is read from
or written to the user's cache). A block must therefore hold its own imports and data.

Conventions the docs follow (and this test enforces):

* A block whose first line is ``# needs: <what>`` (``# needs: a GPU``, ``# needs: the network``)
  is skipped, with ``<what>`` as the reason. No other block is skipped.
* A ```text block that follows a ```python block with nothing but blank lines between them is
  that block's **expected output**: the block's stdout must match it line by line (trailing
  spaces ignored). Inside an expected line, ``...`` matches any text (a time, a path); a line
  that is only ``...`` matches any number of lines. So a figure the docs quote as printed by a
  block is checked on every run and cannot go stale.
* Fragments that only illustrate (a loop body, a CLI session) use another fence (```text,
  ```console, ```bash) and are not run.

The blocks run on the CPU; under ``--device cuda`` this file is skipped (the CPU run covers it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
TIMEOUT_S = 120


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    expected: str | None  # the ```text block right after it, if any

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _fences(text: str) -> list[tuple[int, int, str, str]]:
    """(start line index, end line index, language, body) of every fenced block."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].lstrip())
        if m is None:
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[:3]):
            j += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : j])
        out.append((i, j, lang, body))
        i = j + 1
    return out


def collect_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    fences = _fences(text)
    blocks = []
    for k, (start, end, lang, body) in enumerate(fences):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(fences):
            nstart, _, nlang, nbody = fences[k + 1]
            between = lines[end + 1 : nstart]
            if nlang == "text" and all(not s.strip() for s in between):
                expected = nbody
        blocks.append(Block(path, start + 1, body + "\n", expected))
    return blocks


BLOCKS = [b for p in DOC_FILES for b in collect_blocks(p)]


def _needs(block: Block) -> str | None:
    first = block.code.lstrip("\n").split("\n", 1)[0].strip()
    m = re.match(r"#\s*needs:\s*(.+)", first)
    return m.group(1) if m else None


def output_matches(expected: str, actual: str) -> bool:
    """``actual`` matches ``expected``, where ``...`` is a wildcard (see the module docstring)."""
    exp = [s.rstrip() for s in expected.strip("\n").split("\n")]
    act = [s.rstrip() for s in actual.strip("\n").split("\n")]

    def line_re(s: str) -> re.Pattern[str]:
        return re.compile("^" + ".*".join(re.escape(p) for p in s.split("...")) + "$")

    def match(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i].strip() == "...":
            return any(match(i + 1, jj) for jj in range(j, len(act) + 1))
        return j < len(act) and line_re(exp[i]).match(act[j]) is not None and match(i + 1, j + 1)

    return match(0, 0)


def test_output_matching_rules() -> None:
    assert output_matches("a 1.0\nb ... s", "a 1.0\nb 3.2 s\n")
    assert output_matches("head\n...\ntail", "head\nx\ny\ntail")
    assert output_matches("head\n...\ntail", "head\ntail")
    assert not output_matches("a 1.0", "a 1.1")
    assert not output_matches("a\nb", "a")


def test_every_doc_file_has_its_blocks_collected() -> None:
    assert len(BLOCKS) >= 10, [b.id for b in BLOCKS]
    # a ```python fence that the regex misses would silently go untested
    for path in DOC_FILES:
        opened = sum(1 for s in path.read_text().split("\n") if s.strip() == "```python")
        assert opened == sum(1 for b in BLOCKS if b.path == path), path


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--device") != "cpu":
        pytest.skip("the docs' blocks run on the CPU; the CPU run of the suite covers them")
    reason = _needs(block)
    if reason is not None:
        pytest.skip(f"needs {reason}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIGRAD_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(ROOT),
        MINIGRAD_DATA=str(tmp_path / "data"),
        MPLBACKEND="Agg",
        PYTHONWARNINGS="error",
        MINIGRAD_NUM_THREADS="2",
    )
    script = tmp_path / "block.py"
    script.write_text(block.code)
    proc = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"{block.id} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n{block.code}"
    )
    if block.expected is not None:
        assert output_matches(block.expected, proc.stdout), (
            f"{block.id}: printed\n{proc.stdout}\nbut the docs say\n{block.expected}"
        )


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    inside = {i for start, end, _, _ in _fences(text) for i in range(start, end + 1)}
    return {
        _slug(m.group(1))
        for i, line in enumerate(text.split("\n"))
        if i not in inside and (m := re.match(r"#+ (.+)", line))
    }


@pytest.mark.parametrize("path", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_every_relative_link_resolves(path: Path) -> None:
    """Links between the pages (and into the repository) point at files and headings that exist."""
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"
