"""Secrets that people or links carry: random tokens (stored hashed) and passwords (argon2id)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_BYTES = 32  # 256 bits; the design asks for at least 128

_passwords = PasswordHasher()  # argon2id with the library's current recommended parameters


def new_token() -> str:
    """A random URL-safe secret for a link or an access token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What is stored for a token. Tokens are uniformly random and long, so one SHA-256 is
    enough (no salt or stretching needed) and keeps look-up by digest possible."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _passwords.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def chain_digest(key: bytes, previous: str, payload: bytes) -> str:
    """One link of the audit chain: keyed, so only the keyring's holder can forge a chain."""
    return hmac.new(key, previous.encode("ascii") + b"\n" + payload, hashlib.sha256).hexdigest()


def short_code(digits: int = 6) -> str:
    """A code a person types from an e-mail: few digits, so it is guarded by a short life,
    a few attempts and a keyed digest (see `code_digest`)."""
    return f"{secrets.randbelow(10 ** digits):0{digits}d}"


def code_digest(key: bytes, owner: str, code: str) -> str:
    """A short code's stored form, keyed with a secret that is not in the database: a copy of
    the database alone does not let anyone search the few million codes offline."""
    return hmac.new(key, f"{owner}\n{code}".encode(), hashlib.sha256).hexdigest()


def recovery_code() -> str:
    """80 random bits as four groups of four base32 characters, e.g. K7QD-M2XA-PL4F-9RTB."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def normalise_recovery_code(typed: str) -> str:
    cleaned = "".join(ch for ch in typed.upper() if ch.isalnum())
    return "-".join(cleaned[i:i + 4] for i in range(0, len(cleaned), 4))
