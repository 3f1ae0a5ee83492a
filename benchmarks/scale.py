"""The scale section: muses' commands on 10k / 100k (and 1M) synthetic records, and how they grow.

    python -m benchmarks.scale                      # 10k and 100k records, SQLite; table in results/
    python -m benchmarks.scale --million            # 10k, 100k and 1M (about half an hour)
    python -m benchmarks.scale --postgres           # the same on PostgreSQL: a throwaway cluster, one database per size
    python -m benchmarks.scale --store-url 'postgresql+psycopg://localhost/muses_scale_{size}'
    python -m benchmarks.scale --search-only --postgres  # import and the search probes only
    python -m benchmarks.scale --search-only --sizes 1000000 --workdir DIR  # keep the projects to probe again
    python -m benchmarks.scale --ray 2000           # generate-images, classify, label-issues: local vs Ray, 1 vs 2 workers

Each command runs in its own process (benchmarks.run.run_child: wall time and that process's
peak RSS from os.wait4). Per size: import records/s, labeling (label-preview) records/s,
search (a visitor's words and a registrar's selective searches) and browse p95 latency,
`muses items` / `muses stats` time, the naive export (its photos marked usable first, as
generate-images would), peak RSS of each. The last
table says how each figure grows from the smallest to the largest size: time per record and
memory should stay flat, command times at most linear. ``--store-url`` puts each size in its
own database (``{size}`` in the URL is replaced by the record count; the databases must be empty);
``--postgres`` starts a PostgreSQL cluster of its own (muses/testing/postgres.py: a unix socket in a
temporary folder), makes one database per size in it and removes the cluster at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from muses.testing import postgres
from benchmarks.run import RESULTS, ChildRun, run_child
from benchmarks.synthetic import generate
from muses.settings import STORE_URL_ENV

DEFAULT_SIZES = (10_000, 100_000)
MILLION = 1_000_000
# Searches as a visitor types them into the collection page (exact total, facet counts, first
# page): a name, a year, an object and its subject (chosen at 10k records, where each is under 1 %)...
QUERIES = ("cosimo houdon", "1734", "satyr cameo", "bearded man medal", "floral scrolls plate", "lion head pendant",
           "élisabeth vanderbilt", "fragment krater", "pompadour 1750", "oinochoe youth")
# At a million records those find 0.03-4.5 % of the records each (the synthetic vocabulary is
# small); a registrar or curator searching a large catalog asks for far fewer: an object number
# (which must land on its object first; S512.345 exists from 512,346 records on), a maker (about
# 200 records at 1M), a maker with a word of the title, a rare title: each <= 0.1 % of the records.
SELECTIVE = ("S7.345", "S512.345", "Maker 4123", "Maker 4123 lekythos", "Maker 2308 satyr", '"vase of marie medici"',
             "giuseppe borghese 1605")
# ... and words a tenth to a fifth of the records hold (a medium, a common object), whose totals
# must be exact too, within 1 s.
COMMON = ("marble", "watercolour", "cameo", "bust")
_OBJECT_NUMBER = re.compile(r"S\d+\.\d+")  # the synthetic records' accession numbers
PROBE_REPEAT = 5  # rounds of the queries / pages; p95 over all of them
PROBE_BUDGET_S = 60.0  # a probe stops sampling after this long (a slow page at 1M would take hours)
EXPORT_IMAGES = 100  # --max-images of the export: the labeling pass is measured, not copying photos
FLAT = 1.5  # a per-record or fixed-cost figure that grows less than this from the smallest size is "flat"


@dataclass(frozen=True)
class Figure:
    """One measured command at one size."""

    what: str
    seconds: float
    peak_mb: float
    value: float | None = None  # records/s, or a p95 in ms
    unit: str = ""
    note: str = ""  # what the figure was measured on (the searches' exact totals)


def _muses(project: Path, *args: str) -> ChildRun:
    run = run_child(["-m", "muses", *args, "--project", str(project)])
    if run.returncode != 0:
        raise RuntimeError(f"muses {args[0]} failed ({run.returncode}): {run.output.strip()[-400:]}")
    return run


def _probe(project: Path, kind: str) -> tuple[ChildRun, float, str]:
    run = run_child(["-m", "benchmarks.scale", "--probe", kind, str(project)])
    if run.returncode != 0:
        raise RuntimeError(f"{kind} probe failed: {run.output.strip()[-400:]}")
    answer = json.loads(run.output.strip().splitlines()[-1])
    return run, answer["ms"], answer["note"]


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


def _fresh_client(project: Path):
    """The web app on ``project`` with nothing remembered between requests: every search is
    counted and faceted anew, as a visitor's first one is."""
    from fastapi.testclient import TestClient

    from muses.web.app import create_app

    client = TestClient(create_app(project))
    client.app.state.muses.view.memo_size = 0
    return client


def _timed_get(client, url: str, params: dict | None = None) -> tuple[float, dict]:
    start = time.perf_counter()
    r = client.get(url, params=params)
    r.raise_for_status()
    return (time.perf_counter() - start) * 1000, r.json()


def _searches(project: Path, queries: tuple[str, ...], repeat: int, url: str = "/api/items") -> tuple[list[float], str]:
    """ms of each search for ``queries`` (``repeat`` rounds, at ``url``) and their exact totals; a
    query that looks like an object number must find that object first."""
    client = _fresh_client(project)
    samples, totals = [], {}
    for _ in range(repeat):
        for q in queries:
            ms, body = _timed_get(client, url, {"q": q})
            samples.append(ms)
            totals[q] = body["total"]
            first = body["items"][0]["object_number"] if body.get("items") else None
            if _OBJECT_NUMBER.fullmatch(q) and body["total"] and first != q:
                raise RuntimeError(f"the search for object number {q} lists {first} first")
    return samples, ", ".join(f"{q} {n:,}" for q, n in totals.items())


def probe_search(project: Path) -> tuple[float, str]:
    """p95 ms of the collection page's selective searches (/api/items?q=: exact total, facet
    counts, the first page of best matches), nothing remembered between them."""
    samples, totals = _searches(project, QUERIES, PROBE_REPEAT)
    return _p95(samples), "search totals: " + totals


def probe_selective(project: Path) -> tuple[float, str]:
    """p95 ms of the searches a registrar makes (:data:`SELECTIVE`: each at most 0.1 % of a
    million records), as :func:`probe_search` measures its own."""
    samples, totals = _searches(project, SELECTIVE, PROBE_REPEAT)
    return _p95(samples), "selective search totals: " + totals


def probe_common(project: Path) -> tuple[float, str]:
    """The slowest first answer to a search for words in a large part of the collection: its page
    and exact total (past FACETS_AFTER matches the facets come after, :func:`probe_common_facets`),
    each asked once, nothing remembered."""
    samples, totals = _searches(project, COMMON, 1)
    return max(samples), f"common words, exact totals: {totals}; {_each(samples)}"


def probe_common_facets(project: Path) -> tuple[float, str]:
    """The slowest exact facet counting (/api/facets) of those searches, nothing remembered:
    what the page's script waits for after the page."""
    samples, _ = _searches(project, COMMON, 1, "/api/facets")
    return max(samples), "facets over every match: " + _each(samples)


def _each(samples: list[float]) -> str:
    return ", ".join(f"{q} {ms:,.0f} ms" for q, ms in zip(COMMON, samples))


def probe_first(project: Path) -> tuple[float, str]:
    """The first collection page and the first search a freshly started app serves after the
    import (the indexes are built by the import, not by the page)."""
    client = _fresh_client(project)
    page, _ = _timed_get(client, "/api/items")
    search, _ = _timed_get(client, "/api/items", {"q": "marble bust"})
    return max(page, search), f"first /api/items {page:,.0f} ms, first search {search:,.0f} ms"


def probe_browse(project: Path) -> tuple[float, str]:
    """p95 ms of the browse API: first pages, a deep page, and a naive-label filter."""
    from fastapi.testclient import TestClient

    from muses.web.app import create_app

    client = TestClient(create_app(project))
    urls = ["/api/items", "/api/items?page=2", "/api/items?page=400", "/api/items?naive=bust",
            "/api/items?naive=bust&page=3"]
    client.get(urls[0]).raise_for_status()
    samples: list[float] = []
    for url in urls * PROBE_REPEAT:
        start = time.perf_counter()
        client.get(url).raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
        if sum(samples) > PROBE_BUDGET_S * 1000:
            break
    return _p95(samples), ""


PROBES = {"first page after import": probe_first, "search": probe_search, "selective": probe_selective,
          "common-word search": probe_common, "common-word facets": probe_common_facets, "browse": probe_browse}
SEARCH_PROBES = ("first page after import", "search", "selective", "common-word search", "common-word facets")
_ROWS = {"first page after import": "first page after import", "common-word search": "common-word search",
         "common-word facets": "common-word facets",
         "selective": "selective search p95 (<= 0.1 % of the records)"}  # a table row's name; else "KIND p95"


def measure(size: int, source: Path, work: Path, *, store_url: str | None = None, search_only: bool = False,
            log=print) -> list[Figure]:
    """Import ``size`` records of ``source`` into a fresh project and time the commands on it."""
    project = work / f"project-{size}"
    records = source / f"records-{size}.jsonl"  # beside images/: the records name their photos relative to it
    with (source / "records.jsonl").open(encoding="utf-8") as src, records.open("w", encoding="utf-8") as dst:
        for n, line in enumerate(src):
            if n == size:
                break
            dst.write(line)
    if run_child(["-m", "muses", "init", str(project)]).returncode != 0:
        raise RuntimeError(f"muses init {project} failed")
    with _store_url(store_url.format(size=size) if store_url else None):
        return _measure_commands(project, records, source, size, search_only=search_only, log=log)


@contextmanager
def _store_url(url: str | None):
    """$MUSES_STORE_URL set to ``url`` for the child processes started meanwhile."""
    before = os.environ.get(STORE_URL_ENV)
    if url:
        os.environ[STORE_URL_ENV] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STORE_URL_ENV, None)
        else:
            os.environ[STORE_URL_ENV] = before


def _measure_commands(project: Path, records: Path, source: Path, size: int, *, search_only: bool = False,
                      log=print) -> list[Figure]:
    figures = []
    log(f"  {size:,}: import")
    run = _muses(project, "import", str(records), "--preset", "met-scrapi", "--image-root", str(source))
    # the import ends by building the search and browse indexes: their time is in this figure
    figures.append(Figure("import", run.seconds, run.peak_mb, size / run.seconds, "records/s"))
    if search_only:
        return figures + _probe_figures(project, size, SEARCH_PROBES, log=log)
    log(f"  {size:,}: label-preview")
    run = _muses(project, "label-preview", "--json")
    figures.append(Figure("labeling (label-preview)", run.seconds, run.peak_mb, size / run.seconds, "records/s"))
    for command in ("items", "stats"):
        log(f"  {size:,}: {command}")
        run = _muses(project, command, "--json")
        figures.append(Figure(f"muses {command}", run.seconds, run.peak_mb))
    figures += _probe_figures(project, size, PROBES, log=log)
    log(f"  {size:,}: export-classification-data")
    _as_if_checked(project)
    run = _muses(project, "export-classification-data", "--max-images", str(EXPORT_IMAGES), "--min-items", "1")
    figures.append(Figure(f"export ({EXPORT_IMAGES} photos a class)", run.seconds, run.peak_mb, size / run.seconds,
                          "records/s"))
    return figures


def _probe_figures(project: Path, size: int, kinds, *, log=print) -> list[Figure]:
    figures = []
    for kind in kinds:
        log(f"  {size:,}: {kind} probe")
        run, ms, note = _probe(project, kind)
        what = _ROWS.get(kind, f"{kind} p95")
        figures.append(Figure(what, run.seconds, run.peak_mb, ms, "ms", note))
    return figures


def _as_if_checked(project: Path) -> None:
    """Every photo usable, its original standing in for the ML-size copy: what generate-images
    would make of the synthetic photos (it has its own rows, --ray), so that the export has some."""
    from sqlalchemy import update

    from muses.collection.store import OK, Image, Store
    from muses.settings import Project

    store = Store.for_project(Project.load(project))
    with store.transaction() as s:
        s.execute(update(Image).values(status=OK, stored_path=Image.original))
    store.engine.dispose()


def growth(small: float, large: float, size_ratio: float, *, per_record: bool) -> str:
    """'flat', 'linear' or 'WORSE THAN LINEAR' for a figure from the smallest to the largest size.
    ``per_record`` figures (records/s) should stay flat: their fall is the growth."""
    ratio = (small / large) if per_record else (large / small)
    if ratio <= FLAT:
        return f"flat (x{ratio:.2f})"
    if ratio <= size_ratio * FLAT:
        return f"linear (x{ratio:.1f} for x{size_ratio:.0f} records)"
    return f"WORSE THAN LINEAR (x{ratio:.1f} for x{size_ratio:.0f} records)"


def format_table(results: dict[int, list[Figure]]) -> str:
    sizes = sorted(results)
    lines = ["| what | " + " | ".join(f"{s:,} records" for s in sizes) + " | growth |",
             "| --- | " + " | ".join("---" for _ in sizes) + " | --- |"]
    ratio = sizes[-1] / sizes[0]
    for i, first in enumerate(results[sizes[0]]):
        row = [results[s][i] for s in sizes]
        cells = [f"{f.value:,.1f} {f.unit} ({f.seconds:.1f} s)" if f.value is not None else f"{f.seconds:.2f} s"
                 for f in row]
        if first.unit == "ms":
            trend = growth(row[0].value, row[-1].value, ratio, per_record=False)
        elif first.unit == "records/s":
            trend = growth(row[0].value, row[-1].value, ratio, per_record=True)
        else:
            trend = growth(row[0].seconds, row[-1].seconds, ratio, per_record=False)
        lines.append(f"| {first.what} | " + " | ".join(cells) + f" | time {trend} |")
        lines.append(f"| {first.what}: peak RSS | " + " | ".join(f"{f.peak_mb:,.0f} MB" for f in row)
                     + f" | memory {growth(row[0].peak_mb, row[-1].peak_mb, ratio, per_record=False)} |")
    notes = [f"- {s:,} records: {f.note}" for s in sizes for f in results[s] if f.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def run(sizes: tuple[int, ...], *, store_url: str | None = None, images: int = 2000, workdir: Path | None = None,
        search_only: bool = False, log=print) -> dict[int, list[Figure]]:
    with tempfile.TemporaryDirectory(prefix="muses-scale-") as tmp:
        work = Path(workdir or tmp)
        log(f"generating {max(sizes):,} synthetic records")
        made = generate(work / "synthetic", max(sizes), images=images)
        log(f"  ({made.seconds:.1f} s)")
        return {size: measure(size, work / "synthetic", work, store_url=store_url, search_only=search_only, log=log)
                for size in sizes}


def ray_throughput(photos: int, *, log=print) -> str:
    """generate-images, classify (with embeddings) and feature extraction (label-issues) on
    ``photos`` synthetic photos: this machine vs a Ray cluster started by the command, 1 and 2
    workers (the Ray rows include starting the cluster)."""
    rows = ["| generate-images | photos/s | wall s | driver peak RSS |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="muses-ray-") as tmp:
        work = Path(tmp)
        source = generate(work / "synthetic", photos, images=photos).records.parent
        for engine, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            project = work / f"{engine}-{workers}"
            run_child(["-m", "muses", "init", str(project)])
            _muses(project, "import", str(source / "records.jsonl"), "--preset", "met-scrapi", "--image-root", str(source))
            flags = ["--engine", "ray", "--ray-workers", str(workers)] if engine == "ray" else ["--workers", str(workers)]
            log(f"  generate-images, {engine}, {workers} worker(s)")
            run = _muses(project, "generate-images", *flags)
            rows.append(f"| {engine}, {workers} worker(s) | {photos / run.seconds:,.1f} | {run.seconds:.1f} | {run.peak_mb:,.0f} MB |")
        rows += ["", *_ray_model_rows(project, log=log)]
    return "\n".join(rows)


_RAY_ENGINES = (("local", []), ("ray, 1 worker", ["--engine", "ray", "--ray-workers", "1"]),
                ("ray, 2 workers", ["--engine", "ray", "--ray-workers", "2"]))


def _ray_model_rows(project: Path, *, log=print) -> list[str]:
    """classify (ONNX, probabilities and embeddings from one pass) and label-issues' feature
    extraction (torch, the cache emptied before each run) on the project's usable photos, after
    a one-epoch model is trained on its naive labels (not timed)."""
    import shutil

    from muses.collection.store import USABLE_STATUSES, Image, Store
    from muses.settings import Project
    from sqlalchemy import func, select

    log("  a model to run (export-classification-data, train-model --epochs 1; not timed)")
    _muses(project, "export-classification-data", "--exporter", "naive")
    _muses(project, "train-model", "--epochs", "1", "--no-fine-tuning", "--views", "1")
    with Store.for_project(Project.load(project)).session() as s:
        usable = s.scalar(select(func.count()).select_from(Image).where(Image.status.in_(USABLE_STATUSES)))
    rows = []
    for command, args in (("classify", ["--update-existing"]), ("label-issues", [])):
        rows += [f"| {command} ({usable:,} photos) | photos/s | wall s | driver peak RSS |", "| --- | --- | --- | --- |"]
        for name, flags in _RAY_ENGINES:
            shutil.rmtree(project / "cache", ignore_errors=True)  # label-issues' features are made anew each time
            log(f"  {command}, {name}")
            run = _muses(project, command, *args, *flags)
            rows.append(f"| {name} | {usable / run.seconds:,.1f} | {run.seconds:.1f} | {run.peak_mb:,.0f} MB |")
        rows.append("")
    return rows[:-1]


def store_name(url: str | None) -> str:
    """The database a URL names, for the file name: 'sqlite', 'postgresql'."""
    return url.split(":", 1)[0].split("+", 1)[0] if url else "sqlite"


def machine_note() -> str:
    """The cores and the load they were under: a table measured while other work shared them says so."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    shared = (f"; other processes kept about {load:.1f} of the {cores} cores busy when it started, so its times "
              "are slower than on a quiet machine") if load >= 0.5 else ""
    return f"{cores} CPU cores{shared}"


def run_on_postgres(sizes: tuple[int, ...], *, images: int, search_only: bool = False, workdir: Path | None = None,
                    log=print) -> dict[int, list[Figure]]:
    """:func:`run` on a throwaway PostgreSQL cluster, one database per size."""
    why = postgres.missing()
    if why:
        raise SystemExit(f"--postgres: {why}")
    with postgres.start_cluster() as cluster:
        for size in sizes:
            cluster.create_database(f"muses_scale_{size}")
        log(f"PostgreSQL cluster in {cluster.root}")
        return run(sizes, store_url=cluster.url("muses_scale_{size}"), images=images, search_only=search_only,
                   workdir=workdir, log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="record counts")
    parser.add_argument("--million", action="store_true", help="add the 1,000,000-record size")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store-url", help="a database URL per size ({size} is replaced); default: SQLite files")
    where.add_argument("--postgres", action="store_true",
                       help="on a throwaway PostgreSQL cluster this command starts and removes")
    parser.add_argument("--images", type=int, default=2000, help="distinct synthetic photos (default 2000)")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR")
    parser.add_argument("--search-only", action="store_true",
                        help="only import and the search probes (first page, selective and common-word searches)")
    parser.add_argument("--ray", type=int, metavar="PHOTOS", help="only the Ray throughput rows, on PHOTOS photos")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="keep the synthetic records and the projects here (default: a temporary folder)")
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "PROJECT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        ms, note = PROBES[args.probe[0]](Path(args.probe[1]))
        print(json.dumps({"ms": ms, "note": note}))
        return 0
    sizes = tuple(sorted(set(args.sizes) | ({MILLION} if args.million else set())))
    started = time.perf_counter()
    machine = machine_note()
    if args.ray:
        table, sizes, store = ray_throughput(args.ray), (args.ray,), "ray"
    elif args.postgres:
        table, store = format_table(run_on_postgres(sizes, images=args.images, search_only=args.search_only,
                                                     workdir=args.workdir)), "postgresql"
    else:
        table = format_table(run(sizes, store_url=args.store_url, images=args.images, search_only=args.search_only,
                                 workdir=args.workdir))
        store = store_name(args.store_url)
    text = (f"# muses scale bench, {dt.date.today().isoformat()} ({store})\n\n"
            f"whole run {time.perf_counter() - started:.0f} s; each command in its own process; {machine}\n\n{table}\n")
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    kind = "-search" if args.search_only else ""
    out = args.results / f"scale{kind}-{dt.date.today().isoformat()}-{store}-{max(sizes)}.md"
    out.write_text(text, encoding="utf-8")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
