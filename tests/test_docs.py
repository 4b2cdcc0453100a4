"""The documentation site stays true: its Python examples run, the tests it names exist, and the configuration
reference covers every config group, option and key in ``conf/``.

``mkdocs build --strict`` (``make docs``, part of ``make test``) checks links and API references; this module
checks what the build cannot.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import CONF, REPO

DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
CONFIG_REFERENCE = DOCS / "configuration.md"

# A fenced ```python block, also indented inside a list item; the closing fence has the opening's indentation.
PYTHON_BLOCK = re.compile(r"^(?P<indent>[ ]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
# pymdownx.snippets inclusion of a repository file: --8<-- "docs/examples/x.py"
SNIPPET = re.compile(r'^[ ]*--8<--[ ]+"(?P<path>[^"]+)"[ ]*$', re.M)
# A test named as <file in tests/>::<test>, e.g.
# test_faults.py::test_two_trainings_on_one_run_directory_exactly_one_runs
TEST_REFERENCE = re.compile(r"\b(?P<file>test_\w+\.py)::(?P<test>test_\w+)")


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks in order, dedented, with snippet inclusions replaced by the files they name."""
    blocks = []
    for match in PYTHON_BLOCK.finditer(page.read_text()):
        code = textwrap.dedent(match["code"])
        blocks.append(SNIPPET.sub(lambda m: (REPO / m["path"]).read_text(), code))
    return blocks


PAGES_WITH_EXAMPLES = [page for page in PAGES if python_blocks(page)]


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda page: str(page.relative_to(DOCS)))
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocks of one page run in order in one namespace, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    for number, code in enumerate(python_blocks(page), start=1):
        exec(compile(code, f"{page.relative_to(REPO)} (python block {number})", "exec"), namespace)


def test_the_docs_have_python_examples() -> None:
    assert PAGES_WITH_EXAMPLES, "no ```python block found under docs/: the extraction is broken"


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            names.add(node.name)
    return names


def test_every_test_named_in_the_docs_exists() -> None:
    named = {(m["file"], m["test"], page.name) for page in PAGES for m in TEST_REFERENCE.finditer(page.read_text())}
    assert named, "the docs name no test: the pattern is broken"
    missing = []
    for file, test, page in sorted(named):
        path = REPO / "tests" / file
        if not path.is_file() or test not in _defined_tests(path):
            missing.append(f"{page}: {file}::{test}")
    assert not missing, "tests named in docs/ that do not exist:\n" + "\n".join(missing)


# ----------------------------------------------------------------------------------------------- config reference


def _leaf_keys(node: object, prefix: str = "") -> Iterator[str]:
    """Dotted paths of a config's settable leaves: no defaults lists, no _target_, no method plumbing."""
    if not isinstance(node, dict):
        yield prefix
        return
    for key, value in node.items():
        if key in ("defaults", "_target_", "name", "method") or (isinstance(value, str) and "${.." in value):
            continue
        yield from _leaf_keys(value, f"{prefix}.{key}" if prefix else str(key))


def _section(text: str, heading: str) -> str:
    """The text under a ``### `group``` heading, up to the next heading of level 2 or 3."""
    start = text.index(heading) + len(heading)
    following = [m.start() for m in re.finditer(r"^#{2,3} ", text[start:], re.M)]
    return text[start : start + following[0]] if following else text[start:]


def _documented(key: str, group: str, section: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return any(form in section for form in (f"`{group}.{key}`", f"`{key}`", f"`{last}`", f"{group}.{key}"))


GLOBAL_GROUPS = {"experiment", "launcher", "segment", "sweep"}  # `# @package _global_`: they set other groups' keys


def _groups() -> list[Path]:
    return sorted(path for path in CONF.iterdir() if path.is_dir())


def test_the_configuration_reference_covers_every_group_option_and_key() -> None:
    text = CONFIG_REFERENCE.read_text()
    problems = []
    for group in _groups():
        heading = f"### `{group.name}`"
        if heading not in text:
            problems.append(f"no section {heading}")
            continue
        section = _section(text, heading)
        for option in sorted(group.glob("*.yaml")):
            if option.stem.startswith("_"):
                continue
            if f"`{option.stem}`" not in section:
                problems.append(f"{group.name}: option `{option.stem}` is not in its section")
            content = yaml.safe_load(option.read_text()) or {}
            if group.name in GLOBAL_GROUPS:
                launcher = content.get("hydra", {}).get("launcher", {})
                keys = [f"hydra.launcher.{key}" for key in _leaf_keys(launcher)]
                settings = {k: v for k, v in (content.get("segment") or {}).items() if k != "jobs"}
                keys += [f"segment.{key}" for key in _leaf_keys(settings)] if group.name == "segment" else []
                owner = ""
            else:
                keys, owner = list(_leaf_keys(content)), group.name
            for key in keys:
                if not _documented(key, owner, section) and not _documented(key, owner, text):
                    problems.append(f"{group.name}/{option.name}: key `{key}` is not documented")
    assert not problems, "docs/configuration.md misses:\n" + "\n".join(problems)


@pytest.mark.parametrize("root", ["train.yaml", "segment.yaml", "generate.yaml"])
def test_the_configuration_reference_covers_every_key_of_the_root_configs(root: str) -> None:
    text = CONFIG_REFERENCE.read_text()
    content = yaml.safe_load((CONF / root).read_text())
    content.pop("hydra", None)
    missing = [key for key in _leaf_keys(content) if f"`{key}`" not in text]
    assert not missing, f"docs/configuration.md misses keys of conf/{root}: {missing}"
