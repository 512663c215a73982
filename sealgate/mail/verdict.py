"""The verdict on one message: pass it, protect it (for which recipients, with which header
changes), or refuse it. Pure: a value in, a value out."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sealgate.crypto.marks import MARK_HEADER, mark_is_valid
from sealgate.dlp.policies import DlpAction
from sealgate.mail.message import InboundMessage, domain_of
from sealgate.mail.triggers import TAG_HEADER, encode_subject, find_keyword, strip_keywords

# What a notification keeps of the sender's headers; everything else (X-Mailer,
# Thread-Topic, the old Content-*, DKIM signatures over the old body...) goes.
KEPT_HEADERS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "date", "message-id", "in-reply-to",
    "references", "subject", "received", "return-path",
})

if TYPE_CHECKING:
    from sealgate.dlp.inspect import Report

# The DLP engine's look at a message going to these external recipients (only asked when
# there are some).
DlpCheck = Callable[[InboundMessage, Sequence[str]], "Report"]


class Action(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    PROTECT = "protect"
    HOLD = "hold"  # a DLP policy quarantines it until the sender decides
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
    dlp: Report | None = None  # what the DLP engine found, when it looked

    @property
    def split(self) -> bool:
        return bool(self.internal and self.external)


def is_internal(address: str, domains: Sequence[str]) -> bool:
    domain = domain_of(address)
    return any(domain == d or domain.endswith("." + d) for d in domains)


def triggers(message: InboundMessage, policy: MailPolicy) -> tuple[str, ...]:
    """What the sender asked for: the subject keyword or the add-in's tag header."""
    found: list[str] = []
    keyword = find_keyword(message.subject, policy.keywords)
    if keyword:
        found.append(f"subject keyword {keyword}")
    if message.has_header(TAG_HEADER):
        found.append(f"{TAG_HEADER} header")
    return tuple(found)


def already_processed(message: InboundMessage, policy: MailPolicy) -> bool:
    mark = message.header(MARK_HEADER)
    return mark is not None and mark_is_valid(policy.mark_secret, mark,
                                              message.header("Message-ID") or "", message.body)


def decide(message: InboundMessage, policy: MailPolicy, dlp: DlpCheck | None = None) -> Verdict:
    """Block beats everything; then the sender's own request to encrypt (which also settles a
    quarantine: the sender already chose to send securely); then a DLP hold; then DLP
    encryption. Mail with no external recipient is not scanned: nothing leaves."""
    if already_processed(message, policy):
        return Verdict(Action.PASS, ("already processed by Sealgate",))
    internal = tuple(r for r in message.recipients if is_internal(r, policy.internal_domains))
    external = tuple(r for r in message.recipients if r not in internal)
    reasons = list(triggers(message, policy))
    report = dlp(message, external) if dlp is not None and external else None
    action = report.action if report is not None else None
    if report is not None and action is DlpAction.BLOCK:
        blocking = ", ".join(m.policy for m in report.verdict.matched
                             if m.action is DlpAction.BLOCK)
        return Verdict(Action.REJECT, (f"policy {blocking}",), internal, external, dlp=report,
                       reason=f"it contains {report.summary()}, which policy {blocking} does "
                              "not allow to be sent outside the organisation; remove it, or "
                              "ask your administrator")
    if report is not None and action in (DlpAction.ENCRYPT, DlpAction.QUARANTINE):
        if action is DlpAction.QUARANTINE and not reasons:
            return Verdict(Action.HOLD, (f"policy {', '.join(report.verdict.policies)}",),
                           internal, external,
                           display_subject=message.subject, dlp=report)
        reasons += [f"policy {m.policy}" for m in report.verdict.matched
                    if m.action in (DlpAction.ENCRYPT, DlpAction.QUARANTINE)]
    if not reasons:
        return Verdict(Action.PASS, dlp=report)
    subject = message.subject
    stripped = strip_keywords(subject, policy.keywords)
    return Verdict(Action.PROTECT, tuple(reasons), internal, external,
                   subject=encode_subject(stripped) if stripped != subject else None,
                   display_subject=stripped, dlp=report)


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
