"""Print the nbgitpuller link that gives each student of a hub their own copy of the course.

    python classroom/nbgitpuller_link.py https://hub.example.edu
    python classroom/nbgitpuller_link.py https://hub.example.edu 04 --repository owner/name --branch main

Opening the link logs the student in, clones the repository into ~/course the first time
(later: pulls new commits, never overwriting the student's own edits) and opens the notebook
in JupyterLab. The repository and branch default to ``REPOSITORY`` and ``BRANCH`` in
course_utils/colab.py (read as text: no course dependency is imported).
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_autoencoder_compression", "02_vae_reparameterization", "03_cvae_conditioning",
             "04_latent_traversal_widgets")


def course_setting(name: str) -> str:
    text = (REPO / "course_utils" / "colab.py").read_text()
    match = re.search(rf'^{name}\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise SystemExit(f"nbgitpuller_link: course_utils/colab.py has no {name} = \"...\" line.")
    return match.group(1)


def link(hub: str, repository: str, branch: str, notebook: str, targetpath: str = "course") -> str:
    query = urllib.parse.urlencode({
        "repo": f"https://github.com/{repository}",
        "branch": branch,
        "targetpath": targetpath,
        "urlpath": f"lab/tree/{targetpath}/notebooks/{notebook}.ipynb",
    })
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the nbgitpuller link for this course.")
    parser.add_argument("hub", help="the hub's address, e.g. https://hub.example.edu")
    parser.add_argument("notebook", nargs="?", default="01", help="the notebook to open (01 .. 04; default 01)")
    parser.add_argument("--repository", default=None, help="GitHub owner/name (default: REPOSITORY in colab.py)")
    parser.add_argument("--branch", default=None, help="default: BRANCH in colab.py")
    args = parser.parse_args(argv)
    hits = [nb for nb in NOTEBOOKS if nb.startswith(args.notebook)]
    if len(hits) != 1:
        parser.error(f"{args.notebook!r} names no single notebook; use one of {', '.join(NOTEBOOKS)}")
    print(link(args.hub, args.repository or course_setting("REPOSITORY"), args.branch or course_setting("BRANCH"),
               hits[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
