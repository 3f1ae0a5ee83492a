"""`muses export-classification-data` and `muses label-preview`."""
from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from muses.actions import ExportConfig, PreviewConfig, export_dataset, preview_labels
from muses.cli import command_parser, config_from, default_of, format_table
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
  muses label-preview --verbose             # also one record per keyword and outcome, the words in context
  muses label-preview --json > report.json
  muses label-preview --left-out left-out.csv   # also list every record the labels leave out
  muses label-preview --compare classification  # agreement with the catalog's own classification
"""


def register(subparsers) -> None:
    p = command_parser(
        subparsers,
        "export-classification-data",
        help="label each object from the keywords in its catalog record and write the training data "
             "(photos split into train/val/test) with a labeling report",
        examples=EXPORT_EXAMPLES,
    )
    p.add_argument("--exporter", help=f"how the labels are made (default: {default_of(ExportConfig, 'exporter')}, "
                                      "keywords in the catalog fields)")
    _add_label_args(p)
    p.add_argument("--max-images", type=int, metavar="N", help="at most N images per class, items chosen at random")
    p.add_argument("--seed", type=int, help=f"seed for sampling and the split (default: {_naive_default('seed')})")
    p.add_argument("--split", metavar="T,V,T",
                   help="train,val,test fractions per class, per object (default: "
                        f"{','.join(f'{x:g}' for x in _naive_default('split'))})")
    p.add_argument("--min-items", type=int, metavar="N",
                   help=f"fail if a class has fewer labeled items with images (default: {_naive_default('min_items')})")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="dataset folder, relative to the project folder (default: datasets/naive)")
    p.add_argument("--no-other", dest="other", action="store_false", default=None,
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
    p.add_argument("--left-out", type=Path, metavar="FILE",
                   help="write every conflicting, excluded and unlabeled record to this CSV file, relative to the "
                        "project folder (the report lists only the first few hundred)")
    p.add_argument("--compare", metavar="FIELD",
                   help="score the labels against a classification column the catalog already has (a free "
                        "precision estimate): confusion table, precision per class, disagreements")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="folder for report.html and report.json, relative to the project folder "
                        f"(default: {default_of(PreviewConfig, 'report')})")
    p.set_defaults(func=run_preview)


def _naive_default(name: str):
    """A default of the naive exporter, the one place its options' defaults are written."""
    from muses.datasets.naive import NaiveExporter

    return inspect.signature(NaiveExporter).parameters[name].default


def _add_label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--definitions", type=Path, metavar="FILE", help="definitions.toml (default: the project's)")
    p.add_argument("--gold", type=Path, metavar="FILE",
                   help="a CSV you checked by hand, columns id,class: the report then says how often the keywords are right")


def run_export(args) -> int:
    result = export_dataset(find_project(args.project), config_from(ExportConfig(), args))
    print(_format_report(result.report, detail=args.verbose))
    s = result.report["summary"]
    print(f"\nwrote the training data {result.path}: {s['dataset_items']} objects, {s['dataset_images']} photos")
    if "other" in result.report:
        other = result.report["other"]
        decided = f" ({other['reviewed']} of them decided by a reviewer)" if other["reviewed"] else ""
        print(f"including {sum(other['items'].values())} records that match no class{decided}, as the class "
              "'other': the model learns to answer \"none of these\" (leave it out with --no-other)")
    print(f"labeling report: {result.path / 'report.html'}   (open it in a browser: which catalog words gave "
          "which label, and which objects were left out)")
    print("next: muses train-model   (teaches the image classifier these labels)")
    return 0


def run_preview(args) -> int:
    project = find_project(args.project)
    config = config_from(PreviewConfig(), args)
    report = preview_labels(project, config)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(_format_report(report))
    if args.verbose:
        print("\n" + _format_words(report))
    if args.compare:
        print("\n" + _format_compare(report["compare"]))
    if args.left_out:
        print(f"every record the labels leave out, with the reason and the searched text: {project.path(args.left_out)}")
    print(f"labeling report: {project.path(config.report) / 'report.html'}   (open it in a browser: each keyword's matched words "
          "in context, per outcome)")
    print("next: muses export-classification-data   (writes the training data with these labels)")
    return 0


def _keyword_table(report: Mapping[str, Any], *, has_gold: bool, detail: bool) -> list[str]:
    """Per keyword: how many records it matched; ``detail`` adds how the labeling rules resolved them."""
    header = ["keyword", "class", "hits"] + (["decided", "agreed", "overridden", "conflicts", "vetoed"] if detail else [])
    rows = [[k[h] for h in header] for k in report["keywords"]]
    if has_gold:
        header.append("precision")
        rows = [row + [k["precision"]] for row, k in zip(rows, report["keywords"])]
    return format_table(header, rows).splitlines()


def _format_words(report: Mapping[str, Any]) -> str:
    """One example record per keyword and outcome, the matched words in [brackets]."""
    out = ["the words, in context (one record per keyword and outcome; the HTML report has more):"]
    for k in report["keyword_words"]:
        out.append(f"  '{k['keyword']}' → {k['class']}")
        for outcome, (e, *_) in k["outcomes"].items():
            note = f" ({e['note']})" if e["note"] else ""
            out.append(f"    {outcome}{note}: {e['id']}, {e['field']}: {e['before']}[{e['match']}]{e['after']}")
    return "\n".join(out)


def _texts(entry: Mapping[str, Any]) -> str:
    """A listed record's searched fields, shortened, or its title where the report has no text."""
    texts = entry.get("texts")
    if not texts:
        return entry.get("title", "")[:60]
    return "  ".join(f"{field}: {text[:60]}" for field, text in texts.items())


def _format_report(report: Mapping[str, Any], *, detail: bool = True) -> str:
    """The report as plain-text tables for the terminal: keywords, conflicts, then the
    per-class summary last, where a user looks first."""
    s = report["summary"]
    has_gold = "precision" in s
    out = _keyword_table(report, has_gold=has_gold, detail=detail)
    if report["conflict_examples"]:
        out += ["", f"conflicts (first {len(report['conflict_examples'])} of {s['conflicts']}):"]
        out += [f"  {c['id']}  {c.get('reason') or ', '.join(c['classes'])}  {_texts(c)}"
                for c in report["conflict_examples"]]
    if detail and report["unlabeled_examples"]:
        out += ["", f"unlabeled, none of these (some of {s['unlabeled']}):"]
        out += [f"  {u['id']}  {_texts(u)}" for u in report["unlabeled_examples"]]
    out.append("")
    splits = list(report["classes"][0]["images"]) if s["dataset_items"] else []  # a preview has no split
    header = ["class", "labeled", "with images", *(f"{x} img" for x in splits)] + (["precision"] if has_gold else [])
    rows = [
        [c["name"], c["labeled"], c["labeled_with_images"], *(c["images"][x] for x in splits)]
        + ([c["precision"]] if has_gold else [])
        for c in report["classes"]
    ]
    blank = [""] * (len(header) - 2)
    rows += [["left out: conflicts", s["conflicts"], *blank], ["left out: excluded", s["excluded"], *blank],
             ["none of these (unlabeled)", s["unlabeled"], *blank], ["all records", s["items"], *blank]]
    out += format_table(header, rows).splitlines()
    if detail and "explain" in report:
        out += [f"excluded: {report['explain']['excluded']}", f"vetoed: {report['explain']['vetoed']}"]
    out.append(
        f"items {s['items']} (with usable images {s['items_with_images']}); labeled {s['labeled']} "
        f"(coverage {s['coverage']:.1%}); conflicts {s['conflicts']}; excluded {s['excluded']}; "
        f"unlabeled {s['unlabeled']}" + (f"; precision {s['precision']}" if has_gold else "")
    )
    if s["skipped_images"]:
        out.append(f"skipped images: {s['skipped_images']} (listed in report.json)")
    out += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(out)


def _format_compare(result: Mapping[str, Any]) -> str:
    """Agreement with the catalog's column: precision per class, the confusion table, disagreements."""
    out = [f"agreement with the catalog's {result['field']!r} ({result['scored']} records with a value):"]
    out += format_table(["class", "labeled", "in catalog", "agree", "precision", "recall"],
                        [[c["class"], c["labeled"], c["catalog"], c["agree"], c["precision"], c["recall"]]
                         for c in result["classes"]]).splitlines()
    labels = sorted({c["label"] for c in result["confusion"]})
    catalog = sorted({c["catalog"] for c in result["confusion"]})
    cell = {(c["catalog"], c["label"]): c["records"] for c in result["confusion"]}
    out += ["", "catalog (rows) against naive label (columns):"]
    out += format_table(["catalog", *labels], [[c, *(cell.get((c, n), 0) for n in labels)] for c in catalog]).splitlines()
    if result["unmapped_values"]:
        out.append("catalog values naming no class (counted as other): "
                   + ", ".join(f"{v['value'][:40]} {v['records']}" for v in result["unmapped_values"][:8]))
    if result["disagreements"]:
        out += ["", "disagreements (object number: catalog → label, why):"]
        out += [f"  {d['id']}: {d['catalog']} → {d['label']}, {d['why']}" for d in result["disagreements"]]
    out.append(f"precision of the labels against the catalog: {result['precision']}")
    return "\n".join(out)
