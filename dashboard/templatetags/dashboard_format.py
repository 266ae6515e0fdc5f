"""Template filters that format dashboard numbers for people."""

from typing import Any

from django import template

register = template.Library()


@register.filter
def human_ms(value: Any) -> str:
    """Format milliseconds as '850 ms', '12.3 s', '4 min 5 s' or '2 h 3 min'; '–' for None."""
    if value is None or value == "":
        return "–"
    ms = float(value)
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def human_seconds(value: Any) -> str:
    """Format seconds like human_ms; '–' for None."""
    if value is None or value == "":
        return "–"
    return human_ms(float(value) * 1000)


@register.filter
def percent(value: Any) -> str:
    """Format a fraction between 0 and 1 as a whole percentage; '–' for None."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.0f} %"
