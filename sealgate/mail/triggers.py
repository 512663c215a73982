"""What makes a message need protection: a subject keyword, the add-in's tag header, or a
data-leak policy. Pure functions over text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.header import Header

TAG_HEADER = "X-Sealgate-Encrypt"


def _pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True) if k)
    return re.compile(alternatives or r"(?!)", re.IGNORECASE)


def find_keyword(subject: str, keywords: Sequence[str]) -> str | None:
    """The first configured keyword in the subject, case-insensitive, anywhere."""
    found = _pattern(keywords).search(subject)
    return found.group(0) if found else None


def strip_keywords(subject: str, keywords: Sequence[str]) -> str:
    """The subject recipients see: every keyword removed, the spacing left tidy."""
    stripped = _pattern(keywords).sub(" ", subject)
    return re.sub(r"[ \t]{2,}", " ", stripped).strip()


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")


def encode_subject(subject: str) -> str:
    """A header value: plain when ASCII, else RFC 2047 (UTF-8). Control characters (an
    encoded word may carry a CR LF) become spaces, so no header can be smuggled in."""
    subject = _CONTROL.sub(" ", subject)
    if subject.isascii():
        return subject
    return Header(subject, "utf-8").encode()
