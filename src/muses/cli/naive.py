"""`muses export-classification-data` and `muses label-preview`."""
from __future__ import annotations

import argparse
import json

from muses.cli import UsageError, command_parser
from muses.config import find_project

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
"""


def register(subparsers) -> None:
    p = command_parser(
        subparsers,
        "export-classification-data",
        help="label the collection from catalog keywords and write a train/val/test dataset folder",
        examples=EXPORT_EXAMPLES,
    )
    p.add_argument("--exporter", default="naive", help="exporter plugin (default: naive)")
    _add_label_args(p)
    p.add_argument("--max-images", type=int, metavar="N", help="at most N images per class, items chosen at random")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and the split (default: 0)")
    p.add_argument("--split", default="0.7,0.15,0.15", metavar="T,V,T",
                   help="train,val,test fractions per class, per object (default: 0.7,0.15,0.15)")
    p.add_argument("--min-items", type=int, default=10, metavar="N",
                   help="fail if a class has fewer labeled items with images (default: 10)")
    p.add_argument("--out", metavar="DIR", help="dataset folder (default: datasets/naive in the project)")
    p.set_defaults(func=run_export)

    p = command_parser(
        subparsers,
        "label-preview",
        help="show how the definitions label the collection (the labeling report), writing nothing",
        examples=PREVIEW_EXAMPLES,
    )
    _add_label_args(p)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=run_preview)


def _add_label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--definitions", metavar="FILE", help="definitions.toml (default: the project's)")
    p.add_argument("--gold", metavar="FILE", help="hand-checked CSV with columns id,class: adds precision")


def _bad_input() -> tuple[type[Exception], ...]:
    from muses.exporters import UnknownExporterError
    from muses.exporters.naive.report import GoldError
    from muses.exporters.naive.splitting import SplitError
    from muses.naive_classification.definitions import DefinitionsError

    return DefinitionsError, GoldError, SplitError, UnknownExporterError


def run_export(args) -> int:
    from muses.exporters import load_exporter
    from muses.exporters.naive.report import format_report

    project = find_project(args.project)
    try:
        exporter = load_exporter(args.exporter)(
            definitions=args.definitions, max_images=args.max_images, seed=args.seed, split=args.split,
            min_items=args.min_items, gold=args.gold,
        )
        result = exporter.export(project, out=args.out)
    except _bad_input() as exc:
        raise UsageError(str(exc)) from exc
    print(format_report(result.report))
    s = result.report["summary"]
    print(f"\nwrote {result.path}: {s['dataset_items']} items, {s['dataset_images']} images")
    return 0


def run_preview(args) -> int:
    from muses.exporters.naive import preview
    from muses.exporters.naive.report import format_report

    project = find_project(args.project)
    try:
        report = preview(project, definitions=args.definitions, gold=args.gold)
    except _bad_input() as exc:
        raise UsageError(str(exc)) from exc
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0
