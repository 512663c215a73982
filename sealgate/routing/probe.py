"""The I/O side of verified-TLS evidence: ask DNS (dnspython) for a domain's MX hosts, their
addresses and TLSA records and its `_mta-sts` TXT record, fetch the MTA-STS policy over
HTTPS, and try STARTTLS on each MX host. The observations go to `evidence.verdict`.

`Prober.probe` never raises: broken or hostile DNS, web servers and mail servers end up as
evidence lines and a verdict that does not qualify. Everything it talks to is injectable
(resolver, TLS trust, ports, the policy fetcher), so tests run it against loopback servers.

DNSSEC: the prober asks its resolver for the AD bit and trusts it. That is only sound when
the resolver is a validating resolver the gateway trusts (on the host or over a protected
link), which is how DANE is meant to be deployed (RFC 7672 §1.3).

`ProbeCache` keeps verdicts for the milter's per-message path: `cached()` answers at once
from memory and starts a background refresh when an entry is missing or getting old."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import http.client
import ipaddress
import logging
import smtplib
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import dns.exception
import dns.flags
import dns.name
import dns.resolver
from cryptography import x509

from sealgate.routing.background import BackgroundCache
from sealgate.routing.evidence import (
    STS_POLICY_MAX_BYTES,
    DaneCheck,
    Failure,
    MtaStsError,
    MtaStsPolicy,
    MxHost,
    TlsaRecord,
    TlsObservation,
    TlsVerdict,
    describe,
    failed_verdict,
    is_host_name,
    match_tlsa,
    parse_mta_sts_policy,
    parse_mta_sts_txt,
    verdict,
)

__all__ = [
    "HttpsPolicyFetcher",
    "PolicyFetchError",
    "ProbeCache",
    "Prober",
    "describe",
]

log = logging.getLogger(__name__)

SslContextFactory = Callable[[], ssl.SSLContext]
HttpsOpener = Callable[[str], bytes]  # the policy URL -> its body, or PolicyFetchError

MAX_PROBED_MX = 10  # MX hosts tried per domain (in preference order); the rest fail unprobed


class PolicyFetchError(Exception):
    """The MTA-STS policy could not be fetched; the message says why, in one line."""


class _GaveUp(Exception):
    """The watchdog ended a conversation that went on too long."""


class _Lookup(NamedTuple):
    records: tuple[Any, ...]
    ttl: int | None
    secure: bool  # the resolver set AD: it validated the answer with DNSSEC
    nxdomain: bool = False


class _Watchdog:
    """Ends a conversation that takes too long overall: a per-read timeout alone lets a
    hostile server trickle bytes (or send endless continuation lines) for ever. Shutting
    down a duplicate of the socket ends the connection under whatever object uses it."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            expired = self.expired
        if expired:
            _shutdown(duplicate)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedSMTP(smtplib.SMTP):
    """SMTP to a chosen address while TLS checks the MX name: smtplib takes the name it
    connects to as the server name for SNI and certificate checks, and we resolve the name
    ourselves (with dnspython, not the system resolver)."""

    def __init__(self, address: str, watchdog: _Watchdog, timeout: float,
                 local_hostname: str) -> None:
        self._address = address
        self._watchdog = watchdog
        super().__init__(timeout=timeout, local_hostname=local_hostname)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        self._host = host  # what starttls() sends as server_hostname (connect() leaves it)
        sock = socket.create_connection((self._address, port), timeout, self.source_address)
        self._watchdog.watch(sock)
        return sock


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext,
                 open_socket: Callable[[], socket.socket]) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls = context
        self._open_socket = open_socket

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(self._open_socket(), server_hostname=self.host)


def _verifying(factory: SslContextFactory) -> ssl.SSLContext:
    context = factory()
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


class HttpsPolicyFetcher:
    """GET an MTA-STS policy as RFC 8461 §3.3 asks: the certificate must be valid for the
    policy host, only a 200 counts (redirects are not followed), the media type must be
    text/plain, and the body is capped in size and time."""

    def __init__(self, open_socket: Callable[[str, int], socket.socket],
                 ssl_context_factory: SslContextFactory = ssl.create_default_context, *,
                 port: int = 443, timeout: float = 10.0, deadline: float = 30.0,
                 max_bytes: int = STS_POLICY_MAX_BYTES) -> None:
        self._open_socket = open_socket
        self._context_factory = ssl_context_factory
        self.port = port
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes

    def __call__(self, url: str) -> bytes:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise PolicyFetchError(f"not an https URL: {url}")
        host = parts.hostname
        watchdog = _Watchdog(self.deadline)

        def open_socket() -> socket.socket:
            sock = self._open_socket(host, self.port)
            watchdog.watch(sock)
            return sock

        connection = _PinnedHTTPS(host, self.port, self.timeout,
                                  _verifying(self._context_factory), open_socket)
        try:
            connection.request("GET", parts.path or "/", headers={
                "Accept": "text/plain", "Connection": "close", "User-Agent": "Sealgate"})
            response = connection.getresponse()
            body = self._body(response)
            if watchdog.expired:  # a body cut short by the watchdog is not the policy
                raise PolicyFetchError(f"gave up after {self.deadline:g} s")
            return body
        except PolicyFetchError:
            raise
        except ssl.SSLCertVerificationError as error:
            raise PolicyFetchError(f"certificate of {host} not valid: "
                                   f"{error.verify_message or error}") from None
        except (OSError, http.client.HTTPException, ValueError) as error:
            if watchdog.expired:
                raise PolicyFetchError(f"gave up after {self.deadline:g} s") from None
            raise PolicyFetchError(_network_error(error)) from None
        finally:
            watchdog.close()
            connection.close()

    def _body(self, response: http.client.HTTPResponse) -> bytes:
        if 300 <= response.status < 400:
            location = response.getheader("Location", "")[:200]
            raise PolicyFetchError(f"HTTP {response.status} redirect to {location!r} "
                                   "not followed (RFC 8461)")
        if response.status != 200:
            raise PolicyFetchError(f"HTTP {response.status} {response.reason[:100]}")
        content_type = response.getheader("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "text/plain":
            raise PolicyFetchError(f"Content-Type {content_type[:100]!r} is not text/plain")
        length = response.getheader("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise PolicyFetchError(f"policy of {int(length)} bytes is larger than "
                                   f"{self.max_bytes} bytes")
        body = response.read(self.max_bytes + 1)
        if len(body) > self.max_bytes:
            raise PolicyFetchError(f"policy is larger than {self.max_bytes} bytes")
        return body


class Prober:
    """Collects the evidence for one domain at a time and returns its `TlsVerdict`.

    `resolver` answers every DNS question (it is copied, and the copy asks for the AD bit);
    `ssl_context_factory` makes a context whose trust store decides which certificates are
    valid; `port` is where MX hosts listen (25; tests use a free high port, and TLSA records
    are looked up at `_PORT._tcp.HOST` to match); `https_opener` fetches the MTA-STS policy
    (by default over HTTPS on `https_port`, names resolved with `resolver`). Loopback
    addresses are refused unless `allow_loopback` (tests): a hostile MX record must not make
    the gateway probe itself."""

    def __init__(self, resolver: dns.resolver.Resolver,
                 ssl_context_factory: SslContextFactory = ssl.create_default_context,
                 port: int = 25, timeout: float = 10.0,
                 https_opener: HttpsOpener | None = None, *,
                 https_port: int = 443, deadline: float | None = None,
                 helo_name: str | None = None, allow_loopback: bool = False,
                 max_mx: int = MAX_PROBED_MX,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._resolver = copy.copy(resolver)
        flags = resolver.flags if resolver.flags is not None else dns.flags.RD
        self._resolver.flags = flags | dns.flags.AD  # RFC 6840 §5.7: ask for AD
        self._context_factory = ssl_context_factory
        self.port = port
        self.timeout = timeout
        self.deadline = deadline if deadline is not None else 3 * timeout
        self.helo_name = helo_name or socket.gethostname() or "localhost"
        self.allow_loopback = allow_loopback
        self.max_mx = max_mx
        self._now = now
        self._https_opener = https_opener or HttpsPolicyFetcher(
            self._open_tcp, ssl_context_factory, port=https_port, timeout=timeout,
            deadline=self.deadline)

    # --- the whole domain ---

    def probe(self, domain: str) -> TlsVerdict:
        try:
            name = _domain_name(domain)
        except ValueError as error:
            return failed_verdict(domain[:100], str(error))
        try:
            return self._probe(name)
        except Exception as error:  # the last line of defence: a verdict, never a traceback
            log.exception("probe of %s failed", name)
            return failed_verdict(name, f"probe failed: {type(error).__name__}: {error}")

    def _probe(self, domain: str) -> TlsVerdict:
        ttls: list[int] = []
        mx_hosts, mx_secure = self._mx_hosts(domain, ttls)
        if isinstance(mx_hosts, Failure):  # nothing to deliver to: nothing else matters
            return verdict(domain, mx_hosts, (), None, None,
                           dns_ttl=min(ttls) if ttls else None)
        sts_id, sts_policy = self._mta_sts(domain, ttls)
        observations: list[TlsObservation] = []
        checks: list[DaneCheck] = []
        for index, mx in enumerate(mx_hosts):
            if index >= self.max_mx:
                observations.append(TlsObservation(
                    mx.name, problem=f"not probed: the domain lists {len(mx_hosts)} MX "
                                     f"hosts, Sealgate probes at most {self.max_mx}"))
                continue
            observation, check = self._probe_host(mx, mx_secure, ttls)
            observations.append(observation)
            if check is not None:
                checks.append(check)
        return verdict(domain, mx_hosts, observations, sts_id, sts_policy, checks,
                       dns_ttl=min(ttls) if ttls else None)

    def _mx_hosts(self, domain: str, ttls: list[int]) -> tuple[list[MxHost] | Failure, bool]:
        answer = self._lookup(domain, "MX", ttls)
        if isinstance(answer, Failure):
            return Failure(f"MX lookup failed: {answer.reason}"), False
        if answer.nxdomain:
            return Failure("the domain does not exist (NXDOMAIN)"), answer.secure
        if not answer.records:  # RFC 5321 §5.1: the domain itself is the implicit MX
            return [MxHost(domain, 0, implicit=True)], answer.secure
        if len(answer.records) == 1 and answer.records[0].exchange == dns.name.root:
            return Failure("null MX: the domain accepts no mail (RFC 7505)"), answer.secure
        best: dict[str, int] = {}
        for record in answer.records:
            name = record.exchange.to_text(omit_final_dot=True).lower()
            best[name] = min(record.preference, best.get(name, record.preference))
        hosts = sorted((MxHost(name, preference) for name, preference in best.items()),
                       key=lambda mx: (mx.preference, mx.name))
        return hosts, answer.secure

    # --- one MX host ---

    def _probe_host(self, mx: MxHost, mx_secure: bool,
                    ttls: list[int]) -> tuple[TlsObservation, DaneCheck | None]:
        if not is_host_name(mx.name):
            return TlsObservation(mx.name, problem="MX name is not a valid host name"), None
        address = self._address(mx.name, ttls)
        if isinstance(address, Failure):
            return TlsObservation(mx.name, problem=address.reason), None
        tlsa = self._lookup(f"_{self.port}._tcp.{mx.name}", "TLSA", ttls)
        observation, chain = self._starttls(mx.name, address)
        if isinstance(tlsa, Failure):
            return observation, DaneCheck(mx.name, problem=f"TLSA lookup failed: {tlsa.reason}")
        records = tuple(TlsaRecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert))
                        for r in tlsa.records)
        check = DaneCheck(mx.name, records, secure=tlsa.secure and mx_secure)
        if check.applies and observation.starttls:
            matched, problem = match_tlsa(records, chain, mx.name, self._now())
            check = replace(check, matched=matched, problem=problem)
        return observation, check

    def _starttls(self, host: str, address: str) -> tuple[TlsObservation, list[bytes]]:
        try:
            return self._conversation(host, address, _verifying(self._context_factory))
        except ssl.SSLCertVerificationError as error:
            problem = error.verify_message or str(error)
        except Exception as error:
            return TlsObservation(host, address, problem=self._failure(error)), []
        # Not valid under PKIX: look again without verification, for the evidence lines
        # and for DANE, which does not rely on the CA system.
        context = self._context_factory()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            observation, chain = self._conversation(host, address, context)
        except Exception as error:
            return TlsObservation(host, address, problem=f"{problem}; then "
                                  f"{self._failure(error)}"), []
        return replace(observation, verified=False, problem=problem), chain

    def _conversation(self, host: str, address: str,
                      context: ssl.SSLContext) -> tuple[TlsObservation, list[bytes]]:
        watchdog = _Watchdog(self.deadline)
        smtp = _PinnedSMTP(address, watchdog, self.timeout, self.helo_name)
        try:
            code, message = smtp.connect(host, self.port)
            if code != 220:
                return TlsObservation(host, address, problem=f"greeting {code} "
                                      f"{_text(message)}"), []
            code, message = smtp.ehlo()
            if code != 250:
                return TlsObservation(host, address, problem=f"EHLO answered {code} "
                                      f"{_text(message)}"), []
            if not smtp.has_extn("starttls"):
                return TlsObservation(host, address, problem="STARTTLS not offered"), []
            smtp.starttls(context=context)
            sock = smtp.sock
            if not isinstance(sock, ssl.SSLSocket):
                raise TypeError("STARTTLS left a plain socket")
            chain = _presented_chain(sock)
            cipher = sock.cipher()
            observation = TlsObservation(
                host, address, starttls=True, tls_version=sock.version() or "",
                cipher=cipher[0] if cipher else "",
                verified=context.verify_mode == ssl.CERT_REQUIRED,
                **_certificate_facts(chain[0] if chain else b""))
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()  # the evidence is in; a rude goodbye changes nothing
            return observation, chain
        except (OSError, smtplib.SMTPException) as error:
            if watchdog.expired and not isinstance(error, ssl.SSLCertVerificationError):
                raise _GaveUp(f"gave up after {self.deadline:g} s") from error
            raise
        finally:
            watchdog.close()
            smtp.close()

    def _failure(self, error: BaseException) -> str:
        if isinstance(error, _GaveUp):
            return str(error)
        if isinstance(error, smtplib.SMTPNotSupportedError):
            return "STARTTLS not offered"
        if isinstance(error, smtplib.SMTPResponseException):
            return f"server answered {error.smtp_code} {_text(error.smtp_error)}"
        if isinstance(error, smtplib.SMTPServerDisconnected):
            return f"server closed the connection ({error})" if str(error) else \
                "server closed the connection"
        if isinstance(error, ssl.SSLError):
            return f"TLS handshake failed: {error.reason or error}"
        return _network_error(error)

    # --- MTA-STS ---

    def _mta_sts(self, domain: str, ttls: list[int],
                 ) -> tuple[str | Failure | None, MtaStsPolicy | Failure | None]:
        answer = self._lookup(f"_mta-sts.{domain}", "TXT", ttls)
        if isinstance(answer, Failure):
            return Failure(f"_mta-sts TXT lookup failed: {answer.reason}"), None
        texts = [b"".join(record.strings).decode("utf-8", "replace")
                 for record in answer.records]
        candidates = [text for text in texts
                      if text.startswith("v=STSv1") and text[7:8] in ("", ";", " ", "\t")]
        if not candidates:
            return None, None
        if len(candidates) > 1:
            return Failure(f"{len(candidates)} _mta-sts TXT records: treated as no policy "
                           "(RFC 8461 §3.1)"), None
        try:
            policy_id = parse_mta_sts_txt(candidates[0])
        except MtaStsError as error:
            return Failure(str(error)), None
        url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
        try:
            body = self._https_opener(url)
        except PolicyFetchError as error:
            return policy_id, Failure(f"{url}: {error}")
        except Exception as error:
            return policy_id, Failure(f"{url}: {_network_error(error)}")
        if len(body) > STS_POLICY_MAX_BYTES:
            return policy_id, Failure(f"policy is larger than {STS_POLICY_MAX_BYTES} bytes")
        try:
            return policy_id, parse_mta_sts_policy(body.decode("utf-8"), policy_id)
        except UnicodeDecodeError:
            return policy_id, Failure("policy is not UTF-8 text")
        except MtaStsError as error:
            return policy_id, Failure(str(error))

    # --- DNS and addresses ---

    def _lookup(self, name: str, rdtype: str, ttls: list[int]) -> _Lookup | Failure:
        try:
            answer = self._resolver.resolve(name, rdtype, search=False,
                                            raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return _Lookup((), None, False, nxdomain=True)
        except dns.resolver.NoNameservers:
            return Failure(f"{rdtype} {name}: no server gave an answer (SERVFAIL, REFUSED "
                           "or a malformed reply)")
        except dns.exception.Timeout:
            return Failure(f"{rdtype} {name}: timed out")
        except dns.exception.DNSException as error:
            return Failure(f"{rdtype} {name}: {type(error).__name__}: {error}")
        secure = bool(answer.response.flags & dns.flags.AD)
        if answer.rrset is None:
            return _Lookup((), None, secure)
        ttls.append(int(answer.rrset.ttl))
        return _Lookup(tuple(answer.rrset), int(answer.rrset.ttl), secure)

    def _address(self, host: str, ttls: list[int]) -> str | Failure:
        refused: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = self._lookup(host, rdtype, ttls)
            if isinstance(answer, Failure):
                return Failure(f"address lookup failed: {answer.reason}")
            for record in answer.records:
                address = str(record.address)
                problem = self._address_problem(address)
                if not problem:
                    return address
                refused.append(f"{address} is {problem}")
        if refused:
            return Failure(f"not probed: {'; '.join(refused[:3])}")
        return Failure("no address (A or AAAA)")

    def _address_problem(self, text: str) -> str:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return "" if self.allow_loopback else "a loopback address"
        if address.is_unspecified or address.is_multicast or address.is_link_local \
                or address.is_reserved:
            return "not a unicast address"
        return ""

    def _open_tcp(self, host: str, port: int) -> socket.socket:
        address = self._address(host, [])
        if isinstance(address, Failure):
            raise PolicyFetchError(f"{host}: {address.reason}")
        try:
            return socket.create_connection((address, port), self.timeout)
        except OSError as error:
            raise PolicyFetchError(f"{host} [{address}]:{port}: {_network_error(error)}") \
                from None


def _domain_name(domain: str) -> str:
    text = domain.strip().rstrip(".").lower()
    if not text.isascii():
        try:
            text = dns.name.from_unicode(text).to_text(omit_final_dot=True).lower()
        except (dns.exception.DNSException, ValueError, UnicodeError):
            raise ValueError(f"{domain[:100]!r} is not a domain name") from None
    if not is_host_name(text):
        raise ValueError(f"{domain[:100]!r} is not a domain name")
    return text


def _presented_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent, leaf first (DANE-TA needs more than the leaf).
    Python 3.13 has `get_unverified_chain()`; 3.10-3.12 have it on the internal object."""
    public = getattr(sock, "get_unverified_chain", None)
    if public is not None:
        return [bytes(der) for der in public() or ()]
    internal = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if internal is not None:
        return [cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for cert in internal() or ()]
    leaf = sock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _certificate_facts(der: bytes) -> dict[str, Any]:
    if not der:
        return {"certificate_subject": "(no certificate)"}
    fingerprint = ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())
    try:
        certificate = x509.load_der_x509_certificate(der)
        subject = certificate.subject.rfc4514_string()
        try:
            names = tuple(certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = ()
    except Exception:  # a certificate Python's TLS accepted but cryptography cannot read
        subject, names = "(unreadable certificate)", ()
    return {"certificate_sha256": fingerprint, "certificate_subject": subject,
            "certificate_names": names[:20]}


def _network_error(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    text = str(error) or type(error).__name__
    return text[:200]


def _text(message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return " ".join(message.split())[:200]


# --- the cache ------------------------------------------------------------------------------

class ProbeCache:
    """Verdicts by domain, for the milter's per-message path: `cached()` never waits for the
    network. An entry is used until its TTL (the verdict's `ttl_seconds`: the smallest DNS
    TTL and MTA-STS max_age, bounded to 1 minute .. 1 day) runs out; from `refresh_fraction`
    of its life on, the first look starts a background refresh so a busy domain never
    drops out. A missing or expired entry is None (the caller takes another route, such as
    the portal) while the probe runs in the background.

    `probe` is usually `Prober(...).probe`; `clock` is monotonic seconds. At most
    `max_pending` probes wait for a worker: past that, a look-up starts nothing (mail to a
    flood of new domains gets None, and the domains are probed when they come back)."""

    def __init__(self, probe: Callable[[str], TlsVerdict], *,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000,
                 workers: int = 4, max_pending: int = 1_000,
                 refresh_fraction: float = 0.75) -> None:
        self._probe = probe
        self._verdicts = BackgroundCache(
            self._probe_safely, lambda result: max(1, result.ttl_seconds), clock=clock,
            max_entries=max_entries, workers=workers, max_pending=max_pending,
            refresh_fraction=refresh_fraction, name="sealgate-probe")

    def cached(self, domain: str) -> TlsVerdict | None:
        """The verdict while it is fresh, else None; never blocks on a probe."""
        return self._verdicts.get(_key(domain))

    def refresh(self, domain: str) -> TlsVerdict:
        """Probe now (in the caller's thread), keep and return the verdict."""
        return self._verdicts.refresh(_key(domain))

    def pending(self) -> frozenset[str]:
        """Domains whose background probe has not finished yet."""
        return self._verdicts.pending()

    def close(self) -> None:
        self._verdicts.close()

    def _probe_safely(self, domain: str) -> TlsVerdict:
        try:
            return self._probe(domain)
        except Exception as error:  # a probe that fails is a verdict too, and is cached
            log.exception("probe of %s failed", domain)
            return failed_verdict(domain, f"probe failed: {type(error).__name__}: {error}")


def _key(domain: str) -> str:
    return domain.strip().rstrip(".").lower()
