"""The project's layout, read from the source with `ast` (nothing is imported, so no side effects).

Apps depend in one direction: sites <- collector <- dashboard, and security is imported by the
others but imports none of them; so is analytics (the analytics store), by collector and
dashboard. The `fathom` package is the project's configuration (settings, URLs, entry points): it may import any app. An app may use a `fathom` module only if that module
leads back to no app. Tests and migrations are left out of the direction rules (a test may check a
hit end to end, from the collector to the dashboard), not out of the cycle check.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "node_modules", "staticfiles", "__pycache__"}

# app -> the apps it may import
ALLOWED = {
    "security": set(),
    "analytics": set(),
    "sites": {"security"},
    "collector": {"sites", "security", "analytics"},
    "dashboard": {"sites", "collector", "security", "analytics"},
}
PROJECT = "fathom"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported project module
    line: int
    module_level: bool  # runs when the module is imported (not inside a function, not TYPE_CHECKING)
    urlconf: bool = False  # include("app.urls"): no import statement, Django imports it by name


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def project_modules() -> dict[str, Path]:
    modules = {}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIP_DIRS and not name.startswith(".")]
        relative = Path(folder).relative_to(ROOT)
        if relative.parts and not (ROOT / relative.parts[0] / "__init__.py").exists():
            subfolders.clear()  # a folder of scripts, not a package
            continue
        for file in files:
            if file.endswith(".py"):
                modules[module_name(Path(folder) / file)] = Path(folder) / file
    return modules


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(modules: dict[str, Path], name: str, source: str) -> list[str]:
    """`a.b.c` -> the project modules importing it runs: `a`, `a.b`, `a.b.c` (those that exist).

    A package the source module is inside is left out when it is only on the way: it is always
    imported before its own modules, so `from .base import X` in `a.model` does not depend on `a`."""
    parts = name.split(".")
    found = []
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix not in modules or prefix == source:
            continue
        if i < len(parts) and source.startswith(prefix + "."):
            continue
        found.append(prefix)
    return found


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


MODULE, FUNCTION, TYPE_CHECKING = "module", "function", "type checking"


def walk(node: ast.AST, where: str = MODULE) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement, with where it runs: when the module is imported (a class body
    runs then too), when a function is called, or never (`if TYPE_CHECKING:`)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, where
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from walk(child, FUNCTION if where == MODULE else where)
        elif isinstance(child, ast.If) and is_type_checking(child.test):
            for statement in child.body:
                yield from walk(ast.Module(body=[statement], type_ignores=[]), TYPE_CHECKING)
            for statement in child.orelse:
                yield from walk(ast.Module(body=[statement], type_ignores=[]), where)
        else:
            yield from walk(child, where)


def included_urlconfs(tree: ast.AST) -> Iterator[ast.Call]:
    """`include("app.urls")`: Django imports that module when it first resolves a URL."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "include"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node


def imports_of(modules: dict[str, Path], source: str) -> Iterator[Import]:
    path = modules[source]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = source if is_package(path) else source.rpartition(".")[0]
    for node, where in walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` runs `a`, and `a.b` too when b is a module
            names = [base] + [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        for name in names:
            for target in resolve(modules, name, source):
                yield Import(source, target, node.lineno, where == MODULE)
    for call in included_urlconfs(tree):
        for target in resolve(modules, call.args[0].value, source):
            yield Import(source, target, call.lineno, False, urlconf=True)


@functools.cache
def all_imports() -> list[Import]:
    modules = project_modules()
    return [found for source in sorted(modules) for found in imports_of(modules, source)]


def top(module: str) -> str:
    return module.split(".")[0]


TEST_SUPPORT = "testing"  # the helpers every app's tests share (testing.py, not in the Lambda zips)


def is_test_or_migration(module: str) -> bool:
    parts = module.split(".")
    return "tests" in parts or "migrations" in parts or parts[-1] == "conftest" or module == TEST_SUPPORT


def is_test_module_or_conftest(module: str) -> bool:
    """What pytest loads by itself: a test module (test_*.py) or a conftest.py."""
    last = module.split(".")[-1]
    return last.startswith("test_") or last == "conftest"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def graph(imports: list[Import], *, module_level_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for found in imports:
        if found.module_level or not module_level_only:
            edges.setdefault(found.source, set()).add(found.target)
    return edges


def reaches_an_app(module: str, edges: dict[str, set[str]]) -> bool:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if top(current) in ALLOWED:
            return True
        todo.extend(edges.get(current, ()))
    return False


def test_the_layout_reader_sees_every_app_and_known_imports():
    imports = all_imports()
    assert set(ALLOWED) | {PROJECT} <= {top(found.source) for found in imports}
    edges = {(found.source, found.target, found.module_level) for found in imports}
    # one import of each kind it must see, so that the checks below cannot pass by seeing nothing
    assert ("collector.models", "sites.models", True) in edges  # from ... import, across apps
    assert ("sites.apps", "sites.signals", False) in edges  # inside ready()
    assert ("fathom.urls", "dashboard.site_urls", False) in edges  # include("...")
    modules = project_modules()
    relative = [
        (name, node.lineno)
        for name, path in modules.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    resolved = {(found.source, found.line) for found in imports}
    assert [where for where in relative if where not in resolved] == []


def test_apps_import_each_other_in_one_direction_only():
    imports = all_imports()
    edges = graph(imports, module_level_only=False)
    wrong = set()
    for found in imports:
        source_app, target_app = top(found.source), top(found.target)
        if source_app not in ALLOWED or is_test_or_migration(found.source) or source_app == target_app:
            continue
        if target_app == PROJECT:
            if reaches_an_app(found.target, edges):
                wrong.add(f"{found.source}:{found.line} imports {found.target}, which leads back to an app")
        elif target_app in ALLOWED and target_app not in ALLOWED[source_app]:
            wrong.add(f"{found.source}:{found.line} imports {target_app}")
    assert sorted(wrong) == []


def test_nothing_but_dashboard_itself_imports_dashboard():
    """The read side is the top of the graph: not even the project package imports it (its URLs
    are included by name). bench/ may: it measures the dashboard's queries."""
    wrong = {
        f"{found.source}:{found.line}"
        for found in all_imports()
        if top(found.target) == "dashboard"
        and top(found.source) not in {"dashboard", "bench"}
        and not is_test_or_migration(found.source)
        and not found.urlconf
    }
    assert sorted(wrong) == []


def test_no_import_cycle_between_modules_at_module_level():
    assert cycles(graph(all_imports(), module_level_only=True)) == []


def test_no_import_cycle_between_modules_even_through_imports_inside_functions():
    assert cycles(graph(all_imports(), module_level_only=False)) == []


def test_imports_inside_functions_say_why():
    """An import inside a function hides a dependency from the top of its module: it stays only
    where it must (Django's app loading, a heavy library, an optional tool), with a comment on its
    line or the line above. bench/ scripts are left out: they set Django up in main(), then import."""
    unexplained = []
    for name, path in project_modules().items():
        if top(name) == "bench" or is_test_or_migration(name):
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        comments = {
            token.start[0]
            for token in tokenize.generate_tokens(io.StringIO(text).readline)
            if token.type == tokenize.COMMENT
        }
        inside = {id(node) for node, where in walk(tree) if where == FUNCTION}
        for parent in ast.walk(tree):
            for field in ("body", "orelse", "finalbody"):
                statements = getattr(parent, field, None)
                if not isinstance(statements, list):
                    continue
                run: list[ast.stmt] = []  # consecutive imports share one comment
                for statement in [*statements, None]:
                    if statement is not None and id(statement) in inside:
                        run.append(statement)
                        continue
                    if run and not comments & set(range(run[0].lineno - 1, run[-1].end_lineno + 1)):
                        unexplained.append(f"{name}:{run[0].lineno}")
                    run = []
    assert unexplained == []


def test_no_module_imports_a_test_module_or_a_conftest():
    """Tests share helpers through testing.py and fixtures through conftest.py files, which pytest
    finds by itself. A test module imported by another couples the two (its fixtures re-bound or
    shadowed there, a change to one test file changing another's tests), and `from conftest import`
    only works for the root conftest, because pytest puts the rootdir on sys.path."""
    modules = project_modules()
    assert {"conftest", TEST_SUPPORT} <= set(modules)  # what the check below must see
    assert sum(is_test_module_or_conftest(name) for name in modules) > 10
    wrong = {
        f"{found.source}:{found.line} imports {found.target}"
        for found in all_imports()
        if is_test_module_or_conftest(found.target)
    }
    assert sorted(wrong) == []
