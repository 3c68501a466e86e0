"""The package's structure, as the developer guide describes it (docs/dev/layout.rst).

These tests read the source as text; they fail when a module is added without a line in the
layout page, when two modules import each other (directly or through others), or when a
module grows past about 600 lines.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastdeconv"
LAYOUT = ROOT / "docs" / "dev" / "layout.rst"
MAX_LINES = 620

SOURCES = sorted(p for p in PACKAGE.rglob("*") if p.suffix in {".py", ".pyx", ".pxd", ".h"}
                 and "__pycache__" not in p.parts and p.name != "_build_info.py")
PY_MODULES = [p for p in SOURCES if p.suffix == ".py"]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path):
    """Every fastdeconv module that ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = {module_name(p) for p in PY_MODULES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from . import x" names submodules; "from .m import f" names module m
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def test_every_module_is_listed_in_the_layout_page():
    layout = LAYOUT.read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in SOURCES
               if p.stem not in layout and p.name not in layout]
    assert missing == []


def test_every_subpackage_is_installed_by_pyproject():
    """A subpackage missing from ``[tool.setuptools] packages`` works in a checkout and in an
    editable install, but not in a wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
                 ["tool"]["setuptools"]["packages"])
    packages = {module_name(p) for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts}
    assert packages - listed == set()


def test_the_package_has_no_import_cycle():
    graph = {module_name(p): imported_modules(p) for p in PY_MODULES}
    # A package imports its submodules when it is imported; a submodule importing names from
    # its own package's __init__ is the usual pattern, not a cycle of modules' code.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_about_600_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
