"""Verified-TLS evidence for a recipient domain, and the decision it supports. Pure: what
the prober observed (MX hosts, STARTTLS handshakes, an MTA-STS policy, TLSA records) goes
in as values; a `TlsVerdict` with one human line per piece of evidence comes out.

A domain qualifies for "verified TLS" delivery when every MX host completed STARTTLS with a
certificate valid for its name (a trusted CA, or DANE TLSA records under DNSSEC), or when the
domain publishes an MTA-STS policy (RFC 8461) in `enforce` mode whose `mx` patterns cover
all its MX hosts: the MTA then refuses any MX that fails verification at delivery time, so
nothing leaves unprotected even when one host is broken today."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import verification

from sealgate.errors import SealgateError

Source = Literal["mta-sts", "dane", "starttls-probe"]
StsMode = Literal["enforce", "testing", "none"]

STS_MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2
STS_POLICY_MAX_BYTES = 64 * 1024  # RFC 8461 §3.3 suggests 64 KB

MIN_TTL = 60  # a verdict is reused at least this long (a burst of mail, one probe)...
MAX_TTL = 86_400  # ...and never longer than a day, whatever DNS or MTA-STS say
FAILURE_TTL = 300  # a domain that does not qualify is looked at again after five minutes

MAX_HOST_LINES = 20  # evidence lines per kind; a domain with 1000 MX gets a summary line
MAX_TEXT = 200  # characters of any text that came from the network, in one evidence line

DANE_USAGES = {2: "DANE-TA", 3: "DANE-EE"}  # RFC 7672 §3.1: the only usages for SMTP


class MtaStsError(SealgateError):
    """An MTA-STS TXT record or policy file that does not follow RFC 8461."""


@dataclass(frozen=True)
class Failure:
    """Why a piece of evidence is missing (a DNS failure, a policy that could not be used)."""

    reason: str


@dataclass(frozen=True)
class MxHost:
    """One mail exchanger, lower-case and without the final dot; `implicit` when the domain
    has no MX records and its own address stands in (RFC 5321 §5.1, preference 0)."""

    name: str
    preference: int
    implicit: bool = False


@dataclass(frozen=True)
class TlsObservation:
    """What one MX host did when asked for STARTTLS. `starttls` means the TLS handshake
    completed; `verified` means the certificate chains to a trusted CA and is valid for
    `host` (PKIX). `problem` says, in a few words, what went wrong."""

    host: str
    ip: str = ""
    starttls: bool = False
    tls_version: str = ""
    cipher: str = ""
    certificate_sha256: str = ""  # AB:CD:... of the leaf certificate's DER
    certificate_subject: str = ""
    certificate_names: tuple[str, ...] = ()  # its DNS subject alternative names
    verified: bool = False
    problem: str = ""


@dataclass(frozen=True)
class TlsaRecord:
    usage: int
    selector: int
    matching_type: int
    data: bytes

    def __str__(self) -> str:
        digest = self.data.hex()
        if len(digest) > 16:
            digest = digest[:16] + "…"
        return f"{self.usage} {self.selector} {self.matching_type} {digest}"


@dataclass(frozen=True)
class DaneCheck:
    """The TLSA records of one MX host and what they proved. `secure` means the resolver
    authenticated the TLSA RRset and the MX RRset that named the host (DNSSEC, AD bit);
    records that are not secure prove nothing and are ignored."""

    host: str
    records: tuple[TlsaRecord, ...] = ()
    secure: bool = False
    matched: TlsaRecord | None = None
    problem: str = ""

    @property
    def applies(self) -> bool:
        return self.secure and any(_usable(record) for record in self.records)


@dataclass(frozen=True)
class MtaStsPolicy:
    mode: StsMode
    max_age: int
    mx_patterns: tuple[str, ...]
    id: str = ""

    def covers(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx_patterns)


@dataclass(frozen=True)
class TlsVerdict:
    domain: str
    qualifies: bool
    source: Source | None
    evidence_lines: tuple[str, ...]
    ttl_seconds: int


# --- MTA-STS (RFC 8461) ---------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_POLICY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_TXT_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=([\x21-\x3a\x3c\x3e-\x7e]+)")
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_WSP = " \t"
_MODES: dict[str, StsMode] = {"enforce": "enforce", "testing": "testing", "none": "none"}


def parse_mta_sts_txt(record: str) -> str:
    """The policy id of one `_mta-sts` TXT record (`v=STSv1; id=...;`), strictly."""
    fields = [field.strip(_WSP) for field in record.split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # one trailing delimiter is allowed
    if not fields or fields[0] != "v=STSv1":
        raise MtaStsError(f"TXT record does not start with v=STSv1: {_clean(record)!r}")
    policy_id = ""
    for field in fields[1:]:
        match = _TXT_FIELD.fullmatch(field)
        if match is None:
            raise MtaStsError(f"TXT record field is malformed: {_clean(field)!r}")
        key, value = match.groups()
        if key == "id" and not policy_id:
            if not _STS_ID.fullmatch(value):
                raise MtaStsError(f"TXT record id is not 1-32 letters or digits: {_clean(value)!r}")
            policy_id = value
    if not policy_id:
        raise MtaStsError("TXT record has no id")
    return policy_id


def parse_mta_sts_policy(text: str, policy_id: str = "") -> MtaStsPolicy:
    """Parse a policy file (RFC 8461 §3.2): `key: value` lines ending in LF or CRLF.

    Strict: any line that is not a well-formed field, a missing required field, a version
    other than STSv1, an unknown mode, a max_age that is not 1-10 digits or above 31557600,
    or an mx value that is not a (wildcard) domain raises `MtaStsError` naming the line.
    Unknown keys are ignored and repeated fields other than `mx` keep their first value, as
    the RFC asks. An enforce or testing policy needs at least one mx."""
    lines = text.split("\n")
    while lines and lines[-1] in ("", "\r"):
        lines.pop()  # the record may end with a line terminator
    if not lines:
        raise MtaStsError("policy is empty")
    seen: dict[str, tuple[int, str]] = {}
    patterns: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        key, colon, rest = line.partition(":")
        value = rest.lstrip(_WSP).rstrip(_WSP)
        if not colon or not _POLICY_KEY.fullmatch(key) or not value or _has_control(value):
            raise MtaStsError(f"policy line {number} is not a `key: value` field: "
                              f"{_clean(line)!r}")
        if key == "mx":
            pattern = value.lower()
            bare = pattern[2:] if pattern.startswith("*.") else pattern
            if len(bare) > 253 or not _DOMAIN.fullmatch(bare):
                raise MtaStsError(f"policy line {number}: mx is not a host name or *.domain: "
                                  f"{_clean(value)!r}")
            patterns.append(pattern)
        elif key in ("version", "mode", "max_age"):
            seen.setdefault(key, (number, value))
    for required in ("version", "mode", "max_age"):
        if required not in seen:
            raise MtaStsError(f"policy has no {required} field")
    number, version = seen["version"]
    if version != "STSv1":
        raise MtaStsError(f"policy line {number}: version is {_clean(version)!r}, not STSv1")
    number, mode_text = seen["mode"]
    mode = _MODES.get(mode_text)
    if mode is None:
        raise MtaStsError(f"policy line {number}: mode {_clean(mode_text)!r} is not "
                          "enforce, testing or none")
    number, age = seen["max_age"]
    if not re.fullmatch(r"[0-9]{1,10}", age) or int(age) > STS_MAX_AGE_LIMIT:
        raise MtaStsError(f"policy line {number}: max_age {_clean(age)!r} is not a number "
                          f"of seconds up to {STS_MAX_AGE_LIMIT}")
    if mode != "none" and not patterns:
        raise MtaStsError(f"policy in mode {mode} lists no mx")
    return MtaStsPolicy(mode=mode, max_age=int(age), mx_patterns=tuple(patterns), id=policy_id)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: an exact (case-insensitive) name, or `*.` standing for exactly one
    leftmost label: `*.example.com` matches mail.example.com, not example.com nor
    a.b.example.com."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and label != "*" and rest == pattern[2:]
    return host == pattern


# --- names and DANE -------------------------------------------------------------------------

def is_host_name(name: str) -> bool:
    """A plain DNS host name fit to be an MX: LDH labels, at least two of them, and not an
    address in disguise (the last label is not all digits)."""
    if not name or len(name) > 253 or not name.isascii() or not _DOMAIN.fullmatch(name):
        return False
    labels = name.split(".")
    return len(labels) >= 2 and not labels[-1].isdigit()


def tlsa_association(certificate_der: bytes, selector: int, matching_type: int) -> bytes:
    """The data a TLSA record with this selector and matching type holds for a certificate
    (RFC 6698 §2.1): the whole certificate or its SubjectPublicKeyInfo, as is or hashed."""
    if selector == 0:
        data = certificate_der
    elif selector == 1:
        public_key = x509.load_der_x509_certificate(certificate_der).public_key()
        data = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:
        raise ValueError(f"TLSA selector {selector} is not defined")
    if matching_type == 0:
        return data
    if matching_type == 1:
        return hashlib.sha256(data).digest()
    if matching_type == 2:
        return hashlib.sha512(data).digest()
    raise ValueError(f"TLSA matching type {matching_type} is not defined")


def match_tlsa(records: Sequence[TlsaRecord], chain: Sequence[bytes], host: str,
               now: datetime) -> tuple[TlsaRecord | None, str]:
    """Check a presented chain (leaf first, DER) against TLSA records as RFC 7672 asks:
    DANE-EE (3) matches the leaf certificate or key, whatever its names or dates; DANE-TA (2)
    matches a certificate the server sent (or the whole certificate in a `2 0 0` record),
    from which the leaf must chain and be valid for `host`. PKIX usages 0 and 1 do not apply
    to SMTP. Returns the matching record, or None and why."""
    usable = [record for record in records if _usable(record)]
    if not usable:
        return None, "no usable TLSA record (SMTP uses only DANE-TA 2 and DANE-EE 3)"
    if not chain:
        return None, "the server presented no certificate"
    for record in usable:
        if record.usage == 3 and _associated(chain[0], record):
            return record, ""
    reason = "no TLSA record matches the server's certificate or key"
    for record in usable:
        if record.usage != 2:
            continue
        anchors = [der for der in chain[1:] if _associated(der, record)]
        if record.selector == 0 and record.matching_type == 0:
            anchors.append(record.data)
        for anchor in anchors:
            problem = _chains_to(chain, anchor, host, now)
            if not problem:
                return record, ""
            reason = f"DANE-TA {record}: {problem}"
    return None, reason


def _usable(record: TlsaRecord) -> bool:
    return (record.usage in DANE_USAGES and record.selector in (0, 1)
            and record.matching_type in (0, 1, 2))


def _associated(certificate_der: bytes, record: TlsaRecord) -> bool:
    try:
        return tlsa_association(certificate_der, record.selector,
                                record.matching_type) == record.data
    except Exception:  # a certificate or key that cannot be parsed matches nothing
        return False


def _chains_to(chain: Sequence[bytes], anchor_der: bytes, host: str, now: datetime) -> str:
    try:
        anchor = x509.load_der_x509_certificate(anchor_der)
        leaf = x509.load_der_x509_certificate(chain[0])
        intermediates = [x509.load_der_x509_certificate(der) for der in chain[1:]]
        verifier = (verification.PolicyBuilder()
                    .store(verification.Store([anchor]))
                    .time(now)
                    .build_server_verifier(x509.DNSName(host)))
        verifier.verify(leaf, intermediates)
    except Exception as error:  # unparsable or unverifiable: either way, no trust anchor
        return _clean(str(error)) or type(error).__name__
    return ""


# --- the decision ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _HostResult:
    mx: MxHost
    ok: bool
    by_dane: bool
    lines: tuple[str, ...]
    reason: str


def verdict(domain: str, mx_hosts: Sequence[MxHost] | Failure,
            observations: Sequence[TlsObservation],
            sts_txt_id: str | Failure | None,
            sts_policy: MtaStsPolicy | Failure | None,
            dane: Sequence[DaneCheck] = (), *, dns_ttl: int | None = None) -> TlsVerdict:
    """Decide whether `domain` qualifies for verified-TLS delivery, and say why.

    `mx_hosts` are the MX hosts in preference order (or the implicit MX), or why there are
    none; `observations` and `dane` are what the STARTTLS probe and TLSA lookups found for
    each host (a host with no observation was not probed and fails); `sts_txt_id` is the id of
    the `_mta-sts` TXT record (None: no record), `sts_policy` the policy it announced (None:
    not fetched). `dns_ttl` is the smallest TTL of the DNS answers used."""
    lines: list[str] = []
    if isinstance(mx_hosts, Failure):
        lines.append(f"MX for {domain}: {mx_hosts.reason}")
        lines.append(f"not qualified: no MX host to deliver to ({mx_hosts.reason})")
        return TlsVerdict(domain, False, None, tuple(lines), _ttl(dns_ttl, None, False))

    seen_obs = {observation.host: observation for observation in observations}
    seen_dane = {check.host: check for check in dane}
    results = [_judge_host(mx, seen_obs.get(mx.name), seen_dane.get(mx.name))
               for mx in mx_hosts]
    for result in results[:MAX_HOST_LINES]:
        lines.extend(result.lines)
    hidden = results[MAX_HOST_LINES:]
    if hidden:
        failed = sum(1 for result in hidden if not result.ok)
        lines.append(f"… {len(hidden)} more MX hosts not shown, {failed} of them failed")

    sts_lines, sts_covers, policy = _judge_sts(mx_hosts, sts_txt_id, sts_policy)
    lines.extend(sts_lines)

    failures = [result for result in results if not result.ok]
    all_ok = bool(results) and not failures
    source: Source | None
    if sts_covers:
        source = "mta-sts"
        lines.append("qualifies: MTA-STS enforce covers every MX, so the MTA verifies TLS "
                     "at delivery" + (f" ({len(failures)} MX failed the probe)" if failures
                                      else ""))
    elif all_ok:
        source = "dane" if all(result.by_dane for result in results) else "starttls-probe"
        how = "DANE" if source == "dane" else "a certificate valid for its name"
        lines.append(f"qualifies: every MX ({len(results)}) offers STARTTLS with {how}")
    else:
        source = None
        if not results:
            lines.append("not qualified: no MX host")
        else:
            first = failures[0]
            more = f" (and {len(failures) - 1} more MX)" if len(failures) > 1 else ""
            lines.append(f"not qualified: MX {first.mx.name} {first.reason}{more}")
    qualifies = source is not None
    max_age = policy.max_age if source == "mta-sts" and policy is not None else None
    return TlsVerdict(domain, qualifies, source, tuple(lines),
                      _ttl(dns_ttl, max_age, qualifies))


def _judge_host(mx: MxHost, observation: TlsObservation | None,
                check: DaneCheck | None) -> _HostResult:
    label = f"{'implicit MX' if mx.implicit else 'MX'} {_clean(mx.name)} ({mx.preference})"
    if observation is None:
        reason = "was not probed"
        return _HostResult(mx, False, False, (f"{label}: not probed",), reason)
    where = f"{label} [{observation.ip}]" if observation.ip else label
    if not observation.starttls:
        problem = _clean(observation.problem) or "no STARTTLS"
        return _HostResult(mx, False, False, (f"{where}: {problem}",), problem)

    tls = " ".join(part for part in (observation.tls_version, observation.cipher) if part)
    certificate = (f"certificate {_clean(observation.certificate_subject) or '(no subject)'} "
                   f"sha256 {observation.certificate_sha256 or '?'}")
    dane_line = _dane_line(check)
    if check is not None and check.applies:
        ok = check.matched is not None
        usage = DANE_USAGES.get(check.matched.usage, "") if check.matched else ""
        state = f"matches TLSA ({usage})" if ok else "does not match its TLSA records"
        host_line = f"{where}: STARTTLS {tls}, {certificate} {state}"
        reason = "" if ok else f"certificate does not match DANE TLSA ({_clean(check.problem)})"
        return _HostResult(mx, ok, ok, (host_line, dane_line), reason)
    if observation.verified:
        host_line = f"{where}: STARTTLS {tls}, {certificate} valid"
        lines = (host_line, dane_line) if dane_line else (host_line,)
        return _HostResult(mx, True, False, lines, "")
    problem = _clean(observation.problem) or "certificate not verified"
    host_line = f"{where}: STARTTLS {tls}, {certificate} not valid: {problem}"
    lines = (host_line, dane_line) if dane_line else (host_line,)
    return _HostResult(mx, False, False, lines, f"certificate not valid: {problem}")


def _dane_line(check: DaneCheck | None) -> str:
    if check is None or (not check.records and not check.problem):
        return ""
    name = _clean(check.host)
    count = f"{len(check.records)} TLSA record{'s' if len(check.records) != 1 else ''}"
    if not check.records:
        return f"TLSA for {name}: {_clean(check.problem)}"
    if not check.secure:
        return f"TLSA for {name}: {count} without DNSSEC authentication, ignored"
    if not check.applies:
        return f"TLSA for {name} (DNSSEC): {count}, none usable for SMTP, ignored"
    if check.matched is not None:
        usage = DANE_USAGES[check.matched.usage]
        return f"TLSA for {name} (DNSSEC): {check.matched} matches ({usage})"
    return f"TLSA for {name} (DNSSEC): {count}, none matches: {_clean(check.problem)}"


def _judge_sts(mx_hosts: Sequence[MxHost], txt_id: str | Failure | None,
               policy: MtaStsPolicy | Failure | None,
               ) -> tuple[list[str], bool, MtaStsPolicy | None]:
    if txt_id is None:
        return ["MTA-STS: no policy published (no _mta-sts TXT record)"], False, None
    if isinstance(txt_id, Failure):
        return [f"MTA-STS: {_clean(txt_id.reason)}"], False, None
    if policy is None:
        return [f"MTA-STS id {txt_id}: policy not fetched"], False, None
    if isinstance(policy, Failure):
        return [f"MTA-STS id {txt_id}: policy unusable: {_clean(policy.reason)}"], False, None
    head = f"MTA-STS id {txt_id} {policy.mode} (max_age {policy.max_age})"
    if policy.mode != "enforce":
        return [f"{head}: not enforced, not evidence"], False, policy
    uncovered = [mx.name for mx in mx_hosts if not policy.covers(mx.name)]
    if not mx_hosts or uncovered:
        shown = ", ".join(_clean(name) for name in uncovered[:5])
        more = f" and {len(uncovered) - 5} more" if len(uncovered) > 5 else ""
        return [f"{head}, does not cover {shown}{more}"], False, policy
    shown = ", ".join(_clean(mx.name) for mx in mx_hosts[:5])
    more = f" and {len(mx_hosts) - 5} more" if len(mx_hosts) > 5 else ""
    return [f"{head}, covers {shown}{more}"], True, policy


def _ttl(dns_ttl: int | None, max_age: int | None, qualifies: bool) -> int:
    bounds = [value for value in (dns_ttl, max_age) if value is not None]
    if not qualifies:
        bounds.append(FAILURE_TTL)
    ttl = min(bounds) if bounds else MAX_TTL
    return max(MIN_TTL, min(MAX_TTL, ttl))


def failed_verdict(domain: str, reason: str) -> TlsVerdict:
    """A verdict for a domain that could not be looked at, with the one reason."""
    return TlsVerdict(domain, False, None, (f"not qualified: {_clean(reason)}",),
                      _ttl(None, None, False))


def describe(result: TlsVerdict) -> str:
    """What `sealgate probe DOMAIN` prints: the evidence, then the verdict."""
    if result.qualifies:
        head = f"{result.domain}: qualifies for verified TLS (source: {result.source})"
    else:
        head = f"{result.domain}: does not qualify for verified TLS"
    body = "\n".join(f"  {line}" for line in result.evidence_lines)
    return f"{head}\n{body}\n  valid for {result.ttl_seconds} s\n"


def _has_control(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def _clean(text: str, limit: int = MAX_TEXT) -> str:
    """Network text made fit for one log line: control and non-printable characters
    escaped, long text cut."""
    cleaned = "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"
