"""`muses serve --workers N`: several uvicorn processes, each building the same app.

uvicorn starts its workers from an import string, so the app's options travel to them in one
environment variable; each worker opens its own connections to the one store.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from muses.web.app import create_app

OPTIONS_ENV = "MUSES_SERVE_OPTIONS"
FACTORY = "muses.web.workers:app_from_environment"


@dataclass(frozen=True)
class ServeOptions:
    project: str
    model_path: str
    allow_writes: bool = False
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


def app_from_environment():
    """The app a worker serves: the options `muses serve` put in $MUSES_SERVE_OPTIONS."""
    options = ServeOptions(**json.loads(os.environ[OPTIONS_ENV]))
    return create_app(options.project, options.model_path, allow_writes=options.allow_writes,
                      max_upload_bytes=options.max_upload_bytes, max_pixels=options.max_pixels)


def single_writer_warning(store_dialect: str, workers: int) -> str | None:
    """What to tell a curator who starts several workers on an SQLite store."""
    if workers > 1 and store_dialect == "sqlite":
        return (f"warning: {workers} workers share an SQLite store, which takes one writer at a time: "
                "browsing and search are fine, but stored classifications (--allow-writes) wait for "
                "each other. For a shared service set [store] url to PostgreSQL (README: Running it for "
                "the staff).")
    return None


def run_workers(options: ServeOptions, *, host: str, port: int, workers: int) -> None:
    import uvicorn

    os.environ[OPTIONS_ENV] = json.dumps(asdict(options))
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers, log_level="info")
