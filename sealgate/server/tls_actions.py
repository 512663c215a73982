"""What the verified-TLS sweeper and delivery reports set off: another attempt, the portal for
recipients whose servers could not prove themselves in time, and a notice to the sender when
a server refused a recipient for good. The content comes from the vault, where it stays
sealed until every delivery of the message is settled."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from sealgate import smtp
from sealgate.config import Config
from sealgate.mail import notices, notification
from sealgate.mail.dkim import DkimError, DkimKey, sign_if_ours
from sealgate.mail.rewrite import Deposited, inbound, notification_copy
from sealgate.mail.triggers import encode_subject
from sealgate.routing import mta
from sealgate.server.branding import branding
from sealgate.server.links import message_link, tracking_link
from sealgate.server.outbox import DeliveryError, send_after_response, send_raw
from sealgate.server.tls import TlsService, new_envelope_id
from sealgate.vault import tls as store
from sealgate.vault.models import TlsDeliveryState
from sealgate.vault.vault import Vault


def tls_copy(cleaned: bytes, level: str) -> bytes:
    """The message as its verified-TLS recipients get it: the header that makes the MTA
    choose the verified-TLS transport goes first."""
    return f"{mta.DELIVERY_HEADER}: {level}\r\n".encode("ascii") + cleaned


def retry(service: TlsService, due: store.Due) -> None:
    from sealgate.server.routing import cleaned_message

    config, vault = service.config, service.vault
    with vault.database.session() as session:
        subject = vault.message(session, due.message_id).subject
    cleaned = cleaned_message(vault.original(due.message_id), subject)
    for level in sorted(set(due.recipients.values())):
        chosen = [address for address, lvl in due.recipients.items() if lvl == level]
        ids = [i for i, address in zip(due.ids, due.recipients, strict=True)
               if address in chosen]
        token, digest = new_envelope_id()
        hand_over_tls(config, chosen, tls_copy(cleaned, level), token)
        store.attempted(vault, ids, digest, datetime.now(UTC))


def fall_back(service: TlsService, due: store.Due) -> None:
    """The portal: the recipients get the notification the portal recipients got."""
    config, vault = service.config, service.vault
    with vault.database.session() as session:
        message = vault.message(session, due.message_id)
        sender, sender_name, subject = message.sender, message.sender_name, message.subject
    original = inbound(vault.original(due.message_id), sender, ())
    link = message_link(config, due.message_id)
    deposited = Deposited(str(due.message_id),
                          notification.build(branding(config), sender_name or sender,
                                             subject, link))
    # The subject as recipients see it (the sender's keyword taken out), as the milter sets it.
    data = notification_copy(original, encode_subject(subject), deposited,
                             config.internal_api.secret)
    send_raw(config, list(due.recipients), data, sender)
    store.fell_back(vault, due.ids, datetime.now(UTC))


def tell_sender(config: Config, vault: Vault, settled: list[store.Settled]) -> None:
    """A notice for each recipient whose server refused the message for good."""
    for change in settled:
        if change.state is not TlsDeliveryState.FAILED:
            continue
        send_after_response(
            config, lambda change=change: _refused_notice(config, vault, change),  # type: ignore[misc]
            f"'not delivered' notice for {change.message_id}")


def _refused_notice(config: Config, vault: Vault, change: store.Settled) -> EmailMessage:
    with vault.database.session() as session:
        message = vault.message(session, change.message_id)
        sender, subject = message.sender, message.subject
    return notices.not_delivered(
        branding(config), from_address=config.from_address, to=sender, subject=subject,
        recipient=change.recipient, reason=change.detail,
        tracking_link=tracking_link(config, change.message_id))


def hand_over_tls(config: Config, recipients: list[str], data: bytes,
                  envelope_id: str) -> None:
    """A verified-TLS copy to the MTA, from the return address, asking for reports (and
    DKIM-signed like everything Sealgate hands over, when a key is configured)."""
    host, port = config.relay
    try:
        data = sign_if_ours(DkimKey.from_config(config), data)
    except DkimError as error:
        raise DeliveryError(f"the message could not be DKIM-signed: {error}") from None
    try:
        refused = smtp.send(host, port, config.return_address, recipients, data,
                            timeout=config.milter.timeout, envelope_id=envelope_id)
    except OSError as error:
        raise DeliveryError(f"the mail server at {host}:{port} did not take the message: "
                            f"{error}") from None
    if refused:
        raise DeliveryError(f"the mail server refused {sorted(refused)}")
