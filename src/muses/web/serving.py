"""Running the app under uvicorn, in one process or several.

Python runs one request's code at a time per process; on a machine with several cores, more
worker processes answer more requests at once (each opens the store itself; SQLite serves many
readers). uvicorn starts workers from an import string, so the app's options travel in an
environment variable and :func:`app_from_environment` builds each worker's app from them.
"""
from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

ENV = "MUSES_SERVE_OPTIONS"
DEFAULT_MAX_WORKERS = 4


def default_workers() -> int:
    """One per core, at most DEFAULT_MAX_WORKERS (each holds its own caches and, once used, a model)."""
    return max(1, min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1))


def single_writer_warning(store_dialect: str, workers: int) -> str | None:
    """What to tell a curator who starts several workers on an SQLite store."""
    if workers > 1 and store_dialect == "sqlite":
        return (f"warning: {workers} workers share an SQLite store, which takes one writer at a time: "
                "browsing and search are fine, but stored classifications and review decisions wait for "
                "each other. For a shared service set [store] url to PostgreSQL (docs/scaling.md: Running "
                "it for the staff).")
    return None


def serve(project_root: Path, model_path: Path, *, host: str, port: int, workers: int = 1, **options: Any) -> None:
    """Serve the app for ``project_root``; ``options`` are :func:`muses.web.create_app`'s."""
    import uvicorn

    from muses.web import create_app

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        uvicorn.run(started(create_app(project_root, model_path, **options)), host=host, port=port, log_level="info")
        return
    os.environ[ENV] = json.dumps({"project": str(project_root), "model_path": str(model_path), **options})
    uvicorn.run("muses.web.serving:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="info")


def app_from_environment() -> FastAPI:
    """A worker's app, built from the options :func:`serve` put in the environment."""
    from muses.web import create_app

    return started(create_app(**json.loads(os.environ[ENV])))


def started(app: FastAPI) -> FastAPI:
    """``app``, with what starting it made set aside from garbage collection: those objects
    (modules, templates, the app itself: over 100,000) live as long as the server, and every
    full collection under load would walk them again (pauses of 50 ms and more, measured)."""
    gc.freeze()
    return app
