"""Password strength: length limits, zxcvbn's dictionaries and patterns, personal inputs,
and a bounded cost for long or crafted input."""

from __future__ import annotations

import random
import secrets
import string
import time

import pytest
from zxcvbn import matching

from sealgate.crypto import passwords
from sealgate.crypto.passwords import MAX_CHECKED, weakness

JANE = ["jane.doe@example.com", "jane.doe"]
L33T = "".join(sorted({c for subs in matching.L33T_TABLE.values() for c in subs}))


@pytest.mark.parametrize("password, user_inputs", [
    ("password123456", ()),
    ("Password1234!", ()),
    ("qwertyuiopasdf", ()),
    ("aaaaaaaaaaaaaaaa", ()),
    ("1qaz2wsx3edc4rfv", ()),
    ("abcdefghijklmnop", ()),
    ("passwordpassword", ()),
    ("jane.doe2024!!", JANE),
    ("JaneDoe2024!!x", JANE),
    ("2024!!jane.doe@example.com", JANE),
    ("St Mary Hospital 2024", ["it@stmary.example", "St Mary Hospital"]),
])
def test_weak_passwords_are_refused_with_a_reason(password: str,
                                                  user_inputs: list[str]) -> None:
    reason = weakness(password, user_inputs=user_inputs)
    assert reason is not None and reason.startswith("This password is")
    assert reason.endswith(".") and "\n" not in reason


@pytest.mark.parametrize("password", [
    "correct-horse-battery-staple-orbit",
    "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16)),
    "".join(secrets.choice(string.ascii_letters + string.digits + string.punctuation)
            for _ in range(24)),
    "Velvet tractor hums under 9 moons",
])
def test_strong_passwords_are_accepted(password: str) -> None:
    assert weakness(password, user_inputs=JANE) is None


def test_the_address_alone_does_not_refuse_an_unrelated_password() -> None:
    assert weakness("orbit-lantern-quiver-mosaic", user_inputs=JANE) is None


def test_too_short_and_too_long() -> None:
    assert weakness("") == "This password is too short: use at least 12 characters."
    assert weakness("Xk9#mQ2$vL7") == "This password is too short: use at least 12 characters."
    assert weakness("x" * 257) == "This password is too long: use at most 256 characters."
    long_random = "".join(secrets.choice(string.ascii_letters) for _ in range(256))
    assert weakness(long_random) is None


def test_a_common_password_says_so() -> None:
    assert weakness("1qaz2wsx3edc4rfv") == \
        "This password is among the most common ones; choose another."


def test_the_guessable_reason_carries_zxcvbns_feedback() -> None:
    assert weakness("aaaaaaaaaaaaaaaa") == \
        'This password is too easy to guess: repeats like "aaa" are easy to guess.'


@pytest.mark.parametrize("password", [
    "İ" * 12 + "-jane-" + "ß" * 6,  # lower() lengthens these: indices must not drift
    "\x00" * 12,
    "\u202e" * 20,
    "😀" * 30,
])
def test_odd_input_does_not_raise(password: str) -> None:
    weakness(password, user_inputs=["İ@example.com", "", "@", "a@b@c"])


@pytest.mark.parametrize("name, password", [
    ("random printable", "".join(random.Random(1).choice(string.printable[:94])
                                 for _ in range(256))),
    ("only l33t characters", (L33T * 13)[:256]),  # zxcvbn's exponential l33t matcher
    ("repeated pair", "ab" * 128),
    ("repeated l33t block", (L33T[::-1][:40] * 7)[:256]),
])
def test_a_256_character_password_is_checked_quickly(name: str, password: str) -> None:
    best = min(_seconds(password) for _ in range(3))
    assert best < 0.1, f"{name}: {best * 1000:.0f} ms"


def _seconds(password: str) -> float:
    start = time.perf_counter()
    weakness(password, user_inputs=JANE)
    return time.perf_counter() - start


def test_only_a_bounded_prefix_goes_to_zxcvbn() -> None:
    assert len(passwords._checked_prefix("a" * 256)) <= MAX_CHECKED
    assert 12 <= len(passwords._checked_prefix((L33T * 13)[:256])) < 40


def test_the_substitution_count_matches_zxcvbns_enumeration() -> None:
    """The cost estimate counts zxcvbn's l33t substitutions without enumerating them; keep
    it honest against the library (its table could change in an upgrade)."""
    rng = random.Random(7)
    for size in range(len(L33T) + 1):
        for _ in range(15):
            chars = frozenset(rng.sample(L33T, size))
            expected = len(matching.enumerate_l33t_subs(
                matching.relevant_l33t_subtable("".join(chars), matching.L33T_TABLE)))
            assert passwords._substitutions(chars) == max(1, expected), sorted(chars)
