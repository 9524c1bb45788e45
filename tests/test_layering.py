"""The layering of docs/design.md section 1, checked on every import.

``engine <- training <- export <- bridge`` (an arrow points to the user):
engine imports nothing above it; training imports engine only; export
imports engine, and training only from the torch -> ONNX export
(``export.onnx``) and the ONNX-run supervised model (``export.learned``);
bridge imports engine and export, and reaches training only lazily (inside
a function) from the CLI's train and data commands and ``render --renderer
learned``. No package imports tests or bench, and no modules import each
other in a loop.

Every ``import`` and ``from ... import`` is read with ``ast``, those inside
functions included. Modules are found by walking the folders, so a module
that becomes a package (``plan.py`` -> ``plan/__init__.py`` + submodules)
is checked the same way.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "training", "export", "bridge")
#: What each package may import, among the project's own packages.
ALLOWED = {
    "engine": {"engine"},
    "training": {"engine", "training"},
    "export": {"engine", "export"},
    "bridge": {"engine", "export", "bridge"},
}
#: export modules that may import training (design.md: "and training for those two").
EXPORT_USES_TRAINING = {"editorbot.export.onnx", "editorbot.export.learned"}
#: bridge modules that may import training, inside functions only (design.md: "only lazily
#: from the CLI's train/data commands, `render --renderer learned` and `convert-checkpoint`").
BRIDGE_USES_TRAINING_LAZILY = {
    "editorbot.bridge.commands.train", "editorbot.bridge.commands.data", "editorbot.bridge.commands.render", "editorbot.bridge.commands.convert_checkpoint",
}
NEVER_IMPORTED = ("tests", "bench")


@dataclass(frozen=True)
class Import:
    """One import statement's target, as a module of the project where it is one."""

    source: str  # importing module, dotted
    target: str  # imported module (the longest dotted prefix that is a module of the project)
    line: int
    in_function: bool  # inside a def (runs when called, not at import)
    type_checking: bool  # under ``if TYPE_CHECKING:`` (never runs)

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.source}:{self.line} imports {self.target} ({where})"


def module_name(path: Path, root: Path) -> str:
    """``engine/plan/__init__.py`` -> ``editorbot.engine.plan``: the folders install under one package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["editorbot", *parts])


def package_of(module: str) -> str:
    """The layer a dotted module belongs to: ``editorbot.engine.plan`` -> ``engine``, ``bench.x`` -> ``bench``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "editorbot" and len(parts) > 1 else parts[0]


def project_modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the four packages, dotted name -> file."""
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a project module (or a never-imported top level)."""
    parts = name.split(".")
    if parts[0] in NEVER_IMPORTED:
        return name
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.imports: list[Import] = []
        self.depth = 0
        self.type_checking = 0

    def _add(self, name: str, line: int) -> None:
        target = _resolve(name, self.known)
        if target is not None:
            self.imports.append(Import(self.module, target, line, self.depth > 0, self.type_checking > 0))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.type_checking += 1
        for child in node.body:
            self.visit(child)
        self.type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: from the importing module's package
            package = self.module.split(".")
            if not self.is_package:
                package = package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        for alias in node.names:
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` the module mod
            full = f"{base}.{alias.name}"
            self._add(full if _resolve(full, self.known) == full else base, node.lineno)


def collect_imports(modules: dict[str, Path]) -> list[Import]:
    """Every import of a project module (or of tests/bench) made by ``modules``."""
    known = set(modules)
    found: list[Import] = []
    for name, path in modules.items():
        visitor = _Visitor(name, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found += visitor.imports
    return found


def layering_violations(imports: list[Import]) -> list[str]:
    """Each import that points against ``engine <- training <- export <- bridge`` (design.md section 1)."""
    bad = []
    for imp in imports:
        src, dst = package_of(imp.source), package_of(imp.target)
        if dst in NEVER_IMPORTED:
            bad.append(f"{imp}: packages never import {dst}")
        elif dst == "training" and src == "export" and imp.source in EXPORT_USES_TRAINING:
            continue
        elif dst == "training" and src == "bridge" and imp.source in BRIDGE_USES_TRAINING_LAZILY:
            if not imp.in_function:
                bad.append(f"{imp}: bridge reaches training only lazily, inside the command that needs it")
        elif dst not in ALLOWED[src]:
            bad.append(f"{imp}: {src} may import only {', '.join(sorted(ALLOWED[src]))}")
    return bad


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Groups of modules that import each other in a loop (strongly connected components, Tarjan).

    Function-level imports count: they are the lazy imports that held loops
    apart. Imports under ``if TYPE_CHECKING:`` never run and do not.
    """
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target != imp.source and not imp.type_checking:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return collect_imports(project_modules())


def test_the_walk_sees_every_package_and_lazy_import(imports: list[Import]) -> None:
    # A walk that missed function-level imports or a package would pass vacuously.
    assert {package_of(i.source) for i in imports} == set(PACKAGES)
    assert any(i.in_function for i in imports)
    assert any(package_of(i.source) == "bridge" and package_of(i.target) == "training" for i in imports)


def test_imports_follow_the_layering(imports: list[Import]) -> None:
    bad = layering_violations(imports)
    assert not bad, "imports against engine <- training <- export <- bridge:\n" + "\n".join(bad)


def test_no_import_cycles(imports: list[Import]) -> None:
    cycles = import_cycles(imports)
    detail = "\n".join(
        " <-> ".join(c) + ":\n  " + "\n  ".join(sorted({str(i) for i in imports if i.source in c and i.target in c}))
        for c in cycles
    )
    assert not cycles, "modules that import each other in a loop:\n" + detail


def test_the_checks_catch_a_bad_arrow_and_a_loop(tmp_path: Path) -> None:
    """The checks on a small tree: a package module, a relative import, a lazy loop, arrows both ways."""
    files = {
        "engine/__init__.py": "",
        "engine/plan/__init__.py": "from .model import EditPlan\n",
        "engine/plan/model.py": "import numpy\nEditPlan = object\n",
        "engine/render.py": "from editorbot.engine.plan import EditPlan\n\ndef f():\n    from editorbot.training import ppo\n",
        "training/__init__.py": "",
        "training/ppo.py": "from editorbot.engine import render\n\ndef g():\n    pass\n",
        "training/reward.py": "def r():\n    import editorbot.training.env\n",
        "training/env.py": "from . import reward\n",
        "export/__init__.py": "",
        "export/onnx.py": "from editorbot.training.ppo import g\n",
        "export/runtime.py": "import editorbot.training.env\n",
        "export/edit.py": "from editorbot.export import runtime\n\ndef e():\n    from editorbot.training.ppo import g\n",
        "bridge/__init__.py": "",
        "bridge/commands/__init__.py": "",
        "bridge/commands/train.py": "import editorbot.training.ppo\n\ndef h():\n    from editorbot.training import env\n",
        "bridge/cli.py": "import bench.edit\nfrom editorbot.export import onnx\n",
        # a loop only through ``if TYPE_CHECKING:`` never runs: not a cycle
        "bridge/job.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from editorbot.bridge.types import T\n",
        "bridge/types.py": "from editorbot.bridge import job\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = collect_imports(project_modules(tmp_path))
    edges = {(i.source, i.target, i.in_function) for i in found}
    assert ("editorbot.engine.plan", "editorbot.engine.plan.model", False) in edges  # relative import in a package
    assert ("editorbot.engine.render", "editorbot.engine.plan", False) in edges
    assert ("editorbot.training.env", "editorbot.training.reward", False) in edges  # from . import module
    assert ("editorbot.training.reward", "editorbot.training.env", True) in edges
    bad = layering_violations(found)
    assert sorted(b.split(":")[0] for b in bad) == [
        "editorbot.bridge.cli", "editorbot.bridge.commands.train", "editorbot.engine.render", "editorbot.export.edit", "editorbot.export.runtime"], bad
    cycles = import_cycles(found)
    assert sorted(cycles) == [["editorbot.engine.render", "editorbot.training.ppo"], ["editorbot.training.env", "editorbot.training.reward"]]
