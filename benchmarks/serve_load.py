"""A bounded local load test of `muses serve`: N requests, C at a time, against 1 or more workers,
on an SQLite or a PostgreSQL store.

    python -m benchmarks.serve_load --workers 4 --requests 2000 --concurrency 50 \
        [--store-url postgresql+psycopg://...] [--project DIR]

Without --project it makes one from the bundled demo collection (import + generate-images).
The requests mix the JSON API a browsing curator uses: item pages, single items and similar
objects (search). It prints requests/s, latency percentiles and the number of failed requests.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.web_load import free_port

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LoadResult:
    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failures: dict[str, int]  # HTTP status or client error name -> count

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (f"{self.requests} requests, {self.failed} failed, {self.per_second:.0f} req/s, "
                f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"
                + (f" (failures: {self.failures})" if self.failures else ""))


@dataclass
class Server:
    """`muses serve` in its own process group; what it prints goes to ``log``, never to a pipe
    nobody reads while it runs (a full pipe stops the server)."""

    proc: subprocess.Popen
    log: Path

    def stop(self) -> str:
        """Stop the server (and its workers) as Ctrl-C would; returns what it printed."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.log.read_text(errors="replace")

    def wait_until_up(self, base: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server stopped: {self.stop()}")
            try:
                if httpx.get(f"{base}/api/items", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server did not answer within {timeout:g} s: {self.stop()}")


def start_server(project: Path, *, workers: int, port: int, store_url: str | None = None) -> Server:
    env = dict(os.environ, MUSES_PROJECT=str(project))
    if store_url:
        env["MUSES_STORE_URL"] = store_url
    log = project / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "muses", "serve", "--port", str(port), "--workers", str(workers)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Server(proc, log)


def request_paths(item_ids: list[str], n: int, *, seed: int = 0) -> list[str]:
    """Browsing pages, single items and similar objects, in a fixed random order."""
    rng = random.Random(seed)
    pages = max(1, len(item_ids) // 24)
    kinds = [
        lambda: f"/api/items?page={rng.randint(1, pages)}",
        lambda: f"/api/items/{rng.choice(item_ids)}",
        lambda: f"/api/similar?ids={rng.choice(item_ids)}&limit=12",
    ]
    return [rng.choice(kinds)() for _ in range(n)]


async def _load(base: str, paths: list[str], concurrency: int) -> LoadResult:
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    queue = iter(paths)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for path in queue:
            start = time.perf_counter()
            try:
                status = (await client.get(path)).status_code
                if status != 200:
                    failures[str(status)] += 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - start) * 1000)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return LoadResult(len(latencies), sum(failures.values()), seconds, cuts[49], cuts[94], cuts[98], dict(failures))


def run_load(base: str, paths: list[str], *, concurrency: int) -> LoadResult:
    return asyncio.run(_load(base, paths, concurrency))


def demo_project(root: Path, store_url: str | None) -> Path:
    """The bundled demo collection, imported and its images generated."""
    from muses.cli import main

    if store_url:
        os.environ["MUSES_STORE_URL"] = store_url
    project = root / "proj"
    os.environ["MUSES_PROJECT"] = str(project)
    for argv in (["init", str(project)],
                 ["import", str(REPO / "examples/met-demo/records.jsonl"), "--preset", "met-scrapi"],
                 ["generate-images"]):
        if main(argv) != 0:
            raise SystemExit(f"muses {' '.join(argv)} failed")
    shutil.copy(REPO / "examples/definitions.toml", project / "definitions.toml")
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, help="project folder (default: a fresh demo project)")
    parser.add_argument("--store-url", help="store URL (default: the project's)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = args.project or demo_project(Path(tmp), args.store_url)
        from muses.collection.store import Store
        from muses.settings import Project

        store = Store.for_project(Project.load(project))
        item_ids = [item.id for item in store.items()]
        port = free_port()
        server = start_server(project, workers=args.workers, port=port, store_url=args.store_url)
        try:
            base = f"http://127.0.0.1:{port}"
            server.wait_until_up(base)
            run_load(base, request_paths(item_ids, 100, seed=1), concurrency=args.concurrency)  # warm-up
            result = run_load(base, request_paths(item_ids, args.requests), concurrency=args.concurrency)
        finally:
            server.stop()
    print(f"{store.engine.dialect.name}, {args.workers} worker(s), {len(item_ids)} items: {result.line()}")
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
