"""A private loopback mail system for tests, `make run` and benchmarks."""

from __future__ import annotations

from pathlib import Path


def text_of(path: Path) -> str:
    """A log file's text; empty while the program has not written it yet."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def tail_of(path: Path, lines: int) -> str:
    """The last lines of a log, for error messages that say why something did not start."""
    last = text_of(path).splitlines()[-lines:]
    if not last:
        return f"\n(nothing in {path})"
    return f"\nlast lines of {path}:\n" + "\n".join(last)

