"""The `sealgate` command as a process: what operators see, including every failure."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from sealgate import config
from sealgate.crypto.keyring import Keyring
from sealgate.vault.models import Part, PartKind
from sealgate.vault.vault import NewMessage, NewPart, NewRecipient, Vault
from tests.integration.helpers import sealgate


def assert_clean_failure(result: object, code: int, *fragments: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == code, (result.returncode, stderr)  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sealgate: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_creates_everything_private_and_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = sealgate(home, "init")
    assert first.returncode == 0, first.stderr
    for name in ("sealgate.toml", "keyring.json", "sealgate.db"):
        assert stat.S_IMODE((home / name).stat().st_mode) & 0o077 == 0, name
    assert stat.S_IMODE(home.stat().st_mode) == 0o711  # the MTA passes through to the socket
    assert (home / "blobs").is_dir()
    kept = {name: digest(home / name) for name in ("sealgate.toml", "keyring.json")}
    second = sealgate(home, "init")
    assert second.returncode == 0 and "kept      " in second.stdout
    assert kept == {name: digest(home / name) for name in kept}
    assert sealgate(home, "check").returncode == 0


def test_init_takes_organisation_and_domains(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sealgate(home, "init", "--organisation", 'St. "Mary" Hospital', "--domain", "stmary.org",
             "--domain", "stmary.net")
    text = (home / "sealgate.toml").read_text()
    assert 'name = "St. \\"Mary\\" Hospital"' in text
    assert 'domains = ["stmary.org", "stmary.net"]' in text
    assert sealgate(home, "check").returncode == 0


def test_help_everywhere(tmp_path: Path) -> None:
    for command in ([], ["init"], ["serve"], ["milter"], ["run"], ["check"], ["keys"],
                    ["keys", "rotate"], ["keys", "rewrap"], ["keys", "retire"],
                    ["keys", "status"], ["audit"], ["audit", "verify"], ["db", "upgrade"],
                    ["vault", "verify"], ["manifest"]):
        result = sealgate(tmp_path, *command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command


def test_missing_home(tmp_path: Path) -> None:
    assert_clean_failure(sealgate(tmp_path / "nowhere", "check"), 2, "does not exist",
                         "sealgate --home")
    assert not (tmp_path / "nowhere").exists()
    tmp_path.joinpath("empty").mkdir()
    assert_clean_failure(sealgate(tmp_path / "empty", "audit", "verify"), 2, "not initialised")


def test_bad_configuration_value(home: Path) -> None:
    result = sealgate(home, "check", env={"SEALGATE_SERVER__LISTEN": "nowhere"})
    assert_clean_failure(result, 2, "server.listen = 'nowhere'", "SEALGATE_SERVER__LISTEN",
                         "HOST:PORT")
    with (home / "sealgate.toml").open("a") as handle:
        handle.write("\n[vault]\ndurable = 'yes please'\n")
    assert_clean_failure(sealgate(home, "check"), 2, "sealgate.toml")


def test_keyring_with_wrong_mode_is_refused_and_left_alone(home: Path) -> None:
    keyring = home / "keyring.json"
    before = digest(keyring)
    os.chmod(keyring, 0o644)
    for command in (["check"], ["keys", "rotate"], ["serve"], ["init"]):
        assert_clean_failure(sealgate(home, *command), 1, "mode 0644", "chmod 600")
    assert digest(keyring) == before


def test_missing_keyring_with_sealed_data_is_not_replaced(home: Path) -> None:
    from sealgate import config
    from sealgate.vault.models import PartKind
    from sealgate.vault.vault import NewMessage, NewPart, NewRecipient, Vault
    from tests.conftest import run_cli  # noqa: F401 - same process would share state; not used

    vault = Vault.open(config.load(home, {}))
    vault.deposit(NewMessage("a@example.org", "s", [NewRecipient("b@x.test")],
                             [NewPart(PartKind.TEXT, b"hello")]), "a@example.org")
    vault.close()
    (home / "keyring.json").rename(home / "keyring.backup")
    assert_clean_failure(sealgate(home, "init"), 1, "keyring", "is missing", "restore")
    assert not (home / "keyring.json").exists()
    assert_clean_failure(sealgate(home, "check"), 1, "does not exist")


def test_corrupt_database_is_reported_and_kept(home: Path) -> None:
    database = home / "sealgate.db"
    for leftover in home.glob("sealgate.db-*"):
        leftover.unlink()
    database.write_bytes(b"this is not a database" * 100)
    before = digest(database)
    for command in (["check"], ["audit", "verify"], ["init"], ["keys", "status"]):
        assert_clean_failure(sealgate(home, *command), 1, "database", "not a database")
    assert digest(database) == before


def test_database_behind_the_code_asks_for_upgrade(home: Path) -> None:
    with sqlite3.connect(home / "sealgate.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'zzzz'")
    assert_clean_failure(sealgate(home, "check"), 1, "schema revision zzzz",
                         "sealgate db upgrade")


def test_rotate_rewrap_retire(home: Path) -> None:
    vault = Vault.open(config.load(home, {}))
    message_id = vault.deposit(NewMessage("a@example.org", "s", [NewRecipient("b@x.test")],
                                          [NewPart(PartKind.TEXT, b"old secret")]), "cli")
    vault.close()
    rotated = sealgate(home, "keys", "rotate")
    assert rotated.returncode == 0 and "key version 2 is now current" in rotated.stdout
    status = sealgate(home, "keys", "status").stdout
    assert "version 1: present, wraps 1" in status and "version 2: current, wraps 0" in status
    assert_clean_failure(sealgate(home, "keys", "retire", "1"), 1, "still wraps 1",
                         "keys rewrap")
    rewrapped = sealgate(home, "keys", "rewrap")
    assert "re-wrapped 1 data key(s) under key version 2" in rewrapped.stdout
    assert sealgate(home, "keys", "retire", "1").returncode == 0
    assert "version 1" not in sealgate(home, "keys", "status").stdout

    vault = Vault.open(config.load(home, {}))
    with vault.database.session() as session:
        (part,) = vault.message(session, message_id).parts
    assert vault.read_part(part) == b"old secret"
    vault.close()
    verified = sealgate(home, "audit", "verify")
    assert verified.returncode == 0 and "intact: 4 event(s)" in verified.stdout


def test_audit_verify_reports_tampering(home: Path) -> None:
    for _ in range(3):
        assert sealgate(home, "keys", "rotate").returncode == 0
    with sqlite3.connect(home / "sealgate.db") as connection:
        connection.execute("UPDATE audit_events SET actor = 'nobody' WHERE seq = 2")
    result = sealgate(home, "audit", "verify")
    assert result.returncode == 1
    assert "TAMPERED: event 2: content changed since it was written" in result.stderr
    assert "audit trail is NOT intact: 1 problem(s) in 3 event(s)" in result.stderr
    assert "Traceback" not in result.stderr


def test_postgresql_home(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    env = {"SEALGATE_DATABASE__URL": pg_url}
    assert sealgate(home, "init", env=env).returncode == 0
    assert not (home / "sealgate.db").exists()
    assert sealgate(home, "keys", "rotate", env=env).returncode == 0
    assert "intact: 1 event(s)" in sealgate(home, "audit", "verify", env=env).stdout


def test_unreachable_postgresql_is_one_line(home: Path) -> None:
    env = {"SEALGATE_DATABASE__URL": "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"}
    assert_clean_failure(sealgate(home, "check", env=env), 1, "database",
                         "nobody:***@127.0.0.1:1/none")


@pytest.mark.parametrize("command", [["check"], ["audit", "verify"]])
def test_missing_blob_directory_is_not_needed_for_metadata(home: Path,
                                                           command: list[str]) -> None:
    os.rmdir(home / "blobs")
    assert sealgate(home, *command).returncode == 0


def deposit_two(home: Path) -> list[Part]:
    vault = Vault.open(config.load(home, {}))
    for body in (b"first secret", b"second secret"):
        vault.deposit(NewMessage("a@example.org", "s", [NewRecipient("b@x.test")],
                                 [NewPart(PartKind.TEXT, body)]), "cli")
    with vault.database.session() as session:
        parts = list(session.scalars(select(Part).order_by(Part.created_at)))
    vault.close()
    return parts


def test_vault_verify_finds_a_changed_byte(home: Path) -> None:
    _, second = deposit_two(home)
    clean = sealgate(home, "vault", "verify")
    assert clean.returncode == 0 and "all 2 stored part(s) open" in clean.stdout
    blob = home / "blobs" / second.blob
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    result = sealgate(home, "vault", "verify")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"BAD: message {second.message_id} part {second.id} (text): "
                               "sealed blob failed authentication")
    assert lines[-1] == "sealgate: error: 1 of 2 stored part(s) do not open"


def test_a_key_version_gone_from_the_keyring(home: Path) -> None:
    deposit_two(home)
    Keyring.load(home / "keyring.json").rotate().retire(1)  # as a bad restore would leave it
    result = sealgate(home, "keys", "rewrap")
    assert_clean_failure(result, 1, "wrapped under key version 1, which keyring",
                         "no longer holds (versions present: 2)")
    verified = sealgate(home, "vault", "verify")
    assert verified.returncode == 1
    assert verified.stderr.count("which keyring") == 2
    assert "MISSING, wraps 2" in sealgate(home, "keys", "status").stdout
