"""`muses serve --workers N`: the app each worker builds, and a real multi-process server."""
from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from muses.testing.catalog import add_met_items
from muses.testing.net import Server
from muses.web.serving import single_writer_warning


def test_several_workers_on_sqlite_get_a_warning():
    assert "one writer at a time" in single_writer_warning("sqlite", 2)
    assert single_writer_warning("sqlite", 1) is None
    assert single_writer_warning("postgresql", 8) is None


def test_serve_warns_about_the_store_only_when_it_matters():
    from muses.cli.web import LARGE_COLLECTION, store_warning

    assert store_warning("sqlite", None, 500) is None  # one curator, default workers: no warning
    assert store_warning("sqlite", 1, 500) is None
    assert "one writer at a time" in store_warning("sqlite", 3, 500)
    assert "PostgreSQL" in store_warning("sqlite", None, LARGE_COLLECTION)
    assert store_warning("postgresql", 8, 10 * LARGE_COLLECTION) is None


@pytest.mark.slow
def test_serve_with_two_workers_answers_concurrent_requests(any_store_project, met_sample):
    from muses.collection.store import Store

    ids = add_met_items(any_store_project, met_sample, 30)
    paths = [f"/api/items?page={i % 4 + 1}&per_page=8&q=bust" if i % 2 else f"/api/similar?ids={ids[i % 30]}&limit=12"
             for i in range(200)]
    with Server(any_store_project.root, workers=2) as server:
        with ThreadPoolExecutor(10) as clients:  # ten at a time: both workers busy at once
            statuses = list(clients.map(lambda path: _status(server.base + path), paths))
    out = server.output
    assert statuses == [200] * 200, out
    sqlite = Store.for_project(any_store_project).engine.dialect.name == "sqlite"
    assert ("one writer at a time" in out) == sqlite
    assert out.count("Started server process") >= 2, out  # two worker processes


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
