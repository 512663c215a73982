"""The delivery plan of one protected message: for every recipient, the method and why.
Pure: what is known about each recipient (a verified-TLS verdict for the domain, a usable
S/MIME certificate, a usable OpenPGP key) comes in as values; nothing here looks anything up.

The method order is the organisation's, overridden per recipient domain and per recipient.
The first method in that order that the recipient can take wins; the portal takes anyone
(when it is enabled). Internal recipients get the message as is."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sealgate.config import RoutingConfig


class Method(enum.StrEnum):
    TLS = "tls"        # the message as is, over SMTP with a verified certificate
    SMIME = "smime"    # encrypted to the recipient's S/MIME certificate
    PGP = "pgp"        # encrypted to the recipient's OpenPGP key (PGP/MIME)
    PORTAL = "portal"  # a notification; the content waits in the portal
    INTERNAL = "internal"  # inside the organisation: as is
    NONE = "none"      # nothing fits: the configured no-method outcome applies


DEFAULT_ORDER = (Method.TLS, Method.SMIME, Method.PGP, Method.PORTAL)


@dataclass(frozen=True)
class Facts:
    """What is known about one recipient, each with its evidence line."""

    tls: bool = False
    tls_evidence: tuple[str, ...] = ()
    smime: bool = False
    smime_evidence: str = ""
    pgp: bool = False
    pgp_evidence: str = ""


@dataclass(frozen=True)
class Choice:
    address: str
    method: Method
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    choices: tuple[Choice, ...]

    def groups(self) -> dict[Method, tuple[str, ...]]:
        """Recipients by method: each group travels as its own copy."""
        grouped: dict[Method, list[str]] = {}
        for choice in self.choices:
            grouped.setdefault(choice.method, []).append(choice.address)
        return {method: tuple(addresses) for method, addresses in grouped.items()}

    def method_of(self, address: str) -> Method:
        return next(c.method for c in self.choices if c.address == address)


@dataclass(frozen=True)
class RoutingRules:
    order: tuple[Method, ...] = DEFAULT_ORDER
    domains: Mapping[str, tuple[Method, ...]] = field(default_factory=dict)
    recipients: Mapping[str, tuple[Method, ...]] = field(default_factory=dict)
    portal_enabled: bool = True

    def order_for(self, address: str) -> tuple[Method, ...]:
        """Per recipient, else per domain (the closest parent domain wins), else the
        organisation's."""
        address = address.lower()
        if address in self.recipients:
            return self.recipients[address]
        domain = address.rpartition("@")[2]
        labels = domain.split(".")
        for index in range(len(labels) - 1):
            candidate = ".".join(labels[index:])
            if candidate in self.domains:
                return self.domains[candidate]
        return self.order


def rules_of(routing: RoutingConfig) -> RoutingRules:
    def methods(names: Sequence[str]) -> tuple[Method, ...]:
        return tuple(Method(name) for name in names)
    return RoutingRules(
        order=methods(routing.order),
        domains={domain: methods(order) for domain, order in routing.domains.items()},
        recipients={address.lower(): methods(order)
                    for address, order in routing.recipients.items()},
        portal_enabled=routing.portal_enabled)


def plan(recipients: Sequence[str], internal: Sequence[str], facts: Mapping[str, Facts],
         rules: RoutingRules, force_portal: bool = False) -> Plan:
    """The method for each recipient. `force_portal`: the sender asked for the portal for
    this message (a second subject keyword, or the add-in)."""
    choices = []
    internal_set = {address.lower() for address in internal}
    for address in recipients:
        if address.lower() in internal_set:
            choices.append(Choice(address, Method.INTERNAL, ("inside the organisation",)))
            continue
        known = facts.get(address, Facts())
        order = (Method.PORTAL,) if force_portal else rules.order_for(address)
        choices.append(_first_fit(address, order, known, rules.portal_enabled, force_portal))
    return Plan(tuple(choices))


def _first_fit(address: str, order: Sequence[Method], known: Facts, portal_enabled: bool,
               forced: bool) -> Choice:
    passed: list[str] = []
    for method in order:
        if method is Method.TLS:
            if known.tls:
                return Choice(address, method, (*passed, *known.tls_evidence))
            passed.append("verified TLS: not available"
                          + (f" ({known.tls_evidence[-1]})" if known.tls_evidence else ""))
        elif method is Method.SMIME:
            if known.smime:
                return Choice(address, method, (*passed, known.smime_evidence))
            passed.append("S/MIME: " + (known.smime_evidence or "no usable certificate"))
        elif method is Method.PGP:
            if known.pgp:
                return Choice(address, method, (*passed, known.pgp_evidence))
            passed.append("PGP: " + (known.pgp_evidence or "no usable key"))
        elif method is Method.PORTAL:
            if portal_enabled:
                reason = "the sender asked for the portal" if forced else "the portal"
                return Choice(address, method, (*passed, reason))
            passed.append("portal: disabled")
    return Choice(address, Method.NONE, tuple(passed) or ("no method configured",))
