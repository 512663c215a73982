"""DLP on a real Postfix: a message with no trigger but a card number leaves only as a secure
notification; block and notify policies; internal mail is not held back; and the add-in's
scan endpoint reaches the same verdict as the milter for the same content."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.conftest import CLIENT_ID, KID, TENANT, KeyServer, mint_with, new_key, public_jwk
from tests.integration.messages import compose, notification_link, parsed, press
from tests.integration.test_milter import Gateway

CARD = "4111 1111 1111 1111"
SSN = "123-45-6789"
PASSPORT = "C03005988"
POLICIES = """
[[dlp.detectors]]
name = "PROJECT_FALCON"
keywords = ["project falcon"]

[[dlp.policies]]
name = "Hold Social Security numbers"
detectors = ["US_SSN"]
action = "quarantine"
allow_send_as_is = true

[[dlp.policies]]
name = "No passports"
detectors = ["US_PASSPORT"]
action = "block"

[[dlp.policies]]
name = "Report Falcon"
detectors = ["PROJECT_FALCON"]
action = "notify"
"""


class DlpGateway(Gateway):
    key: rsa.RSAPrivateKey
    keys: KeyServer

    def api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/v1{path}", method="POST",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {mint_with(self.key)}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DlpGateway]:
    started = DlpGateway(tmp_path_factory.mktemp("milter-dlp"))
    started.key = new_key()
    started.keys = KeyServer([public_jwk(started.key, KID)])
    started.keys.__enter__()
    try:
        started.stop_milter()
        started.stop_server()
        with (started.home / "sealgate.toml").open("a") as config:
            config.write(POLICIES)
        started.env.update({"SEALGATE_DLP__NOTIFY_ADDRESS": "dlp-officer@example.org",
                            "SEALGATE_ADDIN__CLIENT_ID": CLIENT_ID,
                            "SEALGATE_ADDIN__TENANTS": TENANT,
                            "SEALGATE_ADDIN__JWKS_URL": started.keys.url})
        started.start_milter()
        started.start_server()
        yield started
    finally:
        started.keys.__exit__(None, None, None)
        started.close()


@pytest.fixture
def lab(gateway: DlpGateway) -> DlpGateway:
    gateway.sink.clear()
    return gateway


def scan_cli(gateway: Gateway, message: EmailMessage) -> dict[str, Any]:
    path = gateway.home.parent / "scanned.eml"
    path.write_bytes(message.as_bytes())
    done = subprocess.run([sys.executable, "-m", "sealgate", "--home", str(gateway.home),
                           "scan", "--json", str(path)], env=gateway.env, capture_output=True,
                          check=True, timeout=60)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def draft_of(message: EmailMessage) -> dict[str, Any]:
    return {"subject": str(message["Subject"]), "body": message.get_content(),
            "body_type": "text", "attachments": []}


def verdict(report: dict[str, Any]) -> tuple[Any, list[str]]:
    return report["action"], sorted(p["name"] for p in report["policies"])


def test_a_card_number_and_no_other_trigger_leaves_only_as_a_secure_notification(
        lab: DlpGateway) -> None:
    message = compose("Question about my bill",
                      body=f"Please charge the visit to my card {CARD}, thanks.\n")
    lab.send(message, ["patient@gmail.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert CARD.encode() not in delivered.data and b"4111" not in delivered.data
    notification = parsed(delivered)
    assert notification["X-Sealgate-Message-Id"]
    assert notification["Subject"] == "Question about my bill"
    with urllib.request.urlopen(notification_link(notification), timeout=10) as page:
        assert CARD not in page.read().decode()
    assert "PCI DSS" in lab.log("milter") and CARD not in lab.log("milter")


def test_concurrent_sessions_are_scanned_and_the_milter_stays_up(lab: DlpGateway) -> None:
    """Several SMTP sessions at once: DLP runs on many milter threads together."""
    recipients = [f"client{n}@gmail.test" for n in range(8)]

    def send(address: str) -> None:
        lab.send(compose("Payment", to=address, body=f"Card {CARD}\n"), [address])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, recipients))
    delivered = lab.sink.wait_for_recipients(recipients, timeout=60)
    assert all(CARD.encode() not in d.data and parsed(d)["X-Sealgate-Message-Id"]
               for d in delivered.values())
    assert lab.milter is not None and lab.milter.poll() is None


def test_the_same_card_to_a_colleague_is_delivered_as_is(lab: DlpGateway) -> None:
    lab.send(compose("Card for the booking", to="nurse@example.org",
                     body=f"Use {CARD} for the hotel.\n"), ["nurse@example.org"])
    (delivered,) = lab.sink.wait_for(1)
    assert CARD.encode() in delivered.data
    assert parsed(delivered)["X-Sealgate-Message-Id"] is None


def test_a_blocked_message_is_refused_with_a_reason_and_nothing_is_delivered(
        lab: DlpGateway) -> None:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        lab.send(compose("Travel", body=f"My passport number is {PASSPORT}.\n"),
                 ["agent@travel.test"])
    assert refused.value.smtp_code == 554
    reply = refused.value.smtp_error.decode()
    assert "policy No passports does not allow" in reply and "US_PASSPORT" in reply
    assert PASSPORT not in reply
    # The officer hears of it; the recipient gets nothing.
    (report,) = lab.sink.wait_for(1)
    assert report.rcpt_tos == ("dlp-officer@example.org",)
    assert PASSPORT.encode() not in report.data
    time.sleep(1)
    assert len(lab.sink.messages) == 1


def test_a_notify_policy_delivers_and_reports_to_the_officer(lab: DlpGateway) -> None:
    lab.send(compose("Status", body="Project Falcon is on track.\n"), ["partner@firm.test"])
    delivered = {d.rcpt_tos: d for d in lab.sink.wait_for(2)}
    assert b"Project Falcon is on track" in delivered[("partner@firm.test",)].data
    report = parsed(delivered[("dlp-officer@example.org",)])
    text = report.get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()
    assert "Report Falcon" in content and "who@example.org" in content
    assert "Project Falcon" not in content  # the value is masked in the report


def held_link(lab: DlpGateway, subject: str) -> str:
    """The one link in the 'held' notice the sender got."""
    (notice,) = lab.sink.wait_for(1)
    assert notice.rcpt_tos == ("who@example.org",)
    message = parsed(notice)
    assert message["Subject"] == f"Held: {subject}"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None and SSN not in text.get_content()
    (link,) = re.findall(r"http://\S+/held/\S+", text.get_content())
    return link


def choose(link: str, choice: str) -> str:
    """Open the decision page in a cookie-keeping client and press one button."""
    page, answer = press(link, choice)
    assert SSN not in page and "***-**-6789" in page
    return answer


@pytest.mark.parametrize("choice", ["send_securely", "send_as_is", "discard"])
def test_a_held_message_waits_for_its_senders_choice_and_nothing_is_lost(
        lab: DlpGateway, choice: str) -> None:
    subject = f"Payroll change {choice}"
    message = compose(subject, to="hr@partner.test, nurse@example.org",
                      body=f"Her SSN is {SSN}; please update payroll.\n")
    lab.send(message, ["hr@partner.test", "nurse@example.org"])
    link = held_link(lab, subject)  # held: nobody else got anything
    time.sleep(0.5)
    assert [m.rcpt_tos for m in lab.sink.messages] == [("who@example.org",)]
    lab.sink.clear()
    choose(link, choice)
    if choice == "discard":
        time.sleep(1)
        assert lab.sink.messages == []
        return
    delivered = lab.sink.wait_for_recipients(["hr@partner.test", "nurse@example.org"])
    assert SSN.encode() in delivered["nurse@example.org"].data  # colleagues: as is
    outside = delivered["hr@partner.test"]
    if choice == "send_securely":
        assert SSN.encode() not in outside.data
        assert parsed(outside)["X-Sealgate-Message-Id"]
    else:
        assert SSN.encode() in outside.data
    assert parsed(outside)["Subject"] == subject


def test_the_addin_scan_reaches_the_milters_verdict(lab: DlpGateway) -> None:
    for body, expected in [(f"card {CARD}\n", "encrypt"), (f"SSN {SSN}\n", "quarantine"),
                           (f"passport {PASSPORT}\n", "block"), ("see you at lunch\n", None)]:
        message = compose("Draft", body=body)
        from_api = lab.api("/scan", draft_of(message))
        from_cli = scan_cli(lab, message)
        assert verdict(from_api) == verdict(from_cli)
        assert from_api["action"] == expected
        assert from_api["sensitive"] is (expected is not None)
        assert all(CARD not in json.dumps(report) and SSN not in json.dumps(report)
                   for report in (from_api, from_cli))
