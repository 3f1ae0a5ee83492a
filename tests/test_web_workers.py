"""`muses serve --workers N`: the app each worker builds, and a real multi-process server."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from conftest import add_met_items
from muses.web.workers import OPTIONS_ENV, ServeOptions, app_from_environment, single_writer_warning


def test_a_worker_builds_the_app_from_the_options_in_its_environment(project, met_sample, monkeypatch):
    add_met_items(project, met_sample, 3)
    options = ServeOptions(str(project.root), str(project.root / "models" / "m.safetensors"), allow_writes=True,
                           max_upload_bytes=1234, max_pixels=5678)
    monkeypatch.setenv(OPTIONS_ENV, json.dumps(options.__dict__))
    app = app_from_environment()
    state = app.state.muses
    assert (state.allow_writes, state.limits.max_upload_bytes, state.limits.max_pixels) == (True, 1234, 5678)
    assert state.project.root == project.root
    assert TestClient(app).get("/api/items").json()["total"] == 3


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
