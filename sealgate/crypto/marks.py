"""The "already processed" mark on a message Sealgate wrote: keyed to the deployment's
internal secret and bound to the message's id and body, so it cannot be copied onto another
message to slip past the gateway."""

from __future__ import annotations

import hashlib
import hmac

MARK_HEADER = "X-Sealgate-Processed"


def _signature(secret: str, message_id: str, body: bytes) -> str:
    digest = hashlib.sha256(body.replace(b"\r\n", b"\n").rstrip(b"\n")).hexdigest()
    payload = f"v1|{message_id.strip()}|{digest}".encode()
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def make_mark(secret: str, message_id: str, body: bytes) -> str:
    return f"v1; sig={_signature(secret, message_id, body)}"


def mark_is_valid(secret: str, value: str, message_id: str, body: bytes) -> bool:
    if not secret or not value.startswith("v1; sig="):
        return False
    return hmac.compare_digest(value.removeprefix("v1; sig=").strip(),
                               _signature(secret, message_id, body))
