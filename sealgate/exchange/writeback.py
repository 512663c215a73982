"""Putting a secure message back into an internal recipient's mailbox: a token for their
mailbox (on behalf of the add-in user, or app-only where the administrator approved it), the
configured backend (Microsoft Graph for Exchange Online, EWS for Exchange Server), and the
placeholder replacement of `mailbox.replace_placeholder`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sealgate.config import Config
from sealgate.exchange.mailbox import Mailbox, MailboxError, Replaced, replace_placeholder
from sealgate.exchange.tokens import TokenBroker

GRAPH_DELEGATED = ("https://graph.microsoft.com/Mail.ReadWrite",)
GRAPH_APP = ("https://graph.microsoft.com/.default",)


@dataclass(frozen=True)
class MailboxUser:
    """Who the add-in's token proves the caller is, and that token (for on-behalf-of)."""

    address: str
    object_id: str
    assertion: str


@dataclass(frozen=True)
class ItemIds:
    """The placeholder as Outlook names it: its EWS id and its REST (Graph) id."""

    ews: str
    rest: str


def ews_scopes(config: Config, app_only: bool) -> tuple[str, ...]:
    """EWS over OAuth: the resource is the EWS server's origin (Exchange Online's
    outlook.office365.com, or an on-premises server published for hybrid modern auth)."""
    parts = urlsplit(config.exchange.ews_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return (f"{origin}/.default",) if app_only else (f"{origin}/EWS.AccessAsUser.All",)


def open_mailbox(config: Config, broker: TokenBroker, user: MailboxUser) -> tuple[Mailbox, str]:
    """The user's mailbox and the id its backend uses for the placeholder's kind of id."""
    exchange = config.exchange
    verify: str | bool = str(config.path(exchange.ca_file)) if exchange.ca_file else True
    if exchange.backend == "graph":
        from sealgate.exchange.graph import GraphMailbox

        if exchange.app_only:
            return GraphMailbox(broker.app_only(GRAPH_APP), user.object_id,
                                base_url=exchange.graph_url, verify=verify,
                                timeout=exchange.timeout), "rest"
        return GraphMailbox(broker.on_behalf_of(user.assertion, GRAPH_DELEGATED), "me",
                            base_url=exchange.graph_url, verify=verify,
                            timeout=exchange.timeout), "rest"
    if exchange.backend == "ews":
        from sealgate.exchange.ews import EwsMailbox

        token = None
        if exchange.ews_auth == "oauth":
            token = broker.app_only(ews_scopes(config, True)) if exchange.app_only \
                else broker.on_behalf_of(user.assertion, ews_scopes(config, False))
        return EwsMailbox(user.address, url=exchange.ews_url, auth=exchange.ews_auth,
                          token=token, username=exchange.ews_username,
                          password=exchange.ews_password,
                          ca_file=str(config.path(exchange.ca_file)) if exchange.ca_file
                          else None, timeout=exchange.timeout,
                          impersonate=exchange.app_only or exchange.ews_auth != "oauth"), "ews"
    raise MailboxError("writing back to mailboxes is off (exchange.backend)")


def save_to_mailbox(config: Config, broker: TokenBroker, user: MailboxUser, ids: ItemIds,
                    mime: bytes) -> Replaced:
    mailbox, kind = open_mailbox(config, broker, user)
    placeholder = ids.rest if kind == "rest" else ids.ews
    if not placeholder:
        raise MailboxError(f"Outlook did not name the item ({kind} id missing)")
    return replace_placeholder(mailbox, placeholder, mime)
