"""What muses' tests and benchmarks share, shipped with the package so that neither imports the
other: a throwaway PostgreSQL cluster (:mod:`.postgres`), free ports and a `muses serve` process
(:mod:`.net`), the drawn-shapes dataset (:mod:`.datasets`), Met items in a store and a synthetic
catalog's titles (:mod:`.catalog`), the SQL an engine sends (:func:`statements`). Nothing in
muses imports it; it imports only the library.
"""
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def statements(engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends meanwhile, in order (for tests of what a page asks)."""
    from sqlalchemy import event

    sent: list[str] = []

    def seen(conn, cursor, sql, *rest) -> None:
        sent.append(sql)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
