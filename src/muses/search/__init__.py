"""Search the collection: weighted phrase queries over catalog fields and stored predictions.

The interface is deliberately small so that another engine (a search server) can replace the
default SQLite FTS5 one::

    engine = open_engine(store)
    hits = engine.search([TextTerm(("bust", "busts"), {"title": 1, "object_type": 2}),
                          ClassTerm("bust", 8.0)], Filters(exclude_ids={"42"}), limit=20)

A query is a list of terms whose scores add up per item, like a boolean "should" query.
"""
from __future__ import annotations

from collections.abc import Callable, Collection

from muses.search.query import (
    FIELDS,
    ClassTerm,
    Filters,
    Hit,
    SearchEngine,
    Term,
    TextTerm,
    UnsupportedStoreError,
    rank_hits,
)


def open_engine(store) -> SearchEngine:
    """The search engine for ``store``: SQLite FTS5 for SQLite stores (the default), tsvector
    and BM25 for PostgreSQL ones."""
    dialect = store.engine.dialect.name
    if dialect == "sqlite":
        from muses.search.fts5 import FTS5Engine

        return FTS5Engine(store)
    if dialect == "postgresql":
        from muses.search.postgres import PostgresEngine

        return PostgresEngine(store)
    raise UnsupportedStoreError(
        f"similar-object search needs a SQLite or PostgreSQL store; this store is {dialect}. "
        "Set [store] url in muses.toml to a sqlite:/// path or a postgresql+psycopg:// URL."
    )


def refresh_indexes(store, definitions, *, engine: SearchEngine | None = None,
                    step: Callable[[], None] | None = None) -> int:
    """Bring the search index and the browse index (:mod:`muses.search.browse_index`) up to date
    with the store and ``definitions``: what the commands that change either call last, so that
    no page has to wait for an index. Returns how many rows changed; ``step()`` is called after
    each of the two indexes."""
    from muses.search import browse_index

    step = step or (lambda: None)
    try:
        engine = engine or open_engine(store)
    except UnsupportedStoreError:
        engine = None
    changed = engine.refresh() if engine is not None else 0
    step()
    changed += browse_index.refresh_if_changed(store, definitions)
    step()
    return changed


def refresh_project_indexes(project, store=None) -> int:
    """:func:`refresh_indexes` for ``project`` (its store, its definitions.toml), with a progress
    bar: what import, generate-images, classify, label-preview and export call last. A
    definitions.toml that does not load leaves the indexes as they are (the command that uses
    the file says what is wrong with it; the web app refreshes them once it loads)."""
    from muses.collection.store import Store
    from muses.errors import MusesError
    from muses.labeling.definitions import load_definitions_cached
    from muses.progress import progress_bar

    store = store or Store.for_project(project)
    path = project.definitions_path
    try:
        definitions = load_definitions_cached(path) if path.is_file() else None
    except MusesError:
        return 0
    with progress_bar(total=2, desc="indexing for search and browsing", unit="indexes") as bar:
        return refresh_indexes(store, definitions, step=bar.update)


def index_items(store, ids: Collection[str] | None = None) -> int:
    """Bring the search index up to date for ``ids`` (default: every changed item); returns
    how many items were (re)indexed. Searching does this by itself; an importer may call it
    to pay the cost up front."""
    engine = open_engine(store)
    return engine.refresh(ids)  # type: ignore[attr-defined]


__all__ = [
    "FIELDS", "ClassTerm", "Filters", "Hit", "SearchEngine", "Term", "TextTerm", "UnsupportedStoreError",
    "index_items", "open_engine", "rank_hits", "refresh_indexes", "refresh_project_indexes",
]
