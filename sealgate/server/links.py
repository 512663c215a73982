"""The links Sealgate puts in mail: a message's portal page, and the sender's pages (the
tracking page of a message, the decision page of a held one), which are signed with the
server's key, each kind with its own salt, so that none can be made up for another object
or turned into a link of another kind."""

from __future__ import annotations

import uuid

from itsdangerous import BadSignature, URLSafeSerializer

from sealgate.config import Config

_TRACKING_SALT = "sealgate.tracking"
_HOLD_SALT = "sealgate.hold"


def public_url(config: Config, path: str) -> str:
    """A link for mail: on the configured public host, whatever host the request came to."""
    return f"{config.server.base_url}{path}"


def message_link(config: Config, message_id: uuid.UUID) -> str:
    return f"{config.server.base_url}/m/{message_id}"


def _signed_id(config: Config, salt: str, value: uuid.UUID) -> str:
    return str(URLSafeSerializer(config.server.secret_key, salt=salt).dumps(str(value)))


def _signed_id_of(config: Config, salt: str, token: str) -> uuid.UUID | None:
    """The id a token was signed for with this salt, or None when it is not one of ours."""
    try:
        return uuid.UUID(URLSafeSerializer(config.server.secret_key, salt=salt).loads(token))
    except (BadSignature, ValueError, TypeError):
        return None


def tracking_token(config: Config, message_id: uuid.UUID) -> str:
    return _signed_id(config, _TRACKING_SALT, message_id)


def tracking_link(config: Config, message_id: uuid.UUID) -> str:
    return f"{config.server.base_url}/t/{tracking_token(config, message_id)}"


def tracked_message(config: Config, token: str) -> uuid.UUID | None:
    """The message a tracking token was made for, or None when it is not one of ours."""
    return _signed_id_of(config, _TRACKING_SALT, token)


def hold_token(config: Config, hold_id: uuid.UUID) -> str:
    return _signed_id(config, _HOLD_SALT, hold_id)


def hold_link(config: Config, hold_id: uuid.UUID) -> str:
    """The sender's decision page for a message a DLP policy held."""
    return f"{config.server.base_url}/held/{hold_token(config, hold_id)}"


def held_id(config: Config, token: str) -> uuid.UUID | None:
    """The hold a decision-page token was made for, or None when it is not one of ours."""
    return _signed_id_of(config, _HOLD_SALT, token)
