"""Reading the search parameters the console's pages and the API share (dates, limits,
addresses): a wrong value raises BadQuery naming the parameter and what is expected, which
the page shows beside the form and the API answers with 400."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute


class BadQuery(ValueError):
    """A search parameter is not valid; the message says which and why, for a person."""


def text(args: Mapping[str, str], name: str, longest: int = 320) -> str | None:
    value = (args.get(name) or "").strip()
    if len(value) > longest:
        raise BadQuery(f"{name}: at most {longest} characters")
    return value or None


def moment(args: Mapping[str, str], name: str, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date (2024-05-31) or date and time (2024-05-31T14:00, UTC unless it says);
    a bare date for `until` means the whole of that day."""
    value = text(args, name, 64)
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time(), UTC)
            return start + timedelta(days=1) if end_of_day else start
        # A "+" left unencoded in a query string arrives as a space: "…T14:00 02:00".
        value = re.sub(r"(T\S+) (\d\d:?\d\d)$", r"\1+\2", value)
        found = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise BadQuery(f"{name}: {value!r} is not an ISO date (YYYY-MM-DD) or date and time "
                       f"(YYYY-MM-DDTHH:MM, UTC unless a zone is given)") from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def period(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """`since` (from, inclusive) and `until` (to, exclusive past a bare date's whole day)."""
    since, until = moment(args, "since"), moment(args, "until", end_of_day=True)
    if since is not None and until is not None and until <= since:
        raise BadQuery("until: must be later than since")
    return since, until


def number(args: Mapping[str, str], name: str, default: int | None, *, least: int = 1,
           most: int = 1000) -> int | None:
    value = text(args, name, 20)
    if value is None:
        return default
    if not value.isdigit() or not least <= int(value) <= most:
        raise BadQuery(f"{name}: a whole number from {least} to {most}, not {value!r}")
    return int(value)


def address_match(column: InstrumentedAttribute[str], wanted: str) -> ColumnElement[bool]:
    """`someone@example.org` matches that address; `example.org` or `@example.org` every
    address at that domain (not its subdomains)."""
    wanted = wanted.strip().lower()
    if "@" in wanted.lstrip("@"):
        return column == wanted
    domain = wanted.lstrip("@")
    if not domain or any(ch.isspace() for ch in domain):
        raise BadQuery(f"{wanted!r} is neither an address nor a domain")
    return column.endswith(f"@{domain}", autoescape=True)
