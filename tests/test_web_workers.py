"""`muses serve --workers N`: the app each worker builds, and a real multi-process server."""
from __future__ import annotations

import pytest

from conftest import add_met_items
from muses.web.serving import single_writer_warning


def test_several_workers_on_sqlite_get_a_warning():
    assert "one writer at a time" in single_writer_warning("sqlite", 2)
    assert single_writer_warning("sqlite", 1) is None
    assert single_writer_warning("postgresql", 8) is None


@pytest.mark.slow
def test_serve_with_two_workers_answers_concurrent_requests(any_store_project, met_sample):
    from benchmarks.web_load import Server, collection_of, measure
    from muses.collection.store import Store

    add_met_items(any_store_project, met_sample, 30)
    with Server(any_store_project.root, workers=2) as server:
        result = measure(server.base, collection_of(any_store_project.root), "api", requests=200, concurrency=10)
    out = server.output
    assert result.requests == 200 and result.errors == 0, (result.error_kinds, out)
    sqlite = Store.for_project(any_store_project).engine.dialect.name == "sqlite"
    assert ("one writer at a time" in out) == sqlite
    assert out.count("Started server process") >= 2, out  # two worker processes
