"""The web app under load: a bounded local load generator against a real `muses serve`.

    python -m benchmarks.web_load                      # the bundled demo, 2,000 requests per mix, 50 clients
    python -m benchmarks.web_load --project PATH -n 4000 -c 50 --mix browse item --workers 2
    python -m benchmarks.web_load --records /work/shared/data/met-sample --model models/m.safetensors
    python -m benchmarks.web_load --store-url postgresql+psycopg://... --workers 4 --mix api
    python -m benchmarks.web_load --project PATH --mix catalog -n 4000 -c 50   # searches, facets, object pages
    python -m benchmarks.web_load --project PATH --mix catalog --by-kind        # and each kind's latencies
    python -m benchmarks.web_load --synthetic 70000 --postgres --mix catalog    # 70,000 synthetic records, PostgreSQL

It starts `muses serve` on 127.0.0.1 on a free port (over --project, or over a temporary project
built from --records: import, generate-images, and classify when --model is given; or from
--synthetic N records, imported only), on a throwaway PostgreSQL cluster with --postgres, sends N
requests per mix from C concurrent clients, stops the server and prints requests/s, p50, p95,
p99 and errors per mix. Every request asks for what a curator would: random filters, sorts,
searches and pages; random items; their similar objects; random photos.

The clients share the machine with the server, so they must cost little: each is one keep-alive
HTTP/1.1 connection on asyncio, its answers parsed by httptools (C, the parser uvicorn uses)
and read to the last byte. A general client (httpx) spent more CPU per request than the page
it asked for.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from muses.testing.net import Server

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "met-demo"
DEFINITIONS = REPO / "examples" / "definitions.toml"
TARGET_RATE, TARGET_P95_MS = 200.0, 300.0  # browse and item pages, 50 clients (issue 13)
TIMEOUT_S = 60  # one request
SEARCH_WORDS = ("bust", "vase", "portrait", "silver", "terracotta", "bronze", "woman", "print", "marble", "head")
# What a visitor types into the collection's search box: names, a year, objects with their subject, spellings.
CATALOG_SEARCHES = ("houdon", "cosimo medici", "1750", "satyr cameo", "bearded man medal", "watercolour miniature",
                    "marble bust woman", "oinochoe", "portrait", "vanderbilt", "grey", "jewellery earring")
# The catalog mix's goal (issue 19): a mixed load of searches, facets and object pages.
CATALOG_RATE, CATALOG_P99_MS = 200.0, 1000.0
SYNTHETIC_PHOTOS = 200  # distinct photos of a --synthetic collection


@dataclass(frozen=True)
class Collection:
    """What the requests are drawn from: item ids, stored image ids, classes."""

    ids: list[str]
    image_ids: list[int]
    predicted: list[str]
    naive: list[str]
    materials: list[str]  # the catalog's media, most frequent first (the material facet's values)


@dataclass(frozen=True)
class Result:
    mix: str
    requests: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    error_kinds: dict[str, int]  # HTTP status and the start of the answer, or the client's error -> count
    urls: list[str] = field(default_factory=list)  # what was asked, in the order of latencies_ms

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return _percentile(self.latencies_ms, q)

    def by_kind(self) -> dict[str, list[float]]:
        """The latencies by what was asked for (:func:`kind_of`)."""
        kinds: dict[str, list[float]] = {}
        for url, ms in zip(self.urls, self.latencies_ms):
            kinds.setdefault(kind_of(url), []).append(ms)
        return dict(sorted(kinds.items()))


def _percentile(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def kind_of(url: str) -> str:
    """What a request asked for: an object page, a search (with a facet), a facet view, ...; HTML or JSON."""
    path, _, query = url.partition("?")
    api = path.startswith("/api/")
    path = path.removeprefix("/api")
    if path.startswith("/items/"):
        kind = "object page"
    elif path == "/items":
        words = "q=" in query
        facet = any(f"{name}=" in query for name in ("material", "century", "predicted", "naive", "disagree"))
        kind = "search + facet" if words and facet else "search" if words else "facet view" if facet else "listing"
    else:
        kind = path.strip("/").split("/")[0] or "/"
    return f"{kind}, {'JSON' if api else 'HTML'}"


def collection_of(project_root: Path) -> Collection:
    from sqlalchemy import func, select

    from muses.collection.store import USABLE_STATUSES, Image, Item, Store
    from muses.labeling.definitions import load_definitions
    from muses.predictions import top_class
    from muses.settings import Project

    project = Project.load(project_root)
    with Store.for_project(project).session() as s:
        rows = s.execute(select(Item.id, Item.classification)).all()
        materials = list(s.scalars(select(Item.material).where(Item.material != "").group_by(Item.material)
                                   .order_by(func.count().desc()).limit(50)))
        image_ids = list(s.scalars(select(Image.id).where(Image.status.in_(USABLE_STATUSES), Image.stored_path.is_not(None))))
    predicted = sorted({c for c in (top_class(r.classification) for r in rows) if c})
    definitions = project.definitions_path
    naive = load_definitions(definitions).class_names if definitions.is_file() else []
    return Collection([r.id for r in rows], image_ids, predicted, [*naive, "(none)"], materials)


# -- what a curator asks for ---------------------------------------------------------------------
def browse_url(c: Collection, rng: random.Random, prefix: str = "/items") -> str:
    params: dict[str, str | int] = {}
    if c.predicted and rng.random() < 0.3:
        params["predicted"] = rng.choice(c.predicted)
    if rng.random() < 0.3:
        params["naive"] = rng.choice(c.naive)
    if rng.random() < 0.15:
        params["disagree"] = "true"
    if rng.random() < 0.3:
        params["q"] = rng.choice(SEARCH_WORDS)
    if rng.random() < 0.5:
        params["sort"] = rng.choice(("number", "confidence", "doubt", "disagreement"))
    params["page"] = rng.choice((1, 1, 1, 2, 3, 5, 10))
    return prefix + "?" + urlencode(params)


def catalog_url(c: Collection, rng: random.Random) -> str:
    """A search (with a facet now and then), a facet of the whole collection, or an object page."""
    kind = rng.random()
    if kind < 0.35:
        return item_url(c, rng)
    params: dict[str, str | int] = {}
    if kind < 0.75:
        params["q"] = rng.choice(CATALOG_SEARCHES)
    if kind >= 0.75 or rng.random() < 0.2:
        if c.materials and rng.random() < 0.5:
            params["material"] = rng.choice(c.materials)
        else:
            params["century"] = rng.choice((16, 17, 18, 19))
    params["page"] = rng.choice((1, 1, 1, 2, 3))
    return rng.choice(("/items", "/api/items")) + "?" + urlencode(params)


def item_url(c: Collection, rng: random.Random, prefix: str = "/items/") -> str:
    return prefix + quote(rng.choice(c.ids), safe="")


def similar_url(c: Collection, rng: random.Random) -> str:
    """What an item page's script asks for once the page is shown."""
    return "/api/similar?" + urlencode({"ids": rng.choice(c.ids), "limit": 12})


def image_url(c: Collection, rng: random.Random) -> str:
    return f"/images/{rng.choice(c.image_ids)}"


def api_url(c: Collection, rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return browse_url(c, rng, "/api/items")
    return item_url(c, rng, "/api/items/") if kind < 0.8 else similar_url(c, rng)


MIXES: dict[str, Callable[[Collection, random.Random], str]] = {
    "browse": browse_url,
    "item": item_url,
    "similar": similar_url,
    "api": api_url,
    "images": image_url,
    "mixed": lambda c, rng: rng.choice((browse_url, item_url, api_url, image_url))(c, rng),
    "catalog": catalog_url,
}


# -- the clients ---------------------------------------------------------------------------------
class ClientError(Exception):
    """The connection failed or the answer was not HTTP."""


class _Answer:
    """httptools' callbacks: the status and the end of one answer."""

    def __init__(self) -> None:
        self.complete = False
        self.body = bytearray()
        self.keep_alive = True

    def on_body(self, body: bytes) -> None:
        if len(self.body) < 200:  # enough to say what an error was
            self.body += body[:200]

    def on_message_complete(self) -> None:
        self.complete = True


class Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads each answer to its end."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, the first bytes of the body). A reused connection the server closed while it
        sat idle is opened again once, as browsers do."""
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(path)
            except (ConnectionError, ClientError) as exc:
                self.close()
                if fresh or attempt == 2:
                    raise ClientError(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _exchange(self, path: str) -> tuple[int, bytes]:
        import httptools

        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.complete:
            data = await self.reader.read(65536)
            if not data:
                raise ClientError("the server closed the connection")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise ClientError(f"not HTTP: {exc}") from exc
        if not parser.should_keep_alive():
            self.close()
        return parser.get_status_code(), bytes(answer.body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(base: str, urls: list[str], concurrency: int) -> tuple[float, list[tuple[str, float]], Counter]:
    where = urlsplit(base)
    todo: Iterator[str] = iter(urls)
    latencies: list[tuple[str, float]] = []  # (url, ms) in the order they were answered
    errors: Counter = Counter()  # what went wrong: HTTP status or the client's error

    async def client() -> None:
        connection = Connection(where.hostname, where.port)
        try:
            for url in todo:
                start = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(connection.get(url), TIMEOUT_S)
                    if status >= 400:
                        errors[f"HTTP {status}: {body[:120].decode(errors='replace')}"] += 1
                except (ClientError, OSError, asyncio.TimeoutError) as exc:
                    connection.close()
                    errors[type(exc).__name__ if not isinstance(exc, ClientError) else str(exc)[:120]] += 1
                latencies.append((url, (time.perf_counter() - start) * 1000))
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, errors


def measure(base: str, c: Collection, mix: str, *, requests: int, concurrency: int, seed: int = 0) -> Result:
    """``requests`` of ``mix`` from ``concurrency`` clients, after a warm-up of a twentieth as many."""
    rng = random.Random(seed)
    urls = [MIXES[mix](c, rng) for _ in range(requests)]
    asyncio.run(_load(base, urls[: max(concurrency, requests // 20)], concurrency))  # warm-up: caches, connections
    seconds, answered, errors = asyncio.run(_load(base, urls, concurrency))
    return Result(mix, requests, concurrency, seconds, [ms for _, ms in answered], sum(errors.values()), dict(errors),
                  [url for url, _ in answered])


def build_project(records: Path, root: Path, model: Path | None = None, *, check_photos: bool = True) -> Path:
    """A project over ``records`` (a folder with records.jsonl and images/): import,
    generate-images (unless not ``check_photos``: the photos stay unchecked, as right after an
    import), and classify with ``model`` when given. The store is $MUSES_STORE_URL's when set."""
    from muses.collection.images import generate_images
    from muses.collection.importers import import_records
    from muses.collection.store import Store
    from muses.search import refresh_project_indexes
    from muses.settings import Project, init_project

    init_project(root)
    shutil.copy(DEFINITIONS, root / "definitions.toml")
    project = Project.load(root)
    store = Store.for_project(project)
    import_records(store, records / "records.jsonl", preset="met-scrapi", roots=[records])
    if check_photos:
        generate_images(project, store=store, workers=0)
    if model is not None:
        from muses.classify import classify_collection

        classify_collection(project, model_path=model)
    refresh_project_indexes(project, store)  # as the commands do: no page builds an index
    return root


def run(project_root: Path, *, mixes: list[str], requests: int, concurrency: int, workers: int | None = None,
        store_url: str | None = None, serve_args: list[str] | None = None,
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> list[Result]:
    """Each of ``mixes`` against one `muses serve` of ``project_root`` (``workers`` processes,
    default `muses serve`'s; the store at ``store_url``, default the project's)."""
    if store_url:
        os.environ["MUSES_STORE_URL"] = store_url  # collection_of reads the same store as the server
    c = collection_of(project_root)
    results = []
    with Server(project_root, workers=workers, store_url=store_url, extra=serve_args) as server:
        for mix in mixes:
            log(f"  web load: {mix}, {requests} requests, {concurrency} clients")
            results.append(measure(server.base, c, mix, requests=requests, concurrency=concurrency))
    return results


def meets_target(result: Result) -> bool | None:
    """The issues' targets: browse and item pages (>= 200/s, p95 <= 300 ms), the catalog mix
    (>= 200/s, p99 <= 1 s); the other mixes are reported only."""
    if result.mix == "catalog":
        return result.rate >= CATALOG_RATE and result.percentile(0.99) <= CATALOG_P99_MS and result.errors == 0
    if result.mix not in ("browse", "item"):
        return None
    return result.rate >= TARGET_RATE and result.percentile(0.95) <= TARGET_P95_MS and result.errors == 0


def table(results: list[Result]) -> str:
    lines = ["| mix | requests | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | target (>= 200/s; p95 <= 300 ms, catalog: p99 <= 1 s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        met = meets_target(r)
        lines.append(f"| {r.mix} | {r.requests} | {r.concurrency} | {r.rate:,.0f} | {r.percentile(0.5):.0f} | "
                     f"{r.percentile(0.95):.0f} | {r.percentile(0.99):.0f} | {r.errors} | "
                     f"{'' if met is None else 'met' if met else 'NOT met'} |")
    return "\n".join(lines)


def kinds_table(result: Result) -> str:
    """Latency by what was asked for: which requests make the mix's slow end."""
    lines = [f"| {result.mix} mix by request | requests | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for kind, latencies in result.by_kind().items():
        lines.append(f"| {kind} | {len(latencies)} | {_percentile(latencies, 0.5):.0f} | {_percentile(latencies, 0.95):.0f} | "
                     f"{_percentile(latencies, 0.99):.0f} | {max(latencies):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, help="serve this project (default: one built from --records)")
    p.add_argument("--records", type=Path, default=DEMO, help="records.jsonl + images/ to build a project from (default: the demo)")
    p.add_argument("--model", type=Path, help="classify the built project with this model first (filters get predicted classes)")
    p.add_argument("--synthetic", type=int, metavar="N",
                   help="build the project from N synthetic Met-shaped records (benchmarks/synthetic.py; photos unchecked)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store-url", help="the store (SQLAlchemy URL) to build and serve from (default: the project's)")
    where.add_argument("--postgres", action="store_true", help="build and serve from a throwaway PostgreSQL cluster")
    p.add_argument("--workers", type=int, help="server processes (default: `muses serve`'s, one per core)")
    p.add_argument("-n", "--requests", type=int, default=2000, help="requests per mix (default 2000)")
    p.add_argument("-c", "--concurrency", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--mix", nargs="+", choices=list(MIXES), default=list(MIXES), help="which mixes (default: all)")
    p.add_argument("--by-kind", action="store_true", help="also the latencies of each kind of request (object pages, searches, ...)")
    p.add_argument("--serve-arg", action="append", default=[], help="passed on to `muses serve` (repeat)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or (args.workers is not None and args.workers < 1):
        p.error("--requests, --concurrency and --workers must be >= 1")
    with contextlib.ExitStack() as stack:
        if args.postgres:
            from muses.testing import postgres

            if why := postgres.missing():
                p.error(f"--postgres: {why}")
            args.store_url = stack.enter_context(postgres.start_cluster()).create_database("muses_web_load")
        if args.store_url:
            os.environ["MUSES_STORE_URL"] = args.store_url  # build_project imports into it
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="muses-web-load-")))
        if args.project:
            root = args.project
        elif args.synthetic:
            from benchmarks.synthetic import generate

            made = generate(tmp / "synthetic", args.synthetic, images=SYNTHETIC_PHOTOS)
            print(f"importing {made.count:,} synthetic records", file=sys.stderr, flush=True)
            root = build_project(made.records.parent, tmp / "project", check_photos=False)
        else:
            root = build_project(args.records, tmp / "project", args.model)
        results = run(root, mixes=args.mix, requests=args.requests, concurrency=args.concurrency,
                      workers=args.workers, store_url=args.store_url, serve_args=args.serve_arg)
    print(table(results))
    for r in results:
        if args.by_kind:
            print("\n" + kinds_table(r))
    for r in results:
        for kind, n in r.error_kinds.items():
            print(f"{r.mix}: {n} x {kind}")
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
