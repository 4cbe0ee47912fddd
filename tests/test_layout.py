"""The package layout (legonn/README.md): each subpackage imports only the layers below it, no
import circles, no function-local imports of legonn outside the command layer (bin/), and the
speech tooling stays torch-free."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "legonn"
CORE = "core"  # legonn/*.py: errors, fileio, config, registry, version, cli
ALLOWED = {
    CORE: {CORE},
    "data": {CORE, "data"},
    "speech": {CORE, "speech"},
    "nn": {CORE, "data", "nn"},
    "modules": {CORE, "data", "nn", "modules"},
    "engine": {CORE, "data", "nn", "modules", "engine"},
    "bin": {CORE, "data", "speech", "nn", "modules", "engine", "bin"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else CORE


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def legonn_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported legonn module, imported at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if node.module == "legonn" else node.module for a in node.names]
        else:
            continue
        found += [(n, id(node) in top) for n in names if n == "legonn" or n.startswith("legonn.")]
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    here = layer(module_name(path))
    for target, _ in legonn_imports(path):
        if target == "legonn.version" or target == "legonn":
            continue
        assert layer(target) in ALLOWED[here], f"{module_name(path)} ({here}) imports {target} ({layer(target)})"


@pytest.mark.parametrize("path", [p for p in FILES if layer(module_name(p)) not in ("bin",) and p.name != "cli.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_local_legonn_imports(path):
    local = [t for t, top in legonn_imports(path) if not top]
    assert not local, f"{module_name(path)} imports {local} inside a function (a hidden import circle?)"


def test_no_import_circles():
    graph = {module_name(p): {t for t, _ in legonn_imports(p)} for p in FILES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            assert state.get(nxt) != 1, "import circle: " + " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_speech_tooling_is_torch_free():
    for path in sorted((PACKAGE / "speech").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "torch" or n.startswith("torch.") for n in names), f"{path.name} imports torch"


def test_no_module_shadows_the_standard_library():
    import sys

    for path in FILES:  # bin/ holds the subcommands, named after them (bin/inspect.py is `legonn inspect`)
        if layer(module_name(path)) == "bin":
            continue
        assert path.stem not in sys.stdlib_module_names or path.stem in {"__init__", "__main__"}, f"{path} shadows the stdlib"
