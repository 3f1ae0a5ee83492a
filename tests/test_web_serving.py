"""`muses serve --workers N`: each worker process builds the same app from the environment."""
from __future__ import annotations

import gc
import json

import pytest
from fastapi.testclient import TestClient

from muses.web import serving


def test_a_worker_builds_the_app_it_was_given(project, monkeypatch, tmp_path):
    options = {"project": str(project.root), "model_path": str(tmp_path / "m.safetensors"), "allow_writes": True,
               "max_upload_bytes": 1234, "max_pixels": 99}
    monkeypatch.setenv(serving.ENV, json.dumps(options))
    gc.unfreeze()
    app = serving.app_from_environment()
    assert gc.get_freeze_count() > 10_000  # what starting made is left out of collections
    gc.unfreeze()
    state = app.state.muses
    assert state.project.root == project.root and state.allow_writes
    assert (state.limits.max_upload_bytes, state.limits.max_pixels) == (1234, 99)
    assert TestClient(app).get("/items").status_code == 200


def test_workers_default_to_the_cores_and_are_checked(monkeypatch, project):
    monkeypatch.setattr(serving.os, "cpu_count", lambda: 16)
    assert serving.default_workers() == serving.DEFAULT_MAX_WORKERS
    monkeypatch.setattr(serving.os, "cpu_count", lambda: None)
    assert serving.default_workers() == 1
    with pytest.raises(ValueError, match="workers"):
        serving.serve(project.root, project.model_path, host="127.0.0.1", port=0, workers=0)


def test_serve_refuses_zero_workers(project, capsys):
    from muses.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--workers", "0"])
    assert exc.value.code == 2 and "--workers" in capsys.readouterr().err


def test_on_a_database_server_a_process_answers_a_bounded_number_of_requests_at_once(any_store_project):
    import anyio.to_thread

    from muses.collection.store import Store
    from muses.web import app as web_app

    def threads() -> int:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    sqlite = Store.for_project(any_store_project).engine.dialect.name == "sqlite"
    with TestClient(web_app.create_app(any_store_project.root)) as client:
        assert client.portal.call(threads) == (40 if sqlite else web_app.THREADS)  # 40: anyio's default
        assert client.get("/items").status_code == 200
