"""Exercises of notebook 04: checks and solutions (see course_utils.solutions)."""

from __future__ import annotations
