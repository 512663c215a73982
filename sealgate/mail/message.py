"""The message as the MTA hands it over: envelope, headers in order, body bytes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.header import decode_header, make_header


@dataclass(frozen=True)
class InboundMessage:
    mail_from: str
    recipients: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]  # (name, value) in order, as received
    body: bytes  # as received: CRLF line ends, still transfer-encoded

    def header(self, name: str) -> str | None:
        """The first value of a header, raw (possibly RFC 2047 encoded)."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def subject(self) -> str:
        return decode_words(self.header("Subject") or "")

    def with_message_id(self, new_id: str) -> tuple[InboundMessage, list[tuple[str, str]]]:
        """The message with a Message-ID, and the header that had to be added for it (Sendmail
        adds its own only after the milter has run, so every copy would get a different one
        and the processed mark could not be bound to it)."""
        if self.has_header("Message-ID"):
            return self, []
        added = [("Message-ID", new_id)]
        return replace(self, headers=(*self.headers, *added)), added

    def raw(self) -> bytes:
        """The whole message as RFC 5322 bytes, to be sealed as the original."""
        return header_block(self.headers) + self.body


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """Header lines and the blank line after them, CRLF throughout (folds kept)."""
    lines = "".join(f"{name}: {_crlf(value)}\r\n" for name, value in headers)
    return lines.encode("utf-8", "surrogateescape") + b"\r\n"


def _crlf(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\n", "\r\n")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words to text; undecodable words are kept as they are."""
    try:
        return str(make_header(decode_header(value)))
    except (UnicodeError, LookupError, ValueError):
        return value


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").lower().rstrip(".")
