"""`sealgate recipient-keys`: import, list and remove recipients' certificates and keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealgate.lab.pki import TestCa
from tests.conftest import run_cli


def test_a_certificate_is_imported_listed_and_removed(home: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ca = TestCa.create()
    _, cert = ca.issue_email("ann@partner.test")
    path = tmp_path / "ann.pem"
    path.write_bytes(cert)
    run_cli("--home", str(home), "recipient-keys", "import", str(path))
    added = capsys.readouterr().out
    assert added.startswith("added: smime ") and added.rstrip().endswith("for ann@partner.test")
    fingerprint = added.split()[2]
    run_cli("--home", str(home), "recipient-keys", "import", str(path))
    assert "already on file" in capsys.readouterr().out
    run_cli("--home", str(home), "recipient-keys", "list")
    assert f"ann@partner.test  smime  {fingerprint}" in capsys.readouterr().out
    run_cli("--home", str(home), "recipient-keys", "remove", fingerprint)
    assert "removed 1 key(s)" in capsys.readouterr().out
    run_cli("--home", str(home), "recipient-keys", "list")
    assert "no keys on file" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["expired", "garbage", "other address"])
def test_an_unusable_file_is_refused_with_the_reason(home: Path, tmp_path: Path, problem: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ca = TestCa.create()
    if problem == "expired":
        _, data = ca.issue_email("ann@partner.test",
                                 not_before=datetime.now(UTC) - timedelta(days=400), days=30)
        expected, args = "expired", ()
    elif problem == "garbage":
        data, expected, args = b"hello", "neither an X.509 certificate", ()
    else:
        _, data = ca.issue_email("ann@partner.test")
        expected, args = "is not for bob@partner.test", ("--address", "bob@partner.test")
    path = tmp_path / "key.pem"
    path.write_bytes(data)
    capsys.readouterr()
    with pytest.raises(AssertionError, match="exited 1"):
        run_cli("--home", str(home), "recipient-keys", "import", str(path), *args)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sealgate: error: ") and expected in line
