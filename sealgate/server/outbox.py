"""Handing the mail the server writes (codes, links, receipts, replies) to the MTA: through the
listener that does not run the milter, so the MTA's queue is the only mail queue."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses

from sealgate import smtp
from sealgate.config import Config
from sealgate.errors import SealgateError
from sealgate.mail.dkim import DkimError, DkimKey, sign_if_ours

log = logging.getLogger(__name__)


class DeliveryError(SealgateError):
    """The MTA did not take the message; nothing was sent."""


def send(config: Config, message: EmailMessage) -> None:
    """To the message's To and Cc; bounces come back to the server's own from address."""
    recipients = [address for _, address in getaddresses(
        message.get_all("To", []) + message.get_all("Cc", []))]
    send_raw(config, recipients, message.as_bytes())


def send_raw(config: Config, recipients: list[str], data: bytes,
             mail_from: str | None = None) -> None:
    """Hand `data` to the MTA; `mail_from` (default: the server's address) gets the bounces,
    so mail released on a sender's behalf bounces back to that sender. Signed with the
    organisation's DKIM key when one is configured and the From is in its domain."""
    try:
        data = sign_if_ours(DkimKey.from_config(config), data)
    except DkimError as error:
        log.error("mail to %d recipient(s) not sent: %s", len(recipients), error)
        raise DeliveryError(f"the message could not be DKIM-signed: {error}") from None
    host, port = config.relay
    try:
        refused = smtp.send(host, port, mail_from or config.from_address, recipients, data,
                            timeout=config.milter.timeout)
    except (smtplib.SMTPException, OSError) as error:
        log.warning("mail to %d recipient(s) not handed to %s:%d: %s",
                    len(recipients), host, port, error)
        raise DeliveryError(f"the mail server at {host}:{port} did not take the message") \
            from None
    if refused:
        log.warning("the mail server refused %d of %d recipient(s)", len(refused),
                    len(recipients))


def send_after_response(config: Config, build: Callable[[], EmailMessage], what: str) -> None:
    """For notices sent once the page or the milter has its answer (`call_on_close`): nobody
    is left to tell, so a failure to build or hand over the mail is logged, never raised."""
    try:
        send(config, build())
    except (DeliveryError, ValueError) as error:  # ValueError: an address that cannot be used
        log.warning("%s not sent: %s", what, error)
