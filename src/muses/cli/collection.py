"""`muses import`, `muses generate-images`, `muses items` and `muses stats`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from muses.cli import UsageError, command_parser, format_table, positive
from muses.progress import follow, progress_bar
from muses.cli.engines import add_compute_args, compute_from_args
from muses.settings import find_project

IMPORT_EXAMPLES = """\
  muses import records.jsonl --preset met-scrapi          # the Met's scrAPI records
  muses import export.csv --map title=Title --map object_type=Classification --map image=Photo
  muses import objects.json --format json --source "main catalog"
  muses import export.csv --image-root /srv/photos   # photos named by absolute paths there
  muses import excel.csv --split object_type=", " --map object_type=Classification
  muses import export.csv --delimiter ";" --encoding cp1252

Our fields: id (the object number), title, object_type, material, period, description,
image. A column of the same name is used unless --map (or --preset) names another. The
text encoding (UTF-8, else cp1252 as Excel on Windows saves) and a CSV's delimiter (, ; tab |)
are found out and reported; --encoding and --delimiter set them. A cell holding several
object types or photos ("Sculpture, Clay, Busts") is cut into separate values with --split.
Image paths are taken relative to the file and must lie inside its folder, an --image-root or
[images] roots in muses.toml; others are refused and listed (the record imports without
them). http(s) URLs are kept and fetched by generate-images only with [images]
allow_network. Re-importing updates records by id. Bad lines are skipped and listed with
their numbers; the command fails (exit 1) when fewer than half of the records could be
imported.
"""
GENERATE_EXAMPLES = """\
  muses generate-images                  # new and changed photos only; resumes after Ctrl-C
  muses generate-images --workers 2 --max-side 384
  muses generate-images --force          # check every photo again
  muses generate-images --engine ray --address auto   # on a Ray cluster (photos on a shared disk)
  muses generate-images --allow-private-urls   # photos served on your own network

Writes a small working copy of each photo (images/<xx>/<sha256>-<side>.jpg) and
images/report.json. Problem photos (unreadable, empty, truncated, blank, too large, ...) are
left out of training and listed by object number.
"""
ITEMS_EXAMPLES = """\
  muses items                      # the first 50 items
  muses items --problems --all     # every item with a problem photo
  muses items --json --all > items.json
  muses items --jsonl > items.jsonl   # one item per line, every item
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
    p.add_argument("--encoding", metavar="NAME",
                   help="the file's text encoding, e.g. cp1252 or latin-1 (default: UTF-8 if the whole file is, else cp1252)")
    p.add_argument("--delimiter", type=_delimiter, metavar="CHAR",
                   help="what separates a CSV file's cells: , ; | or tab (default: found out from the file)")
    p.add_argument("--split", action="append", default=[], metavar='FIELD="SEP"',
                   help='cut cells of object_type or image into several values at SEP, e.g. object_type=", " (repeatable)')
    p.add_argument("--batch-size", type=positive(), default=500, metavar="N", help="records per transaction (default 500)")
    p.add_argument("--image-root", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder image paths may point into, besides the file's own (repeatable)")
    p.set_defaults(func=run_import)

    p = command_parser(subparsers, "generate-images",
                       help="check every photo and make its small working copy (problem photos are listed and left out)",
                       examples=GENERATE_EXAMPLES)
    p.add_argument("--force", action="store_true", help="check photos already done again")
    p.add_argument("--workers", type=int, metavar="N", help="processes; 0 = one per CPU core (default: muses.toml)")
    p.add_argument("--max-side", type=positive(), metavar="N", help="long side of the copies in pixels (default: muses.toml, 256)")
    add_compute_args(p)
    p.add_argument("--allow-private-urls", action="store_true",
                   help="also fetch photo URLs on loopback, link-local and private addresses")
    p.set_defaults(func=run_generate)

    p = command_parser(subparsers, "items", help="list items with their photos' state and top class", examples=ITEMS_EXAMPLES)
    p.add_argument("--limit", type=int, metavar="N", help="items shown; 0 = all (default 50; with --jsonl all)")
    p.add_argument("--all", action="store_const", const=0, dest="limit", help="every item (same as --limit 0)")
    p.add_argument("--problems", action="store_true", help="only items with a problem photo or no usable photo")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    output.add_argument("--jsonl", action="store_true",
                        help="print one JSON object per line as items are read; every item unless --limit is given")
    p.set_defaults(func=run_items)

    p = command_parser(subparsers, "stats", help="counts of items, photos by status and problems by category",
                       examples=STATS_EXAMPLES)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run_stats)


def _delimiter(text: str) -> str:
    """--delimiter: one character; 'tab' or '\\t' for a tab, since a shell hardly passes one."""
    delimiter = "\t" if text.lower() in ("tab", "\\t") else text
    if len(delimiter) != 1:
        raise argparse.ArgumentTypeError(f"one character (, ; | or tab), got {text!r}")
    return delimiter


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


def _print_multi_valued(report) -> None:
    for m in report.multi_valued:
        print(f"  note: the column {m.key!r} ({m.field}) holds several values in most cells "
              f"({m.with_separator} of {m.cells} contain {m.separator!r}), stored as one value each; to keep them "
              f"apart, import again with {m.suggestion}")


def _how_read(report) -> str:
    from muses.collection.importers import describe_delimiter, describe_encoding

    cells = f", cells separated by {describe_delimiter(report.delimiter)}" if report.delimiter else ""
    return f"read {report.path} as {describe_encoding(report.encoding)} text{cells}"


def run_import(args) -> int:
    from muses.search import refresh_project_indexes
    from muses.collection.importers import build_mapping, import_records, parse_splits
    from muses.collection.store import Store

    project = find_project(args.project)
    mapping = build_mapping(args.preset, args.map)
    splits = parse_splits(args.split)
    store = Store.for_project(project)
    with progress_bar(desc="import", unit="lines") as bar:
        report = import_records(store, args.file, format=args.format, mapping=mapping, source=args.source,
                                encoding=args.encoding, delimiter=args.delimiter, splits=splits,
                                batch_size=args.batch_size, roots=_image_roots(args, project), progress=follow(bar))
    print(_how_read(report))
    _print_notes(report)
    for ours, theirs in report.unmapped.items():
        print(f"  warning: no record has the key {theirs!r}, so {ours} is empty; --map {ours}=KEY takes it from another")
    _print_multi_valued(report)
    out = project.root / "import-report.json"
    out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    print(format_table(["records", "count"], [
        ["new", report.new], ["updated", report.updated], ["skipped (bad lines)", len(report.skipped)],
        ["duplicate ids in the file", len(report.duplicates)], ["photos added", report.images_added],
        ["photos refused (outside the image folders)", len(report.refused_images)],
    ]))
    print(f"{report.imported} records imported; every skipped line and warning is in {out}")
    if args.verbose:
        rate = report.imported / report.seconds if report.seconds else 0
        print(f"{report.seconds:.1f} s ({rate:,.0f} records/s); format {report.format}, "
              f"encoding {report.encoding}, delimiter {report.delimiter!r}, splits {report.splits}")
    if failed := _import_failed(report):
        print(f"muses import: {failed}", file=sys.stderr)
        return 1
    refresh_project_indexes(project, store)
    print("next: muses generate-images   (checks every photo and makes its working copy)")
    return 0


def _problem_objects(project, report) -> list[tuple[str, str, str]]:
    """(object number, photo, problem) of this run's problem photos, the first LISTED."""
    from muses.collection.store import PROBLEM, Store

    listed = [f for f in report.problem_files if f["status"] == PROBLEM][:LISTED]
    owners = {im.original: im.item_id for im in Store.for_project(project).images([PROBLEM])}
    return [(owners.get(f["original"], "?"), f["original"], f["problem"]) for f in listed]


TRUNCATED_HINT = ("{n} photo(s) are truncated: the file stops part-way (an interrupted download or copy). Running "
                  "generate-images again cannot repair them: replace each file (download it again, or photograph "
                  "the object again), then run muses generate-images.")


def run_generate(args) -> int:
    from muses.search import refresh_project_indexes
    from muses.collection.images import generate_images

    project = find_project(args.project)
    with progress_bar(desc="generate-images", unit="photos") as bar:
        report = generate_images(project, force=args.force, workers=args.workers, max_side=args.max_side,
                                 allow_private_urls=args.allow_private_urls, progress=follow(bar),
                                 compute=compute_from_args(args))
    problems = _problem_objects(project, report)
    if problems:
        print("problem photos, by object number:")
    for item_id, original, problem in problems:
        print(f"  {item_id}: {problem}" + (f" ({original})" if args.verbose else ""))
    if (unlisted := report.by_status.get("problem", 0) - len(problems)) > 0:
        print(f"  ... {unlisted} more")
    if report.problems.get("truncated"):
        print(TRUNCATED_HINT.format(n=report.problems["truncated"]))
    rows = [["checked now", report.processed], ["unchanged (skipped)", report.unchanged]]
    rows += [[f"  {status}", n] for status, n in sorted(report.by_status.items())]
    rows += [[f"  problem: {category}", n] for category, n in report.problems.most_common()]
    if report.waiting_for_network:
        rows.append(["URLs waiting ([images] allow_network = false)", report.waiting_for_network])
    print(format_table(["photos", "count"], rows))
    print(f"every problem photo is listed in {report.report_path}")
    if args.verbose:
        rate = report.processed / report.seconds if report.seconds else 0
        print(f"{report.seconds:.1f} s, {rate:.0f} photos/s on {report.workers} worker(s)")
    refresh_project_indexes(project)
    print("next: muses export-classification-data   (labels the objects from their catalog words)")
    return 0


def _item_row(item) -> dict:
    from muses.collection.store import PROBLEM

    top = (item.classification or {}).get("classes") or [{}]
    return {"id": item.id, "title": item.title, "object_type": item.primary_object_type,
            "usable_images": len(item.usable_images),
            "problem_images": sum(im.status == PROBLEM for im in item.images),
            "problems": [im.problem for im in item.images if im.status == PROBLEM],
            "top_class": top[0].get("name"), "probability": top[0].get("probability")}


def _wanted_rows(store, *, problems: bool):
    for item in store.items(needing_attention=problems):
        yield _item_row(item)


def run_items(args) -> int:
    from muses.collection.store import Store

    limit = args.limit if args.limit is not None else (0 if args.jsonl else 50)
    if limit < 0:
        raise UsageError(f"--limit must be 0 (all) or more, got {limit}")
    store = Store.for_project(find_project(args.project))
    rows, shown = _wanted_rows(store, problems=args.problems), []
    for count, row in enumerate(rows):
        if limit and count >= limit:
            more = store.count_items(needing_attention=args.problems) - limit  # counted in SQL, not walked
            print(f"muses items: showing the first {limit} items, {more} more not shown; --all lists every one",
                  file=sys.stderr)
            break
        if args.jsonl:  # streamed, so a large collection never waits in memory
            print(json.dumps(row, ensure_ascii=False))
        else:
            shown.append(row)
    if args.json:
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    elif not args.jsonl:
        table = [[r["id"], r["title"][:40], r["object_type"][:20], r["usable_images"], r["problem_images"],
                  r["top_class"] if r["top_class"] is None else f"{r['top_class']} {r['probability']:.2f}"]
                 for r in shown]
        print(format_table(["id", "title", "object type", "usable", "problem", "top class"], table))
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
    print(_stats_next(stats))
    return 0


def _stats_next(stats) -> str:
    from muses.collection.store import PENDING

    if not stats["items"]:
        return "next: muses import EXPORT_FILE   (your catalog export: CSV, JSON or JSON Lines)"
    if pending := stats["images_by_status"].get(PENDING):
        return f"next: muses generate-images   ({pending} photos not checked yet)"
    return "next: muses export-classification-data   (labels the objects from their catalog words)"
