"""The links Sealgate puts in mail: a message's portal page, and the sender's tracking page,
which is signed with the server's key so that it cannot be made up for another message."""

from __future__ import annotations

import uuid

from itsdangerous import BadSignature, URLSafeSerializer

from sealgate.config import Config

_TRACKING_SALT = "sealgate.tracking"


def public_url(config: Config, path: str) -> str:
    """A link for mail: on the configured public host, whatever host the request came to."""
    return f"{config.server.base_url}{path}"


def message_link(config: Config, message_id: uuid.UUID) -> str:
    return f"{config.server.base_url}/m/{message_id}"


def tracking_token(config: Config, message_id: uuid.UUID) -> str:
    return str(URLSafeSerializer(config.server.secret_key, salt=_TRACKING_SALT)
               .dumps(str(message_id)))


def tracking_link(config: Config, message_id: uuid.UUID) -> str:
    return f"{config.server.base_url}/t/{tracking_token(config, message_id)}"


def tracked_message(config: Config, token: str) -> uuid.UUID | None:
    """The message a tracking token was made for, or None when it is not one of ours."""
    try:
        return uuid.UUID(URLSafeSerializer(config.server.secret_key, salt=_TRACKING_SALT)
                         .loads(token))
    except (BadSignature, ValueError, TypeError):
        return None
