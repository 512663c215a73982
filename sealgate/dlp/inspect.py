"""A whole message, draft or file through the DLP engine: every part it has (subject, bodies,
attachments and what is inside them) scanned, then the policies applied. The milter, the
add-in's scan endpoint and `sealgate scan` all come here, so they reach the same verdict."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sealgate.config import Config, DlpConfig
from sealgate.dlp.detectors import BUILTIN, Detector, label
from sealgate.dlp.engine import Engine, Scanner
from sealgate.dlp.extract import Extracted, ExtractLimits, Problem, extract
from sealgate.dlp.findings import Confidence
from sealgate.dlp.policies import (
    UNREADABLE,
    Counted,
    DlpAction,
    DlpVerdict,
    Policy,
    evaluate,
    pack_policies,
)
from sealgate.dlp.validators import always
from sealgate.mail.parse import MimeError, parse

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# Values are counted as keyed digests, never kept: the key lives only in this process.
_VALUE_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Located:
    """A finding and the part of the message it was found in; the value only masked."""

    part: str
    type: str
    confidence: Confidence
    masked: str

    def as_dict(self) -> dict[str, str]:
        return {"part": self.part, "type": self.type, "label": label(self.type),
                "confidence": str(self.confidence), "value": self.masked}


@dataclass(frozen=True)
class Unreadable:
    part: str
    problem: str  # encrypted, unreadable, limit
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"part": self.part, "problem": self.problem, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    findings: tuple[Located, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()
    verdict: DlpVerdict = field(default_factory=DlpVerdict)

    @property
    def action(self) -> DlpAction | None:
        return self.verdict.action

    @property
    def sensitive(self) -> bool:
        """A policy would stop the message from leaving as it is."""
        return self.action not in (None, DlpAction.NOTIFY)

    def as_dict(self) -> dict[str, object]:
        return {
            "sensitive": self.sensitive,
            "action": str(self.verdict.action) if self.verdict.action else None,
            "policies": [{"name": m.policy, "action": str(m.action), "count": m.count,
                          "types": list(m.types)} for m in self.verdict.matched],
            "notify": self.verdict.notify,
            "allow_send_as_is": self.verdict.allow_send_as_is,
            "findings": [f.as_dict() for f in self.findings],
            "unreadable": [u.as_dict() for u in self.unreadable],
        }

    def summary(self) -> str:
        """One line for logs and SMTP replies: what was found, never a value."""
        kinds: dict[str, int] = {}
        for finding in self.findings:
            kinds[finding.type] = kinds.get(finding.type, 0) + 1
        found = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        if self.unreadable:
            found = ", ".join(filter(None, [found, f"{len(self.unreadable)} unreadable part(s)"]))
        return found or "nothing"


@dataclass(frozen=True)
class DraftFile:
    name: str
    content_type: str
    content: bytes | None  # None: the client could not provide it


def custom_detector(name: str, pattern: str, keywords: Sequence[str], ignore_case: bool,
                    confidence: Confidence) -> Detector:
    """A configured detector: a pattern (reported only near a keyword when keywords are given),
    or keywords alone (each occurrence is a finding)."""
    keyword_pattern = r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\b"
    if pattern and keywords:
        return Detector(name, pattern, always, None, confidence, tuple(keywords),
                        caseless=ignore_case)
    return Detector(name, pattern or keyword_pattern, always, confidence, confidence, (),
                    caseless=ignore_case)


class Inspector:
    def __init__(self, policies: Sequence[Policy], custom: Sequence[Detector] = (),
                 limits: ExtractLimits | None = None,
                 max_bytes: int = 50 * MIB, engine: Engine | None = None) -> None:
        self.policies = list(policies)
        self.scanners = [Scanner(BUILTIN, engine)]
        if custom:  # configured patterns may use any `re` syntax: the `re` engine runs them
            self.scanners.append(Scanner(custom, Engine.RE))
        self.limits = limits or ExtractLimits()
        self.max_bytes = max_bytes

    @classmethod
    def from_config(cls, config: Config) -> Inspector | None:
        """None when DLP is off."""
        dlp = config.dlp
        if not dlp.enabled:
            return None
        return cls(policies_of(dlp), [
            custom_detector(d.name, d.pattern, d.keywords, d.ignore_case,
                            Confidence(d.confidence)) for d in dlp.detectors],
            ExtractLimits(max_members=dlp.archive_members,
                          max_inflated_bytes=dlp.archive_inflated_mb * MIB,
                          max_seconds=dlp.attachment_seconds),
            dlp.max_scan_mb * MIB)

    # -- what can be inspected ---------------------------------------------------------------

    def message(self, raw: bytes, sender: str, recipients: Sequence[str]) -> Report:
        return self._report(self._message_texts(raw, "", 0), sender, recipients)

    def draft(self, subject: str, body: str, body_type: str, files: Sequence[DraftFile],
              sender: str, recipients: Sequence[str]) -> Report:
        texts: list[Extracted] = [Extracted("subject", subject)]
        texts += self._body("body", body, body_type == "html")
        for item in files:
            # Without content (a cloud link, or a draft too large to send whole) there is
            # nothing to judge here; the gateway checks what is actually sent.
            if item.content is not None:
                texts += self._attachment(item.name, item.content_type, item.content)
        return self._report(texts, sender, recipients)

    def file(self, name: str, data: bytes) -> Report:
        """Any file: a message when it looks like one, else an attachment."""
        if name.lower().endswith(".eml") or _looks_like_message(data):
            return self.message(data, "", [])
        return self._report(self._attachment(name, "", data), "", [])

    # -- the work ------------------------------------------------------------------------------

    def _message_texts(self, raw: bytes, prefix: str, depth: int) -> list[Extracted]:
        where = prefix.rstrip("/") or "message"
        if len(raw) > self.max_bytes:
            return [Extracted(where, None, Problem.LIMIT,
                              f"larger than the {self.max_bytes // MIB} MB scanned")]
        try:
            parsed = parse(raw)
        except MimeError as error:
            return [Extracted(where, None, Problem.UNREADABLE, str(error))]
        texts = [Extracted(f"{prefix}subject", parsed.subject)]
        if parsed.text is not None:
            texts.append(Extracted(f"{prefix}body", parsed.text))
        if parsed.html is not None:
            texts += self._body(f"{prefix}body (HTML)", parsed.html, True)
        for attachment in parsed.attachments:
            name = f"{prefix}{attachment.filename}"
            if attachment.content_type == "message/rfc822" and depth < 2:
                texts += self._message_texts(attachment.data, name + "/", depth + 1)
            else:
                texts += self._attachment(name, attachment.content_type, attachment.data)
        return texts

    def _body(self, part: str, body: str, html: bool) -> list[Extracted]:
        if not html:
            return [Extracted(part, body)]
        return [Extracted(part, found.text, found.problem, found.detail) for found in
                extract("body.html", "text/html", body.encode("utf-8"), self.limits)]

    def _attachment(self, name: str, content_type: str, data: bytes) -> list[Extracted]:
        try:
            return extract(name, content_type, data, self.limits)
        except Exception:  # extraction promises not to raise; if it does, fail closed
            log.exception("extracting %s failed", name)
            return [Extracted(name, None, Problem.UNREADABLE, "could not be read")]

    def _report(self, texts: Iterable[Extracted], sender: str,
                recipients: Sequence[str]) -> Report:
        located: list[Located] = []
        unreadable: list[Unreadable] = []
        counted = Counted()
        for extracted in texts:
            # Partly read counts as unread: what was not scanned may hold anything.
            if extracted.problem is not None:
                unreadable.append(Unreadable(extracted.part, str(extracted.problem),
                                             extracted.detail))
            if not extracted.text:
                continue
            for scanner in self.scanners:
                for finding in scanner.scan(extracted.text):
                    located.append(Located(extracted.part, finding.type, finding.confidence,
                                           finding.masked))
                    counted.add(finding.type, finding.confidence,
                                _value_key(extracted.text[finding.start:finding.end]))
        # Counted always; whether it matters is a policy's business (`dlp.unreadable`
        # decides whether the built-in one is there).
        for index, item in enumerate(unreadable):
            counted.add(UNREADABLE, Confidence.HIGH, f"{index}:{item.part}")
        verdict = evaluate(counted, self.policies, sender, recipients)
        return Report(tuple(located), tuple(unreadable), verdict)


def policies_of(dlp: DlpConfig) -> list[Policy]:
    policies = pack_policies(dlp.packs, DlpAction(dlp.pack_action), Confidence(dlp.min_confidence))
    if dlp.unreadable == "sensitive":
        policies.append(Policy("Unreadable attachment", frozenset({UNREADABLE}),
                               DlpAction(dlp.unreadable_action), min_confidence=Confidence.LOW,
                               description="an attachment that is encrypted or cannot be read"))
    policies += [Policy(p.name, frozenset(p.detectors), DlpAction(p.action), p.min_count,
                        Confidence(p.min_confidence), tuple(s.lower() for s in p.senders),
                        tuple(p.recipient_domains), p.allow_send_as_is)
                 for p in dlp.policies]
    return policies


def _value_key(value: str) -> str:
    normalised = "".join(ch for ch in value.upper() if ch.isalnum())
    return hmac.new(_VALUE_KEY, normalised.encode(), hashlib.sha256).hexdigest()[:24]


_HEADER_LINE = re.compile(rb"^(?:[A-Za-z][A-Za-z0-9-]*:[ \t]|From )", re.MULTILINE)


def _looks_like_message(data: bytes) -> bool:
    head = data[:4096]
    return bool(_HEADER_LINE.match(head)) and b"\n\n" in data[:65536].replace(b"\r\n", b"\n")
