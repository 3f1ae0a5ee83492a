"""The collection store: items and their images, in SQLite (default) or any SQLAlchemy database.

Every write goes through :meth:`Store.transaction`, so a crash in the middle of a batch
leaves the store exactly as it was before that batch.
"""
from __future__ import annotations

import datetime as dt
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, create_engine, event, func, select
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

from muses.collection import schema
from muses.errors import RunFailed
from muses.settings import ConfigError

# Image status values. Only USABLE_STATUSES reach datasets, classification and search.
PENDING = "pending"  # imported, not yet checked by generate-images
OK = "ok"
CROPPED = "cropped"  # usable after cutting off a grey-filled truncated part
PROBLEM = "problem"  # excluded; Image.problem says why
USABLE_STATUSES = (OK, CROPPED)


def problem_category(problem: str | None) -> str:
    """The category word an image problem starts with ("truncated: 55% grey fill" -> "truncated")."""
    return (problem or "").partition(":")[0].strip()


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(255), default="")
    # the accession or inventory number the museum writes on the object (the id is the export's
    # key, often an internal number); the id when the export has none
    object_number: Mapped[str] = mapped_column(Text, default="", index=True)  # an exact search finds it at once
    title: Mapped[str] = mapped_column(Text, default="")
    object_type: Mapped[list] = mapped_column(JSON, default=list)  # facets, most general first
    maker: Mapped[str] = mapped_column(Text, default="")  # the makers' names, "; "-joined: searched and counted
    makers: Mapped[list] = mapped_column(JSON, default=list)  # [{"name": str, "role": str}, ...]
    date: Mapped[str] = mapped_column(Text, default="")  # as the catalog writes it: "ca. 1500–1520"
    date_earliest: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)  # BC negative
    date_latest: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    material: Mapped[str] = mapped_column(Text, default="")
    period: Mapped[str] = mapped_column(Text, default="")
    dimensions: Mapped[str] = mapped_column(Text, default="")
    credit_line: Mapped[str] = mapped_column(Text, default="")
    department: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[dict] = mapped_column(JSON, default=dict)  # the record as imported
    # {"model": str, "date": iso str, "classes": [{"name": str, "probability": float}, ...]}
    classification: Mapped[dict | None] = mapped_column(JSON, nullable=True, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime,
        index=True,  # the search and browse indexes ask for its maximum before every request
        default=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        # every ORM update bumps it: the search index refreshes changed items from this stamp
        onupdate=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    )

    images: Mapped[list["Image"]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="Image.position"
    )

    @hybrid_property
    def number(self) -> str:
        """The number a curator knows the record by: its object number, or its id where a record
        made outside import (or before migration 0004) has none. In SQL as in Python."""
        return self.object_number or self.id

    @number.inplace.expression
    @classmethod
    def _number_expression(cls):
        return func.coalesce(func.nullif(cls.object_number, ""), cls.id)

    @property
    def primary_object_type(self) -> str:
        return self.object_type[0] if self.object_type else ""

    @property
    def usable_images(self) -> list["Image"]:
        return [im for im in self.images if im.status in USABLE_STATUSES]

    def __repr__(self) -> str:
        return f"Item(id={self.id!r}, title={self.title!r})"


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    original: Mapped[str] = mapped_column(Text)  # absolute file path or URL
    stored_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # ML-size copy, relative to project
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)  # sha256 of the original
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    problem: Mapped[str | None] = mapped_column(Text, nullable=True)

    item: Mapped[Item] = relationship(back_populates="images")

    def __repr__(self) -> str:
        return f"Image(item_id={self.item_id!r}, original={self.original!r}, status={self.status!r})"


def _needing_attention():
    """Items with a problem photo, or with no usable one."""
    return Item.images.any(Image.status == PROBLEM) | ~Item.images.any(Image.status.in_(USABLE_STATUSES))


DEFAULT_BUSY_TIMEOUT = 30.0  # seconds; [store] busy_timeout
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds; [store] connect_timeout

# SQLite's words for a lock held too long, and for a file or disk that cannot be written
_LOCKED = ("database is locked", "database table is locked")
_UNWRITABLE = ("readonly database", "unable to open database file", "disk i/o error", "database or disk is full")
# PostgreSQL's (psycopg's) for a server that cannot be reached or refuses the user or database
_UNREACHABLE = ("connection is bad", "connection to server", "could not connect", "authentication failed",
                "does not exist", "timeout expired", "resolve host", "name or service not known",
                "could not translate host name", "connection timeout expired")


def _engine(url: str, *, echo: bool, busy_timeout: float, connect_timeout: float) -> Engine:
    """The engine for ``url``; a URL that cannot work is the user's to fix (never echoed: it
    may hold a password)."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ValueError(f"port {parsed.port} is not between 1 and 65535")
        # A server that never answers would otherwise hold a command for minutes (131 s measured).
        args = ({"timeout": busy_timeout} if backend == "sqlite"
                else {"connect_timeout": max(1, math.ceil(connect_timeout))} if backend == "postgresql" else {})
        return create_engine(url, echo=echo, connect_args=args)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"the store URL ([store] url in muses.toml) is not one SQLAlchemy can use ({exc}); give one like "
            "postgresql+psycopg://user@host/muses, or leave it empty for the SQLite file muses.sqlite"
        ) from exc
    except ImportError as exc:
        raise ConfigError(
            f"the store URL ([store] url in muses.toml) needs the database driver {exc.name!r}, which is not "
            f"installed; install it (pip install {exc.name}), or leave url empty for the SQLite file muses.sqlite"
        ) from exc


class Store:
    """Open (and create) the collection store at a SQLAlchemy URL; its schema must be current
    (:mod:`muses.collection.schema`).

    A write waits up to ``busy_timeout`` seconds for another writer's lock (SQLite); a lock
    still held then, an unwritable file or a full disk stop the run with :class:`RunFailed`.
    """

    def __init__(self, url: str, *, echo: bool = False, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, check_schema: bool = True):
        self.url = url
        self.busy_timeout = busy_timeout
        self.connect_timeout = connect_timeout
        self.engine: Engine = _engine(url, echo=echo, busy_timeout=busy_timeout, connect_timeout=connect_timeout)
        sqlite = self.engine.dialect.name == "sqlite"
        if sqlite:
            event.listen(self.engine, "connect", self._sqlite_pragmas)
        event.listen(self.engine, "handle_error", self._environment_error)
        if check_schema:  # only `muses db` opens a store whose schema may be out of date
            schema.prepare(self.engine, Base.metadata, name=self.name)

    @classmethod
    def for_project(cls, project, *, check_schema: bool = True) -> "Store":
        """The project's store ($MUSES_STORE_URL, else [store] url, else muses.sqlite); a folder
        without muses.toml is refused, so no command creates a store where the user did not
        make a project."""
        project.require_config()
        return cls(project.store_url, busy_timeout=project.settings.store.busy_timeout,
                   connect_timeout=project.settings.store.connect_timeout, check_schema=check_schema)

    @property
    def name(self) -> str:
        """The database file (SQLite), else the URL without its password: how messages name the store."""
        url = self.engine.url
        return url.database if url.get_backend_name() == "sqlite" and url.database else url.render_as_string()

    def _sqlite_pragmas(self, dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL: readers (the web app) never block a writer. Switching to it takes an exclusive
        # lock that SQLite does not wait for (waiting could deadlock), so a first run that
        # races another tries again until the busy timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if not any(words in str(exc) for words in _LOCKED):
                    raise
                if time.monotonic() > deadline:
                    raise RunFailed(self._locked_message()) from exc
                time.sleep(0.05)
        cur.close()

    def _environment_error(self, context) -> None:
        """Turn a lock held too long, an unreachable server, an unwritable store or a full disk into a RunFailed;
        anything else stays what it is (a bug, shown with its traceback)."""
        text = str(context.original_exception).lower()
        if "file is not a database" in text:
            raise schema.not_a_store(self.name, "the file is not an SQLite database") from context.original_exception
        if any(words in text for words in _LOCKED):
            raise RunFailed(self._locked_message()) from context.original_exception
        if context.connection is None and any(words in text for words in _UNREACHABLE):  # while connecting
            reason = " ".join(str(context.original_exception).split())
            raise RunFailed(
                f"cannot connect to the collection store {self.name} ({reason[:300]}). Check that the "
                "database server is running and that [store] url in muses.toml (or $MUSES_STORE_URL) names the "
                f"right host, port, database and user; a server slower than {self.connect_timeout:g} s to answer "
                "needs a larger [store] connect_timeout."
            ) from context.original_exception
        if any(words in text for words in _UNWRITABLE):
            raise RunFailed(
                f"cannot use the collection store {self.name}: {context.original_exception}. Check that the "
                "disk has free space and that the project folder and the file may be written (SQLite also "
                "writes its -wal and -shm files beside it)."
            ) from context.original_exception

    def _locked_message(self) -> str:
        return (
            f"the collection store {self.name} is locked: another muses command (or another program) "
            f"has been writing to it for more than {self.busy_timeout:g} s. Let it finish, then run this "
            "command again; raise [store] busy_timeout in muses.toml to wait longer."
        )

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose changes are committed together, or not at all if anything raises."""
        with self.session() as session, session.begin():
            yield session

    # -- reading ---------------------------------------------------------------------------
    def get_item(self, item_id: str) -> Item | None:
        with self.session() as s:
            return s.scalars(select(Item).where(Item.id == str(item_id)).options(selectinload(Item.images))).first()

    def items(self, ids: Iterable[str] | None = None, *, batch_size: int = 1000,
              needing_attention: bool = False) -> Iterator[Item]:
        """Items with their images loaded, in id order, read in batches to bound memory;
        ``needing_attention``: only those with a problem photo or no usable one."""
        yield from self._items(ids, batch_size=batch_size, where=_needing_attention() if needing_attention else None)

    def count_items(self, *, needing_attention: bool = False) -> int:
        """How many items (``needing_attention``: see :meth:`items`), counted by the database."""
        q = select(func.count()).select_from(Item)
        if needing_attention:
            q = q.where(_needing_attention())
        with self.session() as s:
            return s.scalar(q)

    def _items(self, ids: Iterable[str] | None, *, batch_size: int, where=None) -> Iterator[Item]:
        wanted = None if ids is None else [str(i) for i in ids]
        conditions = () if where is None else (where,)
        with self.session() as s:
            if wanted is not None:
                for start in range(0, len(wanted), batch_size):
                    chunk = wanted[start : start + batch_size]
                    q = (select(Item).where(Item.id.in_(chunk), *conditions).options(selectinload(Item.images))
                         .order_by(Item.id))
                    yield from s.scalars(q)
                    s.expunge_all()  # a long list of ids must not pile up in the session
                return
            last = None
            while True:
                q = select(Item).where(*conditions).options(selectinload(Item.images)).order_by(Item.id).limit(batch_size)
                if last is not None:
                    q = q.where(Item.id > last)
                batch = list(s.scalars(q))
                if not batch:
                    return
                yield from batch
                last = batch[-1].id
                s.expunge_all()

    def images(self, statuses: Iterable[str] | None = None) -> list[Image]:
        with self.session() as s:
            q = select(Image).order_by(Image.item_id, Image.position)
            if statuses is not None:
                q = q.where(Image.status.in_(list(statuses)))
            return list(s.scalars(q))

    def stats(self) -> dict[str, Any]:
        """Counts a user checks after import and image generation."""
        with self.session() as s:
            n_items = s.scalar(select(func.count()).select_from(Item))
            n_classified = s.scalar(select(func.count()).select_from(Item).where(Item.classification.is_not(None)))
            by_status = dict(s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
            problems = dict(
                s.execute(
                    select(Image.problem, func.count()).where(Image.status == PROBLEM).group_by(Image.problem)
                ).all()
            )
            categories: Counter[str] = Counter()
            for text, n in problems.items():
                categories[problem_category(text)] += n
            n_without = s.scalar(select(func.count()).select_from(Item).where(~Item.images.any()))
        return {
            "items": n_items,
            "items_without_images": n_without,
            "items_classified": n_classified,
            "images": sum(by_status.values()),
            "images_by_status": by_status,
            "problems": problems,
            "problem_categories": dict(categories.most_common()),
        }
