"""Every ``alias.name`` a notebook takes from a lesson module exists there.

A function moved between lesson modules (notebook 01's figures went to ``nb01_figures``) must
not leave a notebook calling the old place: that fails only when the cell runs, minutes in.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
IMPORT = re.compile(r"^from course_utils\.lessons import (\w+) as (\w+)", re.M)


def _code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_every_lesson_name_a_notebook_uses_exists(path: Path) -> None:
    code = _code(path)
    aliases = dict((alias, module) for module, alias in IMPORT.findall(code))
    missing = []
    for alias, module_name in aliases.items():
        module = importlib.import_module(f"course_utils.lessons.{module_name}")
        for name in sorted(set(re.findall(rf"\b{alias}\.(\w+)", code))):
            if not hasattr(module, name):
                missing.append(f"{alias}.{name} ({module_name})")
    assert not missing, f"{path.name} uses names its lesson modules lack: {missing}"
