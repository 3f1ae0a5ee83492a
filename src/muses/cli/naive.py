"""`muses export-classification-data` and `muses label-preview`."""
from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from muses.cli import command_parser, format_table
from muses.settings import find_project

EXPORT_EXAMPLES = """\
  muses export-classification-data --exporter naive
  muses export-classification-data --exporter naive --max-images 200 --seed 1
  muses export-classification-data --exporter naive --definitions my-defs.toml --split 0.8,0.1,0.1
  muses export-classification-data --exporter naive --gold checked.csv --out datasets/v2
"""
PREVIEW_EXAMPLES = """\
  muses label-preview                      # how the project's definitions label the store
  muses label-preview --definitions draft.toml --gold checked.csv
  muses label-preview --json > report.json
  muses label-preview --left-out left-out.csv   # also list every record the labels leave out
"""


def register(subparsers) -> None:
    p = command_parser(
        subparsers,
        "export-classification-data",
        help="label each object from the keywords in its catalog record and write the training data "
             "(photos split into train/val/test) with a labeling report",
        examples=EXPORT_EXAMPLES,
    )
    p.add_argument("--exporter", default="naive",
                   help="how the labels are made (default: naive, keywords in the catalog fields)")
    _add_label_args(p)
    p.add_argument("--max-images", type=int, metavar="N", help="at most N images per class, items chosen at random")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and the split (default: 0)")
    p.add_argument("--split", default="0.7,0.15,0.15", metavar="T,V,T",
                   help="train,val,test fractions per class, per object (default: 0.7,0.15,0.15)")
    p.add_argument("--min-items", type=int, default=10, metavar="N",
                   help="fail if a class has fewer labeled items with images (default: 10)")
    p.add_argument("--out", metavar="DIR", help="dataset folder, relative to the project folder (default: datasets/naive)")
    p.add_argument("--no-other", action="store_true",
                   help="no 'other' class of records that match no class (the model then cannot say \"none of these\")")
    p.set_defaults(func=run_export)

    p = command_parser(
        subparsers,
        "label-preview",
        help="show how the definitions label the collection (the labeling report), writing nothing",
        examples=PREVIEW_EXAMPLES,
    )
    _add_label_args(p)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--left-out", metavar="FILE",
                   help="write every conflicting, excluded and unlabeled record to this CSV file, relative to the "
                        "project folder (the report lists only the first few hundred)")
    p.set_defaults(func=run_preview)


def _add_label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--definitions", metavar="FILE", help="definitions.toml (default: the project's)")
    p.add_argument("--gold", metavar="FILE",
                   help="a CSV you checked by hand, columns id,class: the report then says how often the keywords are right")


def run_export(args) -> int:
    from muses.datasets.registry import load_exporter
    from muses.search import refresh_project_indexes

    project = find_project(args.project)
    exporter = load_exporter(args.exporter)(
        definitions=args.definitions, max_images=args.max_images, seed=args.seed, split=args.split,
        min_items=args.min_items, gold=args.gold, **({"other": False} if args.no_other else {}),
    )
    result = exporter.export(project, out=args.out)
    refresh_project_indexes(project)  # the browse index's catalog labels follow definitions.toml
    print(_format_report(result.report, detail=args.verbose))
    s = result.report["summary"]
    print(f"\nwrote the training data {result.path}: {s['dataset_items']} objects, {s['dataset_images']} photos")
    if "other" in result.report:
        print(f"including {sum(result.report['other']['items'].values())} records that match no class, as the class "
              "'other': the model learns to answer \"none of these\" (leave it out with --no-other)")
    print(f"labeling report: {result.path / 'report.html'}   (open it in a browser: which catalog words gave "
          "which label, and which objects were left out)")
    print("next: muses train-model   (teaches the image classifier these labels)")
    return 0


def run_preview(args) -> int:
    from muses.datasets.naive import preview
    from muses.search import refresh_project_indexes

    project = find_project(args.project)
    left_out = project.path(args.left_out) if args.left_out else None
    report = preview(project, definitions=args.definitions, gold=args.gold, left_out=left_out)
    refresh_project_indexes(project)  # the browse index's catalog labels follow definitions.toml
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(_format_report(report))
    if args.left_out:
        print(f"every record the labels leave out: {left_out}")
    print("next: muses export-classification-data   (writes the training data with these labels)")
    return 0


def _keyword_table(report: Mapping[str, Any], *, has_gold: bool, detail: bool) -> list[str]:
    """Per keyword: how many records it matched; ``detail`` adds how the labeling rules resolved them."""
    header = ["keyword", "class", "hits"] + (["decided", "overlaps", "overridden", "conflicts", "vetoed"] if detail else [])
    rows = [[k[h] for h in header] for k in report["keywords"]]
    if has_gold:
        header.append("precision")
        rows = [row + [k["precision"]] for row, k in zip(rows, report["keywords"])]
    return format_table(header, rows).splitlines()


def _format_report(report: Mapping[str, Any], *, detail: bool = True) -> str:
    """The report as plain-text tables for the terminal: keywords, conflicts, then the
    per-class summary last, where a user looks first."""
    s = report["summary"]
    has_gold = "precision" in s
    out = _keyword_table(report, has_gold=has_gold, detail=detail)
    if report["conflict_examples"]:
        out += ["", f"conflicts (first {len(report['conflict_examples'])} of {s['conflicts']}):"]
        out += [f"  {c['id']}  {', '.join(c['classes'])}  {c['title'][:60]}" for c in report["conflict_examples"]]
    out.append("")
    splits = list(report["classes"][0]["images"]) if s["dataset_items"] else []  # a preview has no split
    header = ["class", "labeled", "with images", *(f"{x} img" for x in splits)] + (["precision"] if has_gold else [])
    rows = [
        [c["name"], c["labeled"], c["labeled_with_images"], *(c["images"][x] for x in splits)]
        + ([c["precision"]] if has_gold else [])
        for c in report["classes"]
    ]
    out += format_table(header, rows).splitlines()
    out.append(
        f"items {s['items']} (with usable images {s['items_with_images']}); labeled {s['labeled']} "
        f"(coverage {s['coverage']:.1%}); conflicts {s['conflicts']}; excluded {s['excluded']}; "
        f"unlabeled {s['unlabeled']}" + (f"; precision {s['precision']}" if has_gold else "")
    )
    if s["skipped_images"]:
        out.append(f"skipped images: {s['skipped_images']} (listed in report.json)")
    out += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(out)
