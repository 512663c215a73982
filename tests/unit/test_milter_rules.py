"""The milter's rules made from a configuration (what a reload builds and swaps in), and
which changed settings wait for a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealgate import config, settings
from sealgate.mail.dkim import DkimError, generate_private_key
from sealgate.mail.message import InboundMessage
from sealgate.milter.daemon import AT_START, Rules, needs_restart


def _message(mail_from: str, *recipients: str, subject: str = "Hello") -> InboundMessage:
    return InboundMessage(mail_from, recipients, (("Subject", subject),), b"")


def test_rules_carry_everything_a_message_is_judged_by(home: Path) -> None:
    base = config.load(home, {})
    (home / "dkim").mkdir()
    (home / "dkim" / "sealgate.pem").write_bytes(generate_private_key())
    changed = settings.effective(base, {
        "milter": {"subject_keywords": ["encrypt/", "private/"]},
        "routing": {"portal_keywords": ["portal/"]},
        "organisation": {"domains": ["example.org", "example.net"]},
        "dkim": {"key": "dkim/sealgate.pem", "domain": "example.net"}})
    rules = Rules.build(changed, 7)
    assert rules.revision == 7 and rules.config is changed
    assert rules.policy.keywords == ("encrypt/", "private/", "portal/")
    assert rules.portal_keywords == ("portal/",)
    assert rules.policy.internal_domains == ("example.org", "example.net")
    assert rules.policy.mark_secret == base.internal_api.secret
    assert rules.inspector is not None
    assert rules.dkim is not None and rules.dkim.domain == "example.net"
    assert rules.return_address == "sealgate-dsn@example.org"
    # Mail inside the organisation is accepted at the headers; a keyword needs the body.
    assert not rules.needs_body(_message("who@example.org", "nurse@example.net"))
    assert rules.needs_body(_message("who@example.org", "nurse@example.net",
                                     subject="private/ notes"))
    assert rules.needs_body(_message("who@example.org", "patient@gmail.test"))  # DLP
    assert rules.is_delivery_report(_message("mailer-daemon@example.org",
                                             "sealgate-dsn@example.org"))

    off = Rules.build(settings.effective(base, {"dlp": {"enabled": False}}))
    assert off.revision == 0 and off.inspector is None and off.dkim is None
    assert not off.needs_body(_message("who@example.org", "patient@gmail.test"))


def test_rules_are_never_changed_in_place(home: Path) -> None:
    rules = Rules.build(config.load(home, {}))
    with pytest.raises(AttributeError):
        rules.revision = 3  # type: ignore[misc]


def test_a_key_file_gone_since_fails_the_build(home: Path) -> None:
    (home / "dkim").mkdir()
    key = home / "dkim" / "sealgate.pem"
    key.write_bytes(generate_private_key())
    configured = settings.effective(config.load(home, {}), {"dkim": {"key": "dkim/sealgate.pem"}})
    key.unlink()
    with pytest.raises(DkimError, match="does not exist"):
        Rules.build(configured)


def test_settings_read_only_at_start_are_named_when_they_change(home: Path) -> None:
    base = config.load(home, {})
    assert needs_restart(base, base) == []
    assert needs_restart(base, settings.effective(base, {
        "milter": {"subject_keywords": ["x/"]}, "dlp": {"enabled": False}})) == []
    moved = config.load(home, {"SEALGATE_MILTER__LISTEN": "inet:9999@127.0.0.1",
                               "SEALGATE_SERVER__LISTEN": "127.0.0.1:9000",
                               "SEALGATE_INTERNAL_API__SECRET": "another-secret",
                               "SEALGATE_LOGGING__FORMAT": "json"})
    assert needs_restart(base, moved) == ["milter.listen", "milter.server_url",
                                          "internal_api.secret", "logging.format"]
    # The server's address matters only while the milter has no server_url of its own.
    pinned = config.load(home, {"SEALGATE_MILTER__SERVER_URL": "http://127.0.0.1:8025"})
    assert needs_restart(base, pinned) == []
    assert set(AT_START) >= {"milter.timeout", "milter.metrics_listen", "milter.socket_group"}
