"""The verdict on one message: pass it, protect it (for which recipients, with which header
changes), or refuse it. Pure: a value in, a value out."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sealgate.crypto.marks import MARK_HEADER, mark_is_valid
from sealgate.mail.message import InboundMessage, domain_of
from sealgate.mail.triggers import TAG_HEADER, encode_subject, find_keyword, strip_keywords

# What a notification keeps of the sender's headers; everything else (X-Mailer,
# Thread-Topic, the old Content-*, DKIM signatures over the old body...) goes.
KEPT_HEADERS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "date", "message-id", "in-reply-to",
    "references", "subject", "received", "return-path",
})

DlpCheck = Callable[[InboundMessage], Sequence[str]]


class Action(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    PROTECT = "protect"
    REJECT = "reject"


@dataclass(frozen=True)
class MailPolicy:
    keywords: tuple[str, ...]
    internal_domains: tuple[str, ...]
    mark_secret: str = ""


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: tuple[str, ...] = ()
    internal: tuple[str, ...] = ()
    external: tuple[str, ...] = ()
    subject: str | None = None  # the new Subject header value, when it changes
    display_subject: str = ""  # the subject as recipients see it, decoded
    reason: str = ""  # for REJECT: what the sender can do about it

    @property
    def split(self) -> bool:
        return bool(self.internal and self.external)


def is_internal(address: str, domains: Sequence[str]) -> bool:
    domain = domain_of(address)
    return any(domain == d or domain.endswith("." + d) for d in domains)


def triggers(message: InboundMessage, policy: MailPolicy,
             dlp: DlpCheck | None = None) -> tuple[str, ...]:
    found: list[str] = []
    keyword = find_keyword(message.subject, policy.keywords)
    if keyword:
        found.append(f"subject keyword {keyword}")
    if message.has_header(TAG_HEADER):
        found.append(f"{TAG_HEADER} header")
    if dlp is not None:
        found.extend(f"policy {name}" for name in dlp(message))
    return tuple(found)


def already_processed(message: InboundMessage, policy: MailPolicy) -> bool:
    mark = message.header(MARK_HEADER)
    return mark is not None and mark_is_valid(policy.mark_secret, mark,
                                              message.header("Message-ID") or "", message.body)


def decide(message: InboundMessage, policy: MailPolicy, dlp: DlpCheck | None = None) -> Verdict:
    if already_processed(message, policy):
        return Verdict(Action.PASS, ("already processed by Sealgate",))
    reasons = triggers(message, policy, dlp)
    if not reasons:
        return Verdict(Action.PASS)
    internal = tuple(r for r in message.recipients if is_internal(r, policy.internal_domains))
    external = tuple(r for r in message.recipients if r not in internal)
    subject = message.subject
    stripped = strip_keywords(subject, policy.keywords)
    return Verdict(Action.PROTECT, reasons, internal, external,
                   subject=encode_subject(stripped) if stripped != subject else None,
                   display_subject=stripped)


def headers_to_remove(message: InboundMessage, body_replaced: bool) -> list[tuple[str, int]]:
    """(name, occurrence) pairs to delete, occurrence counted from 1 per name as milters do.
    The tag header always goes; with a new body, every header not in KEPT_HEADERS goes."""
    seen: dict[str, int] = {}
    removals: list[tuple[str, int]] = []
    for name, _ in message.headers:
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        if key == TAG_HEADER.lower() or (body_replaced and key not in KEPT_HEADERS):
            removals.append((name, seen[key]))
    return removals


def kept_headers(message: InboundMessage, subject: str | None) -> list[tuple[str, str]]:
    """The sender's headers a notification carries, with the new subject if it changed."""
    kept = []
    for name, value in message.headers:
        key = name.lower()
        if key in KEPT_HEADERS and key not in ("received", "return-path"):
            kept.append((name, subject if key == "subject" and subject is not None else value))
    return kept
