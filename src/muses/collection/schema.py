"""The store's schema version: Alembic migrations, for SQLite and PostgreSQL alike.

Opening a store (:func:`prepare`):

- a new, empty database gets today's tables and is stamped with the newest revision;
- a store made before migrations existed (tables, no ``alembic_version``) is stamped in place
  with the first revision, which is exactly the schema that release made;
- a store at an older revision is refused: "run `muses db upgrade`". Upgrading is a deliberate
  step, taken once, never a side effect of whichever web worker or classify process happens to
  open a shared store first (and a backup before it is the curator's choice);
- a store at a revision this muses does not know (made by a newer release) is refused too.

Tables of models that no migration creates yet are created on open, as before migrations.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from muses.errors import MusesError

BASELINE = "0001"  # the schema of the release before migrations
_SCRIPTS = Path(__file__).with_name("migrations")
# any constant: a PostgreSQL advisory lock held while one process creates or stamps the schema
_PG_LOCK = 7_140_140_001


class StoreOutOfDate(MusesError):
    """The store's schema is older (or newer) than this muses."""


class NotAStore(MusesError):
    """The database holds another program's tables (or is no database at all): never written to."""


def not_a_store(name: str, why: str) -> NotAStore:
    return NotAStore(f"{name} is not a muses store ({why}); move it away (muses makes a new store in its "
                     "place), or name the right one with [store] url in muses.toml or $MUSES_STORE_URL")


def _refuse_foreign(conn: Connection, name: str) -> None:
    """A database with tables but neither ours nor a schema revision belongs to another program."""
    tables = set(inspect(conn).get_table_names())
    if tables and "items" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise not_a_store(name, f"it holds other tables: {shown}")


@dataclass(frozen=True)
class Revisions:
    current: str | None  # None: no alembic_version (a new store, or one from before migrations)
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = conn
    return cfg


@lru_cache(maxsize=4)
def _scripts(location: Path) -> ScriptDirectory:
    # read once per process: every store open compares its revision with the head
    return ScriptDirectory(str(location))


def head() -> str:
    return _scripts(_SCRIPTS).get_current_head()


def revisions(engine: Engine) -> Revisions:
    with engine.connect() as conn:
        return Revisions(MigrationContext.configure(conn).get_current_revision(), head())


def _known(revision: str) -> bool:
    return any(script.revision == revision for script in _scripts(_SCRIPTS).walk_revisions())


def _refuse_unless_current(revision: str | None, name: str) -> None:
    latest = head()
    if revision == latest:
        return
    if revision is not None and not _known(revision):
        raise StoreOutOfDate(
            f"the collection store {name} is at schema revision {revision}, which this muses does not know: "
            "a newer muses made or upgraded it. Install that newer muses (pip install -U muses)."
        )
    raise StoreOutOfDate(
        f"the collection store {name} is at schema revision {revision}, older than this muses ({latest}). "
        "Back it up, then run `muses db upgrade` once; every command works again afterwards."
    )


def _missing_tables(conn: Connection, metadata: MetaData) -> set[str]:
    return set(metadata.tables) - set(inspect(conn).get_table_names())


def prepare(engine: Engine, metadata: MetaData, *, name: str) -> None:
    """Make a new store, stamp an old one, refuse one at another revision (see the module)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None:
            _refuse_unless_current(current, name)
            if not _missing_tables(conn, metadata):
                return  # the common case: reads only, no lock
    with _locked(engine) as conn:
        # again under the lock: another process may have made the store meanwhile
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None:
            _refuse_foreign(conn, name)
        if current is None and "items" not in inspect(conn).get_table_names():
            metadata.create_all(conn)  # a new store: today's tables are the newest revision
            current = head()
            command.stamp(_config(conn), current)
        elif current is None:
            current = BASELINE  # the release before migrations: its schema is exactly the first one
            command.stamp(_config(conn), current)
        # refusing rolls the stamp back: a store that needs upgrading is left as it was
        _refuse_unless_current(current, name)
        metadata.create_all(conn)


class _locked:
    """A connection in a transaction that holds the store's schema lock: SQLite's write lock
    (BEGIN IMMEDIATE waits the busy timeout for it), PostgreSQL's advisory lock. DDL is
    transactional in both, so a crash leaves no half-made schema."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self) -> Connection:
        self.conn = self.engine.connect()
        if self.engine.dialect.name == "sqlite":
            # pysqlite opens no transaction before DDL by itself
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif self.engine.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        return self.conn

    def __exit__(self, exc_type, *_exc) -> None:
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()


def upgrade(engine: Engine, *, name: str) -> str | None:
    """Bring the store to the newest revision (`muses db upgrade`); a store from before
    migrations is stamped first. Returns the revision it was at."""
    with _locked(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and not _known(before):
            _refuse_unless_current(before, name)
        if before is None:
            _refuse_foreign(conn, name)
        if before is None and "items" in inspect(conn).get_table_names():
            command.stamp(_config(conn), BASELINE)
        command.upgrade(_config(conn), "head")
    return before
