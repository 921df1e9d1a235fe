"""Engine and session factory, and migrations to head. No engine is built at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported by the functions that migrate: every command opens the store, few migrate it, and
# importing alembic is about half a second of CPU of each command's start-up.

MIGRATIONS = Path(__file__).parent / "migrations"
#: Most candidate actions one decision may list (``store.max_actions``): far above a classifier's
#: labels or a reranker's candidates, far below what would make one row megabytes.
DEFAULT_MAX_ACTIONS = 1000


class StoreError(RuntimeError):
    """The store cannot be opened or is not at the schema this version of rewardloop needs."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the dashboard) run beside one writer; NORMAL sync is durable across app crashes
    # and loses at most the last transactions on power loss, the usual WAL trade-off.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, echo: bool = False) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with foreign keys on, or PostgreSQL through psycopg 3.

    ``postgresql://`` URLs are taken to mean psycopg 3.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (creates every table on an empty database)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


class Store:
    """A handle on one database: the engine and a session factory.

    Examples
    --------
    >>> store = Store.open("sqlite://")  # in memory; migrated to head
    >>> store.dialect
    'sqlite'
    """

    def __init__(self, engine: Engine, max_actions: int = DEFAULT_MAX_ACTIONS) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.max_actions = max_actions

    @classmethod
    def open(
        cls, url: str, migrate: bool = True, echo: bool = False, max_actions: int = DEFAULT_MAX_ACTIONS
    ) -> Store:
        """Open the store at ``url``; with ``migrate``, bring its schema to head first.

        Without ``migrate``, a store whose schema is behind is refused with a message saying so.
        ``max_actions`` bounds the candidate actions of one decision (``store.max_actions``).
        """
        engine = make_engine(url, echo=echo)
        if make_url(url).get_backend_name() == "sqlite" and make_url(url).database in (None, "", ":memory:"):
            # An in-memory SQLite database lives in one connection: keep exactly that one.
            from sqlalchemy.pool import StaticPool

            engine = create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}, echo=echo
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        if migrate:
            upgrade(engine)
        else:
            have, want = current_revision(engine), head_revision()
            if have != want:
                raise StoreError(
                    f"the store at {make_url(url).render_as_string(hide_password=True)} is at schema "
                    f"{have or 'none'}, this rewardloop needs {want}: run `rewardloop init` to migrate it"
                )
        return cls(engine, max_actions)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
