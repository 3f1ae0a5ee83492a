"""`muses evaluate` and `muses label-issues`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from muses.actions import EvaluateConfig, LabelIssuesConfig, evaluate, label_issues
from muses.cli import command_parser, config_from, default_of, format_table
from muses.cli.engines import add_compute_args, compute_from_args
from muses.datasets.folder import SPLITS
from muses.predictions import shown_name
from muses.settings import find_project

EVALUATE_EXAMPLES = """\
  muses evaluate                               # the default model on datasets/naive, test split
  muses evaluate --tta                         # also with test-time augmentation, side by side
  muses evaluate --gold checked.csv            # also against hand-checked labels (CSV id,class)
  muses evaluate --gold decisions              # ... or against the reviewers' decisions (/review)
  muses evaluate --split val --json > val.json
  muses evaluate --model models/v2.safetensors --dataset datasets/v2 --out plots/v2

Writes MODEL_SPLIT_confusion.png (counts and row-normalized), MODEL_SPLIT_reliability.png (how
often the model is right at each confidence: bars on the diagonal are well calibrated; ECE is the
mean gap, in 10 bins), MODEL_SPLIT_mistakes.html (the
most confident mistakes with title, object type, naive label, prediction) and
MODEL_SPLIT_evaluation.json into the plots folder (or --out). Metrics are per photo.
"""

LABEL_ISSUES_EXAMPLES = """\
  muses label-issues                           # review the labels of datasets/naive
  muses label-issues --folds 10 --seed 1 --threshold 0.95
  muses label-issues --dataset datasets/v2 --model models/v2.safetensors --out review/
  muses label-issues --features model          # the model's own (fine-tuned) features
  muses label-issues --engine ray --ray-workers 4   # the photos' features extracted on Ray

Every labeled record gets a prediction from a linear head fitted on the other folds' records
(cross-validation on backbone features: the model's, or for a fine-tuned model the pretrained
weights it started from, which never saw a label; an object's photos stay in one fold);
cleanlab's confident learning then lists the records whose naive label looks wrong.
Unlabeled records with photos get a suggested class where the head is at least --threshold sure.
Writes MODEL_label_issues.csv/.html and MODEL_suggested_labels.csv/.html into the plots
folder (or --out). Features are cached in cache/features, so a second run takes seconds.
"""
SHOWN = 15  # rows printed per list; the files hold them all


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def register(subparsers) -> None:
    e, li = EvaluateConfig, LabelIssuesConfig  # the defaults shown are read from the configs, never written here
    p = command_parser(subparsers, "evaluate", help="measure the model on a dataset split: metrics, confusion matrix, mistakes",
                       examples=EVALUATE_EXAMPLES)
    _common(p)
    p.add_argument("--split", choices=SPLITS, help=f"dataset split (default {default_of(e, 'split')})")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout, nothing else")
    p.add_argument("--tta", action="store_true", default=None,
                   help="also with test-time augmentation (photo, mirror, centre zoom averaged)")
    p.add_argument("--gold", type=Path, metavar="FILE",
                   help="hand-checked CSV with columns id,class; or the word decisions: the reviewers' decisions (/review)")
    p.add_argument("--top-k", metavar="N", type=_positive_int,
                   help=f"mistakes shown in the gallery (default {default_of(e, 'top_k')})")
    p.add_argument("--batch-size", metavar="N", type=_positive_int, help=f"photos per batch (default {default_of(e, 'batch_size')})")
    p.set_defaults(func=run_evaluate)

    p = command_parser(subparsers, "label-issues", help="find records whose naive label looks wrong; suggest labels for unlabeled ones",
                       examples=LABEL_ISSUES_EXAMPLES)
    _common(p)
    p.add_argument("--folds", metavar="K", type=_positive_int, help=f"cross-validation folds, >= 2 (default {default_of(li, 'folds')})")
    p.add_argument("--seed", metavar="S", type=int, help=f"seed of the fold assignment (default {default_of(li, 'seed')})")
    p.add_argument("--threshold", metavar="P", type=_probability,
                   help=f"least probability of a suggested label (default {default_of(li, 'threshold')})")
    p.add_argument("--gallery-size", metavar="N", type=_positive_int,
                   help=f"records per HTML page; the CSVs hold all (default {default_of(li, 'gallery_size')})")
    p.add_argument("--features", choices=("auto", "model", "pretrained"),
                   help="backbone weights for the features: the model's, or the pretrained ones it started from, "
                        f"which never saw a label; auto: pretrained for a fine-tuned model (default {default_of(li, 'features')})")
    add_compute_args(p)
    p.set_defaults(func=run_label_issues)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--dataset", type=Path, metavar="DIR", help="dataset folder (default: datasets/naive)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder, relative to the project folder (default: the project's plots folder)")


def _print_skipped(skipped) -> None:
    for image, why in skipped:
        print(f"skipped {image}: {why}")


def run_evaluate(args) -> int:
    result = evaluate(find_project(args.project), config_from(EvaluateConfig(), args))
    report, plain, tta, agreement = result.report, result.plain, result.tta, result.agreement
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    _print_skipped(result.skipped)
    _print_metrics(plain, tta)
    pairs = report["most_confused"][:SHOWN]
    if pairs:
        print("\nmost confused (naive label -> predicted):")
        print(format_table(["naive label", "predicted", "photos"], [[d["naive_label"], d["predicted"], d["count"]] for d in pairs]))
    if agreement is not None:
        _print_gold(agreement)
    print()
    for name, path in report["files"].items():
        print(f"{name}: {path}")
    print(NEXT_AFTER_EVALUATE)
    return 0


NEXT_AFTER_EVALUATE = ("\nnext: open the mistakes page above to see the photos; then run muses label-issues to list "
                       "catalog labels the photos contradict, and decide them on the web (muses serve --allow-writes, "
                       "page /review)")


def _print_metrics(plain, tta) -> None:
    """Per-class table, then accuracy, macro-F1 and log loss; with TTA a column beside each."""
    evals = [plain] + ([tta] if tta else [])
    rows = [[shown_name(c.name), f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", c.support]
            + [f"{e.per_class[i].f1:.3f}" for e in evals[1:]] for i, c in enumerate(plain.per_class)]
    print(format_table(["class", "precision", "recall", "F1", "support"] + (["F1 with TTA"] if tta else []), rows))
    print()
    print(format_table(["", "plain"] + (["TTA"] if tta else []), [
        ["photos", *[e.n for e in evals]],
        ["accuracy", *[f"{e.accuracy:.3f}" for e in evals]],
        ["macro-F1", *[f"{e.macro_f1:.3f}" for e in evals]],
        ["log loss", *[f"{e.log_loss:.3f}" for e in evals]],
        ["calibration error (ECE)", *[f"{e.ece:.3f}" for e in evals]],
        ["ECE of a perfectly calibrated model here", *[f"{e.chance_ece:.3f}" for e in evals]],
    ]))
    if plain.ece <= plain.chance_ece * 1.5:
        print(f"the calibration error is close to what a perfectly calibrated model would show on {plain.n} photos: "
              "its percentages can be read as they are")


def _print_gold(agreement) -> None:
    print(f"\nagainst the gold labels ({agreement.n} items):")
    if agreement.n:
        print(format_table(["", "value"], [["accuracy", f"{agreement.accuracy:.3f}"], ["macro-F1", f"{agreement.macro_f1:.3f}"]]))
    if agreement.unknown_ids:
        more = f" ... and {len(agreement.unknown_ids) - SHOWN} more" if len(agreement.unknown_ids) > SHOWN else ""
        print(f"gold ids not predicted in this split: {', '.join(agreement.unknown_ids[:SHOWN])}{more}")
    for item_id, cls in list(agreement.unknown_classes.items())[:SHOWN]:
        print(f"gold class {cls!r} of item {item_id} is not one of the model's classes")


def label_issues_config(args) -> LabelIssuesConfig:
    return dataclasses.replace(config_from(LabelIssuesConfig(), args), compute=compute_from_args(args))


def run_label_issues(args) -> int:
    config = label_issues_config(args)
    result = label_issues(find_project(args.project), config)
    review, files = result.review, result.files
    for text in result.notes:
        print(text)
    _print_skipped(review.skipped)
    for caption, rows, cols in (("records whose label looks wrong", review.issues, ["naive_label", "suggested"]),
                                ("suggested labels for unlabeled records", review.suggestions, ["suggested"])):
        if rows:
            print(f"\n{caption} (first {min(SHOWN, len(rows))} of {len(rows)}):")
            print(format_table(["id", "title", *cols, "confidence"],
                               [[r["id"], r["title"][:45], *[r[c] for c in cols], f"{r['confidence']:.3f}"] for r in rows[:SHOWN]]))
    print()
    print(format_table(["", "count"], [
        ["labeled records reviewed", review.n_items],
        ["their photos", review.n_images],
        ["cross-validated agreement", f"{review.cv_accuracy:.1%}"],
        ["labels that look wrong", len(review.issues)],
        ["unlabeled records with photos", review.n_unlabeled],
        [f"suggested labels (p >= {config.threshold:g})", len(review.suggestions)],
        ["photos skipped", len(review.skipped)],
        ["records a reviewer already decided (not listed)", result.decided],
    ]))
    for caption, path in files.items():
        print(f"{caption}: {path}")
    print("\nnext: decide them on the web: `muses serve --allow-writes --reviewer YOUR-NAME`, then open /review")
    return 0
