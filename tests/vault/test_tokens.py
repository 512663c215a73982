"""Link and session secrets, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from sealgate.vault import tokens
from sealgate.vault.models import AccessToken, utcnow
from sealgate.vault.vault import Vault


def test_only_the_digest_is_stored(vault: Vault) -> None:
    with vault.database.writing() as session:
        secret = tokens.issue(session, "link", timedelta(hours=1))
    with vault.database.session() as session:
        (row,) = session.scalars(select(AccessToken)).all()
        assert secret not in (row.digest, str(row.id)) and len(row.digest) == 64
        assert tokens.find(session, secret, "link") is not None
        assert tokens.find(session, secret + "x", "link") is None
        assert tokens.find(session, secret, "session") is None  # wrong purpose


def test_expired_tokens_do_not_work(vault: Vault) -> None:
    with vault.database.writing() as session:
        secret = tokens.issue(session, "link", timedelta(minutes=10))
    with vault.database.session() as session:
        assert tokens.find(session, secret, "link", utcnow() + timedelta(minutes=9))
        assert tokens.find(session, secret, "link", utcnow() + timedelta(minutes=11)) is None


def test_a_single_use_token_works_once(vault: Vault) -> None:
    with vault.database.writing() as session:
        secret = tokens.issue(session, "verify", timedelta(hours=1))
    with vault.database.writing() as session:
        used = tokens.consume(session, secret, "verify")
        assert used is not None and used.used_at is not None
    with vault.database.writing() as session:
        assert tokens.consume(session, secret, "verify") is None
        assert tokens.find(session, secret, "verify") is None
