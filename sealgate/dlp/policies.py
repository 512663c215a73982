"""Policies: which findings matter, for whom, and what happens to the message. Curated packs
cover the regulations our customers answer to; organisations add their own. Pure."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sealgate.dlp.findings import Confidence

UNREADABLE = "UNREADABLE_ATTACHMENT"  # the pseudo-type of an attachment that cannot be read


class DlpAction(enum.StrEnum):
    NOTIFY = "notify"      # deliver, and report to the configured address
    ENCRYPT = "encrypt"    # deliver securely (the portal, or the recipient's method)
    QUARANTINE = "quarantine"  # hold until the sender decides
    BLOCK = "block"        # refuse with a reason

    @property
    def strength(self) -> int:
        return list(DlpAction).index(self)


@dataclass(frozen=True)
class Policy:
    name: str
    detectors: frozenset[str]
    action: DlpAction
    min_count: int = 1
    min_confidence: Confidence = Confidence.MEDIUM
    senders: tuple[str, ...] = ()  # addresses, or domains; empty: everyone
    recipient_domains: tuple[str, ...] = ()  # empty: any external recipient
    allow_send_as_is: bool = False
    description: str = ""

    def applies_to(self, sender: str, recipients: Sequence[str]) -> bool:
        sender = sender.lower()
        sender_domain = sender.rpartition("@")[2]
        if self.senders and not any(s == sender or _in_domain(sender_domain, s)
                                    for s in self.senders):
            return False
        return not self.recipient_domains or any(
            _in_domain(r.lower().rpartition("@")[2], d)
            for r in recipients for d in self.recipient_domains)


def _in_domain(domain: str, parent: str) -> bool:
    parent = parent.lower().lstrip("@")
    return domain == parent or domain.endswith("." + parent)


PACKS: dict[str, tuple[tuple[str, frozenset[str], str], ...]] = {
    "healthcare": (
        ("HIPAA: protected health information",
         frozenset({"MEDICAL_RECORD_NUMBER", "ICD10_CODE", "DATE_OF_BIRTH", "US_DEA_NUMBER"}),
         "patient identifiers, diagnoses, birth dates, prescriber registrations"),),
    "financial": (
        ("PCI DSS: payment card numbers", frozenset({"CREDIT_CARD"}),
         "card numbers that pass the Luhn check and belong to a card brand"),
        ("GLBA: financial account data",
         frozenset({"ABA_ROUTING_NUMBER", "US_BANK_NUMBER", "IBAN_CODE"}),
         "bank routing and account numbers, IBANs"),),
    "privacy": (
        ("US PII: government identifiers",
         frozenset({"US_SSN", "US_ITIN", "US_PASSPORT", "US_DRIVER_LICENSE"}),
         "Social Security, taxpayer, passport and driver's license numbers"),),
    "education": (
        ("FERPA: student records", frozenset({"STUDENT_ID"}),
         "student identification numbers (Social Security numbers and birth dates are "
         "covered by the privacy and healthcare packs)"),),
}


def pack_policies(packs: Iterable[str], action: DlpAction,
                  min_confidence: Confidence) -> list[Policy]:
    policies = []
    for pack in packs:
        if pack not in PACKS:
            raise ValueError(f"unknown policy pack {pack!r} (known: {', '.join(PACKS)})")
        policies += [Policy(name, detectors, action, min_confidence=min_confidence,
                            description=description)
                     for name, detectors, description in PACKS[pack]]
    return policies


@dataclass(frozen=True)
class Matched:
    policy: str
    action: DlpAction
    count: int
    types: tuple[str, ...]


@dataclass(frozen=True)
class DlpVerdict:
    """The strongest action of the matched policies, and whether a report is due."""

    action: DlpAction | None = None
    matched: tuple[Matched, ...] = ()
    notify: bool = False
    allow_send_as_is: bool = False

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(m.policy for m in self.matched)


@dataclass(frozen=True)
class Counted:
    """Distinct values found per type and confidence: the same card number in the text and the
    HTML body of one message is one card."""

    values: dict[tuple[str, Confidence], set[str]] = field(default_factory=dict)

    def add(self, type_: str, confidence: Confidence, value_key: str) -> None:
        self.values.setdefault((type_, confidence), set()).add(value_key)

    def count(self, types: frozenset[str], at_least: Confidence) -> tuple[int, tuple[str, ...]]:
        seen: dict[str, set[str]] = {}
        for (type_, confidence), keys in self.values.items():
            if type_ in types and confidence.at_least(at_least):
                seen.setdefault(type_, set()).update(keys)
        return sum(len(keys) for keys in seen.values()), tuple(sorted(seen))


def evaluate(counted: Counted, policies: Sequence[Policy], sender: str,
             recipients: Sequence[str]) -> DlpVerdict:
    matched: list[Matched] = []
    for policy in policies:
        if not policy.applies_to(sender, recipients):
            continue
        count, types = counted.count(policy.detectors, policy.min_confidence)
        if count >= policy.min_count:
            matched.append(Matched(policy.name, policy.action, count, types))
    if not matched:
        return DlpVerdict()
    acting = [m for m in matched if m.action is not DlpAction.NOTIFY]
    strongest = max((m.action for m in acting), key=lambda a: a.strength, default=None)
    by_name = {p.name: p for p in policies}
    # Sending as is is allowed only when every holding policy allows it.
    allow = strongest is DlpAction.QUARANTINE and all(
        by_name[m.policy].allow_send_as_is for m in matched
        if m.action is DlpAction.QUARANTINE)
    return DlpVerdict(action=strongest or DlpAction.NOTIFY, matched=tuple(matched),
                      notify=any(m.action is DlpAction.NOTIFY for m in matched),
                      allow_send_as_is=allow)
