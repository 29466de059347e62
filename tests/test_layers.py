"""The package's architecture, enforced: one-way layers, no cycles, a lean start-up, an honest `__all__`.

Every import is read from the source (an AST walk, so imports inside functions and under TYPE_CHECKING
count too). A module may import from its own layer or any layer below, never above, and no group of
modules may import each other in a circle. The shipped emulator is its own world: it imports nothing of
the client but the upstream facts (and the errors beneath them).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import image_gen_local

PACKAGE = Path(image_gen_local.__file__).resolve().parent
NAME = "image_gen_local"

# Lowest first. A module not listed here fails the test: every new module must take its place.
LAYERS: list[tuple[str, set[str]]] = [
    ("errors, upstream facts, the version", {"errors", "upstream", "version"}),
    (
        "pure helpers",
        {
            "naming",
            "config",
            "geometry",
            "failures",
            "retry",
            "limiter",
            "throttle",
            "progress",
            "files",
            "images",
            "manifest",
            "containers",
            "provenance",
            "history",
        },
    ),
    ("talking to servers", {"protocol", "wire", "transport", "answers", "servers"}),
    ("the request model", {"request"}),
    ("engine", {"engine", "delivery"}),
    ("many pictures", {"jobs", "batch", "batchfile"}),
    ("api, doctor, demo, gallery", {"api", "doctor", "demo", "gallery"}),
    ("front doors", {"cli", "__init__", "__main__", "mcp_server", "mcp_tools"}),
]
EMULATOR = "emulator"
EMULATOR_MAY_IMPORT = {"upstream", "errors"}


def module_names() -> list[str]:
    """Every module of the package, dotted below the package (`cli.batch`, `emulator.rules`, `engine`)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def source_of(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(module: str) -> set[str]:
    """The package modules `module` imports, anywhere in its source."""
    tree = ast.parse(source_of(module).read_text(encoding="utf-8"))
    package = module.split(".") if source_of(module).name == "__init__.py" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME + "."):
                    found.add(alias.name.removeprefix(NAME + "."))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith(NAME):
                    continue
                base = (node.module or "").split(".")[1:]
            else:
                base = package[: len(package) - (node.level - 1)] + (node.module or "").split(".")
                base = [part for part in base if part]
            for alias in node.names:
                candidate = ".".join([*base, alias.name])
                found.add(candidate if candidate in MODULES else ".".join(base))
    return {name for name in found if name and name != module}


MODULES = module_names()


def top(module: str) -> str:
    return module.split(".")[0]


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        if top(module) in members:
            return index
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {Path(__file__).name}")


def client_modules() -> list[str]:
    return [m for m in MODULES if top(m) != EMULATOR]


@pytest.mark.parametrize("module", client_modules())
def test_client_modules_import_only_their_own_layer_or_lower(module):
    mine = layer_of(module)
    for imported in sorted(imports_of(module)):
        if top(imported) == EMULATOR:
            assert top(module) in {"demo", "cli"}, f"{module} imports the emulator; only demo and cli may"
            continue
        assert layer_of(imported) <= mine, (
            f"{module} ({LAYERS[mine][0]}) imports {imported} ({LAYERS[layer_of(imported)][0]}): upward"
        )


@pytest.mark.parametrize("module", [m for m in MODULES if top(m) == EMULATOR])
def test_the_emulator_imports_only_the_upstream_facts(module):
    for imported in imports_of(module):
        assert top(imported) == EMULATOR or imported in EMULATOR_MAY_IMPORT, f"{module} imports {imported}"


def test_no_modules_import_each_other_in_a_circle():
    graph = {module: imports_of(module) & set(MODULES) for module in MODULES}
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_test_sees_an_upward_import_and_a_cycle(tmp_path):
    """The checks above would fail: an engine importing the batch is caught, and so is a two-module loop."""
    assert layer_of("engine") < layer_of("batch")
    cyclic = [c for c in strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) if len(c) > 1]
    assert cyclic == [{"a", "b"}]
    assert "request" in imports_of("engine") and "retry" in imports_of("engine")
    assert "batch" in imports_of("cli.generate")  # an import inside a function counts


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteration-free enough for a package of a few dozen modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in graph.get(node, ()):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_importing_the_command_line_loads_neither_openai_nor_pillow():
    code = (
        "import sys, image_gen_local.cli; "
        "print(sorted(m for m in ('openai', 'PIL', 'httpx', 'tqdm', 'mcp', 'starlette', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_all_is_exactly_what_the_package_serves():
    exported = set(image_gen_local._EXPORTS)
    assert set(image_gen_local.__all__) == exported | {"__version__"}
    assert len(image_gen_local.__all__) == len(set(image_gen_local.__all__))
    for name in image_gen_local.__all__:
        assert getattr(image_gen_local, name) is not None
    with pytest.raises(AttributeError):
        image_gen_local.NoSuchThing  # noqa: B018


def test_type_checkers_see_every_public_name():
    """The TYPE_CHECKING imports in __init__ name the same modules and names as the lazy table."""
    tree = ast.parse(source_of("__init__").read_text(encoding="utf-8"))
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                for alias in statement.names:
                    seen[alias.name] = str(statement.module)
    assert seen == image_gen_local._EXPORTS
    assert (PACKAGE / "py.typed").is_file()


def test_no_module_is_much_longer_than_400_lines():
    long = {m: n for m in MODULES if (n := len(source_of(m).read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, f"split these modules: {long}"
