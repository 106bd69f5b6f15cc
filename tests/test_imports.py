"""Every module of the package imports, no two of its modules import each other (even lazily), and
each layer of the package imports only the layers below it.

Imports under ``if TYPE_CHECKING:`` are annotations only, never executed, and are not edges."""
from __future__ import annotations

import ast
import graphlib
import importlib
from pathlib import Path

import pytest

import rnnpool_lite

PACKAGE = Path(rnnpool_lite.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports anywhere (top level or inside a function)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parent = package[:len(package) - node.level + 1] if node.level else []  # relative imports
            base = ".".join([*parent, *([node.module] if node.module else [])])
            # ``from a.b import c`` imports module ``a.b.c`` when there is one, else names of ``a.b``
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                todo.extend(child.orelse)
            else:
                todo.append(child)
    return nodes


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    return {name: _imports(path) - {name} for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_import_cycle_between_the_packages_modules() -> None:
    graph = import_graph()
    assert graph["rnnpool_lite.accounting.comparison"] >= {"rnnpool_lite.models.registry",
                                                            "rnnpool_lite.accounting.profiler"}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")
    assert set(order) == set(MODULES)


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = import_graph()
    graph["rnnpool_lite.accounting.profiler"].add("rnnpool_lite.accounting.comparison")  # the old shim
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


#: The package's layers, lowest first: a module may import its own subpackage and any lower layer.
LAYERS: list[set[str]] = [
    {"validate", "paper", "paper_tables", "choices", "roles", "stats"},  # leaves: checks, the paper's figures, ...
    {"op"},                                               # the operator
    {"models"},                                           # the paper's networks
    {"accounting", "data", "train", "detection", "m4"},  # what is done with them (no imports between them)
    {"repro"},                                            # book tooling
    {"__init__"},                                         # the package's front door
]


def _layer_of(module: str) -> tuple[int, str]:
    part = module.split(".")[1] if "." in module else "__init__"
    top = part.removesuffix(".py")
    for rank, layer in enumerate(LAYERS):
        if top in layer:
            return rank, top
    raise AssertionError(f"{module}: its top-level name {top!r} is in no layer of LAYERS; add it")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go sideways or up the layers."""
    bad = []
    for module, deps in graph.items():
        rank, top = _layer_of(module)
        for dep in deps:
            dep_rank, dep_top = _layer_of(dep)
            if dep_top != top and dep_rank >= rank:
                bad.append(f"{module} -> {dep}")
    return sorted(bad)


def test_layers_import_only_lower_layers() -> None:
    assert layer_violations(import_graph()) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    graph = import_graph()
    graph["rnnpool_lite.op.layer"].add("rnnpool_lite.models.registry")
    graph["rnnpool_lite.m4.quantize"].add("rnnpool_lite.train.fit")
    assert layer_violations(graph) == ["rnnpool_lite.m4.quantize -> rnnpool_lite.train.fit",
                                       "rnnpool_lite.op.layer -> rnnpool_lite.models.registry"]
