"""The shape of the package, checked: pure modules stay pure, imports have no cycles.

And nothing in the repository reads from outside it (the fixtures are copies).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "replicate_async"
REPO = PACKAGE.parent

#: modules that decide and never do I/O: the protocol package, and the public data modules
PURE = [
    *sorted((PACKAGE / "protocol").glob("*.py")),
    PACKAGE / "errors.py",
    PACKAGE / "types.py",
    PACKAGE / "webhooks.py",
]
#: what a pure module may not import
IO_LIBRARIES = {"aiohttp", "aiofiles", "asyncio", "socket", "ssl", "selectors", "subprocess"}
#: the package's own modules that do I/O (or hold a session)
IO_MODULES = {
    "client",
    "_session",
    "_transport",
    "_create",
    "_watch",
    "files",
    "streaming",
    "fanout",
    "pagination",
    "limiter",
    "resources",
    "testing",
    "cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (top level and in functions)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # "from . import x" may import the module x
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _type_checking_only(path: Path) -> set[str]:
    """Names imported only under ``if TYPE_CHECKING:`` (types, not runtime dependencies)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for inner in node.body:
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    names.add(inner.module.lstrip("."))
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: module_name(p))
def test_pure_modules_import_no_io(path: Path) -> None:
    imported = imports_of(path)
    libraries = {name.split(".")[0] for name in imported} & IO_LIBRARIES
    assert not libraries, f"{module_name(path)} imports {libraries}"
    own = {
        name.split(".")[1]
        for name in imported
        if name.startswith("replicate_async.") and name.count(".") >= 1
    }
    assert not own & IO_MODULES, f"{module_name(path)} imports {own & IO_MODULES}"


def _graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        skip = _type_checking_only(path)
        deps = set()
        for imported in imports_of(path):
            if imported in modules and imported != name and imported.split(".")[-1] not in skip:
                deps.add(imported)
        graph[name] = deps
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node) :], node]
            # A package's __init__ importing its own submodules is how packages work.
            if not all(step.startswith(cycle[0] + ".") for step in cycle[1:-1]):
                pytest.fail("import cycle: " + " -> ".join(cycle))
            return
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, [*stack, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_nothing_reads_outside_the_repository() -> None:
    outside = "../" + "shared"  # spelled in two parts so that this file does not match itself
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("replicate_async", "tests", "benchmarks", "examples", ".ci")
        for path in (REPO / folder).rglob("*")
        if path.is_file()
        and path.suffix in (".py", "")
        and "fixtures" not in path.parts
        and outside in path.read_text(errors="replace")
    ]
    assert offenders == []


def test_the_emulator_shares_no_protocol_code_with_the_client() -> None:
    # Client and emulator each implement the protocol on their own, so that each checks
    # the other: a shared bug would pass every end-to-end test.
    # async-with plumbing, and the registry of this process's own authorities: no protocol
    allowed = {
        "replicate_async._aiter",
        "replicate_async._trust",
        "replicate_async._trust.add_authority",
    }
    for path in (PACKAGE / "testing").glob("*.py"):
        borrowed = {
            name
            for name in imports_of(path)
            if name.startswith("replicate_async.")
            and not name.startswith("replicate_async.testing")
            and name != "replicate_async._aiter.AsyncClosing"
        }
        assert borrowed <= allowed, f"{module_name(path)} uses the client's {borrowed - allowed}"
