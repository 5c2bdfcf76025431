"""The package's layout: layers import downwards only, no cycles, one model interface, light imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"

# Lowest layer first. A module may import only from modules of a lower rank (or its own rank's
# package, for lessons and solutions, which import nothing of each other).
LAYERS = [
    "settings", "data", "losses", "checks", "models", "checkpoints", "training", "metrics", "latent", "recipes",
    "plotting", "explorers", "lessons", "solutions", "colab", "cli", "__main__",
]
MODEL_CLASSES = {"AutoEncoder", "VAE", "CVAE", "DigitClassifier", "LatentModel"}


def _layer(module: str) -> str:
    """``course_utils.lessons.nb01_compression`` -> ``lessons``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every course_utils module ``name`` imports, at top level or inside a function."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("course_utils"):
                submodules = {f"{target}.{a.name}" for a in node.names} & set(_modules())
                found |= submodules or {target}  # "from . import settings" imports the module, not the package
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("course_utils")}
    found.discard(name)
    return found


def test_layers_import_only_downwards_and_there_is_no_cycle():
    modules = _modules()
    graph = {name: _imports(name, path) & set(modules) for name, path in modules.items()}
    wrong = []
    for name, targets in graph.items():
        if name == "course_utils" or _layer(name) == "__init__":
            continue
        here = LAYERS.index(_layer(name))
        for target in targets:
            layer = _layer(target)
            if target == "course_utils" or layer == "__init__":
                if _layer(name) != "solutions":  # a revealed solution imports course_utils as a student does
                    wrong.append(f"{name} imports the package itself")
            elif LAYERS.index(layer) > here:
                wrong.append(f"{name} ({_layer(name)}) imports the higher layer {target}")
            elif layer == "lessons" == _layer(name) and target.split(".")[-1][:4] != name.split(".")[-1][:4]:
                wrong.append(f"{name} imports another notebook's lesson, {target}")
    assert not wrong, "\n".join(wrong)

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(node):], node]))
        if node in done:
            return
        for nxt in graph.get(node, ()):
            if nxt != "course_utils":
                visit(nxt, [*stack, node], done)
        done.add(node)

    done: set[str] = set()
    for name in graph:
        visit(name, [], done)


def test_no_code_outside_models_asks_which_model_class_it_holds():
    offenders = []
    for name, path in _modules().items():
        if name == "course_utils.models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("isinstance", "issubclass"):
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                if names & MODEL_CLASSES:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_long(module):
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= 520, f"{module} has {lines} lines: split it by job"


@pytest.mark.parametrize("code", ["import course_utils", "import course_utils.cli"])
def test_importing_the_core_loads_neither_pyplot_nor_ipywidgets(code):
    probe = f"{code}; import sys; print(sorted(m for m in ('matplotlib.pyplot', 'ipywidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_command_line_help_loads_neither_pyplot_nor_ipywidgets():
    probe = ("import sys, runpy\nsys.argv = ['course_utils', '--help']\ntry:\n    runpy.run_module('course_utils', "
             "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('LOADED', sorted(m for m in "
             "('matplotlib.pyplot', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out
    assert "lessons/nb01" in out or "recipes" in out  # the help describes the layout


def test_drawing_modules_load_on_first_use():
    probe = "import course_utils as cu, sys; cu.plotting; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
