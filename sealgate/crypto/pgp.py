"""OpenPGP for recipients whose public key is on file or published by Web Key Directory:
judge a key (`key_info`), turn a whole message into PGP/MIME (`encrypt`, RFC 3156 with
RFC 9788 header protection) and find a key by WKD (`wkd_urls`, `fetch_wkd`).

Sequoia-PGP (pysequoia) does the OpenPGP work in process. Two of its habits shape this
module: it checks self-signatures under its standard policy but only at the present time,
and its encryption falls back to expired encryption subkeys and does not look at a
revocation of the whole certificate. So `key_info` is the gate: it reads the key's
packets for dates, flags and key sizes at the caller's `now`, asks Sequoia which subkeys
it would encrypt to (those have valid binding signatures under its policy), and approves
only the subkeys both agree on. `encrypt` refuses any key that is not approved and checks
that the ciphertext is addressed to approved subkeys only.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import quote, urlsplit

import pysequoia
from pysequoia.packet import Packet, PacketPile, SignatureType, Tag

from sealgate.crypto import protection
from sealgate.crypto.protection import OBSCURED_SUBJECT

log = logging.getLogger(__name__)

WKD_MAX_BYTES = 64 * 1024
WKD_TIMEOUT = 5.0

_MIN_RSA_BITS = 2048
_PREAMBLE = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")

# Public-key algorithm ids (RFC 9580 §9.1 and the PQC extension).
_RSA_ENCRYPT_SIGN, _RSA_ENCRYPT, _RSA_SIGN = 1, 2, 3
_ELGAMAL, _DSA, _ECDH, _ECDSA, _ELGAMAL_SIGN, _EDDSA = 16, 17, 18, 19, 20, 22
_X25519, _X448, _ED25519, _ED448 = 25, 26, 27, 28
_MLKEM768_X25519, _MLKEM1024_X448 = 35, 36
_ENCRYPTING = {_RSA_ENCRYPT_SIGN, _RSA_ENCRYPT, _ELGAMAL, _ECDH, _X25519, _X448,
               _MLKEM768_X25519, _MLKEM1024_X448}
_ALGORITHM_NAMES = {_RSA_ENCRYPT_SIGN: "RSA", _RSA_ENCRYPT: "RSA", _RSA_SIGN: "RSA",
                    _ELGAMAL: "ElGamal", _ELGAMAL_SIGN: "ElGamal", _DSA: "DSA", _ECDH: "ECDH",
                    _ECDSA: "ECDSA", _EDDSA: "EdDSA", _X25519: "X25519", _X448: "X448",
                    _ED25519: "Ed25519", _ED448: "Ed448",
                    _MLKEM768_X25519: "ML-KEM-768+X25519", _MLKEM1024_X448: "ML-KEM-1024+X448"}
# Curve OIDs (hex of the OID's DER body) accepted for ECDH, and names for the others.
_ECDH_CURVES = {
    "2b060104019755010501": "Curve25519",
    "2b656f": "Curve448",
    "2a8648ce3d030107": "NIST P-256",
    "2b81040022": "NIST P-384",
    "2b81040023": "NIST P-521",
    "2b2403030208010107": "brainpoolP256r1",
    "2b240303020801010b": "brainpoolP384r1",
    "2b240303020801010d": "brainpoolP512r1",
}
_OTHER_CURVES = {"2b06010401da470f01": "Ed25519", "2b6571": "Ed448", "2b8104000a": "secp256k1"}
_OLDEST = datetime.min.replace(tzinfo=UTC)
_CERTIFICATIONS = (SignatureType.GenericCertification, SignatureType.PersonaCertification,
                   SignatureType.CasualCertification, SignatureType.PositiveCertification)


class PgpError(ValueError):
    """A message cannot be encrypted as asked; the text says why, fit for an operator."""


@dataclass(frozen=True)
class KeyInfo:
    """What an OpenPGP public key is and whether Sealgate may encrypt to it at `now`.

    `encryption_keys` are the fingerprints (upper-case hex) of the (sub)keys a message
    would be encrypted to; `problems` are human reasons the key cannot be used (empty when
    it can)."""

    fingerprint: str
    user_ids: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    created: datetime | None = None
    expires: datetime | None = None
    algorithm: str = ""
    encryption_keys: tuple[str, ...] = ()
    encryption_algorithm: str = ""
    problems: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return bool(self.encryption_keys) and not self.problems

    def usable_for(self, address: str) -> bool:
        """Usable, and one of its valid user ids carries this address."""
        return self.usable and _normal_address(address) in self.addresses


# --- key_info ----------------------------------------------------------------------------


def key_info(armored_or_binary: bytes, now: datetime) -> KeyInfo:
    """Judge an OpenPGP public key (ASCII-armored or binary) at `now` (naive means UTC).
    Never raises: input that is not an OpenPGP key gives a KeyInfo with the problem
    "not an OpenPGP key".

    Dates, flags, revocations and key sizes are read at `now`; whether signatures verify
    (and Sequoia's policy on hashes and algorithms) is Sequoia's verdict at the present
    time, which is what `encrypt` uses."""
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    try:
        certs = _certs(bytes(armored_or_binary))
    except Exception as exc:  # whatever the input, an answer rather than an exception
        log.debug("not an OpenPGP key: %s", _first_line(exc))
        return KeyInfo(fingerprint="", problems=("not an OpenPGP key",))
    if not certs:
        return KeyInfo(fingerprint="", problems=("not an OpenPGP key",))
    try:
        info = _judge(certs[0], moment)
    except Exception as exc:
        log.warning("OpenPGP key could not be read: %s", _first_line(exc))
        return KeyInfo(fingerprint="", problems=("not an OpenPGP key",))
    if len(certs) > 1:
        return _with_problem(info, f"holds {len(certs)} OpenPGP keys where one was expected")
    return info


def _certs(data: bytes) -> list[pysequoia.Cert]:
    # A secret key parses too (with a DeprecationWarning from Sequoia); only its public
    # half is ever used or returned.
    return list(pysequoia.Cert.split_bytes(data)) if data.strip() else []


@dataclass
class _Component:
    packet: Packet
    signatures: list[Packet] = field(default_factory=list)


def _judge(cert: pysequoia.Cert, now: datetime) -> KeyInfo:
    primary, user_ids, subkeys = _components(cert)
    key = primary.packet
    fingerprint = (key.fingerprint or "").upper()
    created = key.key_created
    problems: list[str] = []

    def add(problem: str) -> None:
        if problem not in problems:
            problems.append(problem)

    verified_uids, policy_error = _verified_user_ids(cert)
    uids = [uid for uid in _valid_user_ids(user_ids, key, now)
            if verified_uids is None or uid in verified_uids]
    addresses = tuple(dict.fromkeys(a for a in (_uid_address(u) for u in uids) if a))

    binding = _newest(_self_signatures(primary, user_ids, key, now))
    expires = _expiry(key, binding)
    if cert.is_revoked:
        revocation = _newest([s for s in primary.signatures
                              if s.signature_type == SignatureType.KeyRevocation])
        add(f"revoked on {_day(revocation.signature_created)}"
            if revocation is not None and revocation.signature_created else "revoked")
    if created is not None and created > now:
        add(f"not valid before {_day(created)}")
    if expires is not None and expires <= now:
        add(f"expired on {_day(expires)}")
    primary_label, primary_problem = _strength(key)
    if primary_problem:
        add(primary_problem)

    candidates = _encryption_candidates(primary, binding, subkeys, key, now)
    approved = [(fpr, label) for fpr, label, reason in candidates if reason is None]
    chosen = _sequoia_recipients(cert)
    agreed = [(fpr, label) for fpr, label in approved if _key_id_matches(fpr, chosen)]
    if not candidates:
        add("no encryption subkey")
    elif not approved:
        for _, _, reason in candidates:
            add(reason or "no encryption subkey")
    elif not agreed and not problems:
        add("no encryption subkey has a binding signature valid under the OpenPGP policy")
    # Sequoia encrypts to every subkey it accepts: one that this judgement refuses would get
    # a copy of the message, so the key as a whole cannot be used (`encrypt` checks it too).
    for recipient in chosen:
        if agreed and not any(_key_id_matches(fpr, {recipient}) for fpr, _ in agreed):
            reason = next((r for fpr, _, r in candidates
                           if r and _key_id_matches(fpr, {recipient})), None)
            add(reason or f"encryption subkey {recipient.upper()} is not usable")
    if policy_error and not problems:
        add(f"rejected by the OpenPGP policy: {policy_error}")
    return KeyInfo(
        fingerprint=fingerprint, user_ids=tuple(uids), addresses=addresses, created=created,
        expires=expires, algorithm=primary_label,
        encryption_keys=tuple(fpr for fpr, _ in agreed),
        encryption_algorithm=", ".join(dict.fromkeys(label for _, label in agreed)),
        problems=tuple(problems))


def _components(cert: pysequoia.Cert) -> tuple[_Component, list[_Component], list[_Component]]:
    """The certificate's packets grouped: primary key, user ids, subkeys, each with the
    signatures that follow it. Sequoia writes a certificate in this canonical order."""
    packets = list(PacketPile.from_bytes(bytes(cert)))
    if not packets or packets[0].tag != Tag.PublicKey:
        raise ValueError("no primary key")
    primary = _Component(packets[0])
    user_ids: list[_Component] = []
    subkeys: list[_Component] = []
    current: _Component | None = primary
    for packet in packets[1:]:
        if packet.tag == Tag.Signature:
            if current is not None:
                current.signatures.append(packet)
        elif packet.tag == Tag.UserID:
            current = _Component(packet)
            user_ids.append(current)
        elif packet.tag == Tag.PublicSubkey:
            current = _Component(packet)
            subkeys.append(current)
        else:  # user attributes and unknown components: not ours to judge
            current = None
    return primary, user_ids, subkeys


def _by_primary(signature: Packet, key: Packet) -> bool:
    issuer = signature.issuer_fingerprint
    if issuer:
        return issuer.lower() == (key.fingerprint or "").lower()
    key_id = signature.issuer_key_id
    return key_id is None or key_id.lower() == (key.key_id or "").lower()


def _in_force(signatures: Sequence[Packet], kinds: Sequence[SignatureType], key: Packet,
              now: datetime) -> list[Packet]:
    return [s for s in signatures
            if s.signature_type in kinds and _by_primary(s, key)
            and (s.signature_created is None or s.signature_created <= now)]


def _newest(signatures: Sequence[Packet]) -> Packet | None:
    dated = [s for s in signatures if s.signature_created is not None]
    return max(dated, key=lambda s: s.signature_created or _OLDEST) if dated else None


def _valid_user_ids(user_ids: Sequence[_Component], key: Packet, now: datetime) -> list[str]:
    valid: list[str] = []
    for uid in user_ids:
        text = uid.packet.user_id
        certified = _newest(_in_force(uid.signatures, _CERTIFICATIONS, key, now))
        revoked = _newest(_in_force(uid.signatures, (SignatureType.CertificationRevocation,),
                                    key, now))
        if text is None or certified is None:
            continue
        if revoked is not None and (revoked.signature_created or _OLDEST) >= (
                certified.signature_created or _OLDEST):
            continue
        valid.append(text)
    return valid


def _verified_user_ids(cert: pysequoia.Cert) -> tuple[set[str] | None, str]:
    """The user ids whose self-signatures Sequoia verified, or None and the reason when its
    policy rejects the certificate as a whole."""
    try:
        return {str(uid) for uid in cert.user_ids}, ""
    except Exception as exc:
        return None, _first_line(exc)


def _self_signatures(primary: _Component, user_ids: Sequence[_Component], key: Packet,
                     now: datetime) -> list[Packet]:
    """The primary key's binding: its direct-key signatures, else the primary user id's
    self-signatures, else every user id's."""
    direct = _in_force(primary.signatures, (SignatureType.DirectKey,), key, now)
    on_uids = [s for uid in user_ids for s in _in_force(uid.signatures, _CERTIFICATIONS, key,
                                                        now)]
    marked = [s for s in on_uids if s.primary_userid]
    if direct and any(s.key_validity_period is not None for s in direct):
        return direct
    return marked or on_uids or direct


def _expiry(key: Packet, binding: Packet | None) -> datetime | None:
    if binding is None or binding.key_validity_period is None or key.key_created is None:
        return None
    if not binding.key_validity_period:
        return None
    return key.key_created + binding.key_validity_period


def _encryption_candidates(primary: _Component, binding: Packet | None,
                           subkeys: Sequence[_Component], key: Packet,
                           now: datetime) -> list[tuple[str, str, str | None]]:
    """(fingerprint, algorithm, reason it cannot be used or None) for every key that may
    encrypt: subkeys bound for encryption, and the primary key if its flags allow it."""
    found: list[tuple[str, str, str | None]] = []
    if binding is not None and _encrypts(binding, key):
        label, weak = _strength(key)
        found.append(((key.fingerprint or "").upper(), label, weak))
    for subkey in subkeys:
        packet = subkey.packet
        bound = _newest(_in_force(subkey.signatures, (SignatureType.SubkeyBinding,), key, now))
        if bound is None or not _encrypts(bound, packet):
            continue
        label, reason = _strength(packet)
        revoked = _newest(_in_force(subkey.signatures, (SignatureType.SubkeyRevocation,), key,
                                    now))
        expires = _expiry(packet, bound)
        if revoked is not None:
            reason = f"encryption subkey revoked on {_day(revoked.signature_created)}"
        elif packet.key_created is not None and packet.key_created > now:
            reason = f"encryption subkey not valid before {_day(packet.key_created)}"
        elif expires is not None and expires <= now:
            reason = f"encryption subkey expired on {_day(expires)}"
        found.append(((packet.fingerprint or "").upper(), label, reason))
    return found


def _encrypts(signature: Packet, key: Packet) -> bool:
    flags = signature.key_flags
    if flags is None:  # old keys without flags: what the algorithm can do
        return _algorithm(key) in _ENCRYPTING
    return bool(flags.transport_encryption or flags.storage_encryption)


def _algorithm(key: Packet) -> int:
    body = key.body
    return body[7] if body[:1] in (b"\x02", b"\x03") else body[5]


def _material(key: Packet) -> bytes:
    body = key.body
    if body[0] in (2, 3):
        return body[8:]
    if body[0] in (5, 6):
        return body[10:]
    return body[6:]


def _strength(key: Packet) -> tuple[str, str | None]:
    """A label for the key's algorithm and size, and why it is too weak (or None)."""
    body = key.body
    if body[0] < 4:
        return f"v{body[0]} key", f"version {body[0]} keys are obsolete"
    algorithm = _algorithm(key)
    material = _material(key)
    name = _ALGORITHM_NAMES.get(algorithm, f"algorithm {algorithm}")
    if algorithm in (_RSA_ENCRYPT_SIGN, _RSA_ENCRYPT, _RSA_SIGN, _DSA, _ELGAMAL, _ELGAMAL_SIGN):
        bits = int.from_bytes(material[:2], "big")
        label = f"{name} {bits}"
        if algorithm in (_ELGAMAL, _ELGAMAL_SIGN):
            return label, "ElGamal keys are not accepted"
        if bits < _MIN_RSA_BITS:
            return label, f"{name} key of {bits} bits is too weak"
        return label, None
    if algorithm in (_ECDH, _ECDSA, _EDDSA):
        oid = material[1:1 + material[0]].hex()
        curve = _ECDH_CURVES.get(oid) or _OTHER_CURVES.get(oid) or f"curve {oid}"
        if algorithm == _ECDH and oid not in _ECDH_CURVES:
            return f"{name} {curve}", f"ECDH on {curve} is not accepted"
        return f"{name} {curve}", None
    if algorithm in _ALGORITHM_NAMES:
        return name, None
    return name, f"public-key algorithm {algorithm} is not supported"


def _sequoia_recipients(cert: pysequoia.Cert) -> set[str]:
    """The key ids Sequoia would encrypt to (verified bindings, its policy); empty if none."""
    try:
        return _pkesk_key_ids(pysequoia.encrypt(b"", [cert], armor=False))
    except Exception as exc:
        log.debug("no encryption subkey under Sequoia's policy: %s", _first_line(exc))
        return set()


def _pkesk_key_ids(ciphertext: bytes) -> set[str]:
    """Lower-case hex of each recipient named by the message's session-key packets: a key
    id (v3 packets) or a fingerprint (v6 packets)."""
    found: set[str] = set()
    for packet in PacketPile.from_bytes(ciphertext):
        if packet.tag != Tag.PKESK:
            continue
        body = packet.body
        if body[0] == 3:
            found.add(body[1:9].hex())
        elif body[0] == 6 and body[1] > 1:
            found.add(body[3:2 + body[1]].hex())
        else:
            found.add("")  # anonymous recipient: matches no approved key
    return found


def _key_id_matches(fingerprint: str, recipients: set[str]) -> bool:
    fpr = fingerprint.lower()
    # A v4 key id is the fingerprint's last 8 bytes; a v6 key id its first 8.
    return any(r and (r == fpr or r == fpr[-16:] or (len(fpr) == 64 and r == fpr[:16]))
               for r in recipients)


def _uid_address(uid: str) -> str:
    _, address = parseaddr(uid)
    return _normal_address(address) if "@" in address else ""


def _normal_address(address: str) -> str:
    return address.strip().lower()


def _with_problem(info: KeyInfo, problem: str) -> KeyInfo:
    return KeyInfo(fingerprint=info.fingerprint, user_ids=info.user_ids,
                   addresses=info.addresses, created=info.created, expires=info.expires,
                   algorithm=info.algorithm, encryption_keys=info.encryption_keys,
                   encryption_algorithm=info.encryption_algorithm,
                   problems=(*info.problems, problem))


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else "an unknown date"


def _first_line(exc: BaseException) -> str:
    # Sequoia's errors may carry a Rust backtrace after the first line.
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- encrypt -----------------------------------------------------------------------------


def encrypt(message: bytes, keys: Sequence[bytes], *, protect_subject: bool = False,
            placeholder_subject: str = OBSCURED_SUBJECT) -> bytes:
    """A whole RFC 5322 message (CRLF) as a whole PGP/MIME message (RFC 3156 §4) for every
    key in `keys`. The encrypted part is the original body entity with copies of the
    headers that matter (RFC 9788 header protection, `hp="cipher"`); the outer message keeps
    only addressing, threading and Subject (`placeholder_subject` when `protect_subject`).
    Raises PgpError for no keys, an unusable key or a message that cannot be read."""
    if not keys:
        raise PgpError("no OpenPGP key to encrypt to")
    now = datetime.now(UTC)
    certs: list[pysequoia.Cert] = []
    approved: list[str] = []
    for number, key in enumerate(keys, 1):
        info = key_info(key, now)
        if not info.usable:
            reasons = "; ".join(info.problems) or "no usable encryption subkey"
            name = info.fingerprint or f"number {number}"
            raise PgpError(f"OpenPGP key {name} cannot be used: {reasons}")
        certs.append(_certs(bytes(key))[0])
        approved.extend(info.encryption_keys)

    try:
        fields, body = protection.split(message)
        outer = protection.outer_fields(
            fields, placeholder_subject if protect_subject else None)
    except protection.UnreadableMessage as problem:
        raise PgpError(str(problem)) from None
    inner = protection.payload(fields, body, outer)
    try:
        ciphertext = pysequoia.encrypt(inner, certs, armor=False)
    except Exception as exc:
        raise PgpError(f"OpenPGP encryption failed: {_first_line(exc)}") from None
    stray = {r for r in _pkesk_key_ids(ciphertext)
             if not any(_key_id_matches(fpr, {r}) for fpr in approved)}
    if stray:
        raise PgpError("OpenPGP encryption chose a subkey that was not approved: "
                       + ", ".join(sorted(stray)))
    armored = pysequoia.armor(ciphertext, pysequoia.ArmorKind.Message)
    return _pgp_mime(outer, armored.encode("ascii"))


def _pgp_mime(outer: Sequence[protection.Field], armored: bytes) -> bytes:
    boundary = f"=_sealgate_pgp_{secrets.token_hex(16)}".encode("ascii")
    armor = armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not armor.endswith(b"\r\n"):
        armor += b"\r\n"
    head = b"".join(f.raw for f in outer) + (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
        b' boundary="' + boundary + b'"\r\n')
    parts = (
        b"--" + boundary + b"\r\n"
        b"Content-Type: application/pgp-encrypted\r\n"
        b"Content-Description: PGP/MIME version identification\r\n"
        b"\r\n"
        b"Version: 1\r\n"
        b"\r\n"
        b"--" + boundary + b"\r\n"
        b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
        b"Content-Description: OpenPGP encrypted message\r\n"
        b'Content-Disposition: inline; filename="encrypted.asc"\r\n'
        b"\r\n" + armor + b"\r\n"
        b"--" + boundary + b"--\r\n")
    return head + b"\r\n" + _PREAMBLE + parts


# --- Web Key Directory -------------------------------------------------------------------


def wkd_urls(address: str) -> tuple[str, str]:
    """The advanced and the direct WKD URL for `address` (draft-koch-openpgp-webkey-service
    §3.1): HASH is the z-base-32 SHA-1 of the local part with ASCII letters lower-cased."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise PgpError(f"not a mail address: {address!r}")
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in local):
        raise PgpError(f"not a mail address: {address!r}")
    try:
        host = domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise PgpError(f"not a mail domain: {domain!r}") from None
    if not _DOMAIN.match(host):
        raise PgpError(f"not a mail domain: {domain!r}")
    digest = hashlib.sha1(local.encode("utf-8").lower(), usedforsecurity=False).digest()
    hashed = _zbase32(digest)
    query = quote(local, safe="")
    return (f"https://openpgpkey.{host}/.well-known/openpgpkey/{host}/hu/{hashed}?l={query}",
            f"https://{host}/.well-known/openpgpkey/hu/{hashed}?l={query}")


def _zbase32(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    count = (len(data) * 8 + 4) // 5
    bits <<= count * 5 - len(data) * 8
    return "".join(_ZBASE32[(bits >> (5 * (count - 1 - i))) & 31] for i in range(count))


class WkdFetchError(Exception):
    """One WKD request failed; the text says how (for the log)."""


class Opener(Protocol):
    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        """The body of a 200 answer, at most `max_bytes`; WkdFetchError otherwise."""
        ...


Resolver = Callable[[str, int], tuple[str, int]]


class _ConnectTo(http.client.HTTPSConnection):
    """HTTPS to `host` (SNI, certificate name, Host header) over a TCP connection to
    `address`, which the resolver chose."""

    def __init__(self, host: str, port: int, *, address: tuple[str, int],
                 context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


@dataclass(frozen=True)
class HttpsOpener:
    """GET over HTTPS with certificate and host name verification, a size cap and an
    overall deadline; no redirects. `ssl_context` (default: the system's trust store) and
    `resolve` (host, port → address to connect to; default: DNS) are for tests and for
    deployments that pin a resolver."""

    ssl_context: ssl.SSLContext | None = None
    resolve: Resolver | None = None
    user_agent: str = "Sealgate-WKD/1"

    def __post_init__(self) -> None:
        context = self.ssl_context
        if context is not None and (context.verify_mode != ssl.CERT_REQUIRED
                                    or not context.check_hostname):
            raise ValueError("WKD needs an SSL context that verifies certificates and names")

    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise WkdFetchError(f"not an https URL: {url}")
        host, port = parts.hostname, parts.port or 443
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + timeout
        try:
            address = self.resolve(host, port) if self.resolve else (host, port)
            context = self.ssl_context or ssl.create_default_context()
            connection = _ConnectTo(host, port, address=address, context=context,
                                    timeout=timeout)
            try:
                connection.request("GET", path, headers={"User-Agent": self.user_agent,
                                                         "Accept": "application/octet-stream"})
                response = connection.getresponse()
                if response.status != 200:
                    raise WkdFetchError(f"HTTP {response.status} {response.reason}")
                declared = response.getheader("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise WkdFetchError(f"the key is larger than {max_bytes} bytes")
                return _read_capped(connection, response, max_bytes, deadline)
            finally:
                connection.close()
        except WkdFetchError:
            raise
        except ssl.SSLError as exc:
            raise WkdFetchError(f"TLS failed: {exc}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise WkdFetchError(f"{type(exc).__name__}: {exc}") from None


def _read_capped(connection: http.client.HTTPSConnection, response: http.client.HTTPResponse,
                 max_bytes: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WkdFetchError("timed out reading the key")
        if connection.sock is not None:
            connection.sock.settimeout(left)
        chunk = response.read(min(16 * 1024, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise WkdFetchError(f"the key is larger than {max_bytes} bytes")


def fetch_wkd(address: str, *, timeout: float = WKD_TIMEOUT, max_bytes: int = WKD_MAX_BYTES,
              opener: Opener | None = None, now: datetime | None = None) -> bytes | None:
    """The recipient's public key from their domain's Web Key Directory (advanced method,
    then direct), or None. A key is returned (binary, public parts only) only when
    `key_info(...).usable_for(address)`; every failure is logged, none is raised."""
    try:
        urls = wkd_urls(address)
    except PgpError as exc:
        log.info("WKD lookup skipped: %s", exc)
        return None
    getter = opener if opener is not None else HttpsOpener()
    moment = now or datetime.now(UTC)
    for method, url in zip(("advanced", "direct"), urls, strict=True):
        try:
            body = getter.get(url, timeout=timeout, max_bytes=max_bytes)
        except WkdFetchError as exc:
            log.info("WKD %s lookup for %s: %s", method, address, exc)
            continue
        except Exception as exc:  # an opener's own failure must not escape either
            log.warning("WKD %s lookup for %s failed: %s", method, address, _first_line(exc))
            continue
        key = _key_for(body, address, moment)
        if key is not None:
            log.info("WKD %s lookup for %s found a usable key", method, address)
            return key
        log.info("WKD %s lookup for %s: no usable key for the address", method, address)
    return None


def _key_for(body: bytes, address: str, now: datetime) -> bytes | None:
    try:
        certs = _certs(body)
    except Exception as exc:
        log.info("WKD answer for %s is not an OpenPGP key: %s", address, _first_line(exc))
        return None
    for cert in certs:
        data = bytes(cert)
        info = key_info(data, now)
        if info.usable_for(address):
            return data
        log.info("WKD key %s for %s not used: %s", info.fingerprint or "?", address,
                 "; ".join(info.problems) or f"it is for {', '.join(info.addresses) or 'nobody'}")
    return None
