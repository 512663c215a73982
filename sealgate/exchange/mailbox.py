"""Writing a secure message back into its recipient's mailbox: the one small interface the two
backends (Exchange Server over EWS, Exchange Online over Microsoft Graph) implement, and the
replacement of the placeholder (the notification the recipient received) by the full
message. Pure: the backends do the I/O.

The placeholder goes only after the full message is confirmed in the same folder; any
failure before that leaves the mailbox as it was (and the content is still in the portal)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sealgate.errors import SealgateError


@dataclass(frozen=True)
class MailboxItem:
    item_id: str
    folder_id: str
    is_read: bool
    received: datetime | None  # timezone-aware


class MailboxError(SealgateError):
    """The mailbox service refused or failed. `user_message` is for the person in Outlook;
    `retry_after` (seconds) when the service asked to be called again later."""

    user_message = "Your mailbox could not be updated. The message is still in the portal."

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ItemNotFound(MailboxError):
    user_message = "That item is no longer in your mailbox."


class AccessDenied(MailboxError):
    user_message = "Sealgate may not change that item in your mailbox."


class Throttled(MailboxError):
    user_message = "Your mailbox is busy. Please try again in a moment."


class TooLarge(MailboxError):
    user_message = "The message is too large for your mailbox. It is still in the portal."


class Mailbox(Protocol):
    """One user's mailbox, already authenticated."""

    def item(self, item_id: str) -> MailboxItem:
        """The item's folder, read state and received date. ItemNotFound, AccessDenied..."""
        ...

    def import_message(self, folder_id: str, mime: bytes, *, is_read: bool,
                       received: datetime | None) -> str:
        """Store the whole RFC 5322 message in the folder as a received (not draft) message
        with this read state and, where the service allows, this received date. Returns the
        new item's id."""
        ...

    def delete(self, item_id: str) -> None:
        """Remove the item (to the user's Deleted Items / recoverable items, not purged)."""
        ...


@dataclass(frozen=True)
class Replaced:
    new_item_id: str
    folder_id: str
    placeholder_removed: bool
    problem: str = ""  # why the placeholder stayed, when it did


def replace_placeholder(mailbox: Mailbox, placeholder_id: str, mime: bytes) -> Replaced:
    """The full message into the placeholder's folder, with its read state and received
    date; then, once the new item is confirmed there, the placeholder removed. A failure
    before the confirmation raises and changes nothing; a failure to remove the placeholder
    is reported (both are then in the mailbox: nothing is lost)."""
    placeholder = mailbox.item(placeholder_id)
    new_id = mailbox.import_message(placeholder.folder_id, mime, is_read=placeholder.is_read,
                                    received=placeholder.received)
    stored = mailbox.item(new_id)
    if stored.folder_id != placeholder.folder_id:
        raise MailboxError(f"the new item {new_id} is in folder {stored.folder_id}, not in "
                           f"the placeholder's {placeholder.folder_id}")
    try:
        mailbox.delete(placeholder_id)
    except MailboxError as error:
        return Replaced(new_id, placeholder.folder_id, False, str(error))
    return Replaced(new_id, placeholder.folder_id, True)
