"""`muses import`, `muses generate-images`, `muses items` and `muses stats`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from muses.cli import UsageError, command_parser, format_table, positive
from muses.cli.engines import add_compute_args, compute_from_args
from muses.settings import find_project

IMPORT_EXAMPLES = """\
  muses import records.jsonl --preset met-scrapi          # the Met's scrAPI records
  muses import export.csv --map title=Title --map object_type=Classification --map image=Photo
  muses import objects.json --format json --source "main catalog"
  muses import export.csv --image-root /srv/photos   # photos named by absolute paths there

Our fields: id, title, object_type, material, period, description, image. A key of the
same name is used unless --map (or --preset) names another. Image paths are taken relative
to the file and must lie inside its folder, an --image-root or [images] roots in muses.toml;
others are refused and listed (the record imports without them). http(s) URLs are kept and
fetched by generate-images only with [images] allow_network. Re-importing updates records by
id. Bad lines are skipped and listed with their numbers; the command fails (exit 1) when
fewer than half of the records could be imported.
"""
GENERATE_EXAMPLES = """\
  muses generate-images                  # new and changed photos only; resumes after Ctrl-C
  muses generate-images --workers 2 --max-side 384
  muses generate-images --force          # check every photo again
  muses generate-images --engine ray --address auto   # on a Ray cluster (photos on a shared disk)
  muses generate-images --allow-private-urls   # photos served on your own network

Writes images/<xx>/<sha256>-<side>.jpg and images/report.json. Problem photos (unreadable,
empty, truncated, blank, too large, ...) are excluded from datasets and listed.
"""
ITEMS_EXAMPLES = """\
  muses items                      # the first 50 items
  muses items --problems --limit 0 # every item with a problem photo
  muses items --json > items.json
"""
STATS_EXAMPLES = """\
  muses stats
  muses stats --json
"""
LISTED = 10  # problem lines printed; the report files hold them all


def register(subparsers) -> None:
    from muses.collection.importers import PRESETS, available_formats

    p = command_parser(subparsers, "import", help="import (or update) catalog records from a CSV, JSON or JSON Lines export",
                       examples=IMPORT_EXAMPLES)
    p.add_argument("file", type=Path, help="the export file")
    p.add_argument("--format", choices=available_formats(), help="file format (default: from the extension)")
    p.add_argument("--map", action="append", default=[], metavar="OURS=THEIRS",
                   help="take our field from the export's key THEIRS (repeatable)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a known export's field mapping")
    p.add_argument("--source", metavar="NAME", help="source name stored on each item (default: the file name)")
    p.add_argument("--encoding", default="utf-8-sig", metavar="NAME",
                   help="the file's text encoding, e.g. cp1252 (default: UTF-8, a byte-order mark skipped)")
    p.add_argument("--batch-size", type=positive(), default=500, metavar="N", help="records per transaction (default 500)")
    p.add_argument("--image-root", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder image paths may point into, besides the file's own (repeatable)")
    p.set_defaults(func=run_import)

    p = command_parser(subparsers, "generate-images",
                       help="check every photo and write its ML-size copy (problems are listed and excluded)",
                       examples=GENERATE_EXAMPLES)
    p.add_argument("--force", action="store_true", help="check photos already done again")
    p.add_argument("--workers", type=int, metavar="N", help="processes; 0 = one per CPU core (default: muses.toml)")
    p.add_argument("--max-side", type=positive(), metavar="N", help="long side of the copies in pixels (default: muses.toml, 256)")
    add_compute_args(p)
    p.add_argument("--allow-private-urls", action="store_true",
                   help="also fetch photo URLs on loopback, link-local and private addresses")
    p.set_defaults(func=run_generate)

    p = command_parser(subparsers, "items", help="list items with their photos' state and top class", examples=ITEMS_EXAMPLES)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="items shown; 0 = all (default 50)")
    p.add_argument("--problems", action="store_true", help="only items with a problem photo or no usable photo")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_items)

    p = command_parser(subparsers, "stats", help="counts of items, photos by status and problems by category",
                       examples=STATS_EXAMPLES)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run_stats)


def _progress_bar(total: int | None, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _image_roots(args, project) -> list[Path]:
    """--image-root folders (from the current folder) and [images] roots (from the project folder)."""
    return [*args.image_root, *project.image_roots]


def _print_notes(report) -> None:
    hidden = 0
    for notes, template in ((report.skipped, "  line {}: skipped, {}"), (report.refused_images, "  line {}: {}"),
                            (report.warnings, "  line {}: warning: {}"), (report.duplicates, "  line {}: {}")):
        for note in notes[:LISTED]:
            print(template.format(note.line, note.reason))
        hidden += max(0, len(notes) - LISTED)
    if hidden:
        print(f"  ... {hidden} more lines: see import-report.json")


def _import_failed(report) -> str:
    """Why an import counts as failed (nothing, or under half of the records, imported), or ""."""
    read = report.imported + len(report.skipped)
    if report.imported == 0:
        return f"nothing imported: all {read} records were skipped" if read else "the file holds no records"
    if report.imported < read / 2:
        return (f"only {report.imported} of {read} records imported (fewer than half); the rest were skipped: "
                "check the field mapping (--map, --preset) and the skipped lines above")
    return ""


def run_import(args) -> int:
    from muses.collection.importers import ImportFormatError, build_mapping, guess_format, import_records
    from muses.collection.store import Store

    project = find_project(args.project)
    fmt = args.format or guess_format(args.file)
    mapping = build_mapping(args.preset, args.map)
    if not args.file.is_file():
        raise ImportFormatError(f"{args.file}: no such file")
    store = Store.for_project(project)
    total = None if fmt == "json" else _count_lines(args.file)
    with _progress_bar(total, "import", "line") as bar:
        report = import_records(store, args.file, format=fmt, mapping=mapping, source=args.source,
                                encoding=args.encoding, batch_size=args.batch_size,
                                roots=_image_roots(args, project), progress=bar.update)
    _print_notes(report)
    for ours, theirs in report.unmapped.items():
        print(f"  warning: no record has the key {theirs!r}, so {ours} is empty; --map {ours}=KEY takes it from another")
    out = project.root / "import-report.json"
    out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    rate = report.imported / report.seconds if report.seconds else 0
    print(format_table(["records", "count"], [
        ["new", report.new], ["updated", report.updated], ["skipped (bad lines)", len(report.skipped)],
        ["duplicate ids in the file", len(report.duplicates)], ["photos added", report.images_added],
        ["photos refused (outside the image folders)", len(report.refused_images)],
    ]))
    print(f"{report.imported} records in {report.seconds:.1f} s ({rate:,.0f}/s) from {args.file} ({fmt}); "
          f"report: {out}")
    if failed := _import_failed(report):
        print(f"muses import: {failed}", file=sys.stderr)
        return 1
    print("next: muses generate-images")
    return 0


def run_generate(args) -> int:
    from muses.collection.images import generate_images

    project = find_project(args.project)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _progress_bar(total, "generate-images", "image")
        bar.update(1)

    try:
        report = generate_images(project, force=args.force, workers=args.workers, max_side=args.max_side,
                                 allow_private_urls=args.allow_private_urls, progress=progress,
                                 compute=compute_from_args(args, project))
    finally:
        if bar is not None:
            bar.close()
    for entry in [f for f in report.problem_files if f["status"] == "problem"][:LISTED]:
        print(f"  {entry['original']}: {entry['problem']}")
    rows = [["checked now", report.processed], ["unchanged (skipped)", report.unchanged]]
    rows += [[f"  {status}", n] for status, n in sorted(report.by_status.items())]
    rows += [[f"  problem: {category}", n] for category, n in report.problems.most_common()]
    if report.waiting_for_network:
        rows.append(["URLs waiting ([images] allow_network = false)", report.waiting_for_network])
    print(format_table(["photos", "count"], rows))
    rate = report.processed / report.seconds if report.seconds else 0
    print(f"{report.seconds:.1f} s, {rate:.0f} photos/s on {report.workers} worker(s); report: {report.report_path}")
    return 0


def _item_row(item) -> dict:
    top = (item.classification or {}).get("classes") or [{}]
    usable = len(item.usable_images)
    return {"id": item.id, "title": item.title, "object_type": item.primary_object_type,
            "usable_images": usable, "problem_images": len(item.images) - usable,
            "problems": [im.problem for im in item.images if im.status == "problem"],
            "top_class": top[0].get("name"), "probability": top[0].get("probability")}


def run_items(args) -> int:
    from muses.collection.store import Store

    if args.limit < 0:
        raise UsageError(f"--limit must be 0 (all) or more, got {args.limit}")
    store = Store.for_project(find_project(args.project))
    rows, more = [], 0
    for item in store.items():
        row = _item_row(item)
        if args.problems and row["problem_images"] == 0 and row["usable_images"] > 0:
            continue
        if args.limit and len(rows) >= args.limit:
            more += 1
            continue
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    table = [[r["id"], r["title"][:40], r["object_type"][:20], r["usable_images"], r["problem_images"],
              r["top_class"] if r["top_class"] is None else f"{r['top_class']} {r['probability']:.2f}"]
             for r in rows]
    print(format_table(["id", "title", "object type", "usable", "problem", "top class"], table))
    if more:
        print(f"... {more} more (--limit 0 shows all)")
    return 0


def run_stats(args) -> int:
    from muses.collection.store import Store

    stats = Store.for_project(find_project(args.project)).stats()
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return 0
    print(format_table(["collection", "count"], [
        ["items", stats["items"]], ["without photos", stats["items_without_images"]],
        ["classified", stats["items_classified"]],
    ]))
    print()
    print(format_table(["photos", "count"], [["all", stats["images"]]] + [
        [status, n] for status, n in sorted(stats["images_by_status"].items())]))
    if stats["problem_categories"]:
        print()
        print(format_table(["problem", "photos"], [[c, n] for c, n in stats["problem_categories"].items()]))
    return 0
