"""Exercises: a check for each student answer, and a solution revealed only on request.

In a notebook::

    from course_utils import solutions
    answer = ...                                # the student's work
    solutions.check("01.byte-ratio", answer)
    # solutions.reveal("01.byte-ratio")         # prints a worked solution

The registry and ``check`` / ``reveal`` are in ``registry``; each notebook's exercises
in ``nb01`` ... ``nb04`` (importing them registers them). A revealed solution is
printed as written, so each solver imports what it uses, as a student's cell would.
"""

from . import nb01, nb02, nb03, nb04  # noqa: F401  (importing registers the exercises)
from .registry import Exercise, check, exercise, get, keys, reveal, solutions_filled_in, unanswered

__all__ = ["Exercise", "check", "exercise", "get", "keys", "reveal", "solutions_filled_in", "unanswered"]
