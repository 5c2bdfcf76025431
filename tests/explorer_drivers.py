"""Drive the explorers as a user would, for the tests: act on a control, see whether an image changed."""

from __future__ import annotations

import ipywidgets as w


def other_value(widget: w.Widget):
    """A valid value for ``widget`` different from its current one: the far end of a
    slider's range, the next option of a picker, the next number of a bounded box."""
    if isinstance(widget, w.SelectionSlider | w.Dropdown | w.ToggleButtons):
        values = [o[1] if isinstance(o, tuple) else o for o in widget.options]
        return values[(values.index(widget.value) + 1) % len(values)]
    if isinstance(widget, w.FloatSlider | w.IntSlider):
        return widget.max if widget.value < (widget.min + widget.max) / 2 else widget.min
    if isinstance(widget, w.BoundedIntText):
        return widget.value + 1 if widget.value < widget.max else widget.value - 1
    raise TypeError(f"no rule for a {type(widget).__name__}")


def redraws(image: w.Image, widget: w.Widget, value: object = None) -> bool:
    """Act on ``widget`` as a user would (click a button; otherwise set ``value``, by
    default ``other_value(widget)``) and say whether ``image`` changed."""
    before = bytes(image.value)
    if isinstance(widget, w.Button):
        widget.click()
    else:
        widget.value = other_value(widget) if value is None else value
    return bytes(image.value) != before


