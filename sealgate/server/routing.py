"""Routing a protected message on the server, where the recipients' keys and the verified-TLS
verdicts are: the plan (routing.plan) with those facts, the portal deposit, one encrypted copy
per method for those with a usable certificate or key, and the copy the MTA delivers over
verified TLS (tracked until its delivery report; the sealed deposit stands behind it for the
retries and the portal fallback)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sealgate.config import Config
from sealgate.crypto import pgp, smime
from sealgate.mail.message import header_block
from sealgate.mail.rewrite import EncryptedCopy, inbound
from sealgate.mail.triggers import TAG_HEADER, encode_subject
from sealgate.routing.evidence import TlsVerdict
from sealgate.routing.plan import Choice, Facts, Method, Plan, plan, rules_of
from sealgate.routing.wkd_lookups import WkdLookups
from sealgate.server.deposit import Deposit, deposit_message
from sealgate.server.tls import TlsCopy, TlsService, level_of
from sealgate.server.tls_actions import tls_copy
from sealgate.vault import recipient_keys
from sealgate.vault.models import KeyKind
from sealgate.vault.vault import Vault


class NoMethod(ValueError):
    """Some recipients have no method (the portal is off and nothing else fits)."""


class SigningUnavailable(RuntimeError):
    """The configured signing key cannot be used right now: worth a retry, not a refusal."""


@dataclass(frozen=True)
class Routed:
    plan: Plan
    deposit: Deposit | None
    portal: tuple[str, ...]
    copies: tuple[EncryptedCopy, ...]


@dataclass
class _OnFile:
    """A recipient's usable certificate and key, each with its evidence line."""

    smime: tuple[bytes, str] | None = None
    pgp: tuple[bytes, str] | None = None

    def facts(self) -> Facts:
        return Facts(smime=self.smime is not None,
                     smime_evidence=self.smime[1] if self.smime else "",
                     pgp=self.pgp is not None, pgp_evidence=self.pgp[1] if self.pgp else "")


def route(vault: Vault, config: Config, raw: bytes, mail_from: str,
          recipients: Sequence[str], subject: str, force_portal: bool = False,
          tls: TlsService | None = None, wkd: WkdLookups | None = None) -> Routed:
    """Plan each recipient, deposit for the portal and verified-TLS ones, encrypt for the
    others. Raises MimeError (unreadable), NoMethod, or ValueError (SmimeError, PgpError)
    from encryption. Without `tls`, verified TLS never fits; with `wkd`, recipients who could
    take PGP but have no key on file are looked up in the background, for later messages."""
    now = datetime.now(UTC)
    on_file = _on_file(vault, recipients, now)
    rules = rules_of(config.routing)
    if wkd is not None:
        wkd.request(a for a in recipients if Method.PGP in rules.order_for(a)
                    and (a.lower() not in on_file or on_file[a.lower()].pgp is None))
    verdicts = tls.verdicts(_domain(a) for a in recipients) \
        if tls is not None and not force_portal else {}
    facts = {address: _facts(address, on_file.get(address.lower()), verdicts, tls is not None)
             for address in recipients}
    decided = plan(recipients, [], facts, rules, force_portal)
    groups = decided.groups()
    if Method.NONE in groups:
        raise NoMethod(f"no secure way to deliver to {', '.join(groups[Method.NONE])}: the "
                       "portal is off and no certificate or key for them is on file")
    encrypted = [(method, groups[method]) for method in (Method.SMIME, Method.PGP)
                 if method in groups]
    by_tls = groups.get(Method.TLS, ())
    cleaned = cleaned_message(raw, subject) if encrypted or by_tls else b""
    copies = [EncryptedCopy(str(method), chosen, _encrypt(
        method, cleaned, [on_file[a.lower()] for a in chosen], config))
        for method, chosen in encrypted]
    portal = groups.get(Method.PORTAL, ())
    evidence = {"plan": [_evidence(choice) for choice in decided.choices]}
    tls_copies: list[TlsCopy] = []
    tracking = None
    if by_tls:
        assert tls is not None
        tls_copies, tracking = tls.first_attempts(
            {address: level_of(verdicts[_domain(address)]) for address in by_tls})
    # With a deposit, the plan goes in its audit event, and the verified-TLS deliveries are
    # recorded with it: one durable write per message. The verified-TLS recipients are in
    # the deposit too: their content stays sealed until delivered.
    deposit = deposit_message(vault, config, raw, mail_from, portal, subject, evidence,
                              tls_recipients=by_tls,
                              **({"along": tracking} if tracking else {})) \
        if portal or by_tls else None
    if deposit is None:
        vault.record(mail_from.lower(), "message.routed", "message", "", evidence)
    copies += [EncryptedCopy(str(Method.TLS), copy.recipients, tls_copy(cleaned, copy.level),
                             config.return_address, copy.envelope_id)
               for copy in tls_copies]
    return Routed(decided, deposit, portal, tuple(copies))


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _facts(address: str, keys: _OnFile | None, verdicts: dict[str, TlsVerdict],
           probing: bool) -> Facts:
    facts = keys.facts() if keys is not None else Facts()
    domain = _domain(address)
    verdict = verdicts.get(domain)
    if verdict is None:
        why = f"{domain} not probed yet (probing now)" if probing \
            else "the MTA is not set up to enforce it (routing.mta_enforces_tls)"
        return replace(facts, tls_evidence=(why,))
    lines = verdict.evidence_lines
    if verdict.qualifies:
        lines = (*lines, f"the MTA delivers with {level_of(verdict)} only, or it comes back "
                         "for a retry")
    return replace(facts, tls=verdict.qualifies, tls_evidence=lines)


def _encrypt(method: Method, message: bytes, keys: list[_OnFile], config: Config) -> bytes:
    routing = config.routing
    if method is Method.SMIME:
        return smime.encrypt(message, [k.smime[0] for k in keys if k.smime],
                             signer=_signer(config),
                             protect_subject=routing.protect_subject,
                             placeholder_subject=routing.placeholder_subject)
    return pgp.encrypt(message, [k.pgp[0] for k in keys if k.pgp],
                       protect_subject=routing.protect_subject,
                       placeholder_subject=routing.placeholder_subject)


def _signer(config: Config) -> tuple[bytes, bytes] | None:
    """The organisation's S/MIME key and certificate, when configured. A file that cannot
    be read is an error for this message (retried), never an unsigned copy in its place."""
    routing = config.routing
    if not routing.smime_sign_key:
        return None
    try:
        return (config.path(routing.smime_sign_key).read_bytes(),
                config.path(routing.smime_sign_certificate).read_bytes())
    except OSError as error:
        raise SigningUnavailable(f"the S/MIME signing key or certificate cannot be read: "
                                 f"{error.strerror}") from None


def cleaned_message(raw: bytes, subject: str) -> bytes:
    """The message as its recipients should see it: without the add-in's tag header, and
    with the subject the sender meant (the keyword taken out)."""
    message = inbound(raw, "", ())
    headers = []
    for name, value in message.headers:
        if name.lower() == TAG_HEADER.lower():
            continue
        headers.append((name, encode_subject(subject) if name.lower() == "subject" else value))
    return header_block(headers) + message.body


def _evidence(choice: Choice) -> dict[str, object]:
    return {"address": choice.address, "method": str(choice.method),
            "evidence": list(choice.evidence)}


def _on_file(vault: Vault, recipients: Sequence[str], now: datetime) -> dict[str, _OnFile]:
    """For each recipient, the newest usable certificate and key on file."""
    found: dict[str, _OnFile] = {}
    for key in recipient_keys.for_addresses(vault, recipients, now):
        entry = found.setdefault(key.address, _OnFile())
        if key.kind is KeyKind.SMIME and entry.smime is None:
            info = smime.certificate_info(key.material, now)
            if info.usable_for(key.address):
                until = info.not_after.date().isoformat() if info.not_after else "?"
                entry.smime = (key.material, "S/MIME certificate sha256 "
                               f"{info.fingerprint_sha256[:16]}, valid until {until}")
        elif key.kind is KeyKind.PGP and entry.pgp is None:
            details = pgp.key_info(key.material, now)
            if details.usable_for(key.address):
                until = details.expires.date().isoformat() if details.expires else "never"
                entry.pgp = (key.material, f"OpenPGP key {details.fingerprint[-16:]}, "
                             f"encryption subkey usable, expires {until}")
    return found
