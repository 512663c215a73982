"""DKIM signatures on the mail Sealgate itself originates (codes, receipts, notices,
notifications, re-injected copies), and the DNS records that make them count: the DKIM key,
SPF and DMARC. Signing and the record checks are pure (bytes and strings in, bytes and
strings out); `DkimKey.from_config` reads the key file.

Only mail whose From is in the signing domain (or below it) is signed: a message sent on a
sender's behalf with a foreign From is never signed with the organisation's key."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealgate.errors import SealgateError
from sealgate.mail.notification import NOTIFICATION_ID_HEADER

if TYPE_CHECKING:
    from sealgate.config import Config

MIN_BITS = 2048

# Signed when present; From is signed once more than it occurs ("oversigned"), so nobody can
# add a second From to a signed message without breaking the signature.
DEFAULT_SIGNED: tuple[str, ...] = (
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "Reply-To", "In-Reply-To", "References", NOTIFICATION_ID_HEADER,
)
OVERSIGNED = ("from",)


class DkimError(SealgateError):
    """The DKIM key cannot be used, or a message cannot be signed."""


@dataclass(frozen=True)
class DkimKey:
    """The organisation's signing key and where its public half is published."""

    selector: str
    domain: str
    private_key_pem: bytes

    @classmethod
    def from_pem(cls, selector: str, domain: str, pem: bytes) -> DkimKey:
        check_private_key(pem)
        return cls(selector, domain.lower().rstrip("."), pem)

    @classmethod
    def from_config(cls, config: Config) -> DkimKey | None:
        """The configured key ([dkim] key, relative to the home); None: signing is off."""
        if not config.dkim.key:
            return None
        return cls.from_pem(config.dkim.selector, config.dkim_domain,
                            read_key_file(config.path(config.dkim.key)))

    @property
    def record_name(self) -> str:
        """Where the public key is published: SELECTOR._domainkey.DOMAIN."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return check_private_key(self.private_key_pem).public_key()

    def record(self) -> str:
        return dns_record(self.public_key)

    def signs_for(self, message: bytes) -> bool:
        return signs_for(self.domain, message)


def read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DkimError(f"DKIM key file {path} does not exist (sealgate dkim init makes one)") \
            from None
    except OSError as error:
        raise DkimError(f"cannot read DKIM key file {path}: {error.strerror or error}") \
            from None


def check_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """The key, if it is an unencrypted PEM RSA private key of at least MIN_BITS bits."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise DkimError("the DKIM key is encrypted with a passphrase: store it without one "
                        "(readable by Sealgate only)") from None
    except ValueError:
        raise DkimError("the DKIM key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimError("the DKIM key must be an RSA key (rsa-sha256 is what every "
                        "verifier accepts)")
    if key.key_size < MIN_BITS:
        raise DkimError(f"the DKIM key has {key.key_size} bits: at least {MIN_BITS} are "
                        "needed (verifiers reject shorter ones)")
    return key


def generate_private_key(bits: int = MIN_BITS) -> bytes:
    """A new RSA key as PKCS#8 PEM."""
    if bits < MIN_BITS:
        raise DkimError(f"a DKIM key needs at least {MIN_BITS} bits, not {bits}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_base64(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def dns_record(public_key: rsa.RSAPublicKey) -> str:
    """The TXT value to publish at SELECTOR._domainkey.DOMAIN."""
    return f"v=DKIM1; k=rsa; p={public_key_base64(public_key)}"


# --- signing ------------------------------------------------------------------------------


def sign(message: bytes, selector: str, domain: str, private_key_pem: bytes,
         headers: Sequence[str] = DEFAULT_SIGNED) -> bytes:
    """`message` with a DKIM-Signature header field in front (relaxed/relaxed, rsa-sha256).
    Of `headers`, those present are signed, and From once more (oversigned). Sign last:
    any later change to a signed header field or to the body breaks the signature."""
    present = {name.lower() for name in _header_names(message)}
    chosen = [name.lower().encode("ascii") for name in headers if name.lower() in present]
    if b"from" not in chosen:
        raise DkimError("a message without a From header field cannot be DKIM-signed")
    chosen += [name.encode("ascii") for name in OVERSIGNED]
    linesep = b"\r\n" if b"\r\n" in message[:message.find(b"\n") + 1] else b"\n"
    try:
        signature: bytes = dkim.sign(
            message, selector.encode("ascii"), domain.encode("ascii"), private_key_pem,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=b"rsa-sha256",
            include_headers=chosen, linesep=linesep)
    except dkim.DKIMException as error:
        raise DkimError(f"cannot DKIM-sign the message: {error}") from None
    return signature + message


def sign_if_ours(key: DkimKey | None, message: bytes) -> bytes:
    """What Sealgate hands the MTA: signed when a key is configured and the From is in the
    signing domain; otherwise the message as it is (a sender's mail with a foreign From is
    never signed with the organisation's key)."""
    if key is None or not key.signs_for(message):
        return message
    return sign(message, key.selector, key.domain, key.private_key_pem)


def signature_field(key: DkimKey | None, message: bytes) -> str | None:
    """The DKIM-Signature field's value for `message` as it will be delivered, on one line,
    for a milter to insert (None: no key, or the From is not in the signing domain). Relaxed
    canonicalisation unfolds header fields, so the unfolded value verifies the same."""
    signed = sign_if_ours(key, message)
    if signed is message:
        return None
    field = signed[:len(signed) - len(message)].decode("ascii")
    name, _, value = field.partition(":")
    assert name.lower() == "dkim-signature", name
    return " ".join(value.split())


def signs_for(domain: str, message: bytes) -> bool:
    """Whether every From address is in `domain` or one of its subdomains."""
    values = [value for name, value in _header_fields(message) if name.lower() == "from"]
    addresses = [address for _, address in getaddresses(values)]
    if not addresses or not all("@" in address for address in addresses):
        return False
    domain = domain.lower().rstrip(".")
    return all(_within(address.rpartition("@")[2].lower().rstrip(">. "), domain)
               for address in addresses)


def _within(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def _header_fields(message: bytes) -> list[tuple[str, str]]:
    """The header fields, unfolded (text decoded leniently: only names and addresses count)."""
    end = re.search(rb"\r?\n\r?\n", message)
    head = message[:end.start()] if end else message
    fields: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", head.decode("utf-8", "replace")):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.strip()))
    return fields


def _header_names(message: bytes) -> list[str]:
    return [name for name, _ in _header_fields(message)]


# --- the DNS records to publish, and what is published --------------------------------------


@dataclass(frozen=True)
class Finding:
    ok: bool
    line: str


def spf_advice(host: str = "") -> str:
    """Mail leaves through the organisation's MX hosts (and the gateway's host, if it
    sends directly); everything else fails."""
    mechanisms = ["mx"]
    if host:
        if re.fullmatch(r"[0-9.]+", host):
            mechanisms.append(f"ip4:{host}")
        elif ":" in host:
            mechanisms.append(f"ip6:{host}")
        else:
            mechanisms.append(f"a:{host}")
    return f"v=spf1 {' '.join(mechanisms)} -all"


def dmarc_advice(domain: str) -> str:
    return f"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{domain}; adkim=r; aspf=r"


def tags(record: str) -> dict[str, str]:
    """A DKIM or DMARC record's tag=value list."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found[name.strip().lower()] = re.sub(r"\s+", "", value)
    return found


def check_spf(domain: str, texts: Sequence[str]) -> Finding:
    records = [t for t in texts if t.lower().startswith("v=spf1")
               and (len(t) == 6 or t[6] == " ")]
    if not records:
        return Finding(False, f"SPF: no v=spf1 TXT record at {domain}")
    if len(records) > 1:
        return Finding(False, f"SPF: {len(records)} v=spf1 records at {domain}: receivers "
                              "treat that as an error (permerror); publish exactly one")
    terms = records[0].lower().split()[1:]
    if "+all" in terms or "all" in terms:
        return Finding(False, f"SPF: {records[0]!r} at {domain} allows every host (+all): "
                              "anyone may send as this domain; end it with -all or ~all")
    return Finding(True, f"SPF: {records[0]}")


def check_dkim(name: str, texts: Sequence[str], key: DkimKey) -> Finding:
    expected = public_key_base64(key.public_key)
    records = [tags(t) for t in texts if "p=" in t]
    if not records:
        return Finding(False, f"DKIM: no key published at {name}")
    published = records[0]
    if published.get("v", "DKIM1") != "DKIM1" or published.get("k", "rsa") != "rsa":
        return Finding(False, f"DKIM: the record at {name} is not an RSA DKIM1 key")
    if not published.get("p"):
        return Finding(False, f"DKIM: the key at {name} is revoked (empty p=)")
    if published["p"] != expected:
        return Finding(False, f"DKIM: the key published at {name} does not match the "
                              "configured key (dkim.key): signatures will fail; publish "
                              "the record above")
    return Finding(True, f"DKIM: {name} matches the configured key")


def check_dmarc(name: str, texts: Sequence[str]) -> Finding:
    records = [t for t in texts if t.replace(" ", "").upper().startswith("V=DMARC1")]
    if not records:
        return Finding(False, f"DMARC: no v=DMARC1 TXT record at {name}")
    if len(records) > 1:
        return Finding(False, f"DMARC: {len(records)} v=DMARC1 records at {name}: receivers "
                              "ignore them all; publish exactly one")
    policy = tags(records[0]).get("p", "").lower()
    if policy not in ("quarantine", "reject"):
        return Finding(False, f"DMARC: policy p={policy or '(none)'} at {name}: spoofed mail "
                              "is still delivered; use p=quarantine or p=reject")
    return Finding(True, f"DMARC: {records[0]}")
