"""docs/robustness.md holds one table per kind of trial (bad inputs, faults, attacks, load). The
test that runs the trials checks its table against what it observed, so the document cannot drift
from the code: a changed outcome fails the test until the table is rewritten, which
``SOHOA_UPDATE_DOCS=1`` does."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Sequence

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def check_table(section: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Compare the table between ``<!-- table:SECTION -->`` and ``<!-- /table:SECTION -->`` in
    docs/robustness.md with ``rows``; rewrite it instead when SOHOA_UPDATE_DOCS=1."""
    begin, end = f"<!-- table:{section} -->", f"<!-- /table:{section} -->"
    text = DOC.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        pytest.fail(f"docs/robustness.md has no '{begin}' ... '{end}' block for this table", pytrace=False)
    head, rest = text.split(begin, 1)
    current, tail = rest.split(end, 1)
    wanted = "\n" + render(header, rows) + "\n"
    if current == wanted:
        return
    if os.environ.get("SOHOA_UPDATE_DOCS") == "1":
        DOC.write_text(head + begin + wanted + end + tail, encoding="utf-8")
        return
    diff = "\n".join(difflib.unified_diff(current.splitlines(), wanted.splitlines(), "docs", "observed", lineterm=""))
    pytest.fail(f"docs/robustness.md, table '{section}', differs from what the test observed "
                f"(rerun with SOHOA_UPDATE_DOCS=1 to rewrite it):\n{diff}", pytrace=False)
