from __future__ import annotations

import os

import pytest

from sealgate.crypto.aead import (
    TAG_BYTES,
    new_data_key,
    open_sealed,
    open_stream,
    seal,
    unwrap_key,
    wrap_key,
)
from sealgate.errors import SealError

CONTEXT = b"message-1/part-1"


@pytest.mark.parametrize("size", [0, 1, 100, 64 * 1024, 64 * 1024 + 1, 300_000])
def test_round_trip_of_any_size(size: int) -> None:
    key, data = new_data_key(), os.urandom(size)
    sealed = seal(key, data, CONTEXT)
    assert size < 16 or data not in sealed  # a short plaintext may occur in any bytes by chance
    assert open_sealed(key, sealed, CONTEXT) == data


def test_streaming_open_yields_verified_segments() -> None:
    key, data = new_data_key(), os.urandom(10_000)
    sealed = seal(key, data, CONTEXT, segment_bytes=4096)
    reads = [sealed[i:i + 1000] for i in range(0, len(sealed), 1000)]  # cut anywhere
    pieces = list(open_stream(key, reads, CONTEXT))
    assert [len(p) for p in pieces] == [4096, 4096, 1808]
    assert b"".join(pieces) == data


@pytest.mark.parametrize("position", [0, 5, 8, 40, -17, -1])
def test_any_changed_byte_is_refused(position: int) -> None:
    key = new_data_key()
    sealed = bytearray(seal(key, b"confidential " * 100, CONTEXT))
    sealed[position] ^= 0x01
    with pytest.raises(SealError):
        open_sealed(key, bytes(sealed), CONTEXT)


def test_wrong_key_or_context_is_refused() -> None:
    key = new_data_key()
    sealed = seal(key, b"secret", CONTEXT)
    with pytest.raises(SealError):
        open_sealed(new_data_key(), sealed, CONTEXT)
    with pytest.raises(SealError, match="belongs to another item"):
        open_sealed(key, sealed, b"message-2/part-1")


def test_truncation_at_a_segment_boundary_is_detected() -> None:
    key = new_data_key()
    sealed = seal(key, os.urandom(8192), CONTEXT, segment_bytes=4096)
    header = 8
    first_segment_only = sealed[: header + 4096 + TAG_BYTES]
    with pytest.raises(SealError):
        open_sealed(key, first_segment_only, CONTEXT)


def test_reordered_segments_are_detected() -> None:
    key = new_data_key()
    sealed = seal(key, os.urandom(8192 + 100), CONTEXT, segment_bytes=4096)
    header, size = sealed[:8], 4096 + TAG_BYTES
    one, two, last = sealed[8:8 + size], sealed[8 + size:8 + 2 * size], sealed[8 + 2 * size:]
    with pytest.raises(SealError):
        open_sealed(key, header + two + one + last, CONTEXT)


def test_not_a_blob() -> None:
    with pytest.raises(SealError, match="bad header"):
        open_sealed(new_data_key(), b"PK\x03\x04 a zip file, say", CONTEXT)
    with pytest.raises(SealError, match="truncated"):
        open_sealed(new_data_key(), b"SG", CONTEXT)


def test_wrapped_key_is_bound_to_kek_and_context() -> None:
    kek, data_key = new_data_key(), new_data_key()
    wrapped = wrap_key(kek, data_key, CONTEXT)
    assert data_key not in wrapped
    assert unwrap_key(kek, wrapped, CONTEXT) == data_key
    with pytest.raises(SealError):
        unwrap_key(new_data_key(), wrapped, CONTEXT)
    with pytest.raises(SealError):
        unwrap_key(kek, wrapped, b"message-1/part-2")
    with pytest.raises(SealError):
        unwrap_key(kek, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), CONTEXT)
