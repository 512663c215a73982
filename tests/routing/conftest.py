"""Real parts on loopback for the verified-TLS prober: a test CA (`sealgate.lab.pki`), a DNS
server (UDP and TCP, built on dnspython's message code) serving a test zone and hostile answers,
SMTP servers with STARTTLS (aiosmtpd) on 127.0.0.x, hostile SMTP servers, and an HTTPS
server for MTA-STS policies.

Mail servers listen on a free high port shared by all their 127.0.0.x addresses, never on
25: binding port 25 needs privileges and may clash with a real MTA on the machine. The
prober takes the port as a parameter, and TLSA records live at `_PORT._tcp.HOST` to match.

DNSSEC: the test DNS server sets the AD bit on answers for "signed" names when the query
asks for it. It stands in for a validating resolver the gateway trusts (which is all the
prober relies on: it reads AD, it does not validate signatures itself)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealgate.lab import pki
from tests.https import https_server

# --- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A certificate and its key; `chain` is the PEM a server presents (leaf, then issuers)."""

    certificate: x509.Certificate
    key_pem: bytes
    chain: bytes

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def spki(self) -> bytes:
        return self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def server_context(self, folder: Path) -> ssl.SSLContext:
        name = hashlib.sha256(self.der).hexdigest()[:16]
        chain_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
        chain_file.write_bytes(self.chain)
        key_file.write_bytes(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain_file, key_file)
        return context


class TestCa:
    """The lab's test CA (`sealgate.lab.pki`), shaped for these tests: server certificates
    for several names at once, valid or expired, with the chain a server presents."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "Sealgate Test CA") -> None:
        self.lab = pki.TestCa.create(name)

    @property
    def pem(self) -> bytes:
        return self.lab.cert_pem

    @property
    def der(self) -> bytes:
        return self.lab.cert.public_bytes(serialization.Encoding.DER)

    def issue_server(self, *names: str, expired: bool = False) -> Issued:
        # Expired: valid for 29 days from 30 days ago.
        not_before = datetime.now(UTC) - timedelta(days=30) if expired else None
        key_pem, cert_pem = self.lab.issue_server(
            names[0], alt_names=names[1:], key_type="ec", not_before=not_before,
            days=29 if expired else 365)
        return Issued(x509.load_pem_x509_certificate(cert_pem), key_pem, cert_pem + self.pem)


@functools.cache
def _self_signer() -> pki.TestCa:
    return pki.TestCa.create("Self-signer (its own key is not used)")


def self_signed(*names: str) -> Issued:
    key_pem, cert_pem = _self_signer().issue_server(names[0], alt_names=names[1:],
                                                    key_type="ec", self_signed=True)
    return Issued(x509.load_pem_x509_certificate(cert_pem), key_pem, cert_pem)


# --- DNS ----------------------------------------------------------------------------------------


@dataclass
class Zone:
    """What the test DNS server knows. `records` maps (name, type) to (ttl, rdata texts);
    names under `signed` get AD when the query asks (RD+AD or DO); names under `servfail`,
    `silent` (no answer: the client times out) and `garbage` (bytes that are not DNS)
    misbehave."""

    records: dict[tuple[str, str], tuple[int, list[str]]] = field(default_factory=dict)
    signed: set[str] = field(default_factory=set)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    garbage: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rdtype: str, *rdatas: str, ttl: int = 300) -> None:
        self.records.setdefault((name.lower(), rdtype), (ttl, []))[1].extend(rdatas)

    def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if _under(name, self.silent):
            return None
        if _under(name, self.garbage):
            return wire[:2] + b"\x81\x80 this is not a DNS message"
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if _under(name, self.servfail):
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        entry = self.records.get((name, rdtype))
        if entry is not None:
            ttl, texts = entry
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
            for text in texts:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, text,
                                              relativize=False), ttl)
            response.answer.append(rrset)
        elif not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        asks_ad = bool(query.flags & dns.flags.AD) or bool(query.ednsflags & dns.flags.DO)
        if asks_ad and _under(name, self.signed):
            response.flags |= dns.flags.AD
        if max_size is None:
            max_size = query.payload if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | dns.flags.AA
            return truncated.to_wire()


def _under(name: str, suffixes: set[str]) -> bool:
    return any(name == suffix or name.endswith("." + suffix) for suffix in suffixes)


class _DnsUdp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.zone.answer(data, None)  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _DnsTcp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            while True:
                header = _read_exactly(sock, 2)
                wire = _read_exactly(sock, struct.unpack("!H", header)[0])
                reply = self.server.zone.answer(wire, 65535)  # type: ignore[attr-defined]
                if reply is None:
                    return
                sock.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, EOFError):
            return


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class _ThreadingUdp(socketserver.ThreadingUDPServer):
    daemon_threads = True


class _ThreadingTcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DnsServer:
    """The zone on 127.0.0.1, UDP and TCP on one free port."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        for _ in range(50):
            udp = _ThreadingUdp(("127.0.0.1", 0), _DnsUdp)
            port = udp.server_address[1]
            try:
                tcp = _ThreadingTcp(("127.0.0.1", port), _DnsTcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no free port for the test DNS server")
        self.port = port
        self._servers: list[socketserver.BaseServer] = [udp, tcp]
        for server in self._servers:
            server.zone = zone  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def resolver(self, lifetime: float = 2.0) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.timeout = lifetime
        resolver.lifetime = lifetime
        return resolver

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


# --- SMTP -------------------------------------------------------------------------------------


def free_port(addresses: list[str]) -> int:
    """A TCP port free on every one of these addresses."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind((addresses[0], 0))
            port: int = first.getsockname()[1]
        sockets = []
        try:
            for address in addresses:
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no port free on every test address")


class _Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


class SmtpServer:
    """aiosmtpd on one loopback address: STARTTLS with `context`, or none without."""

    def __init__(self, address: str, port: int, context: ssl.SSLContext | None) -> None:
        self.controller = Controller(_Accept(), hostname=address, port=port,
                                     tls_context=context, require_starttls=False,
                                     ready_timeout=10)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class RawServer:
    """A TCP server whose every connection runs `behaviour(sock)`: for mail servers that
    misbehave in ways aiosmtpd will not."""

    def __init__(self, address: str, port: int, behaviour: Callable[[socket.socket], None]):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client hung up: fine
                    behaviour(self.request)

        self.server = _ThreadingTcp((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def silent(sock: socket.socket) -> None:
    """Accepts and says nothing (a client must time out)."""
    sock.recv(1)  # returns when the client gives up


def endless(sock: socket.socket) -> None:
    """A greeting of continuation lines that never ends (a per-read timeout never fires)."""
    while True:
        sock.sendall(b"220-still greeting you\r\n")
        time.sleep(0.001)


def refuses_tls(sock: socket.socket) -> None:
    """Offers STARTTLS, then answers it with 454."""
    reader = sock.makefile("rb")
    sock.sendall(b"220 refuses.test ESMTP\r\n")
    for line in reader:
        verb = line[:4].upper()
        if verb == b"EHLO":
            sock.sendall(b"250-refuses.test\r\n250 STARTTLS\r\n")
        elif verb == b"STAR":
            sock.sendall(b"454 4.7.0 TLS not available due to temporary reason\r\n")
        elif verb == b"QUIT":
            sock.sendall(b"221 bye\r\n")
            return
        else:
            sock.sendall(b"500 what\r\n")


# --- HTTPS for MTA-STS ---------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyReply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    stall: float = 0.0  # seconds to wait after the headers, before the body
    trickle: float = 0.0  # seconds between bytes of the body
    length: bool = True  # send Content-Length (else the body ends when the connection does)


class HttpsServer:
    """One HTTPS server on 127.0.0.1 for every policy host: the certificate is chosen by SNI,
    the answer by the Host header."""

    def __init__(self, contexts: dict[str, ssl.SSLContext], default: ssl.SSLContext,
                 replies: dict[str, PolicyReply]) -> None:
        def pick(sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                 _: ssl.SSLContext) -> None:
            if server_name in contexts:
                sock.context = contexts[server_name]

        default.sni_callback = pick

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                reply = replies.get(host, PolicyReply(404, b"no such policy"))
                if self.path != "/.well-known/mta-sts.txt":
                    reply = PolicyReply(404, b"wrong path")
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                if reply.length:
                    self.send_header("Content-Length", str(len(reply.body)))
                else:
                    self.close_connection = True
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.flush()
                if reply.stall:
                    time.sleep(reply.stall)
                if reply.trickle:
                    for index in range(len(reply.body)):
                        self.wfile.write(reply.body[index:index + 1])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                else:
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass


        self.server = https_server(default, Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the world the prober sees --------------------------------------------------------------

GOOD = "127.0.0.11"  # certificate from the test CA for every "valid" name
EXPIRED = "127.0.0.12"
WRONG_NAME = "127.0.0.13"
SELF_SIGNED = "127.0.0.14"  # also the DANE-EE server: its key is in TLSA records
PLAIN = "127.0.0.15"  # no STARTTLS
DANE_TA = "127.0.0.16"  # chain from a CA the prober does not trust, pinned by DANE-TA
SILENT = "127.0.0.17"
ENDLESS = "127.0.0.18"
REFUSES = "127.0.0.19"
HTTPS = "127.0.0.1"

VALID_NAMES = ("mx1.good.test", "mx2.good.test", "implicit.test", "mx.danepkix.test",
               "mx.ttl.test")
SELF_SIGNED_NAMES = ("mx.selfsigned.test", "mx.dane.test", "mx.danebad.test",
                     "mx.danenoad.test")
STS_DOMAINS = ("sts.test", "ststesting.test", "stsmismatch.test", "stsbig.test",
               "stsbad.test", "stsredirect.test", "ststype.test", "stscert.test",
               "stsnofile.test", "stsslow.test", "ststwo.test", "manysts.test",
               "stsnone.test", "stshuge.test", "ststrickle.test")
STS_ENFORCE = b"version: STSv1\r\nmode: enforce\r\nmx: *.sts.test\r\nmax_age: 86400\r\n"


@dataclass
class Lab:
    ca: TestCa
    ca_file: Path
    zone: Zone
    dns: DnsServer
    https: HttpsServer
    smtp_port: int
    self_signed: Issued
    dane_ca: TestCa
    replies: dict[str, PolicyReply]

    def context_factory(self) -> Callable[[], ssl.SSLContext]:
        return lambda: ssl.create_default_context(cafile=str(self.ca_file))


def _tlsa(zone: Zone, port: int, host: str, data: bytes, usage: int = 3, selector: int = 1,
          matching: int = 1) -> None:
    digest = {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}
    zone.add(f"_{port}._tcp.{host}", "TLSA", f"{usage} {selector} {matching} "
             f"{digest[matching].hex()}")


def _build_zone(port: int, self_signed_cert: Issued, dane_ca: TestCa) -> Zone:
    zone = Zone()
    add = zone.add
    add("good.test", "MX", "10 mx1.good.test.", "20 mx2.good.test.", ttl=120)
    add("mx1.good.test", "A", GOOD, ttl=600)
    add("mx2.good.test", "A", GOOD, ttl=600)
    add("implicit.test", "A", GOOD)
    add("expired.test", "MX", "10 mx.expired.test.")
    add("mx.expired.test", "A", EXPIRED)
    add("wrongname.test", "MX", "10 mx.wrongname.test.")
    add("mx.wrongname.test", "A", WRONG_NAME)
    add("selfsigned.test", "MX", "10 mx.selfsigned.test.")
    add("mx.selfsigned.test", "A", SELF_SIGNED)
    add("plain.test", "MX", "10 mx.plain.test.")
    add("mx.plain.test", "A", PLAIN)
    add("mixed.test", "MX", "10 mx1.good.test.", "20 mx.expired.test.")
    add("silent.test", "MX", "10 mx.silent.test.")
    add("mx.silent.test", "A", SILENT)
    add("endless.test", "MX", "10 mx.endless.test.")
    add("mx.endless.test", "A", ENDLESS)
    add("refuses.test", "MX", "10 mx.refuses.test.")
    add("mx.refuses.test", "A", REFUSES)
    add("ipv6only.test", "MX", "10 mx.ipv6only.test.")
    add("mx.ipv6only.test", "AAAA", "::1")
    add("noaddress.test", "MX", "10 mx.noaddress.test.")
    add("nullmx.test", "MX", "0 .")

    # DANE: the zones below are "signed"; TLSA records at _PORT._tcp.HOST.
    zone.signed |= {"dane.test", "danebad.test", "daneta.test", "danepkix.test"}
    for domain in ("dane", "danebad", "danenoad"):
        add(f"{domain}.test", "MX", f"10 mx.{domain}.test.")
        add(f"mx.{domain}.test", "A", SELF_SIGNED)
    _tlsa(zone, port, "mx.dane.test", self_signed_cert.spki)
    _tlsa(zone, port, "mx.danebad.test", self_signed("elsewhere.test").spki)
    _tlsa(zone, port, "mx.danenoad.test", self_signed_cert.spki)  # but not signed
    add("daneta.test", "MX", "10 mx.daneta.test.")
    add("mx.daneta.test", "A", DANE_TA)
    _tlsa(zone, port, "mx.daneta.test", dane_ca.der, usage=2, selector=0, matching=1)
    add("danepkix.test", "MX", "10 mx.danepkix.test.")
    add("mx.danepkix.test", "A", GOOD)
    _tlsa(zone, port, "mx.danepkix.test", self_signed("elsewhere.test").spki)

    # MTA-STS: the MX hosts offer no STARTTLS, so only the policy can qualify the domain.
    for domain in STS_DOMAINS:
        add(domain, "MX", f"10 mx.{domain}.")
        add(f"mx.{domain}", "A", PLAIN)
        add(f"mta-sts.{domain}", "A", HTTPS)
        add(f"_mta-sts.{domain}", "TXT", '"v=STSv1; id=20260101;"', ttl=600)
    add("_mta-sts.ststwo.test", "TXT", '"v=STSv1; id=20260102;"')
    add("_mta-sts.sts.test", "TXT", '"some-other=record"')

    # Hostile DNS.
    zone.servfail.add("servfail.test")
    zone.silent.add("timeout.test")
    zone.garbage.add("garbage.test")
    add("many.test", "MX", *(f"{n % 50} host{n}.many.test." for n in range(1000)))
    zone.records[("manysts.test", "MX")] = (300, [f"{n % 50} host{n}.manysts.test."
                                                  for n in range(1000)])
    add("absurd.test", "MX", r"10 -bad-.absurd.test.", r"20 a\032b.absurd.test.",
        "30 127.0.0.1.", "40 localhost.", r"50 \000\255.absurd.test.")
    return zone


def _policies(mx: str = "*.{domain}", mode: str = "enforce", max_age: int = 86400,
              domain: str = "") -> bytes:
    return (f"version: STSv1\nmode: {mode}\nmx: {mx.format(domain=domain)}\n"
            f"max_age: {max_age}\n").encode()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("routing-lab")
    ca = TestCa()
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.pem)
    self_signed_cert = self_signed(*SELF_SIGNED_NAMES)
    dane_ca = TestCa("Private DANE CA")
    addresses = [GOOD, EXPIRED, WRONG_NAME, SELF_SIGNED, PLAIN, DANE_TA, SILENT, ENDLESS,
                 REFUSES]
    port = free_port(addresses)
    zone = _build_zone(port, self_signed_cert, dane_ca)

    replies = {f"mta-sts.{domain}": PolicyReply(body=_policies(domain=domain))
               for domain in STS_DOMAINS}
    replies["mta-sts.ststesting.test"] = PolicyReply(
        body=_policies(mode="testing", domain="ststesting.test"))
    replies["mta-sts.stsnone.test"] = PolicyReply(
        body=b"version: STSv1\nmode: none\nmax_age: 86400\n")
    replies["mta-sts.stsmismatch.test"] = PolicyReply(body=_policies(mx="mail.elsewhere.test"))
    replies["mta-sts.stsbig.test"] = PolicyReply(
        body=_policies(domain="stsbig.test") + b"x-padding: " + b"y" * 70_000 + b"\n")
    replies["mta-sts.stshuge.test"] = PolicyReply(
        body=_policies(domain="stshuge.test") + b"x-padding: " + b"y" * 70_000 + b"\n",
        length=False)
    replies["mta-sts.ststrickle.test"] = PolicyReply(body=_policies(domain="ststrickle.test"),
                                                     trickle=0.2)
    replies["mta-sts.stsbad.test"] = PolicyReply(
        body=b"version: STSv1\nmode: enforce\nthis line is not a field\nmx: *.stsbad.test\n"
             b"max_age: 86400\n")
    replies["mta-sts.stsredirect.test"] = PolicyReply(
        status=301, headers=(("Location", "https://evil.test/.well-known/mta-sts.txt"),))
    replies["mta-sts.ststype.test"] = PolicyReply(
        body=_policies(domain="ststype.test"), content_type="text/html")
    replies["mta-sts.stsnofile.test"] = PolicyReply(status=404, body=b"not here")
    replies["mta-sts.stsslow.test"] = PolicyReply(body=_policies(domain="stsslow.test"),
                                                  stall=6.0)

    contexts = {name: ca.issue_server(name).server_context(folder) for name in replies}
    contexts["mta-sts.stscert.test"] = self_signed("mta-sts.stscert.test").server_context(
        folder)
    default = ca.issue_server("default.test").server_context(folder)
    https = HttpsServer(contexts, default, replies)
    dns_server = DnsServer(zone)

    smtp = [
        SmtpServer(GOOD, port, ca.issue_server(*VALID_NAMES).server_context(folder)),
        SmtpServer(EXPIRED, port, ca.issue_server("mx.expired.test", expired=True)
                   .server_context(folder)),
        SmtpServer(WRONG_NAME, port, ca.issue_server("other.test").server_context(folder)),
        SmtpServer(SELF_SIGNED, port, self_signed_cert.server_context(folder)),
        SmtpServer(PLAIN, port, None),
        SmtpServer(DANE_TA, port, dane_ca.issue_server("mx.daneta.test")
                   .server_context(folder)),
    ]
    raw = [RawServer(SILENT, port, silent), RawServer(ENDLESS, port, endless),
           RawServer(REFUSES, port, refuses_tls)]
    try:
        yield Lab(ca, ca_file, zone, dns_server, https, port, self_signed_cert, dane_ca,
                  replies)
    finally:
        for server in smtp:
            server.close()
        for raw_server in raw:
            raw_server.close()
        https.close()
        dns_server.close()
