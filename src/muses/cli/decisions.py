"""`muses decisions export`: the reviewers' decisions for the collection management system."""
from __future__ import annotations

import sys
from pathlib import Path

from muses.actions import DecisionsConfig, export_decisions
from muses.cli import command_parser, config_from
from muses.settings import find_project

DECISIONS_EXAMPLES = """\
  muses decisions export --out decisions.csv
  muses decisions export --since-last-export --out batch.csv   # only what is new since the last export
  muses decisions export --since 2026-11-30 --plain-utf8 > decisions.csv

One row per reviewed record (its current decision; withdrawn and undone ones are left out),
naturally sorted by object number, columns: object number, title, field, catalog value,
decided value, decision, list, reviewer, decided at, model answer, confidence, note.
decided value is the class the record has now (empty for "none of these"); decided at is
ISO 8601 with its zone (UTC). UTF-8 with a byte-order mark, so that Excel reads accented names.
The same file: the "Export decisions" button on the web page /decisions.
Decisions are made on the web: `muses serve --allow-writes --reviewer NAME`, page /review.
"""


def register(subparsers) -> None:
    p = command_parser(subparsers, "decisions", help="export the reviewers' label decisions (made on the web page /review)",
                       examples=DECISIONS_EXAMPLES)
    p.add_argument("action", choices=["export"], help="export: write the decisions as CSV")
    p.add_argument("--format", choices=["csv"], default="csv", help="file format (default csv)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--since", metavar="DATE", help="only decisions made on or after DATE (YYYY-MM-DD, UTC)")
    when.add_argument("--since-last-export", action="store_true",
                      help="only decisions made since the last export (from here or the web page): work in batches")
    p.add_argument("--plain-utf8", action="store_true", help="UTF-8 without the byte-order mark Excel needs")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of the screen (stdout)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    result = export_decisions(find_project(args.project), config_from(DecisionsConfig(), args))
    if not result.rows:
        when = f" since {args.since}" if args.since else " since the last export" if args.since_last_export else ""
        print(f"no decisions{when} yet: make them on the web "
              "(`muses serve --allow-writes --reviewer NAME`, page /review)", file=sys.stderr)
    if args.out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(result.data)
        sys.stdout.flush()
        print(f"{result.rows} decision(s) written", file=sys.stderr)
        return 0
    print(f"wrote {result.rows} decision(s) to {args.out}")
    print("next: import it into your collection management system (object number is the key); "
          "`muses export-classification-data` already uses the decisions")
    return 0
