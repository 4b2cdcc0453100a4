"""The package's layers import only downward (the layout is in docs/extending.md): what each layer may import,
and no import cycles. Read from the source (every ``import``, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

ORCHESTRATION = ("lns.train", "lns.segment", "lns.api")
# layer -> the parts of lns it must not import
FORBIDDEN = {
    "lns.errors": ("lns",),
    "lns.runs": ("lns",),  # except lns.errors and lns.runs itself (below)
    "lns.viz": ("lns",),
    "lns.metrics": ("lns",),
    "lns.data": ("lns.models", "lns.objectives", "lns.segmentation", "lns.training", "lns.report", "lns.sweeps"),
    "lns.models": ("lns.data", "lns.objectives", "lns.segmentation", "lns.training", "lns.report", "lns.sweeps"),
    "lns.objectives": ("lns.data", "lns.models", "lns.segmentation", "lns.training", "lns.report", "lns.sweeps"),
    "lns.segmentation": ("lns.training", "lns.report", "lns.sweeps", *ORCHESTRATION),
    "lns.training": ("lns.segmentation", "lns.report", "lns.sweeps", *ORCHESTRATION),
    "lns.report": ("lns.models", "lns.segmentation", "lns.training", "lns.sweeps", *ORCHESTRATION),
}
ALLOWED = {
    "lns.runs": ("lns.errors", "lns.runs"),
    "lns.viz": ("lns.viz",),
    "lns.metrics": ("lns.errors", "lns.metrics"),
}
# Segmentation at the end of training runs segment() itself; folder mode (a command-line mode) builds on it.
ORCHESTRATION_USERS = ("lns", "lns.sweeps.final_segmentation", "lns.cli", *ORCHESTRATION)
# The library's public modules: everything else of the library lives in a layer's package.
TOP_LEVEL = {"__init__", "api", "train", "segment", "errors"}


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((REPO / "lns").rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[_module(path)] = {name for name in found if name.split(".")[0] in ("lns", "data_gen")}
    return graph


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_every_layer_imports_only_the_layers_below_it() -> None:
    problems = []
    for module, imported in _imports().items():
        for name in imported:
            if name.startswith("data_gen"):
                problems.append(f"{module} imports {name}: lns never imports the generator")
            for layer, forbidden in FORBIDDEN.items():
                allowed = ALLOWED.get(layer, ())
                outside = _within(module, layer) and not any(_within(name, a) for a in allowed)
                if outside and any(_within(name, f) for f in forbidden):
                    problems.append(f"{module} imports {name}")
            if any(_within(name, o) for o in ORCHESTRATION) and not any(
                _within(module, u) for u in ORCHESTRATION_USERS
            ):
                problems.append(f"{module} imports the orchestration module {name}")
            if _within(name, "lns.cli") and not _within(module, "lns.cli"):
                problems.append(f"{module} imports {name}: the library never imports the command-line shell")
    assert not problems, "\n".join(sorted(problems))


def test_the_top_level_holds_only_the_public_modules() -> None:
    loose = {path.stem for path in (REPO / "lns").glob("*.py")} - TOP_LEVEL
    assert not loose, f"modules at the top of lns/ that belong in a layer's package: {sorted(loose)}"


def test_no_module_imports_itself_through_others() -> None:
    graph = _imports()
    known = {name: {dep for dep in deps if dep in graph and dep != name} for name, deps in graph.items()}
    # a package's __init__ importing its own modules is no cycle of concern: only module-to-module edges
    cycles = []

    def visit(node: str, path: list[str], seen: set[str]) -> None:
        for dep in known[node]:
            if dep == path[0]:
                cycles.append(" -> ".join([*path, dep]))
            elif dep not in seen and dep > path[0]:
                seen.add(dep)
                visit(dep, [*path, dep], seen)

    for start in sorted(known):
        visit(start, [start], {start})
    assert not cycles, "\n".join(cycles)


# Where a composed config (DictConfig) may travel: the shell, the two orchestrators and the sweeps (Hydra's callbacks
# and the segmentation jobs of a training run), and the few modules whose work is a config itself: storing it,
# instantiating its _target_ entries, reading a run's recorded settings. Every other layer takes typed settings.
CONFIG_READERS = (
    "lns.cli",
    "lns.train",
    "lns.segment",
    "lns.sweeps",
    "lns.runs.hydra_record",
    "lns.runs.loggers",
    "lns.models.configured",
    "lns.segmentation.source",
)


def test_only_the_shell_and_the_orchestrators_take_a_composed_config() -> None:
    readers = {_module(path) for path in (REPO / "lns").rglob("*.py") if "DictConfig" in path.read_text()}
    strays = sorted(name for name in readers if not any(_within(name, allowed) for allowed in CONFIG_READERS))
    assert not strays, f"modules that take a composed config instead of typed settings: {strays}"
