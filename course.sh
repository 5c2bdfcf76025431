#!/usr/bin/env bash
# One entry point for the course. Each command first makes sure .venv holds what
# requirements.txt pins (it installs only when requirements.txt or pyproject.toml changed).
#
#   bash course.sh lab       install, then open the course in JupyterLab
#   bash course.sh test      install, then lint and run every test and notebook (fast mode)
#   bash course.sh execute   re-run all notebooks in full mode and save their outputs
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv

ensure_env() {
    local want stamp=$VENV/.course-installed
    want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import course_utils" 2>/dev/null; then
        echo "course.sh: $VENV is up to date"
        return
    fi
    echo "course.sh: installing into $VENV (first run: a few minutes, torch is large)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    echo "$want" > "$stamp"
}

ensure_browser() {
    # The real-browser test drives Debian's Chromium through Playwright.
    if command -v chromium >/dev/null 2>&1; then return; fi
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "course.sh: installing chromium for the browser test"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "course.sh: no chromium (and no root apt-get): the browser test will be skipped"
    fi
}

case "${1:-}" in
    lab)
        ensure_env
        exec "$VENV/bin/jupyter" lab notebooks/
        ;;
    test)
        ensure_env
        ensure_browser
        export COURSE_FAST=1 COURSE_SOLUTIONS=1
        "$VENV/bin/ruff" check .
        "$VENV/bin/python" -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
            --nbval-cell-timeout=900 -q tests notebooks "${@:2}"
        ;;
    execute)
        ensure_env
        export COURSE_FAST=0
        for nb in notebooks/*.ipynb; do
            echo "course.sh: executing $nb (full mode)"
            "$VENV/bin/jupyter" nbconvert --to notebook --execute --inplace \
                --ExecutePreprocessor.timeout=3600 "$nb"
        done
        ;;
    *)
        echo "usage: bash course.sh lab | test | execute" >&2
        exit 2
        ;;
esac
