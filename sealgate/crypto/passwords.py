"""Password strength: refuse short, common, guessable passwords and ones built from the
account's own address or name. Uses zxcvbn's dictionaries (common and breached passwords,
names, English words) and its pattern matchers (keyboard walks, repeats, sequences, dates).

zxcvbn is quadratic in the length it checks, and its l33t matcher is exponential in the
number of distinct l33t characters (a known denial of service: a crafted 100-character
password takes seconds). So only a prefix is given to it, as long as a cost estimate allows
(at most 100 characters; about 60 for plain text, less when many l33t characters are
present). The prefix is the conservative side: a password is at least as hard to guess as
its beginning, so a cut can only refuse a strong password, never accept a weak one."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from zxcvbn import matching, zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_SCORE = 3  # zxcvbn's 0..4 scale; 3 is "safely unguessable" (about 10^8 guesses and more)
MAX_CHECKED = 100  # characters handed to zxcvbn at most
# Estimated zxcvbn cost, in roughly microseconds: n^2 * (10 + l33t substitutions). The base
# term covers matching and scoring, each substitution is one more dictionary pass.
_COST_BUDGET = 40_000
_BASE_COST = 10

# zxcvbn keeps the user inputs in a module-level dictionary it rewrites on every call.
_lock = threading.Lock()

_L33T_TABLE: dict[str, list[str]] = matching.L33T_TABLE
_L33T_CHARS = frozenset(char for subs in _L33T_TABLE.values() for char in subs)
# Letters sharing a l33t character with another letter ("1" and "|" stand for i or l, "7"
# for l or t) multiply the substitutions in ways that need enumerating; every other letter
# multiplies them by its number of l33t characters present.
_SHARED_LETTERS = frozenset(
    letter for letter, subs in _L33T_TABLE.items()
    if any(other != letter and char in others
           for char in subs for other, others in _L33T_TABLE.items()))


def weakness(password: str, *, user_inputs: Sequence[str] = ()) -> str | None:
    """None when the password is acceptable, else one plain-language sentence saying why.
    user_inputs: what an attacker knows about the account (its address, the local part,
    the person's name, the organisation): passwords built from them are refused."""
    if len(password) < MIN_LENGTH:
        return f"This password is too short: use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"This password is too long: use at most {MAX_LENGTH} characters."
    inputs = _expand(user_inputs)
    checked = _checked_prefix(password)
    with _lock:
        result: dict[str, Any] = zxcvbn(checked, user_inputs=inputs, max_length=len(checked))
    sequence: list[dict[str, Any]] = result["sequence"]
    if _is_common(checked, sequence) and len(checked) == len(password):
        return "This password is among the most common ones; choose another."
    if _personal(password, sequence, inputs):
        return ("This password is too easy to guess: it is built from your email address or "
                "name; choose something unrelated to you.")
    if int(result["score"]) < MIN_SCORE:
        return f"This password is too easy to guess: {_feedback(result['feedback'])}"
    return None


def _checked_prefix(password: str) -> str:
    """The longest prefix (at most MAX_CHECKED characters) whose estimated cost fits."""
    seen: set[str] = set()
    substitutions = 1
    for length, char in enumerate(password[:MAX_CHECKED], 1):
        if char in _L33T_CHARS and char not in seen:
            seen.add(char)
            substitutions = _substitutions(frozenset(seen))
        if length * length * (_BASE_COST + substitutions) > _COST_BUDGET:
            return password[:length - 1]
    return password[:MAX_CHECKED]


def _substitutions(chars: frozenset[str]) -> int:
    """How many l33t substitution tables zxcvbn tries for a password with these l33t
    characters (what its enumerate_l33t_subs returns, without enumerating them all)."""
    present = {letter: [c for c in subs if c in chars] for letter, subs in _L33T_TABLE.items()}
    independent = math.prod(len(subs) for letter, subs in present.items()
                            if subs and letter not in _SHARED_LETTERS)
    return independent * _shared_substitutions(
        frozenset(c for letter in _SHARED_LETTERS for c in present[letter]))


@lru_cache(maxsize=64)
def _shared_substitutions(chars: frozenset[str]) -> int:
    table = {letter: [c for c in _L33T_TABLE[letter] if c in chars]
             for letter in _L33T_TABLE if letter in _SHARED_LETTERS}
    table = {letter: subs for letter, subs in table.items() if subs}
    return max(1, len(matching.enumerate_l33t_subs(table))) if table else 1


def _expand(user_inputs: Sequence[str]) -> list[str]:
    """The inputs, and the pieces a person builds passwords from: an address's local part
    and domain labels, words of three letters or more, and the words run together."""
    found: dict[str, None] = {}

    def add(value: str) -> None:
        value = value.strip().lower()
        if len(value) >= 3:
            found.setdefault(value[:MAX_CHECKED])

    for value in user_inputs[:20]:
        value = str(value)[:MAX_LENGTH]
        add(value)
        local, at, domain = value.rpartition("@")
        if at:
            add(local)
            add(domain)
            for label in domain.split(".")[:-1]:
                add(label)
        words = re.findall(r"[^\W_]+", local if at else value)
        for word in words:
            add(word)
        if len(words) > 1:
            add("".join(words))
    return list(found)[:100]


def _is_common(checked: str, sequence: list[dict[str, Any]]) -> bool:
    """The whole password is one entry of the common-passwords list (maybe capitalised,
    reversed or with l33t substitutions)."""
    return (len(sequence) == 1 and sequence[0].get("pattern") == "dictionary"
            and sequence[0].get("dictionary_name") == "passwords"
            and len(sequence[0].get("token", "")) == len(checked))


def _personal(password: str, sequence: list[dict[str, Any]], inputs: list[str]) -> bool:
    """What is left once the parts taken from the user inputs are removed is too short to
    be a password on its own."""
    covered = [False] * len(password)
    for match in sequence:
        if match.get("dictionary_name") == "user_inputs":
            for index in range(match["i"], min(match["j"] + 1, len(password))):
                covered[index] = True
    # lower-cased one character at a time, so that the indices stay those of the password
    lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in password)
    for value in inputs:
        start = lowered.find(value)
        while start != -1:
            for index in range(start, start + len(value)):
                covered[index] = True
            start = lowered.find(value, start + 1)
    return any(covered) and covered.count(False) < MIN_LENGTH


def _feedback(feedback: dict[str, Any]) -> str:
    text = str(feedback.get("warning") or "").strip()
    if not text:
        suggestions = [str(s) for s in feedback.get("suggestions") or [] if s]
        text = suggestions[0] if suggestions else ""
    if not text:
        return "add more words or characters that are hard to guess."
    text = text[0].lower() + text[1:]
    if text.startswith("this is "):  # "…too easy to guess: it is similar to a common…"
        text = "it is " + text[len("this is "):]
    return text if text.endswith(".") else text + "."
