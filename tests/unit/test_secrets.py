from __future__ import annotations

import base64

from sealgate.crypto.secrets import (
    hash_password,
    new_token,
    token_digest,
    verify_password,
)


def test_tokens_carry_at_least_128_random_bits() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    raw = base64.urlsafe_b64decode(next(iter(tokens)) + "==")
    assert len(raw) * 8 >= 128


def test_only_a_digest_is_stored_and_it_matches_only_its_token() -> None:
    token = new_token()
    digest = token_digest(token)
    assert token not in digest and len(digest) == 64
    assert token_digest(token) == digest
    assert token_digest(new_token()) != digest


def test_passwords_use_argon2id_with_a_salt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, "correct horse")
    assert not verify_password(first, "Correct horse")
    assert not verify_password("not a hash", "correct horse")
