"""`sealgate dkim init` and `sealgate dns check`, run as the command runs, against the
loopback DNS server."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from sealgate.cli import main as cli_main
from sealgate.mail.dkim import DkimKey, generate_private_key
from tests.routing.conftest import DnsServer, Zone


def sealgate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of the real command."""
    umask = os.umask(0o022)
    try:
        cli_main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.umask(umask)
    out, err = capsys.readouterr()
    return code, out, err



def _txt(record: str) -> str:
    return " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))


def test_dkim_init_makes_a_private_key_and_prints_what_to_publish(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, out, _ = sealgate(capsys, "--home", str(home), "dkim", "init", "--selector", "s2026")
    assert code == 0, out
    path = home / "dkim" / "s2026.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = DkimKey.from_pem("s2026", "example.org", path.read_bytes())
    assert '[dkim]\nkey = "dkim/s2026.pem"\nselector = "s2026"' in out
    published = re.search(r"^s2026\._domainkey\.example\.org\.  TXT  (.+)$", out, re.MULTILINE)
    assert published, out
    assert "".join(re.findall(r'"([^"]*)"', published.group(1))) == key.record()
    assert "sealgate.toml" in out and "dkim.key" not in (home / "sealgate.toml").read_text()

    code, _, err = sealgate(capsys, "--home", str(home), "dkim", "init", "--selector", "s2026")
    assert code == 1 and "exists: a published key is never overwritten" in err
    code, _, err = sealgate(capsys, "--home", str(home), "dkim", "init", "--bits", "1024")
    assert code == 2 and "1024" in err


def test_dns_check_accepts_good_records_and_names_each_wrong_one(
        home: Path, capsys: pytest.CaptureFixture[str], zone: tuple[Zone, DnsServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    records, server = zone
    sealgate(capsys, "--home", str(home), "dkim", "init")
    key = DkimKey.from_pem("sealgate", "example.org",
                           (home / "dkim" / "sealgate.pem").read_bytes())
    monkeypatch.setenv("SEALGATE_DKIM__KEY", "dkim/sealgate.pem")
    nameserver = f"127.0.0.1:{server.port}"
    check = ("--home", str(home), "dns", "check", "example.org", "--nameserver", nameserver)

    code, out, err = sealgate(capsys, *check)  # nothing published yet
    assert code == 1
    assert 'example.org.  TXT  "v=spf1 mx -all"' in out
    assert f'sealgate._domainkey.example.org.  TXT  "{key.record()}"' in out
    assert '_dmarc.example.org.  TXT  "v=DMARC1; p=quarantine; ' \
           'rua=mailto:dmarc-reports@example.org' in out
    assert "FAIL  SPF: no v=spf1 TXT record at example.org" in out
    assert "FAIL  DKIM: no key published at sealgate._domainkey.example.org" in out
    assert "FAIL  DMARC: no v=DMARC1 TXT record at _dmarc.example.org" in out
    assert "3 of 3 record(s) for example.org need fixing" in err

    records.add("example.org", "TXT", '"v=spf1 mx -all"')
    records.add("sealgate._domainkey.example.org", "TXT", _txt(key.record()))
    records.add("_dmarc.example.org", "TXT",
                '"v=DMARC1; p=reject; rua=mailto:d@example.org"')
    code, out, err = sealgate(capsys, *check)
    assert code == 0, out + err
    assert "ok    DKIM: sealgate._domainkey.example.org matches the configured key" in out

    other = DkimKey.from_pem("sealgate", "example.org", generate_private_key())
    records.records.clear()
    records.add("example.org", "TXT", '"v=spf1 +all"')
    records.add("sealgate._domainkey.example.org", "TXT", _txt(other.record()))
    records.add("_dmarc.example.org", "TXT", '"v=DMARC1; p=none"')
    code, out, err = sealgate(capsys, *check)
    assert code == 1
    assert "FAIL  SPF: 'v=spf1 +all' at example.org allows every host (+all)" in out
    assert "FAIL  DKIM: the key published at sealgate._domainkey.example.org does not " \
           "match the configured key (dkim.key)" in out
    assert "FAIL  DMARC: policy p=none at _dmarc.example.org" in out


def test_dns_check_advises_the_gateway_host_in_spf(
        home: Path, capsys: pytest.CaptureFixture[str], zone: tuple[Zone, DnsServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, server = zone
    monkeypatch.setenv("SEALGATE_SERVER__BASE_URL", "https://secure.example.org")
    code, out, _ = sealgate(capsys, "--home", str(home), "dns", "check", "example.org",
                            "--nameserver", f"127.0.0.1:{server.port}")
    assert code == 1
    assert '"v=spf1 mx a:secure.example.org -all"' in out
    assert "FAIL  DKIM: no key configured (dkim.key): run `sealgate dkim init`" in out
