"""Numbers in the prose come from committed files: every ARI value (a 0.xxx number) that README.md or a docs page
quotes in a paragraph naming a result under ``bench/results/`` appears in that file (or in a file of that folder).

A result is named by its path (``bench/results/precision.md``, ``bench/results/table1_cpu/``) or, as the results
page does, by its bare name in backticks (`` `precision.md` ``) where ``bench/results/`` holds it. A quoted value
matches a number of the file that rounds to it (0.7652 in the file is quoted as 0.765).

A paragraph is a block between blank lines or one list item; fenced code is left out. A table also counts as part of
the paragraphs right before and after it, its captions.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.helpers import REPO

RESULTS = REPO / "bench" / "results"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
TEXT_SUFFIXES = (".md", ".csv", ".json", ".txt", ".yaml")

FENCE = re.compile(r"^[ ]*```.*?^[ ]*```[ ]*$", re.M | re.S)
BLANK_LINE = re.compile(r"\n[ \t]*\n")
LIST_ITEM = re.compile(r"\n(?=[ ]*(?:[-*]|\d+\.)[ ])")
RESULT_PATH = re.compile(r"bench/results/[\w.\-/]*")
BARE_NAME = re.compile(r"`([\w.\-]+(?:\.md|/))`")
ARI = re.compile(r"(?<![\w.])0\.\d{3}(?!\d)")
FILE_NUMBER = re.compile(r"(?<![\w.])\d+\.\d{3,}")


def paragraphs(text: str) -> list[str]:
    """The page's paragraphs: blocks between blank lines, split into list items, without fenced code."""
    blocks = BLANK_LINE.split(FENCE.sub("", text))
    return [item for block in blocks for item in LIST_ITEM.split(block) if item.strip()]


def cited_results(paragraph: str, results: Path = RESULTS) -> set[Path]:
    """The entries of ``results`` that the paragraph names, by path or by bare name."""
    named = {match.removeprefix("bench/results/").rstrip(".,;:)") for match in RESULT_PATH.findall(paragraph)}
    named |= {name for name in BARE_NAME.findall(paragraph) if (results / name).exists()}
    return {results / name.rstrip("/") for name in named}


def is_table(paragraph: str) -> bool:
    return all(line.lstrip().startswith("|") for line in paragraph.strip().splitlines())


def citations(paragraphs: list[str], results: Path = RESULTS) -> list[set[Path]]:
    """What each paragraph cites; a table also what the paragraphs around it cite."""
    own = [cited_results(paragraph, results) for paragraph in paragraphs]
    return [
        own[i].union(*own[max(i - 1, 0) : i + 2]) if is_table(paragraph) else own[i]
        for i, paragraph in enumerate(paragraphs)
    ]


def result_files(entry: Path) -> list[Path]:
    """The text files of a named result: the file, or every text file in the folder."""
    if entry.is_dir():
        return sorted(path for path in entry.rglob("*") if path.is_file() and path.suffix in TEXT_SUFFIXES)
    return [entry] if entry.is_file() else []


def rounded_values(text: str) -> set[str]:
    """Every number of ``text`` with three or more decimals, rounded to three both ways a writer may round."""
    values = set()
    for number in FILE_NUMBER.findall(text):
        for rounding in (ROUND_HALF_UP, ROUND_HALF_EVEN):
            values.add(str(Decimal(number).quantize(Decimal("0.001"), rounding=rounding)))
    return values


def unsupported_quotes(page: Path, results: Path = RESULTS) -> list[str]:
    """'page: value (files) in "paragraph..."' for every ARI value a paragraph quotes that its results lack."""
    problems = []
    found = paragraphs(page.read_text())
    for paragraph, cited_entries in zip(found, citations(found, results), strict=True):
        entries = sorted(cited_entries)
        quoted = ARI.findall(paragraph)
        if not entries or not quoted:
            continue
        files = [path for entry in entries for path in result_files(entry)]
        if not files:
            names = ", ".join(str(entry) for entry in entries)
            problems.append(f"{page.name}: names {names}, which holds no text file")
            continue
        known = rounded_values("\n".join(path.read_text(errors="replace") for path in files))
        cited = ", ".join(str(entry.relative_to(results.parent.parent)) for entry in entries)
        start = " ".join(paragraph.split())[:100]
        problems += [f"{page.name}: {value} ({cited}) in {start!r}" for value in quoted if value not in known]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_quoted_ari_values_appear_in_the_results_they_cite(page: Path) -> None:
    problems = unsupported_quotes(page)
    assert not problems, "ARI values quoted beside a result that does not hold them:\n" + "\n".join(problems)


def test_the_check_finds_quotes_and_catches_a_wrong_one(tmp_path: Path) -> None:
    checked = [p for page in PAGES for p in paragraphs(page.read_text()) if cited_results(p) and ARI.search(p)]
    assert checked, "no paragraph quotes an ARI value beside a result: the extraction is broken"
    results = tmp_path / "bench" / "results"
    (results / "sweep").mkdir(parents=True)
    (results / "quality.md").write_text("| ae | 0.7652 |\n")
    (results / "sweep" / "table.md").write_text("| kanizsa | 0.512 ± 0.020 |\n")
    page = tmp_path / "page.md"
    page.write_text(
        "The AE reaches 0.765 (`quality.md`), not 0.777.\n\n"
        "- Kanizsa: 0.512 ± 0.020 (`bench/results/sweep/`).\n"
        "- Closure: 0.600 (`bench/results/sweep/`).\n\n"
        "| dataset | ARI |\n|---|---|\n| kanizsa | 0.512 |\n| closure | 0.613 |\n\n"
        "(`bench/results/sweep/table.md`)\n\n"
        "```text\n0.999 bench/results/quality.md\n```\n"
    )
    problems = unsupported_quotes(page, results)
    assert [problem.split(" (")[0] for problem in problems] == ["page.md: 0.777", "page.md: 0.600", "page.md: 0.613"]
