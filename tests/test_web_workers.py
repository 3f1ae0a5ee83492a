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
    from benchmarks.serve_load import free_port, request_paths, run_load, start_server
    from muses.collection.store import Store

    ids = add_met_items(any_store_project, met_sample, 30)
    port = free_port()
    server = start_server(any_store_project.root, workers=2, port=port)
    try:
        server.wait_until_up(f"http://127.0.0.1:{port}")
        result = run_load(f"http://127.0.0.1:{port}", request_paths(ids, 200), concurrency=10)
    finally:
        out = server.stop()
    assert result.requests == 200 and result.failed == 0, out
    sqlite = Store.for_project(any_store_project).engine.dialect.name == "sqlite"
    assert ("one writer at a time" in out) == sqlite
    assert out.count("Started server process") >= 2, out  # two worker processes
