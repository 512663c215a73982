"""Secrets that people or links carry: random tokens (stored hashed) and passwords (argon2id)."""

from __future__ import annotations

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
