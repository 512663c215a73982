"""Harvesting senders' S/MIME certificates from signed inbound mail: for one raw message,
decide whether the signer's certificate may be kept (so later mail to that person can be
encrypted to it), and say why or why not in one line.

A certificate is kept only when all of these hold: the message is S/MIME signed at its top
level (detached `multipart/signed`, or opaque `application/pkcs7-mime` signed-data); the CMS
signature verifies over the signed content, signed attributes included; the signer's
certificate chains to a trusted CA and is valid at `now`; the From field holds exactly one
address and the certificate is for it and usable for encryption
(`smime.certificate_info(...).usable_for(address)`). Anything else, hostile input included,
gives a `NotHarvested` with the reason: never an exception.

Verification is Debian's OpenSSL (`openssl cms -verify`, package `openssl`) in a child
process, under util-linux `prlimit` (memory, CPU, no core file) and a wall-clock timeout, fed
from files in a private temporary directory that is removed afterwards. Why:

- `cryptography` builds PKCS#7 signatures but cannot verify them, and no ASN.1 library is
  installed. Verifying CMS by hand (re-encoding the signed attributes as a DER SET, matching
  the signer identifier, checking the message-digest and content-type attributes, mapping
  digest and signature algorithms) is exactly the dangerous protocol code the house rules
  say to leave to a well-kept library. OpenSSL's CMS verification is mature and widely
  used, and Debian ships its security fixes. A new ASN.1 dependency would not remove the
  hand-written part.
- `cryptography.x509.verification` builds chains for TLS only: its verifiers demand the
  serverAuth or clientAuth key purpose and reject an S/MIME certificate. OpenSSL's
  `smimesign` purpose checks what S/MIME needs instead (emailProtection, signing key usages).
- A child process also keeps a large parser of hostile DER out of the gateway's memory.
  The signed content is written to the private directory too (it is the message body):
  run the service with a private /tmp (systemd PrivateTmp=) or TMPDIR on tmpfs.
- Revocation (CRL, OCSP) is not checked: that would need the network.

The MIME around the signature is taken apart here, not by OpenSSL, so that the signed bytes
are exactly the first part as transmitted, with CRLF line ends (RFC 8551, canonical form;
bare LF ends, as in a message saved on Unix, are turned into CRLF first), and so that every
size is capped before anything is decoded or parsed.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealgate.crypto.smime import certificate_info

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_SIGNATURE_BYTES = 1024 * 1024  # a detached signature: certificates and a few signatures
SYSTEM_TRUST = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's ca-certificates bundle
VERIFY_SECONDS = 10
VERIFY_MEMORY_BYTES = 256 * 1024 * 1024
_MAX_CHAIN = 8

_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_PKCS7_MIME_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s[^-]*?-----END CERTIFICATE-----", re.S)
_OPENSSL_ERROR = re.compile(r":error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):")


@dataclass(frozen=True)
class Harvested:
    address: str  # the From address (lower-case) the certificate is for
    certificate_pem: bytes  # the signer's certificate, PEM
    fingerprint_sha256: str  # as sealgate.crypto.smime.certificate_info gives it
    not_after: datetime | None
    evidence: str  # one line: why it was kept


@dataclass(frozen=True)
class NotHarvested:
    reason: str  # one line a log or audit can show: why nothing was kept


_Kind = Literal["detached", "opaque"]


def _shown(text: str, limit: int = 80) -> str:
    """Text from the message or a certificate, made safe for a one-line log entry."""
    text = re.sub(r"[^\x20-\x7e]", "?", text)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------- content type


def _param(message: Message, name: str) -> str:
    value = message.get_param(name)
    if value is None:
        return ""
    return collapse_rfc2231_value(value).strip().lower()


def _signature_kind(message: Message) -> _Kind | str:
    """How the message is signed, or why it is not S/MIME signed."""
    content_type = message.get_content_type()
    if content_type == "multipart/signed":
        protocol = _param(message, "protocol")
        if protocol in _SIGNATURE_TYPES:
            return "detached"
        return f"multipart/signed with protocol {_shown(protocol) or '(none)'}, not S/MIME"
    if content_type in _PKCS7_MIME_TYPES:
        smime_type = _param(message, "smime-type")
        if smime_type == "signed-data":
            return "opaque"
        if smime_type in ("enveloped-data", "authenveloped-data"):
            return "encrypted (S/MIME enveloped-data): no readable signature"
        return (f"{content_type} with smime-type {_shown(smime_type) or '(none)'}, "
                "not signed-data")
    return f"not signed ({_shown(content_type)})"


def is_signed(content_type_header: str) -> bool:
    """Whether a Content-Type field value announces an S/MIME signed message: detached
    (multipart/signed, protocol application/pkcs7-signature) or opaque (application/pkcs7-mime,
    smime-type=signed-data), the x- types included. Headers only: cheap enough for a milter."""
    if not isinstance(content_type_header, str):
        return False
    value = re.sub(r"\r?\n(?=[ \t])", "", content_type_header).strip()  # unfolded
    if "\r" in value or "\n" in value:  # more than one field
        return False
    try:
        return _signature_kind(_parse_header(f"Content-Type: {value}\n\n")) in (
            "detached", "opaque")
    except Exception:  # the stdlib's header parser on hostile input: not signed
        return False


# ---------------------------------------------------------------------------- the message


def _split_entity(entity: bytes) -> tuple[bytes, bytes]:
    """Header block and body of a CRLF-canonical entity."""
    if entity.startswith(b"\r\n"):
        return b"", entity[2:]
    head, _, body = entity.partition(b"\r\n\r\n")
    return head + b"\r\n", body


@dataclass(frozen=True)
class _Header:
    """What harvesting needs from a header block, read once."""

    kind: _Kind | str  # how it is signed, or why it is not S/MIME signed
    content_type: str
    content_type_fields: int
    encoding: str  # Content-Transfer-Encoding, lower-case
    boundary: str | None
    sender: str  # the single From address, lower-case, or "" (see sender_problem)
    sender_problem: str


def _sender(message: Message) -> tuple[str, str]:
    """(the single From address lower-case, "") or ("", what is wrong with From)."""
    fields = message.get_all("From") or []
    if len(fields) != 1:
        return "", "no From field" if not fields else f"{len(fields)} From fields"
    parsed = email.policy.default.header_factory("From", str(fields[0]))
    addresses: tuple[Address, ...] = getattr(parsed, "addresses", ())
    if len(addresses) != 1:
        return "", f"From holds {len(addresses)} addresses, not one"
    address = addresses[0]
    if not address.username or not address.domain:
        return "", "From holds no usable address"
    return str(address.addr_spec).lower(), ""


def _parse_header(text: str) -> Message:
    # compat32, not policy.default: the modern parser cuts an unquoted parameter value at
    # "/" (protocol=application/pkcs7-signature, as some clients send it)
    return HeaderParser(policy=email.policy.compat32).parsestr(text)


def _header(block: bytes) -> _Header | None:
    """None when the stdlib's parser cannot read it."""
    try:
        message = _parse_header(block.decode("ascii", "surrogateescape") + "\r\n")
        sender, sender_problem = _sender(message)
        return _Header(kind=_signature_kind(message), content_type=message.get_content_type(),
                       content_type_fields=len(message.get_all("Content-Type") or []),
                       encoding=str(message.get("Content-Transfer-Encoding", "7bit"))
                       .strip().lower(),
                       boundary=message.get_boundary(), sender=sender,
                       sender_problem=sender_problem)
    except Exception:  # the stdlib's parser on hostile input
        return None


def _multipart(body: bytes, boundary: bytes) -> tuple[list[bytes], bool]:
    """The parts of a multipart body and whether it was closed. The CRLF before a delimiter
    belongs to the delimiter (RFC 2046), so each part is exactly its transmitted bytes."""
    delimiter = re.compile(rb"(?:\A|\r\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)")
    parts: list[bytes] = []
    start: int | None = None
    for found in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start:found.start()])
        if found.group(1):
            return parts, start is not None
        start = found.end()
    return parts, False


def _base64(data: bytes, limit: int, what: str) -> bytes:
    """Strictly decoded base64, refused beyond `limit` bytes before decoding."""
    compact = re.sub(rb"\s+", b"", data)
    if len(compact) > (limit + 2) // 3 * 4:
        raise ValueError(f"{what} is larger than {limit} bytes")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64 (truncated or damaged)") from None


def _detached(header: _Header, body: bytes) -> tuple[bytes, bytes]:
    """(CMS signature DER, signed bytes) of a multipart/signed; ValueError saying why not."""
    if not header.boundary or not header.boundary.isascii():
        raise ValueError("multipart/signed without a usable boundary")
    parts, closed = _multipart(body, header.boundary.encode("ascii"))
    if not closed:
        raise ValueError("multipart/signed is not closed (truncated?)")
    if len(parts) != 2:
        raise ValueError(f"multipart/signed has {len(parts)} parts, not 2")
    signed, signature_part = parts
    head, signature_body = _split_entity(signature_part)
    part = _header(head)
    if part is None:
        raise ValueError("the signature part's header is unreadable")
    if part.content_type not in _SIGNATURE_TYPES:
        raise ValueError(f"the signature part is {_shown(part.content_type)}, "
                         "not application/pkcs7-signature")
    if part.encoding != "base64":
        raise ValueError("the signature part is not base64-encoded")
    return _base64(signature_body, MAX_SIGNATURE_BYTES, "the signature"), signed


def _opaque(header: _Header, body: bytes) -> bytes:
    if header.encoding != "base64":
        raise ValueError("the signed data is not base64-encoded")
    return _base64(body, MAX_MESSAGE_BYTES, "the signed data")


# ---------------------------------------------------------------------------- trust


def _certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle that parses; the others are skipped."""
    found = []
    for block in _PEM_CERTIFICATE.finditer(pem):
        try:
            found.append(x509.load_pem_x509_certificate(block.group(0)))
        except ValueError:
            continue
    return found


@dataclass(frozen=True)
class _Trust:
    pem: bytes  # given to OpenSSL as is: it also trusts roots `cryptography` cannot parse
    anchors: tuple[x509.Certificate, ...]  # the ones that parse here, to name in evidence


@functools.lru_cache(maxsize=2)
def _system_trust(_stamp: tuple[int, int]) -> _Trust:
    """The system bundle, read again only when it changes (`_stamp`: its mtime and size)."""
    pem = SYSTEM_TRUST.read_bytes()
    return _Trust(pem, tuple(_certificates(pem)))


def _trust(trust_pem: bytes | None) -> _Trust:
    if trust_pem is None:
        try:
            status = SYSTEM_TRUST.stat()
            trust = _system_trust((status.st_mtime_ns, status.st_size))
        except OSError:
            raise ValueError(f"no trusted CAs: {SYSTEM_TRUST} is unreadable "
                             "(install ca-certificates) and none were configured") from None
    else:
        trust = _Trust(bytes(trust_pem), tuple(_certificates(bytes(trust_pem))))
    if not trust.anchors:
        raise ValueError("no trusted CAs: the trust given holds no PEM certificate")
    return trust


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # any mismatch of key, algorithm or signature
        return False
    return True


def _anchor_of(signer: x509.Certificate, carried: list[x509.Certificate],
               anchors: tuple[x509.Certificate, ...]) -> x509.Certificate | None:
    """The trusted CA that OpenSSL's chain ended in, found again for the evidence line."""
    current = signer
    for _ in range(_MAX_CHAIN):
        anchor = next((ca for ca in anchors if _issued_by(current, ca)), None)
        if anchor is not None:
            return anchor
        step = next((ca for ca in carried if ca != current and _issued_by(current, ca)), None)
        if step is None:
            return None
        current = step
    return None


# ---------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class _Verified:
    signers: list[x509.Certificate]
    carried: list[x509.Certificate]  # every certificate the CMS carried


def _openssl_failure(returncode: int, stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    verify_error = re.search(r"Verify error:\s*([^\n]+)", text)
    if verify_error:
        return f"the signer's certificate does not verify: {_shown(verify_error.group(1).strip())}"
    reasons = _OPENSSL_ERROR.findall(text)
    if "content verify error" in reasons or "verification failure" in reasons:
        return "the signature does not match the signed content (changed after signing?)"
    if returncode == 2 or "Error reading" in text:
        return "the signature is not readable CMS SignedData"
    detail = reasons[-1] if reasons else f"openssl exited with {returncode}"
    return f"the signature does not verify: {_shown(detail)}"


def _verify(cms: bytes, content: bytes | None, trust: _Trust, now: datetime) -> _Verified:
    """OpenSSL's `cms -verify`: signature, signed attributes and chain (smimesign purpose)
    at `now`. ValueError with the reason when it fails."""
    openssl = shutil.which("openssl", path="/usr/bin:/bin")
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
    if openssl is None or prlimit is None:
        raise ValueError("S/MIME verifier missing: install openssl and util-linux")
    with tempfile.TemporaryDirectory(prefix="sealgate-harvest-") as private:
        work = Path(private)  # mode 0700, removed with everything in it
        (work / "signature.der").write_bytes(cms)
        (work / "trust.pem").write_bytes(trust.pem)
        argv = [prlimit, f"--as={VERIFY_MEMORY_BYTES}",
                f"--cpu={VERIFY_SECONDS}:{VERIFY_SECONDS + 1}", "--core=0", "--",
                openssl, "cms", "-verify", "-inform", "DER", "-in", "signature.der",
                "-binary", "-purpose", "smimesign", "-attime", str(int(now.timestamp())),
                # only the anchors given: never OpenSSL's default directory or store
                "-CAfile", "trust.pem", "-no-CApath", "-no-CAstore",
                "-signer", "signers.pem", "-certsout", "carried.pem", "-out", os.devnull]
        if content is not None:
            (work / "content.bin").write_bytes(content)
            argv += ["-content", "content.bin"]
        try:
            done = subprocess.run(argv, cwd=work, capture_output=True, check=False,
                                  timeout=VERIFY_SECONDS,
                                  env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
        except subprocess.TimeoutExpired:
            raise ValueError(f"S/MIME verification took longer than {VERIFY_SECONDS} "
                             "seconds") from None
        except OSError as error:
            raise ValueError(f"S/MIME verifier could not run: {error.strerror}") from None
        if done.returncode != 0:
            raise ValueError(_openssl_failure(done.returncode, done.stderr))
        signers = _certificates(_read(work / "signers.pem"))
        carried = _certificates(_read(work / "carried.pem"))
    if not signers:
        raise ValueError("the signature verified but named no signer certificate")
    return _Verified(signers, carried)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


# ---------------------------------------------------------------------------- the decision


def _choose(verified: _Verified, trust: _Trust, address: str,
            now: datetime) -> Harvested | NotHarvested:
    reasons = []
    for signer in verified.signers:
        pem = signer.public_bytes(serialization.Encoding.PEM)
        info = certificate_info(pem, now)
        if info.usable_for(address):
            anchor = _anchor_of(signer, verified.carried, trust.anchors)
            until = info.not_after.date().isoformat() if info.not_after else "(no end)"
            issuer = anchor.subject.rfc4514_string() if anchor else "a trusted CA"
            evidence = (f"signed by {_shown(info.subject, 200)}: signature verified, chain to "
                        f"{_shown(issuer, 200)}, valid until {until}")
            return Harvested(address=address, certificate_pem=pem,
                             fingerprint_sha256=info.fingerprint_sha256,
                             not_after=info.not_after, evidence=evidence)
        if address not in {mine.lower() for mine in info.addresses}:
            reasons.append(f"the signer's certificate is for "
                           f"{_shown(', '.join(info.addresses)) or 'no address'}, "
                           f"not {_shown(address)}")
        else:
            reasons.append(f"the signer's certificate cannot be used to encrypt to "
                           f"{_shown(address)}: {'; '.join(info.problems)}")
    return NotHarvested(" | ".join(reasons))


def harvest(raw: bytes, trust_pem: bytes | None, now: datetime) -> Harvested | NotHarvested:
    """The signer's certificate of the S/MIME-signed message `raw`, if it may be kept, or
    why not. `trust_pem`: the trusted CA certificates (PEM), or None for the system's
    (/etc/ssl/certs/ca-certificates.crt); intermediates may come from the message. `now`
    (UTC when naive) is the moment every certificate must be valid at. Never raises on the
    message's content."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return NotHarvested("not a message (bytes expected)")
    if len(raw) > MAX_MESSAGE_BYTES:
        return NotHarvested(f"message larger than {MAX_MESSAGE_BYTES} bytes: not examined")
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    head, body = _split_entity(re.sub(rb"\r?\n", b"\r\n", bytes(raw)))
    header = _header(head)
    if header is None:
        return NotHarvested("unreadable message header")
    if header.content_type_fields > 1:
        return NotHarvested("several Content-Type fields")
    if header.kind not in ("detached", "opaque"):
        return NotHarvested(header.kind)
    if header.sender_problem:
        return NotHarvested(header.sender_problem)
    try:
        if header.kind == "detached":
            cms, signed = _detached(header, body)
        else:
            cms, signed = _opaque(header, body), None
        if not cms.startswith(b"\x30"):
            raise ValueError("the signature is not DER-encoded CMS")
        trust = _trust(trust_pem)
        verified = _verify(cms, signed, trust, moment)
    except ValueError as problem:
        return NotHarvested(str(problem))
    return _choose(verified, trust, header.sender, moment)
