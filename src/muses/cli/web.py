"""`muses serve`."""
from __future__ import annotations

from pathlib import Path

from muses.cli import UsageError, command_parser, format_table, positive
from muses.settings import find_project

SERVE_EXAMPLES = """\
  muses serve                                  # http://127.0.0.1:8000 (muses.toml [web])
  muses serve --port 8080 --model models/naive.safetensors
  muses serve --host 0.0.0.0 --max-upload-mb 5   # reachable from other machines
  muses serve --workers 2                      # server processes (default: one per core, at most 4)
  muses serve --allow-writes --reviewer "Ana Ruiz"  # decide labels at /review
  muses serve --allowed-host muses.museum.example  # behind a reverse proxy with that public name

Pages: / (upload a photo: classes and similar objects), /items (search the catalog, filter by
predicted class, naive label or disagreement, with counts; sort by confidence or disagreement),
/items/ID. JSON API documented at /docs.
Read-only unless --allow-writes (which enables POST /api/items/ID/classify).
"""


def register(subparsers) -> None:
    p = command_parser(subparsers, "serve", help="start the web app: photo upload, similar objects, collection browser",
                       examples=SERVE_EXAMPLES)
    p.add_argument("--host", help="address to listen on (default: muses.toml [web] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: muses.toml [web] port, 8000)")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--allow-writes", action="store_true", help="let requests store classifications (default: read-only)")
    p.add_argument("--reviewer", metavar="NAME", default="", help="who decides on the review pages (/review) unless the page names someone")
    p.add_argument("--max-upload-mb", type=positive(float), default=10.0, help="largest accepted photo (default 10)")
    p.add_argument("--max-pixels", type=positive(int), default=40_000_000, help="largest accepted photo in pixels (default 40 million)")
    p.add_argument("--workers", type=positive(int), help="server processes (default: one per core, at most 4)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name to answer besides localhost and --host (a reverse proxy's public name; "
                        "repeatable; also muses.toml [web] allowed_hosts)")
    p.set_defaults(func=run_serve)


LARGE_COLLECTION = 100_000  # items past which one SQLite file starts to be the slow part of a shared service


def store_warning(dialect: str, asked_workers: int | None, items: int) -> str | None:
    """The SQLite-or-PostgreSQL advice, only where it matters: several workers asked for
    (``--workers``), or a collection large enough to share. A single curator starting the
    default server (its workers chosen by the core count) hears nothing."""
    from muses.web.serving import single_writer_warning

    if dialect != "sqlite":
        return None
    if asked_workers and asked_workers > 1:
        return single_writer_warning(dialect, asked_workers)
    if items >= LARGE_COLLECTION:
        return (f"note: {items:,} items in one SQLite file; if several people will use this server, set [store] url "
                "to PostgreSQL (README: Running it for the staff)")
    return None


def run_serve(args) -> int:
    from muses.collection.store import Store
    from muses.model.files import paths as model_paths
    from muses.web import create_app
    from muses.web.guard import allowed_hosts
    from muses.web.serving import default_workers, serve

    project = find_project(args.project)
    host = args.host or project.settings.web.host
    port = args.port if args.port is not None else project.settings.web.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    model = args.model or project.model_path
    options = dict(allow_writes=args.allow_writes, reviewer=args.reviewer, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                   max_pixels=args.max_pixels,
                   allowed_hosts=list(allowed_hosts(host, [*project.settings.web.allowed_hosts, *args.allowed_host])))
    create_app(project, model, **options)  # a bad option fails here, before any worker starts
    workers = args.workers or default_workers()
    stats = Store.for_project(project).stats()
    print(format_table(["serving", ""], [
        ["project", str(project.root)],
        ["items", stats["items"]],
        ["classified", stats["items_classified"]],
        ["model", f"{model}" + ("" if model_paths(model)[0].is_file() else " (missing: uploads answer 503)")],
        ["mode", "read-write" if args.allow_writes else "read-only"],
        ["address", f"http://{host}:{port}/"],
        ["answers Host", ", ".join(options["allowed_hosts"])],
        ["workers", workers],
    ]))
    warning = store_warning(Store.for_project(project).engine.dialect.name, args.workers, stats["items"])
    if warning:
        print(warning)
    serve(project.root, model, host=host, port=port, workers=workers, **options)
    return 0
