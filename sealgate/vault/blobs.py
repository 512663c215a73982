"""Sealed blobs as files on local disk. The store only moves bytes; sealing is the vault's job."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from sealgate.errors import VaultError

_NAME = re.compile(r"^[0-9a-f]{2}/[0-9a-f-]{36}\.[0-9a-f-]{36}$")


def blob_name(message_id: str, part_id: str) -> str:
    """Spread over 256 folders by the first byte of the (random) message id."""
    return f"{message_id[:2]}/{message_id}.{part_id}"


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

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except FileNotFoundError:
            raise VaultError(f"blob {name} is missing from {self.root}") from None

    def read(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
