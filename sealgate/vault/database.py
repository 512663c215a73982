"""Engine, sessions and schema migrations for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from sealgate.errors import VaultError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported where it is used: it costs every CLI command a fifth of a second.

MIGRATIONS = str(Path(__file__).with_name("migrations"))


def _describe(url: str, error: Exception) -> str:
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return f"database {_safe_url(url)}: {detail}"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def make_engine(url: str, durable: bool = True) -> Engine:
    path = _sqlite_path(url)
    if path is None:
        return create_engine(url, pool_pre_ping=True)
    # The driver's own transaction handling is switched off so that SQLAlchemy's BEGIN is
    # the real one (reads see one snapshot, writers can ask for an immediate lock).
    engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(MIGRATIONS).get_current_head()
    assert head is not None
    return head


class Database:
    """The vault's database: sessions for reading, `writing()` sessions for changes."""

    def __init__(self, url: str, durable: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, durable)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        # On SQLite a writer takes the write lock at BEGIN, so a read-then-write transaction
        # cannot fail half-way on a lock upgrade; PostgreSQL ignores the option.
        self._writer = sessionmaker(self.engine.execution_options(sqlite_begin="IMMEDIATE"),
                                    expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._guard(), self._reader() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without an exception."""
        with self._guard(), self._writer() as session, session.begin():
            yield session

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.DatabaseError) as error:
            if isinstance(error, sa_exc.IntegrityError):
                raise
            raise VaultError(_describe(self.url, error)) from None

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._guard(), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def check(self) -> None:
        """Reachable, readable, and at the schema this code expects."""
        with self._guard(), self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current, head = self.revision(), head_revision()
        if current != head:
            raise VaultError(
                f"database {_safe_url(self.url)} is at schema revision {current or 'none'}, "
                f"this Sealgate needs {head}: run `sealgate db upgrade`"
            )

    def upgrade(self) -> None:
        from alembic import command

        with self._guard():
            command.upgrade(_alembic_config(self.engine), "head")

    def dispose(self) -> None:
        self.engine.dispose()
