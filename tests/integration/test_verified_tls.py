"""Verified TLS on a real Postfix: recipient domains are probed in the background (a DNS
server, and mail servers with STARTTLS and certificates from a test CA, all on 127.0.0.x);
a domain that qualifies gets the message as is, delivered by Postfix's verify transport; a
server that cannot prove itself at delivery time gets nothing, and after the fallback time its
recipient gets the portal notification instead. Delivery reports travel back from Postfix
through the milter to the server."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from sealgate import config
from sealgate.lab.sink import SmtpSink
from sealgate.server.links import tracking_link
from sealgate.vault.models import AuditEvent, TlsDelivery, TlsDeliveryState, TlsVerdict
from sealgate.vault.vault import Vault
from tests.conftest import run_cli
from tests.crypto.test_pgp import GpgHome
from tests.integration.messages import SECRET_TEXT, compose, parsed
from tests.integration.test_milter import Gateway
from tests.routing.conftest import DnsServer, TestCa, Zone, free_port

ALICE, GONE, BOB, EVE = "alice@tls.test", "gone@tls.test", "bob@plain.test", "eve@old.test"
ANN, CARL = "ann@cert.test", "carl@key.test"  # an S/MIME certificate, an OpenPGP key
FALLBACK_SECONDS = 12
T = TypeVar("T")


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = TestCa()
        (root / "ca.pem").write_bytes(self.ca.pem)
        self.port = free_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        self.good = self.ca.issue_server("mx.tls.test").server_context(root)
        self.wrong_name = self.ca.issue_server("mx.elsewhere.test").server_context(root)
        # The recipient domain's MX; it has no mailbox for GONE.
        self.mx = SmtpSink(self.port, address="127.0.0.2", tls_context=self.good,
                           refuse=frozenset({GONE}))
        self.mx.start()
        # An MX whose certificate has expired (old.test); plain.test's MX does not listen.
        self.old_mx = SmtpSink(self.port, address="127.0.0.4", tls_context=self.ca.issue_server(
            "mx.old.test", expired=True).server_context(root))
        self.old_mx.start()
        zone = Zone()
        for domain, address in (("tls.test", "127.0.0.2"), ("plain.test", "127.0.0.3"),
                                ("old.test", "127.0.0.4")):
            zone.add(domain, "MX", f"10 mx.{domain}.")
            zone.add(f"mx.{domain}", "A", address)
        self.dns = DnsServer(zone)
        # ANN's and CARL's mail servers: sinks of their own.
        self.cert_sink, self.key_sink = SmtpSink(), SmtpSink()
        self.cert_sink.start()
        self.key_sink.start()
        next_hop = f"[127.0.0.2]:{self.port}"
        self.gateway = Gateway(
            root / "lab",
            env={"SEALGATE_ROUTING__MTA_ENFORCES_TLS": "true",  # the lab has the transports
                 "SEALGATE_ROUTING__DNS_SERVERS": f"127.0.0.1:{self.dns.port}",
                 "SEALGATE_ROUTING__PROBE_PORT": str(self.port),
                 "SEALGATE_ROUTING__PROBE_LOOPBACK": "true",
                 "SEALGATE_ROUTING__TLS_CA_FILE": str(root / "ca.pem"),
                 "SEALGATE_ROUTING__TLS_RETRY_MINUTES": "0.05",
                 "SEALGATE_ROUTING__TLS_FALLBACK_MINUTES": str(FALLBACK_SECONDS / 60),
                 "SEALGATE_PORTAL__NOTIFY_SENDER": "true"},
            # Postfix cannot ask the test DNS server (it uses the system's resolver), so the
            # verified-TLS transports are sent to the MX by address, and told its name.
            extra_main={"default_filter_nexthop": next_hop},
            tls_ca_file=root / "ca.pem",
            tls_policy={next_hop: "secure match=mx.tls.test"},
            transports={"cert.test": f"smtp:[127.0.0.1]:{self.cert_sink.port}",
                        "key.test": f"smtp:[127.0.0.1]:{self.key_sink.port}"})
        self.ann_key, ann_cert = self.ca.lab.issue_email(ANN)
        (root / "ann.pem").write_bytes(ann_cert)
        (root / "ann.key").write_bytes(self.ann_key)
        (root / "gnupg").mkdir()
        self.gpg = GpgHome(root / "gnupg")
        self.gpg.generate(f"Carl <{CARL}>")
        (root / "carl.asc").write_bytes(self.gpg.export(CARL))
        for name in ("ann.pem", "carl.asc"):
            run_cli("--home", str(self.gateway.home), "recipient-keys", "import",
                    str(root / name))

    def vault(self) -> Vault:
        return Vault.open(config.load(self.gateway.home, {}))

    def query(self, read: Callable[[Any], T]) -> T:
        vault = self.vault()
        try:
            with vault.database.session() as session:
                return read(session)
        finally:
            vault.close()

    def close(self) -> None:
        self.gpg.close()
        self.cert_sink.stop()
        self.key_sink.stop()
        self.gateway.close()
        self.mx.stop()
        self.old_mx.stop()
        self.dns.close()


def wait_until(check: Callable[[], T], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.2)
    return result


def deliveries(lab: Lab) -> dict[str, TlsDelivery]:
    return lab.query(lambda session: {
        row.recipient: row for row in session.scalars(select(TlsDelivery).order_by(
            TlsDelivery.id))})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    built = Lab(tmp_path_factory.mktemp("tls"))
    try:
        # The first protected message starts the probes; until they are done, the portal.
        warm = [ALICE, BOB, EVE, ANN, CARL]
        built.gateway.send(compose("encrypt/ Warm-up", to=", ".join(warm)), warm)
        verdicts = wait_until(lambda: built.query(lambda session: {
            row.domain: row for row in session.scalars(select(TlsVerdict))} if len(
                session.scalars(select(TlsVerdict)).all()) == 5 else None))
        assert {d: v.qualifies for d, v in verdicts.items()} == {
            "tls.test": True, "plain.test": False, "old.test": False, "cert.test": False,
            "key.test": False}
        yield built
    finally:
        built.close()


def test_a_domain_that_qualifies_gets_the_message_as_is_over_verified_tls(lab: Lab) -> None:
    sink = lab.gateway.sink
    sink.clear()
    lab.gateway.send(compose("encrypt/ Lab results", to=f"{ALICE}, {GONE}, {BOB}, {EVE}"),
                     [ALICE, GONE, BOB, EVE])
    (delivered,) = wait_until(lambda: [m for m in lab.mx.messages if ALICE in m.rcpt_tos])
    assert delivered.tls.startswith("TLSv1.")
    assert SECRET_TEXT.encode() in delivered.data  # as is: readable by the recipient
    assert parsed(delivered)["Subject"] == "Lab results"  # the keyword taken out
    # The others get the portal: plain.test offers no STARTTLS, old.test's certificate
    # expired; neither gets the content.
    got = sink.wait_for_recipients([BOB, EVE])
    for address in (BOB, EVE):
        assert parsed(got[address])["X-Sealgate-Message-Id"]
        assert SECRET_TEXT.encode() not in got[address].data
    # Postfix's delivery report came back through the milter; the server settled it.
    rows = wait_until(lambda: (found := deliveries(lab)) and found[ALICE].state
                      is TlsDeliveryState.DELIVERED and found[GONE].state
                      is TlsDeliveryState.FAILED and found)
    assert "250 2.0.0" in rows[ALICE].detail
    assert "550 5.1.1" in rows[GONE].detail
    # The sender is told that GONE's server refused it.
    notice = wait_until(lambda: [m for m in sink.messages
                                 if parsed(m)["Subject"].startswith("Not delivered")])
    assert GONE in parsed(notice[0]).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # The plan and its evidence: the MX, the TLS version, the certificate's fingerprint.
    details = lab.query(lambda session: session.scalars(select(AuditEvent.details).where(
        AuditEvent.action == "message.deposited")).all()[-1])
    plan = {entry["address"]: entry for entry in details["plan"]}
    assert {a: e["method"] for a, e in plan.items()} == {
        ALICE: "tls", GONE: "tls", BOB: "portal", EVE: "portal"}
    evidence = " | ".join(plan[ALICE]["evidence"])
    assert "MX mx.tls.test (10) [127.0.0.2]: STARTTLS TLSv1.3" in evidence
    assert "sha256 " in evidence and "valid" in evidence
    assert "qualifies: every MX (1) offers STARTTLS with a certificate valid for its name" \
        in evidence
    assert any("expired" in line for line in plan[EVE]["evidence"])
    # The sender's tracking page shows where each verified-TLS delivery stands.
    settings = config.load(lab.gateway.home, {"SEALGATE_SERVER__BASE_URL":
                                              lab.gateway.env["SEALGATE_SERVER__BASE_URL"]})
    with urllib.request.urlopen(tracking_link(settings, rows[ALICE].message_id),
                                timeout=10) as page:
        html = page.read().decode()
    assert "delivered over verified TLS" in html and "refused by their mail server" in html
    assert "550 5.1.1" in html and SECRET_TEXT not in html


def test_a_server_that_cannot_prove_itself_at_delivery_gets_nothing_then_the_portal(
        lab: Lab) -> None:
    # The verdict still says tls.test qualifies; its server now shows a certificate for
    # another name. Postfix must refuse to send; Sealgate retries, then uses the portal.
    lab.mx.stop()
    lab.mx.tls_context = lab.wrong_name
    lab.mx.start()
    lab.mx.clear()
    lab.gateway.sink.clear()
    sent_at = time.monotonic()
    lab.gateway.send(compose("encrypt/ More results", to=ALICE), [ALICE])
    row = wait_until(lambda: next((found for found in [deliveries(lab)[ALICE]]
                                   if found.state is TlsDeliveryState.PORTAL), None),
                     timeout=FALLBACK_SECONDS + 30)
    (notification,) = wait_until(lambda: [m for m in lab.gateway.sink.messages
                                          if ALICE in m.rcpt_tos])
    assert time.monotonic() - sent_at >= FALLBACK_SECONDS * 0.9  # it waited, retrying
    assert row.attempts >= 2
    assert "certificate not verified" in row.detail.lower()
    assert parsed(notification)["X-Sealgate-Message-Id"]
    assert parsed(notification)["Subject"] == "More results"  # the keyword taken out
    assert SECRET_TEXT.encode() not in notification.data
    assert lab.mx.messages == []  # nothing ever went to the unproven server
    log = (lab.gateway.postfix.maillog).read_text()
    assert "hostname mismatch" in log


def test_four_recipients_four_methods_four_servers_four_forms(lab: Lab) -> None:
    if lab.mx.tls_context is not lab.good:  # an earlier test changed the certificate
        lab.mx.stop()
        lab.mx.tls_context = lab.good
        lab.mx.start()
    lab.mx.clear()
    for sink in (lab.gateway.sink, lab.cert_sink, lab.key_sink):
        sink.clear()
    recipients = [ALICE, ANN, CARL, BOB]
    lab.gateway.send(compose("encrypt/ Four ways", to=", ".join(recipients)), recipients)
    (tls,) = wait_until(lambda: [m for m in lab.mx.messages if ALICE in m.rcpt_tos])
    (smime,) = lab.cert_sink.wait_for(1)
    (pgp,) = lab.key_sink.wait_for(1)
    portal = lab.gateway.sink.wait_for_recipients([BOB])[BOB]
    # Verified TLS: as is, over TLS. S/MIME and PGP: only their keys open them. The portal:
    # a notification without the content.
    assert tls.tls and SECRET_TEXT.encode() in tls.data
    for copy in (smime, pgp, portal):
        assert SECRET_TEXT.encode() not in copy.data
    assert parsed(smime).get_content_type() == "application/pkcs7-mime"
    opened = subprocess.run(["openssl", "cms", "-decrypt", "-inkey", str(lab.root / "ann.key"),
                             "-recip", str(lab.root / "ann.pem")], input=smime.data,
                            capture_output=True, timeout=60, check=True)
    assert SECRET_TEXT.encode() in opened.stdout
    armored = next(part.get_payload(decode=True) for part in parsed(pgp).iter_parts()
                   if part.get_content_type() == "application/octet-stream")
    decrypted = lab.gpg.decrypt(armored)
    assert decrypted.returncode == 0 and SECRET_TEXT.encode() in decrypted.stdout
    assert parsed(portal)["X-Sealgate-Message-Id"]
