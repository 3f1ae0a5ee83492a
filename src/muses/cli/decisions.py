"""`muses decisions export`: the reviewers' decisions for the collection management system."""
from __future__ import annotations

import sys
from pathlib import Path

from muses.actions import DecisionsConfig, export_decisions
from muses.cli import command_parser, config_from
from muses.settings import find_project

DECISIONS_EXAMPLES = """\
  muses decisions export --format csv > decisions.csv
  muses decisions export --format csv --since 2026-11-30 --out decisions.csv

One row per reviewed record (its latest decision; undone ones are left out), columns
id, field, catalog value, suggested value, decision, reviewer, date, reviewed value.
decision is one of: catalog is right, use the suggestion, another class, not one of these;
reviewed value is the class the record has now (empty for "not one of these").
Decisions are made on the web: `muses serve --allow-writes --reviewer NAME`, page /review.
"""


def register(subparsers) -> None:
    p = command_parser(subparsers, "decisions", help="export the reviewers' label decisions (made on the web page /review)",
                       examples=DECISIONS_EXAMPLES)
    p.add_argument("action", choices=["export"], help="export: write the decisions as CSV")
    p.add_argument("--format", choices=["csv"], default="csv", help="file format (default csv, the only one)")
    p.add_argument("--since", metavar="DATE", help="only decisions made on or after DATE (YYYY-MM-DD, UTC)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of the screen (stdout)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    result = export_decisions(find_project(args.project), config_from(DecisionsConfig(), args))
    n = len(result.decisions)
    if not n:
        print(f"no decisions{f' since {args.since}' if args.since else ''} yet: make them on the web "
              "(`muses serve --allow-writes --reviewer NAME`, page /review)", file=sys.stderr)
    if args.out is None:
        sys.stdout.write(result.csv)
        print(f"{n} decision(s) written", file=sys.stderr)
        return 0
    print(f"wrote {n} decision(s) to {args.out}")
    print("next: import it into your collection management system; "
          "`muses export-classification-data` already uses the decisions")
    return 0
