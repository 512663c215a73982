"""What the DLP engine reports: a type, where it is, how sure we are, and the value masked.
A Finding never holds the value itself, so logging or returning one cannot leak it."""

from __future__ import annotations

import enum
from typing import NamedTuple


class Confidence(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Confidence | str) -> bool:
        return self.rank >= Confidence(other).rank


_RANK = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}


class Finding(NamedTuple):
    """Immutable; a named tuple because the engine makes thousands per megabyte."""

    type: str
    start: int  # offsets in the scanned text
    end: int
    confidence: Confidence
    masked: str  # the value with all but its last characters hidden: ***-**-6789


_STARS = str.maketrans({ch: "*" for ch in
                        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"})


def mask(value: str) -> str:
    """Hide every letter and digit but the last four, keeping separators so the shape stays
    recognisable. Short values (codes, dates) are hidden entirely: four characters of a
    diagnosis code or a birth date are the secret itself."""
    if not value.isascii() or "*" in value:
        return _mask_any(value)
    hidden = value.translate(_STARS)  # the common case, in C: every letter and digit a star
    if hidden.count("*") < 9:
        return hidden
    cut = len(hidden)
    for _ in range(4):  # where the last four letters or digits begin
        cut = hidden.rindex("*", 0, cut)
    return hidden[:cut] + value[cut:]


def _mask_any(value: str) -> str:
    alnum = sum(ch.isalnum() for ch in value)
    hidden = alnum - (4 if alnum >= 9 else 0)
    out = []
    for ch in value:
        if ch.isalnum() and hidden > 0:
            out.append("*")
            hidden -= 1
        else:
            out.append(ch)
    return "".join(out)
