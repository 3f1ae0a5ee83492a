"""`muses values FIELD`: a catalog field's distinct values, their counts and the label each gets now."""
from __future__ import annotations

from pathlib import Path

from muses.cli import command_parser
from muses.errors import RunFailed
from muses.settings import find_project

EXAMPLES = """\
  muses values material                        # every medium, most frequent first, with its label now
  muses values material --contains paper       # only values holding "paper"
  muses values object_type --sort label        # grouped by the label they get
  muses values classification --csv media.csv  # any column of the imported catalog; all rows to a CSV
"""
SHOWN = 50  # rows printed unless --all


def last_run_path(project, field: str) -> Path:
    """Where the labels by value of the last run of ``field`` are kept, for the next run's diff."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in field)
    return project.path(f"reports/values-{safe}.json")


def register(subparsers) -> None:
    p = command_parser(
        subparsers, "values",
        help="list a catalog field's distinct values with counts and the label each gets now, and what moved "
             "since the last run (for writing and checking definitions)",
        examples=EXAMPLES,
    )
    p.add_argument("field", help="a field: title, object_type, material, period, description, or any column of "
                                 "the imported catalog")
    p.add_argument("--definitions", metavar="FILE", help="definitions.toml (default: the project's)")
    p.add_argument("--contains", default="", metavar="TEXT", help="only values holding TEXT (case and accents aside)")
    p.add_argument("--sort", default="count", choices=("count", "value", "label"),
                   help="most records first (default), by value, or by label")
    p.add_argument("--csv", metavar="FILE", help="write every row to this CSV file, relative to the project folder")
    p.add_argument("--all", action="store_true", help=f"print every value (default: the first {SHOWN})")
    p.set_defaults(func=run)


def run(args) -> int:
    from muses.datasets.naive import field_values
    from muses.labeling import values

    project = find_project(args.project)
    defs, rows = field_values(project, args.field, definitions=args.definitions, contains=args.contains,
                              sort=args.sort)
    shown = rows if args.all else rows[:SHOWN]
    width = max([5, *(len(r.value[:60]) for r in shown)])
    print(f"{'records':>7}  {'value':<{width}}  {'label':<10}  share  why")
    for r in shown:
        print(f"{r.count:>7}  {r.value[:60]:<{width}}  {r.label:<10}  {r.share:>5.0%}  {r.why[:100]}")
    if len(shown) < len(rows):
        print(f"… {len(rows) - len(shown)} more values (--all prints them, --csv writes them)")
    by_label = values.totals(rows)
    print(f"{len(rows)} distinct values, {sum(by_label.values())} records: "
          + ", ".join(f"{label} {n}" for label, n in by_label.most_common()))
    if args.csv:
        path = project.path(args.csv)
        try:
            with path.open("w", newline="", encoding="utf-8") as fh:
                values.write_csv(rows, fh)
        except OSError as exc:
            raise RunFailed(f"cannot write {path}: {exc.strerror or exc}. Choose a folder you may write to.") from exc
        print(f"wrote {len(rows)} values to {path}")
    if not args.contains:  # a filtered run would make the next diff show only part of the catalog
        last = last_run_path(project, args.field)
        before = values.load_run(last)
        if before is not None:
            moves = values.format_moves(values.label_moves(before, rows))
            print(f"since the last run: {moves or 'no label moved'}")
        values.save_run(last, args.field, defs, rows)
    print("next: edit definitions.toml and run `muses values` again to see what moved, "
          "then `muses label-preview`")
    return 0
