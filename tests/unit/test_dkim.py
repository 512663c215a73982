"""DKIM signatures on Sealgate's own mail, checked by an independent verifier: Perl's
Mail::DKIM (Debian's libmail-dkim-perl, the implementation SpamAssassin uses), fetching the
public key from the loopback DNS server. And the portal notification scored by Debian's
SpamAssassin with local rules only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealgate import config
from sealgate.errors import ConfigError
from sealgate.mail import notices
from sealgate.mail.dkim import (
    DkimError,
    DkimKey,
    check_private_key,
    dns_record,
    generate_private_key,
    sign,
    sign_if_ours,
)
from sealgate.mail.message import InboundMessage
from sealgate.mail.notification import Branding, build
from sealgate.mail.rewrite import Deposited, notification_copy
from tests.routing.conftest import DnsServer, Zone

DOMAIN = "example.org"
SELECTOR = "sealgate"
PEM = generate_private_key()  # one key for the module: generating costs ~0.1 s
VERIFIER = """\
use strict;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;
my $resolver = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $ARGV[0],
                                       udp_timeout => 3, tcp_timeout => 3, retry => 1);
Mail::DKIM::DNS::resolver($resolver);
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) { $line =~ s/\\015?\\012/\\015\\012/; $dkim->PRINT($line); }
$dkim->CLOSE();
print $dkim->result_detail(), "\\n";
"""


def _txt(record: str) -> str:
    """A long TXT value as the zone file writes it: quoted strings of at most 255 bytes."""
    return " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    zone = Zone()
    public = serialization.load_pem_private_key(PEM, None).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    zone.add(f"{SELECTOR}._domainkey.{DOMAIN}", "TXT", _txt(dns_record(public)))
    server = DnsServer(zone)
    yield server
    server.close()


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    probe = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-MNet::DNS::Resolver", "-e1"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail("Perl's Mail::DKIM is needed to verify signatures independently: "
                    "scripts/system-packages.sh libmail-dkim-perl (make test installs it)")
    script = tmp_path_factory.mktemp("dkim") / "verify.pl"
    script.write_text(VERIFIER)
    return script


def verify(verifier: Path, server: DnsServer, message: bytes) -> str:
    """Mail::DKIM's verdict: "pass", or "fail (...)", "none", "invalid (...)"."""
    result = subprocess.run(["perl", str(verifier), str(server.port)], input=message,
                            capture_output=True, check=True, timeout=20)
    return result.stdout.decode().strip()


def portal_notification(branding: Branding, sender_domain: str = DOMAIN) -> bytes:
    """The whole message a portal recipient gets, as the milter re-injects it."""
    original = InboundMessage(
        f"alice@{sender_domain}", ("bob@partner.example",),
        (("From", f"Alice Example <alice@{sender_domain}>"),
         ("To", "Bob Partner <bob@partner.example>"), ("Subject", "Lab results for March"),
         ("Date", formatdate(localtime=True)), ("Message-ID", make_msgid(domain=DOMAIN)),
         ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8")),
        b"The results are attached.\r\n")
    notification = build(branding, "Alice Example", "Lab results for March",
                         "https://secure.example.org/m/AbCdEf1234567890abcdefGHIJ")
    return notification_copy(original, None, Deposited("m-1234", notification), "mark-secret")


BRANDING = Branding("Example Hospital", footer="1 Main Street, Springfield",
                    support="it-help@example.org",
                    logo_url="https://secure.example.org/brand/logo")


# --- signatures ---------------------------------------------------------------------------


def test_a_signed_notification_verifies_and_tampering_breaks_it(verifier: Path,
                                                                  dns_server: DnsServer) -> None:
    signed = sign(portal_notification(BRANDING), SELECTOR, DOMAIN, PEM)
    assert signed.startswith(b"DKIM-Signature: ")
    header = signed[:signed.index(b"\r\nFrom:")].decode()
    assert "a=rsa-sha256" in header and "c=relaxed/relaxed" in header
    unfolded = re.sub(r"\s+", " ", header)
    assert "h=from : to : subject : date : message-id : mime-version : content-type : " \
        "x-sealgate-message-id : from;" in unfolded, header
    assert verify(verifier, dns_server, signed) == "pass"

    body = signed.replace(b"Read it here:", b"Read it HERE:")
    assert verify(verifier, dns_server, body).startswith("fail")
    subject = signed.replace(b"Subject: Lab results for March", b"Subject: Lab results")
    assert verify(verifier, dns_server, subject).startswith("fail")
    # From is oversigned: a second From added later breaks the signature too.
    second_from = signed.replace(b"\r\nTo:", b"\r\nFrom: ceo@example.org\r\nTo:", 1)
    assert verify(verifier, dns_server, second_from).startswith("fail")


def test_a_server_notice_is_signed_and_verifies(verifier: Path, dns_server: DnsServer) -> None:
    notice = notices.login_code(BRANDING, from_address=f"no-reply@{DOMAIN}",
                                to="Bob <bob@partner.example>", code="123456", minutes=10)
    key = DkimKey.from_pem(SELECTOR, DOMAIN, PEM)
    signed = sign_if_ours(key, notice.as_bytes())
    assert signed.startswith(b"DKIM-Signature: ")
    assert verify(verifier, dns_server, signed) == "pass"


def test_only_mail_from_the_signing_domain_is_signed() -> None:
    key = DkimKey.from_pem(SELECTOR, DOMAIN, PEM)
    foreign = portal_notification(BRANDING, sender_domain="customer.example")
    assert sign_if_ours(key, foreign) == foreign
    lookalike = portal_notification(BRANDING, sender_domain="notexample.org")
    assert sign_if_ours(key, lookalike) == lookalike
    subdomain = portal_notification(BRANDING, sender_domain="mail.example.org")
    assert sign_if_ours(key, subdomain).startswith(b"DKIM-Signature: ")
    assert sign_if_ours(None, subdomain) == subdomain  # no key configured: signing is off
    with pytest.raises(DkimError, match="without a From"):
        sign(b"To: a@b.example\r\n\r\nhi\r\n", SELECTOR, DOMAIN, PEM)


def test_weak_or_wrong_keys_are_refused(tmp_path: Path) -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
    ec_key = ec.generate_private_key(ec.SECP256R1())

    def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    with pytest.raises(DkimError, match="1024 bits: at least 2048"):
        check_private_key(pem(short))
    with pytest.raises(DkimError, match="must be an RSA key"):
        check_private_key(pem(ec_key))
    with pytest.raises(DkimError, match="not a PEM private key"):
        check_private_key(b"hello")

    home = tmp_path
    (home / "weak.pem").write_bytes(pem(short))
    environ = {"SEALGATE_DKIM__KEY": "weak.pem"}
    with pytest.raises(ConfigError, match=r"dkim.key = 'weak.pem' \(from SEALGATE_DKIM__KEY\)"
                                          r": the DKIM key has 1024 bits"):
        config.load(home, environ)
    with pytest.raises(ConfigError, match="dkim.key = 'missing.pem'.*does not exist"):
        config.load(home, {"SEALGATE_DKIM__KEY": "missing.pem"})
    (home / "good.pem").write_bytes(PEM)
    loaded = config.load(home, {"SEALGATE_DKIM__KEY": "good.pem"})
    key = DkimKey.from_config(loaded)
    assert key is not None and key.domain == DOMAIN and key.selector == "sealgate"
    assert key.record().startswith("v=DKIM1; k=rsa; p=MII")


# --- SpamAssassin -------------------------------------------------------------------------


def spamassassin(tmp_path: Path, message: bytes) -> tuple[float, list[str]]:
    """Debian's SpamAssassin with its shipped rules, local tests only (-L: no DNS
    blocklists, no Razor/Pyzor, no DKIM key lookups), a private configuration (the
    machine's local.cf does not count) and a private home (no Bayes, no auto-welcomelist)."""
    if shutil.which("spamassassin") is None:
        pytest.fail("SpamAssassin is needed: scripts/system-packages.sh spamassassin "
                    "(make test installs it)")
    site = tmp_path / "site"
    site.mkdir()
    for pre in Path("/etc/spamassassin").glob("*.pre"):  # the plugin loads, nothing else
        shutil.copy(pre, site)
    result = subprocess.run(
        ["spamassassin", "-L", "-t", "--configpath=/usr/share/spamassassin",
         f"--siteconfigpath={site}", "-p", str(tmp_path / "user_prefs")],
        input=message, capture_output=True, check=False, timeout=60,
        env={**os.environ, "HOME": str(tmp_path)})
    report = result.stdout.decode("utf-8", "replace")
    found = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report)
    assert found, f"no SpamAssassin report:\n{report}\n{result.stderr.decode()}"
    hits = re.findall(r"^\s*(-?\d+\.\d+\s+\S+\s+.*)$",
                      report[found.end():], flags=re.MULTILINE)
    return float(found.group(1)), hits


def test_the_signed_portal_notification_scores_below_one(tmp_path: Path, home: Path) -> None:
    from sealgate.server.branding import branding

    (home / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    settings = config.load(home, {
        "SEALGATE_ORGANISATION__NAME": "Example Hospital",
        "SEALGATE_ORGANISATION__LOGO": "logo.png",
        "SEALGATE_ORGANISATION__FOOTER": "Example Hospital, 1 Main Street, Springfield",
        "SEALGATE_ORGANISATION__SUPPORT": "it-help@example.org",
        "SEALGATE_SERVER__BASE_URL": "https://secure.example.org"})
    message = sign(portal_notification(branding(settings)), SELECTOR, DOMAIN, PEM)
    score, hits = spamassassin(tmp_path, message)
    print(f"SpamAssassin score {score}; rules hit:\n  " + "\n  ".join(hits))
    assert score < 1.0, hits
