"""The message the milter rewrites on its own transaction (the sender's mail, its body now
the portal notification) leaves DKIM-signed with the organisation's key, over what the
recipient's server receives: checked on the real Postfix with dkimpy's verifier, which looks
the key up in DNS as a receiver would (here, from the record `sealgate dkim init` prints).
And what a careful recipient checks before trusting it: who sent it, what about, links only
to the portal, nothing that asks for their password, no unsubscribe link."""

from __future__ import annotations

import re
from collections.abc import Iterator

import dkim
import pytest

from sealgate.mail.dkim import DkimKey, generate_private_key
from tests.integration.messages import compose, parsed
from tests.integration.test_milter import Gateway


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, DkimKey]]:
    started = Gateway(tmp_path_factory.mktemp("dkim"))
    try:
        pem = generate_private_key()
        (started.home / "dkim").mkdir(mode=0o700)
        (started.home / "dkim" / "sealgate.pem").write_bytes(pem)
        started.env["SEALGATE_DKIM__KEY"] = "dkim/sealgate.pem"
        started.stop_milter()
        started.start_milter()
        yield started, DkimKey.from_pem("sealgate", "example.org", pem)
    finally:
        started.close()


def _verifies(data: bytes, key: DkimKey) -> bool:
    published = {f"{key.record_name}.".encode(): key.record().encode()}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return published.get(name)

    return bool(dkim.verify(data, dnsfunc=lookup))


def test_the_rewritten_message_is_signed_after_the_last_change(
        signing: tuple[Gateway, DkimKey]) -> None:
    gateway, key = signing
    gateway.sink.clear()
    gateway.send(compose("encrypt/ Scan results"), ["patient@gmail.test"])
    (delivered,) = gateway.sink.wait_for(1)
    message = parsed(delivered)
    assert message["X-Sealgate-Message-Id"]  # the notification, on the sender's transaction
    assert message["Subject"] == "Scan results"  # the keyword taken out, then signed
    assert "d=example.org" in str(message["DKIM-Signature"])
    assert _verifies(delivered.data, key)
    # Written for the sender, to one person: no bulk-mail or auto-reply markers.
    assert message["List-Unsubscribe"] is None and message["Auto-Submitted"] is None
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    body = str(text.get_content())  # type: ignore[attr-defined]
    assert "Dr Who" in body and "Scan results" in body  # the sender's name and subject
    assert "never ask" in body and "password" in body
    links = re.findall(r'href="([^"]+)"', str(html.get_content()))  # type: ignore[attr-defined]
    assert links and all(link.startswith(f"http://127.0.0.1:{gateway.web_port}/")
                         for link in links), links
    # A change after signing (as a forwarder rewriting the subject would make) is caught:
    # the signature covers the result, not the sender's original.
    tampered = delivered.data.replace(b"Subject: Scan results", b"Subject: Scan result")
    assert tampered != delivered.data and not _verifies(tampered, key)


def test_mail_the_milter_lets_pass_is_not_signed(signing: tuple[Gateway, DkimKey]) -> None:
    gateway, _ = signing
    gateway.sink.clear()
    gateway.send(compose("Lunch on Friday", body="Shall we meet at noon?"),
                 ["friend@gmail.test"])
    (delivered,) = gateway.sink.wait_for(1)
    assert parsed(delivered)["DKIM-Signature"] is None
