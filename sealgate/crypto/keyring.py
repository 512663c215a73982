"""The versioned keyring: key-encryption keys that wrap every data key, and the audit key.

One JSON file, mode 0600. New data keys are wrapped under the newest version; older
versions stay until every data key wrapped under them has been re-wrapped.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sealgate.crypto.aead import KEY_BYTES, unwrap_key, wrap_key
from sealgate.errors import KeyringError

FORMAT = "sealgate-keyring/1"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _key(path: Path, name: str, text: Any) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except ValueError:
        raise KeyringError(f"keyring {path}: {name} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"keyring {path}: {name} is {len(raw)} bytes, expected {KEY_BYTES}")
    return raw


@dataclass(frozen=True)
class Keyring:
    path: Path
    keys: dict[int, bytes] = field(repr=False)
    current: int
    audit_key: bytes = field(repr=False)

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """A new keyring with version 1; refuses to replace an existing file."""
        if path.exists():
            raise KeyringError(f"keyring {path} already exists; not replacing it")
        keyring = cls(path=path, keys={1: os.urandom(KEY_BYTES)}, current=1,
                      audit_key=os.urandom(KEY_BYTES))
        keyring._write(exclusive=True)
        return keyring

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            info = path.stat()
        except FileNotFoundError:
            raise KeyringError(f"keyring {path} does not exist (run `sealgate init`)") from None
        except PermissionError:
            raise KeyringError(f"keyring {path}: permission denied (run Sealgate as the "
                               "user that owns its home)") from None
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise KeyringError(
                f"keyring {path} has mode {mode:04o}; it must be readable by its owner only "
                f"(chmod 600 {path})"
            )
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except PermissionError:
            raise KeyringError(f"keyring {path}: permission denied") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeyringError(f"keyring {path} is unreadable: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise KeyringError(f"keyring {path} is not a Sealgate keyring ({FORMAT})")
        try:
            keys = {int(version): _key(path, f"key version {version}", text)
                    for version, text in document["keys"].items()}
            current = int(document["current"])
            audit_key = _key(path, "audit key", document["audit_key"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyringError(f"keyring {path} is incomplete or malformed ({exc})") from None
        if current not in keys:
            raise KeyringError(f"keyring {path}: current version {current} has no key")
        return cls(path=path, keys=keys, current=current, audit_key=audit_key)

    def _write(self, exclusive: bool = False) -> None:
        """Atomically: a new 0600 file beside the old one, fsynced, then renamed over it."""
        document = {
            "format": FORMAT,
            "current": self.current,
            "keys": {str(version): _b64(key) for version, key in sorted(self.keys.items())},
            "audit_key": _b64(self.audit_key),
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            if exclusive:
                os.link(temporary, self.path)  # fails if someone created it meanwhile
                os.unlink(temporary)
            else:
                os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def rotate(self) -> Keyring:
        """Add a new version and make it current; older versions stay to open older data."""
        version = max(self.keys) + 1
        rotated = replace(self, keys={**self.keys, version: os.urandom(KEY_BYTES)},
                          current=version)
        rotated._write()
        return rotated

    def retire(self, version: int) -> Keyring:
        """Drop a version no data key uses any more (the caller checks that)."""
        if version == self.current:
            raise KeyringError(f"key version {version} is current; rotate before retiring it")
        if version not in self.keys:
            raise KeyringError(f"key version {version} is not in keyring {self.path}")
        retired = replace(self, keys={v: k for v, k in self.keys.items() if v != version})
        retired._write()
        return retired

    def wrap(self, data_key: bytes, context: bytes) -> tuple[int, bytes]:
        return self.current, wrap_key(self.keys[self.current], data_key,
                                      self._context(self.current, context))

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        key = self.keys.get(version)
        if key is None:
            raise KeyringError(
                f"data key is wrapped under key version {version}, which keyring {self.path} "
                f"no longer holds (versions present: {', '.join(map(str, sorted(self.keys)))})"
            )
        return unwrap_key(key, wrapped, self._context(version, context))

    @staticmethod
    def _context(version: int, context: bytes) -> bytes:
        return b"v%d|" % version + context
