"""Shared fixtures: an initialised Sealgate home, and vault databases on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from sealgate import config
from sealgate.cli import main as cli_main
from sealgate.vault.database import Database
from sealgate.vault.vault import Vault

if TYPE_CHECKING:
    from tests.routing.conftest import DnsServer, Zone

pytest_plugins = ["tests.browser"]  # the `browser` and `page` fixtures, for any test

PG_ADMIN_URL = os.environ.get(
    "SEALGATE_TEST_PG", "postgresql://sealgate_test:sealgate_test@127.0.0.1:5432/postgres")


def run_cli(*args: str) -> None:
    """The real command, in process; SystemExit(0) is success. The command tightens the
    process umask for what it writes; the test process gets its own back."""
    umask = os.umask(0o022)
    try:
        cli_main(list(args))
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise AssertionError(f"sealgate {' '.join(args)} exited {exit_.code}") from None
    finally:
        os.umask(umask)


@pytest.fixture
def zone() -> Iterator[tuple[Zone, DnsServer]]:
    """Records, and a DNS server on loopback that answers from them."""
    from tests.routing.conftest import DnsServer, Zone

    records = Zone()
    server = DnsServer(records)
    yield records, server
    server.close()


@pytest.fixture(scope="session")
def initialised_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home made by `sealgate init` for the whole run, which `home` copies."""
    path = tmp_path_factory.mktemp("initialised") / "home"
    run_cli("--home", str(path), "init")
    return path


@pytest.fixture
def home(tmp_path: Path, initialised_home: Path) -> Path:
    """A home initialised by `sealgate init` (SQLite): a copy of one made once per run, files
    and modes as init left them (init itself is tested in tests/integration/test_cli.py)."""
    path = tmp_path / "home"
    shutil.copytree(initialised_home, path)
    return path


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is needed at {PG_ADMIN_URL} (make test sets it up): {error}")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated to head, copied for every test that wants PostgreSQL."""
    name = f"sealgate_tpl_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database = Database(_sqlalchemy_pg_url(name))
    database.upgrade()
    database.dispose()
    yield name
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlalchemy_pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"sealgate_t_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _sqlalchemy_pg_url(name)
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# For a module whose tests do not depend on the database: `pytestmark = SQLITE_ONLY`.
SQLITE_ONLY = pytest.mark.sqlite_only


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL runs of tests marked sqlite_only."""
    dropped = [item for item in items if item.get_closest_marker("sqlite_only")
               and getattr(item, "callspec", None) is not None
               and item.callspec.params.get("settings") == "postgresql"]  # type: ignore[attr-defined]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, home: Path) -> config.Config:
    """The home's configuration, pointed at SQLite or at a fresh PostgreSQL database."""
    environ = dict(os.environ)
    if request.param == "postgresql":
        environ["SEALGATE_DATABASE__URL"] = request.getfixturevalue("pg_url")
    return config.load(home, environ)


@pytest.fixture
def vault(settings: config.Config) -> Iterator[Vault]:
    opened = Vault.open(settings)
    if opened.database.revision() is None:
        opened.database.upgrade()
    opened.database.check()
    yield opened
    opened.close()
