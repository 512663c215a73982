from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from sealgate.crypto.aead import new_data_key
from sealgate.crypto.keyring import Keyring
from sealgate.errors import KeyringError


def test_created_keyring_is_owner_only_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    created = Keyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Keyring.load(path)
    assert loaded.current == 1 and loaded.keys == created.keys
    assert loaded.audit_key == created.audit_key


def test_create_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    original = Keyring.create(path)
    with pytest.raises(KeyringError, match="already exists"):
        Keyring.create(path)
    assert Keyring.load(path).keys == original.keys


def test_rotation_keeps_old_versions_usable(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keyring.json")
    data_key = new_data_key()
    old_version, wrapped = keyring.wrap(data_key, b"ctx")
    rotated = Keyring.load(keyring.rotate().path)
    assert rotated.current == 2 and old_version == 1
    assert rotated.unwrap(old_version, wrapped, b"ctx") == data_key
    assert rotated.wrap(data_key, b"ctx")[0] == 2
    assert stat.S_IMODE(rotated.path.stat().st_mode) == 0o600


def test_version_is_bound_into_the_wrapping(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keyring.json").rotate()
    version, wrapped = keyring.wrap(new_data_key(), b"ctx")
    with pytest.raises(Exception, match="failed authentication"):
        keyring.unwrap(version - 1, wrapped, b"ctx")


def test_a_retired_version_gives_a_clear_error(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keyring.json")
    version, wrapped = keyring.wrap(new_data_key(), b"ctx")
    retired = keyring.rotate().retire(1)
    with pytest.raises(KeyringError, match="version 1, which keyring .* no longer holds"):
        Keyring.load(retired.path).unwrap(version, wrapped, b"ctx")


def test_current_version_cannot_be_retired(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keyring.json")
    with pytest.raises(KeyringError, match="is current"):
        keyring.retire(1)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = Keyring.create(tmp_path / "keyring.json").path
    before = path.read_bytes()
    os.chmod(path, mode)
    with pytest.raises(KeyringError, match=f"mode {mode:04o}.*chmod 600"):
        Keyring.load(path)
    assert path.read_bytes() == before


def test_missing_keyring(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="does not exist"):
        Keyring.load(tmp_path / "nope.json")


@pytest.mark.parametrize("content, message", [
    ("not json", "unreadable"),
    ('{"format": "other"}', "not a Sealgate keyring"),
    ('{"format": "sealgate-keyring/1", "current": 1}', "incomplete or malformed"),
    ('{"format": "sealgate-keyring/1", "current": 2, "keys": {"1": "%s"}, "audit_key": "%s"}',
     "current version 2 has no key"),
    ('{"format": "sealgate-keyring/1", "current": 1, "keys": {"1": "c2hvcnQ="}, '
     '"audit_key": "%s"}', "is 5 bytes, expected 32"),
])
def test_malformed_keyring(tmp_path: Path, content: str, message: str) -> None:
    good = json.loads(Keyring.create(tmp_path / "good.json").path.read_text())
    path = tmp_path / "keyring.json"
    path.write_text(content.replace("%s", good["audit_key"]))
    os.chmod(path, 0o600)
    with pytest.raises(KeyringError, match=message):
        Keyring.load(path)


def _as_nobody(paths: list[Path]) -> list[str]:
    """Load each keyring in a forked child that has become `nobody` (root reads anything)."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(reader)
        nobody = pwd.getpwnam("nobody")
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
        lines = []
        for path in paths:
            try:
                Keyring.load(path)
                lines.append("loaded")
            except KeyringError as error:
                lines.append(str(error))
        os.write(writer, "\n".join(lines).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        output = pipe.read()
    os.waitpid(child, 0)
    return output.splitlines()


def test_unreadable_keyring(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # pytest's tmp_path is under a 0700 folder nobody cannot pass
        tmp_path = Path(tempfile.mkdtemp(prefix="sealgate-keyring-"))
        os.chmod(tmp_path, 0o755)
    folder = tmp_path / "home"
    folder.mkdir()
    path = Keyring.create(folder / "keyring.json").path
    if os.geteuid() != 0:
        os.chmod(path, 0o000)
        with pytest.raises(KeyringError, match="permission denied"):
            Keyring.load(path)
        return
    os.chmod(folder, 0o755)
    os.chmod(path, 0o600)  # readable by root only: nobody cannot read it
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)  # nobody cannot even look inside
    unreadable, unreachable = _as_nobody([path, hidden / "keyring.json"])
    assert unreadable == f"keyring {path}: permission denied"
    assert unreachable.startswith(f"keyring {hidden / 'keyring.json'}: permission denied")
    shutil.rmtree(tmp_path)
