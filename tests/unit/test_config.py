from __future__ import annotations

from pathlib import Path

import pytest

from sealgate import config
from sealgate.errors import ConfigError


def write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "sealgate.toml").write_text(text)
    return home


def test_defaults_without_a_file(tmp_path: Path) -> None:
    loaded = config.load(tmp_path, {})
    assert loaded.home == tmp_path
    assert loaded.database_url == f"sqlite:///{tmp_path / 'sealgate.db'}"
    assert loaded.keyring_path == tmp_path / "keyring.json"
    assert loaded.milter_socket == f"unix:{tmp_path / 'milter.sock'}"
    assert loaded.milter.subject_keywords == ["encrypt/"]


def test_home_comes_from_flag_then_environment_then_var(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.resolve_home("/x", {"SEALGATE_HOME": "/y"}) == Path("/x")
    assert config.resolve_home(None, {"SEALGATE_HOME": "/y"}) == Path("/y")
    monkeypatch.chdir(tmp_path)
    assert config.resolve_home(None, {}) == tmp_path / "var"


def test_the_initial_file_is_valid(tmp_path: Path) -> None:
    home = write(tmp_path, config.initial_config("k" * 40, "s" * 40,
                                                 "0b8a3f0e-5c2d-4e8f-9a1b-2c3d4e5f6a7b"))
    loaded = config.load(home, {})
    assert loaded.server.secret_key == "k" * 40
    assert loaded.organisation.domains == ["example.org"]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    home = write(tmp_path, '[server]\nlisten = "127.0.0.1:9000"\nworkers = 3\n')
    loaded = config.load(home, {
        "SEALGATE_SERVER__WORKERS": "5",
        "SEALGATE_ORGANISATION__DOMAINS": "Example.COM, b.example.net",
        "SEALGATE_MILTER__SUBJECT_KEYWORDS": '["encrypt/", "secure/"]',
        "SEALGATE_VAULT__DURABLE": "false",
    })
    assert loaded.server.listen == "127.0.0.1:9000"
    assert loaded.server.workers == 5
    assert loaded.organisation.domains == ["example.com", "b.example.net"]
    assert loaded.milter.subject_keywords == ["encrypt/", "secure/"]
    assert loaded.vault.durable is False


def test_relative_paths_are_relative_to_home(tmp_path: Path) -> None:
    home = write(tmp_path, '[vault]\nkeyring = "keys/ring.json"\nblob_dir = "/srv/blobs"\n')
    loaded = config.load(home, {})
    assert loaded.keyring_path == tmp_path / "keys/ring.json"
    assert loaded.blob_dir == Path("/srv/blobs")


@pytest.mark.parametrize("text, environ, expected", [
    ('[server]\nworkers = "many"\n', {},
     "server.workers = 'many' (from {file}): Input should be a valid integer"),
    ("[server]\nworkers = 0\n", {}, "server.workers = 0 (from {file}): Input should be greater"),
    ("", {"SEALGATE_SERVER__LISTEN": "8025"},
     "server.listen = '8025' (from SEALGATE_SERVER__LISTEN): must be HOST:PORT"),
    ('[server]\nbase_url = "ftp://x"\n', {},
     "server.base_url = 'ftp://x' (from {file}): must be an http:// or https:// URL"),
    ('[milter]\nlisten = "tcp:1234"\n', {},
     "milter.listen = 'tcp:1234' (from {file}): must be unix:/path/to/socket or inet:PORT@HOST"),
    ('[database]\nurl = "mysql://x"\n', {}, "database.url = 'mysql://x' (from {file}): must be"),
    ('[organisation]\ndomains = ["ok.org", "not a domain"]\n', {},
     "organisation.domains.1 = 'not a domain' (from {file}): must be a domain name"),
    ("[server]\nwrokers = 2\n", {},
     "server.wrokers: unknown key (from {file}); allowed: listen, base_url, workers, secret_key"),
    ("[serverr]\n", {}, "serverr: unknown key (from {file}); allowed: organisation, server"),
    ("", {"SEALGATE_VAULT__DURABLE": "maybe"},
     "vault.durable = 'maybe' (from SEALGATE_VAULT__DURABLE): Input should be a valid boolean"),
    ("", {"SEALGATE_NOPE__X": "1"}, "SEALGATE_NOPE__X: unknown section 'nope'"),
    ("[server\n", {}, "is not valid TOML"),
    ('home = "/etc"\n', {}, "'home' cannot be set in the file"),
])
def test_a_wrong_value_gives_one_clear_line(tmp_path: Path, text: str, environ: dict[str, str],
                                            expected: str) -> None:
    home = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        config.load(home, environ)
    message = str(raised.value)
    assert "\n" not in message
    assert expected.format(file=home / "sealgate.toml") in message


def test_verified_tls_settings(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[routing]\ndns_servers = ["127.0.0.1:5353", '
                                         '"::1"]\ntls_fallback_minutes = 0\n'), {})
    assert loaded.routing.dns_servers == ["127.0.0.1:5353", "::1"]
    assert loaded.routing.tls_fallback_minutes == 0  # the portal at the first failure
    assert loaded.return_address == "sealgate-dsn@example.org"
    with pytest.raises(ConfigError, match="'dns.example' is not IP or IP:PORT"):
        config.load(write(tmp_path, '[routing]\ndns_servers = ["dns.example"]\n'), {})
    with pytest.raises(ConfigError, match="tls_retry_minutes"):
        config.load(write(tmp_path, "[routing]\ntls_retry_minutes = 0\n"), {})


@pytest.mark.parametrize(("section", "reason"), [
    ('backend = "ews"\nclient_secret = "s"', "needs ews_url"),
    ('backend = "ews"\news_url = "https://mail.example.org/EWS/Exchange.asmx"\n'
     'ews_auth = "ntlm"', "needs ews_username and ews_password"),
    ('backend = "graph"', "needs client_secret or client_certificate"),
    ('backend = "graph"\nclient_secret = "s"\napp_only = true', "app_only needs tenant_id"),
])
def test_a_mailbox_backend_that_cannot_work_is_refused(tmp_path: Path, section: str,
                                                        reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        config.load(write(tmp_path, f"[exchange]\n{section}\n"), {})
