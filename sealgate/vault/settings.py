"""The settings overlay's revisions (sealgate/settings.py): the newest row runs. A change is
a new row written with its audit event (before and after) in one transaction, and only if
nobody saved another change since the one it was made against."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sealgate.errors import SealgateError
from sealgate.vault.models import SettingsRevision
from sealgate.vault.vault import Vault


class StaleRevision(SealgateError):
    """Someone else saved a change first: reload and make the change again."""


def latest_revision(vault: Vault) -> int:
    """The running revision's number (0: no change was ever made, the file's settings run)."""
    with vault.database.session() as session:
        return int(session.scalar(select(func.max(SettingsRevision.id))) or 0)


def latest(vault: Vault) -> tuple[int, dict[str, Any]]:
    with vault.database.session() as session:
        row = session.scalars(select(SettingsRevision)
                              .order_by(SettingsRevision.id.desc()).limit(1)).first()
        return (row.id, dict(row.overlay)) if row is not None else (0, {})


def save(vault: Vault, actor: str, overlay: dict[str, Any], based_on: int,
         differences: dict[str, Any]) -> int:
    """Store a new overlay made from revision `based_on`; the audit event `settings.changed`
    holds each changed key's value before and after. Raises StaleRevision."""
    stale = StaleRevision("the settings were changed by someone else meanwhile: reload "
                          "and make the change again")
    try:
        with vault.database.writing() as session:
            newest = int(session.scalar(select(func.max(SettingsRevision.id))) or 0)
            if newest != based_on:
                raise stale
            row = SettingsRevision(actor=actor, overlay=overlay, parent=based_on)
            session.add(row)
            session.flush()
            vault.record_in(session, actor, "settings.changed", "settings", str(row.id),
                            {"changes": differences})
            return row.id
    except IntegrityError:  # a change made on the same revision was stored first
        raise stale from None


def history(vault: Vault, limit: int = 50) -> list[tuple[int, str, Any]]:
    with vault.database.session() as session:
        rows = session.scalars(select(SettingsRevision)
                               .order_by(SettingsRevision.id.desc()).limit(limit))
        return [(row.id, row.actor, row.created_at) for row in rows]
