"""The pure mail core: triggers, verdicts, the planned changes, the notification."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from sealgate.crypto.marks import MARK_HEADER, make_mark
from sealgate.dlp.findings import Confidence
from sealgate.dlp.inspect import Located, Report
from sealgate.dlp.policies import DlpAction, DlpVerdict, Matched
from sealgate.mail import notification
from sealgate.mail.message import InboundMessage, decode_words
from sealgate.mail.rewrite import Deposited, EncryptedCopy, plan
from sealgate.mail.triggers import TAG_HEADER, encode_subject, find_keyword, strip_keywords
from sealgate.mail.verdict import Action, MailPolicy, decide

POLICY = MailPolicy(keywords=("encrypt/", "secure/"), internal_domains=("example.org",),
                    mark_secret="s" * 32)
NOTE = notification.Notification("multipart/alternative; boundary=x", b"--x\r\nnote\r\n--x--\r\n")
DEPOSITED = Deposited("7b0c6f0e-0000-4000-8000-000000000001", NOTE)


def inbound(subject: str = "Hello", recipients: tuple[str, ...] = ("bob@gmail.test",),
            extra: tuple[tuple[str, str], ...] = (), body: bytes = b"hi\r\n") -> InboundMessage:
    headers = (("Received", "from x by y"), ("From", "Dr Who <who@example.org>"),
               ("To", ", ".join(recipients)), ("Subject", subject),
               ("Message-ID", "<m1@example.org>"), ("X-Mailer", "Outlook"),
               ("Thread-Topic", subject), ("Content-Type", "text/plain"), *extra)
    return InboundMessage("who@example.org", recipients, headers, body)


@pytest.mark.parametrize("subject, found", [
    ("encrypt/ lab results", "encrypt/"),
    ("Lab results [ENCRYPT/]", "ENCRYPT/"),
    ("Re: Encrypt/results", "Encrypt/"),
    ("secure/ thing", "secure/"),
    ("encrypted files attached", None),
    ("encrypt results", None),
])
def test_keyword_anywhere_any_case(subject: str, found: str | None) -> None:
    assert find_keyword(subject, POLICY.keywords) == found


def test_keyword_removed_and_spacing_tidied() -> None:
    assert strip_keywords("encrypt/ Lab  results", ["encrypt/"]) == "Lab results"
    assert strip_keywords("Lab ENCRYPT/ results encrypt/", ["encrypt/"]) == "Lab results"
    assert strip_keywords("No keyword here", ["encrypt/"]) == "No keyword here"


def test_non_ascii_subjects_are_decoded_and_re_encoded() -> None:
    encoded = "=?utf-8?q?encrypt/_R=C3=A9sultats_d=27analyse?="
    message = inbound(subject=encoded)
    assert message.subject == "encrypt/ Résultats d'analyse"
    verdict = decide(message, POLICY)
    assert verdict.action is Action.PROTECT
    assert verdict.display_subject == "Résultats d'analyse"
    assert verdict.subject is not None and verdict.subject.startswith("=?utf-8?")
    assert decode_words(verdict.subject) == "Résultats d'analyse"
    assert encode_subject("plain") == "plain"


def test_an_encoded_line_break_cannot_smuggle_a_header_into_the_new_subject() -> None:
    encoded = "=?utf-8?q?encrypt/_Hi=0D=0ABcc:_spy@evil.test?="
    verdict = decide(inbound(subject=encoded), POLICY)
    assert verdict.subject is not None
    assert "\r" not in verdict.subject and "\n" not in verdict.subject
    assert verdict.subject == "Hi Bcc: spy@evil.test"


def test_untriggered_mail_passes() -> None:
    assert decide(inbound(), POLICY).action is Action.PASS


def test_tag_header_triggers_without_changing_the_subject() -> None:
    verdict = decide(inbound(extra=((TAG_HEADER, "token"),)), POLICY)
    assert verdict.action is Action.PROTECT
    assert verdict.reasons == (f"{TAG_HEADER} header",)
    assert verdict.subject is None and verdict.display_subject == "Hello"


def dlp_saying(action: DlpAction) -> Callable[[InboundMessage, Sequence[str]], Report]:
    matched = Matched("Card numbers", action, 1, ("CREDIT_CARD",))
    report = Report((Located("body", "CREDIT_CARD", Confidence.HIGH, "**** 1111"),),
                    verdict=DlpVerdict(action, (matched,), action is DlpAction.NOTIFY))
    return lambda message, external: report


def test_a_dlp_encrypt_policy_protects_like_a_trigger() -> None:
    verdict = decide(inbound(), POLICY, dlp_saying(DlpAction.ENCRYPT))
    assert verdict.action is Action.PROTECT and verdict.reasons == ("policy Card numbers",)
    assert verdict.external == ("bob@gmail.test",)


def test_a_dlp_quarantine_holds_unless_the_sender_asked_to_encrypt() -> None:
    held = decide(inbound(), POLICY, dlp_saying(DlpAction.QUARANTINE))
    assert held.action is Action.HOLD and held.dlp is not None
    asked = decide(inbound("encrypt/ card"), POLICY, dlp_saying(DlpAction.QUARANTINE))
    assert asked.action is Action.PROTECT
    assert asked.reasons == ("subject keyword encrypt/", "policy Card numbers")


def test_a_dlp_block_wins_even_over_the_senders_keyword() -> None:
    verdict = decide(inbound("encrypt/ card"), POLICY, dlp_saying(DlpAction.BLOCK))
    assert verdict.action is Action.REJECT
    assert "1 CREDIT_CARD" in verdict.reason and "Card numbers" in verdict.reason
    assert "1111" not in verdict.reason


def test_a_dlp_notify_passes_and_carries_the_report() -> None:
    verdict = decide(inbound(), POLICY, dlp_saying(DlpAction.NOTIFY))
    assert verdict.action is Action.PASS and verdict.dlp is not None
    assert verdict.dlp.verdict.notify


def test_mail_that_stays_inside_is_not_scanned() -> None:
    def never(message: InboundMessage, external: Sequence[str]) -> Report:
        raise AssertionError("internal mail was scanned")
    verdict = decide(inbound(recipients=("nurse@example.org",)), POLICY, never)
    assert verdict.action is Action.PASS and verdict.dlp is None


def test_recipients_split_by_organisation_domain() -> None:
    verdict = decide(inbound("encrypt/ x", ("a@example.org", "b@gmail.test",
                                            "c@mail.example.org", "d@example.org.evil.test")),
                     POLICY)
    assert verdict.internal == ("a@example.org", "c@mail.example.org")
    assert verdict.external == ("b@gmail.test", "d@example.org.evil.test")
    assert verdict.split


def test_a_valid_mark_passes_and_a_copied_one_does_not() -> None:
    body = b"the notification\r\n"
    mark = make_mark(POLICY.mark_secret, "<m1@example.org>", body)
    marked = inbound("encrypt/ x", extra=((MARK_HEADER, mark),), body=body)
    assert decide(marked, POLICY).action is Action.PASS
    other_body = inbound("encrypt/ x", extra=((MARK_HEADER, mark),), body=b"other\r\n")
    assert decide(other_body, POLICY).action is Action.PROTECT
    forged = inbound("encrypt/ x", extra=((MARK_HEADER, "v1; sig=" + "0" * 64),), body=body)
    assert decide(forged, POLICY).action is Action.PROTECT


def test_all_external_swaps_the_body_and_keeps_only_safe_headers() -> None:
    message = inbound("encrypt/ Results", extra=((TAG_HEADER, "t"), ("X-Mailer", "again")))
    changes = plan(message, decide(message, POLICY), DEPOSITED, POLICY.mark_secret)
    deleted = {(name.lower(), index) for name, index in changes.delete_headers}
    assert deleted == {("x-mailer", 1), ("x-mailer", 2), ("thread-topic", 1),
                       ("content-type", 1), (TAG_HEADER.lower(), 1)}
    assert changes.delete_headers.index(("X-Mailer", 2)) < \
        changes.delete_headers.index(("X-Mailer", 1))  # later occurrences go first
    assert changes.set_headers == [("Subject", "Results")]
    added = dict(changes.add_headers)
    assert added["Content-Type"] == NOTE.content_type
    assert added["X-Sealgate-Message-Id"] == DEPOSITED.message_id
    assert MARK_HEADER in added
    assert changes.body == NOTE.body and changes.reinjections == () and not changes.discard


def test_split_keeps_internal_on_the_transaction_and_reinjects_the_notification() -> None:
    message = inbound("encrypt/ Results", ("in@example.org", "out@gmail.test"),
                      extra=((TAG_HEADER, "t"),))
    changes = plan(message, decide(message, POLICY), DEPOSITED, POLICY.mark_secret)
    assert changes.body is None
    assert changes.delete_headers == [(TAG_HEADER, 1)]
    assert changes.remove_recipients == ("out@gmail.test",)
    (reinjected,) = changes.reinjections
    assert reinjected.recipients == ("out@gmail.test",) and not changes.discard
    copy = message_from_bytes(reinjected.data, policy=policy.default)
    assert copy["Subject"] == "Results"
    assert copy["Message-ID"] == "<m1@example.org>"
    assert copy["X-Mailer"] is None and copy[TAG_HEADER] is None and copy["Received"] is None
    assert copy["X-Sealgate-Message-Id"] == DEPOSITED.message_id
    assert reinjected.data.endswith(NOTE.body)
    # The copy carries a mark that verifies, so the milter would pass it if it saw it again.
    again = InboundMessage("who@example.org", ("out@gmail.test",),
                           tuple((k, str(v)) for k, v in copy.items()), NOTE.body)
    assert decide(again, POLICY).action is Action.PASS


def test_internal_only_keeps_the_body() -> None:
    message = inbound("encrypt/ x", ("in@example.org",))
    changes = plan(message, decide(message, POLICY), None, POLICY.mark_secret)
    assert changes.body is None and changes.reinjections == () and not changes.remove_recipients
    assert changes.set_headers == [("Subject", "x")]


ENCRYPTED = b"From: who@example.org\r\nMessage-ID: <e1@example.org>\r\nContent-Type: " \
    b"application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIAGCSqG\r\n"


def test_recipients_with_their_own_key_get_an_encrypted_copy_the_rest_the_notification() -> None:
    message = inbound("encrypt/ x", ("a@cert.test", "b@plain.test"))
    deposited = Deposited(DEPOSITED.message_id, NOTE, portal=("b@plain.test",),
                          copies=(EncryptedCopy("smime", ("a@cert.test",), ENCRYPTED),))
    changes = plan(message, decide(message, POLICY), deposited, POLICY.mark_secret)
    assert changes.body == NOTE.body and changes.remove_recipients == ("a@cert.test",)
    (copy,) = changes.reinjections
    assert copy.recipients == ("a@cert.test",) and b"MIAGCSqG" in copy.data
    again = message_from_bytes(copy.data, policy=policy.default)
    assert again[MARK_HEADER] and not changes.discard
    marked = InboundMessage("who@example.org", ("a@cert.test",),
                            tuple((k, str(v)) for k, v in again.items()), b"MIAGCSqG\r\n")
    assert decide(marked, POLICY).action is Action.PASS


def test_when_everyone_has_an_encrypted_copy_the_transaction_is_discarded() -> None:
    message = inbound("encrypt/ x", ("a@cert.test", "c@key.test"))
    deposited = Deposited(None, None, portal=(), copies=(
        EncryptedCopy("smime", ("a@cert.test",), ENCRYPTED),
        EncryptedCopy("pgp", ("c@key.test",), ENCRYPTED)))
    changes = plan(message, decide(message, POLICY), deposited, POLICY.mark_secret)
    assert changes.discard
    assert [c.recipients for c in changes.reinjections] == [("a@cert.test",), ("c@key.test",)]


def test_colleagues_keep_the_original_while_each_outside_group_gets_its_copy() -> None:
    message = inbound("encrypt/ x", ("in@example.org", "a@cert.test", "b@plain.test"))
    deposited = Deposited(DEPOSITED.message_id, NOTE, portal=("b@plain.test",),
                          copies=(EncryptedCopy("smime", ("a@cert.test",), ENCRYPTED),))
    changes = plan(message, decide(message, POLICY), deposited, POLICY.mark_secret)
    assert changes.body is None and not changes.discard
    assert set(changes.remove_recipients) == {"a@cert.test", "b@plain.test"}
    assert [c.recipients for c in changes.reinjections] == [("b@plain.test",),
                                                            ("a@cert.test",)]


def test_notification_has_text_html_link_and_branding() -> None:
    branding = notification.Branding("St. Mary's <Hospital>", "1 Main St", "Confidential.")
    built = notification.build(branding, "Dr <Who>", "Lab results", "https://p.test/m/abc?x=1&y=2")
    mime = message_from_bytes(f"Content-Type: {built.content_type}\r\n\r\n".encode()
                              + built.body, policy=policy.default)
    assert isinstance(mime, EmailMessage) and mime.get_content_type() == "multipart/alternative"
    text = mime.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mime.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "https://p.test/m/abc?x=1&y=2" in text and "Dr <Who>" in text
    assert "1 Main St" in text and "Confidential." in text
    assert 'href="https://p.test/m/abc?x=1&amp;y=2"' in html
    assert "St. Mary&#x27;s &lt;Hospital&gt;" in html and "Dr &lt;Who&gt;" in html
    assert "password" in text  # tells recipients we never ask for their mailbox password
