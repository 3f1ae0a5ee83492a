"""`muses evaluate` and `muses label-issues`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from muses.cli import command_parser, format_table
from muses.cli.engines import add_compute_args, compute_from_args
from muses.datasets.folder import SPLITS
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
    p = command_parser(subparsers, "evaluate", help="measure the model on a dataset split: metrics, confusion matrix, mistakes",
                       examples=EVALUATE_EXAMPLES)
    _common(p)
    p.add_argument("--split", choices=SPLITS, default="test", help="dataset split (default test)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout, nothing else")
    p.add_argument("--tta", action="store_true", help="also with test-time augmentation (photo, mirror, centre zoom averaged)")
    p.add_argument("--gold", type=Path, metavar="FILE",
                   help="hand-checked CSV with columns id,class; or the word decisions: the reviewers' decisions (/review)")
    p.add_argument("--top-k", metavar="N", type=_positive_int, default=50, help="mistakes shown in the gallery (default 50)")
    p.add_argument("--batch-size", metavar="N", type=_positive_int, default=32, help="photos per batch (default 32)")
    p.set_defaults(func=run_evaluate)

    p = command_parser(subparsers, "label-issues", help="find records whose naive label looks wrong; suggest labels for unlabeled ones",
                       examples=LABEL_ISSUES_EXAMPLES)
    _common(p)
    p.add_argument("--folds", metavar="K", type=_positive_int, default=5, help="cross-validation folds, >= 2 (default 5)")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the fold assignment (default 0)")
    p.add_argument("--threshold", metavar="P", type=_probability, default=0.9, help="least probability of a suggested label (default 0.9)")
    p.add_argument("--gallery-size", metavar="N", type=_positive_int, default=200, help="records per HTML page; the CSVs hold all (default 200)")
    p.add_argument("--features", choices=("auto", "model", "pretrained"), default="auto",
                   help="backbone weights for the features: the model's, or the pretrained ones it started from, "
                        "which never saw a label; auto: pretrained for a fine-tuned model (default auto)")
    add_compute_args(p)
    p.set_defaults(func=run_label_issues)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--dataset", type=Path, metavar="DIR", help="dataset folder (default: datasets/naive)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder, relative to the project folder (default: the project's plots folder)")


def _load(project, args):
    """(model, dataset, output folder) of the flags; the model's warnings go to stderr (stdout may be JSON)."""
    from muses.cli.model import load_for_command
    from muses.datasets.folder import read_dataset

    clf = load_for_command(project, args.model)
    dataset = read_dataset(args.dataset or project.datasets_dir / "naive")
    return clf, dataset, project.path(args.out) if args.out else project.plots_dir


def _print_skipped(skipped) -> None:
    for image, why in skipped:
        print(f"skipped {image}: {why}")


def _gold(project, spec: Path) -> dict[str, str]:
    """Hand-checked labels: the reviewers' decisions (``--gold decisions``) or an id,class CSV."""
    from muses.collection.decisions import GOLD_DECISIONS, reviewed_classes
    from muses.collection.store import Store
    from muses.labeling.report import load_gold

    return reviewed_classes(Store.for_project(project)) if str(spec) == GOLD_DECISIONS else load_gold(spec)


def run_evaluate(args) -> int:
    from muses.collection.store import Store
    from muses.analysis import metrics as ev
    from muses.analysis.reports import catalog_fields, write_evaluation, write_evaluation_report

    project = find_project(args.project)
    clf, dataset, out_dir = _load(project, args)
    gold = _gold(project, args.gold) if args.gold else None
    preds = ev.predict_split(clf, dataset, args.split, tta=args.tta, batch_size=args.batch_size)
    names = clf.class_names
    plain = ev.evaluate_predictions(preds.labels, preds.probs, names)
    tta = ev.evaluate_predictions(preds.labels, preds.probs_tta, names) if args.tta else None
    catalog = catalog_fields(Store.for_project(project), {s.item_id for s in preds.samples})
    prefix = f"{clf.name}_{args.split}"
    files = write_evaluation(out_dir, prefix, preds, plain, names, catalog, top_k=args.top_k)
    agreement = ev.gold_agreement(ev.item_classes(preds, names), gold, names) if gold is not None else None
    report = write_evaluation_report(out_dir / f"{prefix}_evaluation.json", model=clf.name, dataset=dataset,
                                     split=args.split, plain=plain, tta=tta, agreement=agreement,
                                     skipped=preds.skipped, files=files)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    _print_skipped(preds.skipped)
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
    rows = [[c.name, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", c.support]
            + [f"{e.per_class[i].f1:.3f}" for e in evals[1:]] for i, c in enumerate(plain.per_class)]
    print(format_table(["class", "precision", "recall", "F1", "support"] + (["F1 with TTA"] if tta else []), rows))
    print()
    print(format_table(["", "plain"] + (["TTA"] if tta else []), [
        ["photos", *[e.n for e in evals]],
        ["accuracy", *[f"{e.accuracy:.3f}" for e in evals]],
        ["macro-F1", *[f"{e.macro_f1:.3f}" for e in evals]],
        ["log loss", *[f"{e.log_loss:.3f}" for e in evals]],
        ["calibration error (ECE)", *[f"{e.ece:.3f}" for e in evals]],
    ]))


def _print_gold(agreement) -> None:
    print(f"\nagainst the gold labels ({agreement.n} items):")
    if agreement.n:
        print(format_table(["", "value"], [["accuracy", f"{agreement.accuracy:.3f}"], ["macro-F1", f"{agreement.macro_f1:.3f}"]]))
    if agreement.unknown_ids:
        more = f" ... and {len(agreement.unknown_ids) - SHOWN} more" if len(agreement.unknown_ids) > SHOWN else ""
        print(f"gold ids not predicted in this split: {', '.join(agreement.unknown_ids[:SHOWN])}{more}")
    for item_id, cls in list(agreement.unknown_classes.items())[:SHOWN]:
        print(f"gold class {cls!r} of item {item_id} is not one of the model's classes")


def _review_features(project, args):
    """(feature extractor, dataset, output folder, file prefix): the model's (see --features),
    or, before any model is trained, the default pretrained backbone's."""
    from muses.analysis.label_issues import backbone_extractor, feature_extractor
    from muses.datasets.folder import read_dataset
    from muses.model.files import paths as model_paths

    if args.model is None and not model_paths(project.model_path)[0].is_file():
        dataset = read_dataset(args.dataset or project.datasets_dir / "naive")
        training = project.settings.training
        extractor = backbone_extractor(training.backbone, training.image_size, dataset.classes)
        print(f"no model trained yet: reviewing with the photos' features from the pretrained {training.backbone} "
              "(train later with `muses train-model`)")
        return extractor, dataset, project.path(args.out) if args.out else project.plots_dir, extractor.name
    clf, dataset, out_dir = _load(project, args)
    if args.features == "model" and clf.cfg.unfrozen_blocks:
        print(f"note: {clf.name} was fine-tuned, so its features have seen the training labels and may "
              "hide their mistakes; the default --features auto avoids that")
    return feature_extractor(clf, args.features), dataset, out_dir, clf.name


def run_label_issues(args) -> int:
    from muses.collection.decisions import current_decisions
    from muses.collection.store import Store
    from muses.model.features import CACHE_DIR
    from muses.analysis.label_issues import review_labels, unlabeled_photos
    from muses.analysis.reports import write_label_review
    from muses.compute import require_ray

    project = find_project(args.project)
    compute = compute_from_args(args)
    if compute.uses_ray:
        require_ray()  # before loading the model: say what to install first
    extractor, dataset, out_dir, name = _review_features(project, args)
    store = Store.for_project(project)
    decided = current_decisions(store)
    catalog, unlabeled = unlabeled_photos(store, project, {s.item_id for s in dataset.samples})
    review = review_labels(extractor, dataset, unlabeled, folds=args.folds, seed=args.seed, threshold=args.threshold,
                           catalog=catalog, cache_dir=project.root / CACHE_DIR, decided=set(decided), compute=compute)
    files = write_label_review(out_dir, name, review, gallery_size=args.gallery_size)
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
        [f"suggested labels (p >= {args.threshold:g})", len(review.suggestions)],
        ["photos skipped", len(review.skipped)],
        ["records a reviewer already decided (not listed)", len(decided)],
    ]))
    for caption, path in files.items():
        print(f"{caption}: {path}")
    print("\nnext: decide them on the web: `muses serve --allow-writes --reviewer YOUR-NAME`, then open /review")
    return 0
