"""Sealing content at rest: AES-256-GCM under a per-item data key, in segments.

A sealed blob is a header (magic, segment size) followed by segments; each segment is
AES-GCM with a nonce made of its index and a final-segment flag (the STREAM construction),
so a blob can be opened and verified piece by piece while streaming, and truncation,
reordering or splicing is detected. Nonces may be deterministic because every data key
seals exactly one blob. The caller's context (message id, part id) is the associated data
of every segment: a blob moved to another message or part does not open.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealgate.errors import SealError

KEY_BYTES = 32
TAG_BYTES = 16
NONCE_BYTES = 12
MAGIC = b"SGB1"
SEGMENT_BYTES = 64 * 1024
_HEADER = struct.Struct(">4sI")


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(NONCE_BYTES - 1, "big") + (b"\x01" if final else b"\x00")


def _aad(context: bytes, segment_bytes: int) -> bytes:
    return _HEADER.pack(MAGIC, segment_bytes) + context


def seal(data_key: bytes, plaintext: bytes, context: bytes,
         segment_bytes: int = SEGMENT_BYTES) -> bytes:
    """Encrypt and authenticate `plaintext`, bound to `context`."""
    return b"".join(seal_segments(data_key, plaintext, context, segment_bytes))


def seal_segments(data_key: bytes, plaintext: bytes, context: bytes,
                  segment_bytes: int = SEGMENT_BYTES) -> Iterator[bytes]:
    cipher = AESGCM(data_key)
    aad = _aad(context, segment_bytes)
    yield _HEADER.pack(MAGIC, segment_bytes)
    view = memoryview(plaintext)
    count = max(1, -(-len(view) // segment_bytes))
    for index in range(count):
        piece = view[index * segment_bytes:(index + 1) * segment_bytes]
        yield cipher.encrypt(_nonce(index, index == count - 1), piece, aad)


def open_sealed(data_key: bytes, blob: bytes, context: bytes) -> bytes:
    """The plaintext of a whole sealed blob; SealError if anything about it is wrong."""
    return b"".join(open_stream(data_key, _chunks(blob), context))


def _chunks(blob: bytes) -> Iterator[bytes]:
    yield blob


def open_stream(data_key: bytes, chunks: Iterable[bytes], context: bytes) -> Iterator[bytes]:
    """Plaintext segments, each verified before it is yielded; the final flag proves nothing
    was cut off. `chunks` may be cut anywhere (reads from a file, say)."""
    reader = _Reader(chunks)
    header = reader.take(_HEADER.size)
    if len(header) != _HEADER.size:
        raise SealError("sealed blob is truncated (no header)")
    magic, segment_bytes = _HEADER.unpack(header)
    if magic != MAGIC or not 0 < segment_bytes <= 1 << 24:
        raise SealError("not a Sealgate sealed blob (bad header)")
    cipher = AESGCM(data_key)
    aad = _aad(context, segment_bytes)
    index = 0
    current = reader.take(segment_bytes + TAG_BYTES)
    while True:
        following = reader.take(segment_bytes + TAG_BYTES)
        final = not following
        try:
            yield cipher.decrypt(_nonce(index, final), current, aad)
        except InvalidTag:
            raise SealError(
                "sealed blob failed authentication: it was altered, truncated, "
                "belongs to another item, or the key is wrong"
            ) from None
        if final:
            return
        current, index = following, index + 1


class _Reader:
    """Exact-size reads over an iterable of byte chunks of any size, without re-copying."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = memoryview(b"")

    def take(self, size: int) -> bytes:
        pieces: list[bytes] = []
        wanted = size
        while wanted:
            if not self._buffer:
                chunk = next(self._chunks, b"")
                if not chunk:
                    break
                self._buffer = memoryview(chunk)
            piece = self._buffer[:wanted]
            self._buffer = self._buffer[len(piece):]
            pieces.append(bytes(piece))
            wanted -= len(piece)
        return b"".join(pieces)


def wrap_key(key_encryption_key: bytes, data_key: bytes, context: bytes) -> bytes:
    """The data key encrypted under a key-encryption key: random nonce + ciphertext + tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key_encryption_key).encrypt(nonce, data_key, b"wrap|" + context)


def unwrap_key(key_encryption_key: bytes, wrapped: bytes, context: bytes) -> bytes:
    nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    try:
        return AESGCM(key_encryption_key).decrypt(nonce, body, b"wrap|" + context)
    except (InvalidTag, ValueError):
        raise SealError(
            "wrapped data key failed authentication: it was altered, moved to another item, "
            "or the keyring's key for its version is not the one it was wrapped with"
        ) from None
