"""The web app under load: a bounded local load generator against a real `muses serve`.

    python -m benchmarks.web_load                      # the bundled demo, 2,000 requests per mix, 50 clients
    python -m benchmarks.web_load --project PATH -n 4000 -c 50 --mix browse item
    python -m benchmarks.web_load --records /work/shared/data/met-sample --model models/m.safetensors

It starts `muses serve` on 127.0.0.1 on a free port (over --project, or over a temporary project
built from --records: import, generate-images, and classify when --model is given), sends N
requests per mix from C concurrent clients (httpx, asyncio, keep-alive connections), stops the
server and prints requests/s, p50, p95 and errors per mix. Every request asks for a page a
curator would: random filters, sorts, searches and pages; random items; random photos.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "met-demo"
DEFINITIONS = REPO / "examples" / "definitions.toml"
TARGET_RATE, TARGET_P95_MS = 200.0, 300.0  # browse and item pages, 50 clients (issue 13)
STARTUP_S = 300  # a loaded machine takes minutes to start worker processes (each imports the app)
SEARCH_WORDS = ("bust", "vase", "portrait", "silver", "terracotta", "bronze", "woman", "print", "marble", "head")


@dataclass(frozen=True)
class Collection:
    """What the requests are drawn from: item ids, stored image ids, classes."""

    ids: list[str]
    image_ids: list[int]
    predicted: list[str]
    naive: list[str]


@dataclass(frozen=True)
class Result:
    mix: str
    requests: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    error_kinds: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def collection_of(project_root: Path) -> Collection:
    from sqlalchemy import select

    from muses.collection.store import USABLE_STATUSES, Image, Item, Store
    from muses.predictions import top_class
    from muses.settings import Project

    store = Store.for_project(Project.load(project_root))
    with store.session() as s:
        rows = s.execute(select(Item.id, Item.classification)).all()
        image_ids = list(s.scalars(select(Image.id).where(Image.status.in_(USABLE_STATUSES), Image.stored_path.is_not(None))))
    predicted = sorted({c for c in (top_class(r.classification) for r in rows) if c})
    from muses.labeling.definitions import load_definitions

    definitions = Project.load(project_root).definitions_path
    naive = load_definitions(definitions).class_names if definitions.is_file() else []
    return Collection([r.id for r in rows], image_ids, predicted, [*naive, "(none)"])


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


def item_url(c: Collection, rng: random.Random, prefix: str = "/items/") -> str:
    return prefix + quote(rng.choice(c.ids), safe="")


def image_url(c: Collection, rng: random.Random) -> str:
    return f"/images/{rng.choice(c.image_ids)}"


def api_url(c: Collection, rng: random.Random) -> str:
    return browse_url(c, rng, "/api/items") if rng.random() < 0.5 else item_url(c, rng, "/api/items/")


MIXES: dict[str, Callable[[Collection, random.Random], str]] = {
    "browse": browse_url,
    "item": item_url,
    "api": api_url,
    "images": image_url,
    "mixed": lambda c, rng: rng.choice((browse_url, item_url, api_url, image_url))(c, rng),
}


async def _load(base: str, urls: list[str], concurrency: int) -> tuple[float, list[float], Counter]:
    import httpx

    queue = list(reversed(urls))
    latencies: list[float] = []
    errors: Counter = Counter()  # what went wrong: HTTP status or exception name
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def worker() -> None:
            while queue:
                url = queue.pop()
                start = time.perf_counter()
                try:
                    r = await client.get(url)
                    await r.aread()
                    if r.status_code >= 400:
                        errors[f"HTTP {r.status_code}: {r.text[:120]}"] += 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                latencies.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, errors


def measure(base: str, c: Collection, mix: str, *, requests: int, concurrency: int, seed: int = 0) -> Result:
    rng = random.Random(seed)
    urls = [MIXES[mix](c, rng) for _ in range(requests)]
    asyncio.run(_load(base, urls[: max(concurrency, requests // 20)], concurrency))  # warm-up: caches, connections
    seconds, latencies, errors = asyncio.run(_load(base, urls, concurrency))
    return Result(mix, requests, concurrency, seconds, latencies, sum(errors.values()), dict(errors))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`muses serve` in a child process on a free loopback port; stopped on exit."""

    def __init__(self, project_root: Path, extra: list[str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "muses", "serve", "--project", str(project_root),
                     "--port", str(self.port), *(extra or [])]

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        import httpx

        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"muses serve stopped: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.base + "/items", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"muses serve did not answer within {STARTUP_S} s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def build_project(records: Path, root: Path, model: Path | None = None) -> Path:
    """A project over ``records`` (a folder with records.jsonl and images/): import,
    generate-images, and classify with ``model`` when given."""
    from muses.collection.images import generate_images
    from muses.collection.importers import import_records
    from muses.collection.store import Store
    from muses.settings import Project, init_project

    init_project(root)
    shutil.copy(DEFINITIONS, root / "definitions.toml")
    project = Project.load(root)
    store = Store.for_project(project)
    import_records(store, records / "records.jsonl", preset="met-scrapi", roots=[records])
    generate_images(project, store=store, workers=0)
    if model is not None:
        from muses.classify import classify_collection

        classify_collection(project, model_path=model)
    return root


def run(project_root: Path, *, mixes: list[str], requests: int, concurrency: int, serve_args: list[str] | None = None,
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> list[Result]:
    c = collection_of(project_root)
    results = []
    with Server(project_root, serve_args) as server:
        for mix in mixes:
            log(f"  web load: {mix}, {requests} requests, {concurrency} clients")
            results.append(measure(server.base, c, mix, requests=requests, concurrency=concurrency))
    return results


def meets_target(result: Result) -> bool | None:
    """The issue's target holds for browse and item pages; the other mixes are reported only."""
    if result.mix not in ("browse", "item"):
        return None
    return result.rate >= TARGET_RATE and result.percentile(0.95) <= TARGET_P95_MS and result.errors == 0


def table(results: list[Result]) -> str:
    lines = ["| mix | requests | clients | requests/s | p50 ms | p95 ms | errors | target (>= 200/s, p95 <= 300 ms) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        met = meets_target(r)
        lines.append(f"| {r.mix} | {r.requests} | {r.concurrency} | {r.rate:,.0f} | {r.percentile(0.5):.0f} | "
                     f"{r.percentile(0.95):.0f} | {r.errors} | {'' if met is None else 'met' if met else 'NOT met'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--project", type=Path, help="serve this project (default: one built from --records)")
    p.add_argument("--records", type=Path, default=DEMO, help="records.jsonl + images/ to build a project from (default: the demo)")
    p.add_argument("--model", type=Path, help="classify the built project with this model first (filters get predicted classes)")
    p.add_argument("-n", "--requests", type=int, default=2000, help="requests per mix (default 2000)")
    p.add_argument("-c", "--concurrency", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--mix", nargs="+", choices=list(MIXES), default=list(MIXES), help="which mixes (default: all)")
    p.add_argument("--serve-arg", action="append", default=[], help="passed on to `muses serve` (repeat)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be >= 1")
    with tempfile.TemporaryDirectory(prefix="muses-web-load-") as tmp:
        root = args.project or build_project(args.records, Path(tmp) / "project", args.model)
        results = run(root, mixes=args.mix, requests=args.requests, concurrency=args.concurrency,
                      serve_args=args.serve_arg)
    print(table(results))
    for r in results:
        for kind, n in r.error_kinds.items():
            print(f"{r.mix}: {n} x {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
