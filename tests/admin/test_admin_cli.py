"""`sealgate admin …`: the only way to make the first administrator, run as the command runs
(in process, its real exit codes and output), against the home's vault."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from sealgate import config
from sealgate.cli import main as cli_main
from sealgate.crypto.secrets import verify_password
from sealgate.vault import admins
from sealgate.vault.models import AuditEvent
from sealgate.vault.vault import Vault

GOOD = "correct horse battery staple 42"
BETTER = "a different long passphrase 77"


def sealgate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, home: Path,
             *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    umask = os.umask(0o022)  # the command tightens it for what it writes
    try:
        cli_main(["--home", str(home), *args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.umask(umask)
    out, err = capsys.readouterr()
    return code, out, err


def test_admin_commands_add_list_set_a_password_and_reset_the_authenticator(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        home: Path) -> None:
    code, out, _ = sealgate(capsys, monkeypatch, home, "admin", "add", "IT@example.org",
                            "--password-stdin", stdin=GOOD + "\n")
    assert code == 0 and "it@example.org is an administrator" in out
    code, _, err = sealgate(capsys, monkeypatch, home, "admin", "add", "it@example.org",
                            "--password-stdin", stdin=GOOD + "\n")
    assert code != 0 and "already an administrator" in err
    code, _, err = sealgate(capsys, monkeypatch, home, "admin", "add", "ops@example.org",
                            "--password-stdin", stdin="password\n")
    assert code != 0 and "password" in err.lower()
    code, out, _ = sealgate(capsys, monkeypatch, home, "admin", "list")
    assert out == "it@example.org\tno authenticator yet\n"

    code, out, _ = sealgate(capsys, monkeypatch, home, "admin", "password", "it@example.org",
                            "--password-stdin", stdin=BETTER + "\n")
    assert code == 0 and "new password set" in out
    for command in (("password", "--password-stdin"), ("reset-authenticator",)):
        code, _, err = sealgate(capsys, monkeypatch, home, "admin", command[0],
                                "nobody@example.org", *command[1:], stdin=BETTER + "\n")
        assert code != 0 and "nobody@example.org is not an administrator" in err
    code, out, _ = sealgate(capsys, monkeypatch, home, "admin", "reset-authenticator",
                            "it@example.org")
    assert code == 0 and "new authenticator at the next sign-in" in out

    vault = Vault.open(config.load(home))
    try:
        with vault.database.session() as db:
            found = admins.find(db, "it@example.org")
            assert found is not None and found.password_hash is not None
            assert verify_password(found.password_hash, BETTER)
            actions = [e.action for e in db.query(AuditEvent).order_by(AuditEvent.seq)]
        assert actions[-3:] == ["admin.added", "admin.password_set", "admin.totp_reset"]
        assert vault.verify_audit().intact
    finally:
        vault.close()
