#!/bin/sh
# Kept for old habits: the course's entry point is course.py (standard-library Python, any OS).
#   python3 course.py lab | test [pytest args] | execute | classroom-test | hub-test
exec "${PYTHON:-python3}" "$(dirname "$0")/course.py" "$@"
