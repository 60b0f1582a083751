"""The design visible in the tree (docs/architecture.md): each room of vggnp/ imports only
from the rooms below it, no import cycle between modules, and each module and function
small enough to read top to bottom. Read from the source (ast), nothing is imported."""

import ast
import os

from helpers import ROOT

PACKAGE = os.path.join(ROOT, "vggnp")
# Low to high: a module may import from its own room and the rooms before it. The
# commands (vggnp/*.py and vggnp/cam/) stand above all.
ROOMS = ["nn", "fast", "files", "models", "methods", "stream", "viz", "commands"]
LEVEL = {"nn": 0, "fast": 1, "files": 2, "models": 3, "methods": 4, "stream": 5, "viz": 5,
         "commands": 6}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


def modules():
    """{dotted name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


def room(module):
    """The room of a dotted module name: vggnp.nn.layers -> nn; commands otherwise."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "commands"


def imports(module, path):
    """The vggnp modules that ``module`` imports (at any depth of its code), resolved."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vggnp")}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.level or target.startswith("vggnp"):
                names = [f"{target}.{a.name}" for a in node.names]
                found |= {n if n in MODULES else target for n in names}
    return {name for name in found if name in MODULES and name != module}


MODULES = modules()


def test_each_room_imports_only_from_the_rooms_below_it():
    wrong = []
    for module, path in MODULES.items():
        for target in imports(module, path):
            if room(target) != room(module) and LEVEL[room(target)] >= LEVEL[room(module)]:
                wrong.append(f"{module} ({room(module)}) imports {target} ({room(target)})")
    assert not wrong, "\n".join(wrong)


def test_the_rooms_are_there():
    assert {room(m) for m in MODULES} == set(ROOMS)
    assert "vggnp.nn.layers" in MODULES and "vggnp.fast.layers" in MODULES


def test_no_import_cycle():
    graph = {module: imports(module, path) for module, path in MODULES.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the design
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"
    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_lesson_imports_no_speed_code_and_no_files():
    """vggnp/nn/ is the textbook: NumPy and itself only."""
    for module, path in MODULES.items():
        if room(module) == "nn":
            assert {room(t) for t in imports(module, path)} <= {"nn"}, module


def test_modules_and_functions_are_small():
    long_modules, long_functions = [], []
    for module, path in MODULES.items():
        text = open(path, encoding="utf-8").read()
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{module}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module}.{node.name}: {length} lines")
    assert not long_modules and not long_functions, long_modules + long_functions


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The layer rule can fail: a lesson module importing the fast path is caught."""
    fake = tmp_path / "layers.py"
    fake.write_text("from ..fast.layers import FastConv2D\nfrom . import spec\n")
    found = imports("vggnp.nn.layers", str(fake))
    assert found == {"vggnp.fast.layers", "vggnp.nn.spec"}
    assert LEVEL[room("vggnp.fast.layers")] > LEVEL[room("vggnp.nn.layers")]
