"""Sealed blobs as files on local disk. The store only moves bytes; sealing is the vault's job.

The parts deposited together are written one after another into one new file, and each part
records its offset and length: one file (and one fsync) per deposit instead of one per part.
Files are never modified after they are written.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from sealgate.errors import VaultError

_NAME = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}$")
READ_BYTES = 256 * 1024


def new_blob_name() -> str:
    """A random name, spread over 256 folders by its first byte."""
    name = uuid.uuid4().hex
    return f"{name[:2]}/{name}"


class LocalBlobStore:
    def __init__(self, root: Path, durable: bool = True) -> None:
        self.root = root
        self.durable = durable

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):  # names come from the database: never follow anything else
            raise VaultError(f"refusing blob name {name!r}")
        return self.root / name

    def put(self, name: str, chunks: Iterable[bytes]) -> None:
        """Write a new blob; with `durable`, it is on disk (file and folder entry) on return."""
        path = self._path(name)
        new_folder = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.writelines(chunks)
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if self.durable:
            _fsync_folder(path.parent)
            if new_folder:  # at most 256 times in the life of a store
                _fsync_folder(path.parent.parent)

    def read(self, name: str, offset: int, length: int) -> bytes:
        descriptor = self._open(name)
        try:
            data = os.pread(descriptor, length, offset)
        finally:
            os.close(descriptor)
        if len(data) != length:
            raise VaultError(f"blob {name} is shorter than the database says (truncated?)")
        return data

    def chunks(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        """The bytes of one part, in pieces, for streaming."""
        descriptor = self._open(name)
        try:
            end = offset + length
            while offset < end:
                piece = os.pread(descriptor, min(READ_BYTES, end - offset), offset)
                if not piece:
                    raise VaultError(f"blob {name} is shorter than the database says")
                offset += len(piece)
                yield piece
        finally:
            os.close(descriptor)

    def _open(self, name: str) -> int:
        try:
            return os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise VaultError(f"blob {name} is missing from {self.root}") from None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
