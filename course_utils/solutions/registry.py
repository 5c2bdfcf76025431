"""The exercise registry: a check for each student answer, and a solution revealed only on request.

In a notebook::

    from course_utils import solutions
    answer = ...                                # the student's work
    solutions.check("01.compression-ratio", answer)
    # solutions.reveal("01.compression-ratio")  # prints a worked solution

``check`` prints a verdict and never stops "Run all" in class. An answer left as
``...`` (Ellipsis) or ``None`` counts as not attempted. With ``COURSE_SOLUTIONS=1``
(set by ``bash course.sh test``, so CI runs with the solutions filled in) an
unattempted exercise is answered with the solution, which must pass its own check,
and a wrong answer raises, so a broken check or solution fails the run.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_REGISTRY: dict[str, Exercise] = {}


@dataclass(frozen=True)
class Exercise:
    key: str  # "<notebook>.<name>", for example "01.compression-ratio"
    checker: Callable[[Any], tuple[bool, str]]  # answer -> (correct?, feedback)
    solver: Callable[[], Any]  # returns a correct answer
    explanation: str = ""  # shown with the solution


def exercise(key: str, checker: Callable[[Any], tuple[bool, str]], explanation: str = ""):
    """Register the decorated function as the solution of exercise ``key``."""

    def register(solver: Callable[[], Any]) -> Callable[[], Any]:
        _REGISTRY[key] = Exercise(key, checker, solver, explanation)
        return solver

    return register


def get(key: str) -> Exercise:
    if key not in _REGISTRY:
        raise KeyError(f"no exercise {key!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def keys() -> list[str]:
    return sorted(_REGISTRY)


def solutions_filled_in() -> bool:
    return os.environ.get("COURSE_SOLUTIONS", "").strip().lower() in {"1", "true", "yes"}


def unanswered(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def check(key: str, answer: Any) -> bool:
    """Check a student's answer to exercise ``key``; print what was right or wrong."""
    ex = get(key)
    if unanswered(answer):
        if not solutions_filled_in():
            print(f"[{key}] not answered yet. Write your answer above, or run "
                  f"solutions.reveal({key!r}) to see one.")
            return False
        answer = ex.solver()
        print(f"[{key}] (COURSE_SOLUTIONS=1: checking the course's own solution)")
    try:
        correct, feedback = ex.checker(answer)
    except Exception as err:  # a student's answer may fail in any way
        correct, feedback = False, f"checking the answer raised {type(err).__name__}: {err}"
    print(f"[{key}] {'correct' if correct else 'not yet'}: {feedback}")
    if not correct and solutions_filled_in():
        raise AssertionError(f"exercise {key}: {feedback}")
    return correct


def reveal(key: str) -> Any:
    """Print the worked solution of exercise ``key`` and return its answer."""
    ex = get(key)
    lines = textwrap.dedent(inspect.getsource(ex.solver)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))  # skip the decorator
    body = "\n".join(lines[start:])
    print(f"Solution of {key}:\n")
    if ex.explanation:
        print(textwrap.fill(ex.explanation, 88) + "\n")
    print(body)
    return ex.solver()
