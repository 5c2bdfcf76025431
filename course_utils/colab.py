"""Colab support: the badge and the set-up cell at the top of every notebook.

The repository's address lives here, in ``REPOSITORY``, and only here. After a fork,
set it and run ``python -m course_utils.colab`` to rewrite the badge and the set-up
cell of every notebook.

The set-up cell must run before ``course_utils`` can be imported on Colab, so it is
plain code (``setup_cell_source``). On Colab it clones the repository (code, data and
checkpoints), installs ``course_utils`` with ``--no-deps`` (so Colab's own torch,
torchvision and ipywidgets are never reinstalled) and points ``COURSE_ROOT`` at the
clone. Anywhere else it does nothing and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPOSITORY = "ae-to-cvae/course"  # GitHub owner/name of the course
BRANCH = "main"
NOTEBOOKS = "notebooks"
SETUP_MARKER = "# Colab set-up"


def badge_markdown(notebook_name: str, repository: str = REPOSITORY) -> str:
    url = f"https://colab.research.google.com/github/{repository}/blob/{BRANCH}/{NOTEBOOKS}/{notebook_name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell_source(repository: str = REPOSITORY) -> str:
    """The code of every notebook's first code cell."""
    return f'''{SETUP_MARKER}: on Colab, fetch the course (code, data, checkpoints) and install
# course_utils without touching Colab's torch, torchvision or ipywidgets. Elsewhere: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    REPO_URL = os.environ.get("COURSE_REPO_URL", "https://github.com/{repository}")
    COURSE_DIR = os.environ.get("COURSE_COLAB_DIR", "/content/course")
    if not os.path.isdir(COURSE_DIR):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, COURSE_DIR], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", COURSE_DIR], check=True)
    os.environ["COURSE_ROOT"] = COURSE_DIR
    print(f"Colab: course_utils installed from {{REPO_URL}}; data and checkpoints in {{COURSE_DIR}}")
else:
    print("Not on Colab: nothing to install here (bash course.sh lab sets up a local machine).")'''


def rewrite_notebooks(folder: Path, repository: str = REPOSITORY) -> list[Path]:
    """Put the current badge and set-up cell into every notebook in ``folder``."""
    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        new_badge = badge_markdown(path.name, repository)
        before = json.dumps(cells)
        for cell in cells:
            text = "".join(cell["source"])
            # Assign only real changes: nbformat stores sources as lists of lines, and
            # replacing an identical list by a string would count as a change.
            if cell["cell_type"] == "markdown" and "colab-badge.svg" in text:
                lines = [new_badge if "colab-badge.svg" in line else line for line in text.split("\n")]
                if "\n".join(lines) != text:
                    cell["source"] = "\n".join(lines)
            if cell["cell_type"] == "code" and text.startswith(SETUP_MARKER):
                if text != setup_cell_source(repository):
                    cell["source"] = setup_cell_source(repository)
        if json.dumps(cells) != before:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m course_utils.colab",
                                     description="Rewrite every notebook's Colab badge and set-up cell.")
    parser.add_argument("--repository", default=REPOSITORY, help=f"GitHub owner/name (default {REPOSITORY})")
    parser.add_argument("--notebooks", type=Path, default=Path(NOTEBOOKS))
    args = parser.parse_args(argv)
    if args.repository.count("/") != 1:
        parser.error(f"--repository must look like owner/name, got {args.repository!r}")
    for path in rewrite_notebooks(args.notebooks, args.repository):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
