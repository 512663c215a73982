"""Engine, sessions and schema migrations for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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


class _WriterQueue:
    """Writers to one SQLite file take turns here before BEGIN IMMEDIATE. SQLite's own
    busy handler polls with growing sleeps (up to 100 ms), so under contention the lock sits
    free while writers doze; a thread lock plus an flock on a file beside the database
    (for the other processes) hands it over as soon as it is released."""

    def __init__(self, database: Path) -> None:
        self._path = database.with_name(database.name + ".writers")
        self._threads = threading.Lock()
        self._file: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._threads:
            if self._file is None:
                try:
                    self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                except OSError:  # e.g. made by another user: SQLite's own locking still holds
                    self._file = -1
            if self._file < 0:
                yield
                return
            fcntl.flock(self._file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._file, fcntl.LOCK_UN)


class Database:
    """The vault's database: sessions for reading, `writing()` sessions for changes."""

    def __init__(self, url: str, durable: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, durable)
        path = _sqlite_path(url)
        self._writers = _WriterQueue(path) if path is not None and path.parent.is_dir() \
            else None
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
        turn = self._writers.turn() if self._writers is not None else nullcontext()
        with turn, self._guard(), self._writer() as session, session.begin():
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
