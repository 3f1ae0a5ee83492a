"""The quality benchmark (``make bench-quality``): how far can a curator trust the answers?

    python -m benchmarks.quality              # the shared Met sample, 5 folds by object
    python -m benchmarks.quality --folds 3

Over the shared Met sample with ``examples/definitions.toml``, every object lands in one test fold;
the model of the other folds answers its photos. For each training option (plain; +temperature;
+label smoothing and early stopping; +the "uncertain" threshold; +an ``other`` class; +dropping the
labels that ``label-issues`` flags) the table gives macro-F1 against the naive labels, accuracy
against the hand-checked sample (benchmarks/data/checked.csv, ``none`` = none of the five), ECE
(10 bins), and the "none of these" rates: each class in turn is held back from training, and its
photos should be answered "none of these" while the known classes' photos should not be refused.

The first row is the product itself: per fold, a dataset folder of the other folds' objects,
the train action (``muses.train``: muses' own trainer with train-model's defaults, transfer
learning, fine-tuning and calibration) and the predict action on the held-out photos; ``--product-
epochs`` sets its epochs (0 leaves it out: 5 trainings cost minutes on a GPU, an hour on 2 cores).
The option rows are an ablation of the recipe's parts, and an approximation (say so wherever those
numbers are quoted): heads train on cached pooled features of the pretrained EfficientNet-Lite0
(the photo and its mirror image), like the transfer phase of ``train-model``, without fine-tuning,
so that 5 folds x 8 options x 6 hold-outs fit in minutes on 2 cores. Their calibration, threshold
and answer code is muses' own.

Other engineers add rows (similarity precision@10, backbones) through :func:`write_table`'s
``extra`` argument: a list of :class:`Row`.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import muses

from benchmarks.run import DEFINITIONS, MET_SAMPLE, RESULTS, Bench, Settings

CHECKED = Path(__file__).resolve().parent / "data" / "checked.csv"
BACKBONE = "tf_efficientnet_lite0"
NONE = "none"  # checked.csv's class for records that are none of the five


@dataclass(frozen=True)
class Option:
    name: str
    temperature: bool = False
    smoothing: float = 0.0
    early_stopping: bool = False
    threshold: bool = False
    other: bool = False
    drop_issues: bool = False
    refuse: float = 0.05  # share of known validation photos under the threshold


OPTIONS = [
    Option("plain"),
    Option("+temperature", temperature=True),
    Option("+label smoothing 0.1, early stopping", temperature=True, smoothing=0.1, early_stopping=True),
    Option("+threshold", temperature=True, smoothing=0.1, early_stopping=True, threshold=True),
    Option("+other class", temperature=True, smoothing=0.1, early_stopping=True, threshold=True, other=True),
    Option("+other class, no threshold", temperature=True, smoothing=0.1, early_stopping=True, other=True),
    Option("+other class, threshold at 2 %", temperature=True, smoothing=0.1, early_stopping=True, threshold=True,
           other=True, refuse=0.02),
    Option("+drop label issues", temperature=True, smoothing=0.1, early_stopping=True, threshold=True, other=True,
           drop_issues=True),
]


@dataclass
class Row:
    what: str
    macro_f1: float | None = None  # photos of labeled objects vs their naive labels
    checked_accuracy: float | None = None  # objects of checked.csv, "none" included
    ece: float | None = None
    unknown_none: float | None = None  # held-back class photos answered "none of these"
    known_refused: float | None = None  # known-class photos answered "uncertain" or "none of these"
    note: str = ""


# -- data: photos, features, naive labels ------------------------------------------------------
@dataclass
class Data:
    features: np.ndarray  # (photos, views, d)
    item: np.ndarray  # object id per photo
    status: dict[str, str]  # object -> labeling status
    label: dict[str, str]  # labeled object -> class
    classes: list[str]
    paths: np.ndarray | None = None  # the photo files (the product row trains on them)
    project: object = None  # the muses Project they belong to


def load_data(workdir: Path, log) -> Data:
    from muses.analysis.label_issues import image_features
    from muses.collection.store import Store
    from muses.labeling.definitions import load_definitions
    from muses.labeling.matching import LABELED, Matcher, record_fields
    from muses.model.backbones import default_preprocess
    from muses.model.classifier import new_classifier

    project = Bench(Settings(), workdir).met_project()
    defs = load_definitions(DEFINITIONS)
    matcher = Matcher(defs)
    status, label, paths, owners = {}, {}, [], []
    for item in Store.for_project(project).items():
        lab = matcher.label(record_fields(item))
        status[item.id] = lab.status
        if lab.status == LABELED:
            label[item.id] = lab.cls
        for im in item.usable_images:
            if im.stored_path:
                paths.append(project.path(im.stored_path))
                owners.append(item.id)
    log(f"  {len(paths)} photos of {len(set(owners))} objects; features of {BACKBONE} (photo and mirror)")
    net = new_classifier(BACKBONE, list(defs.class_names), default_preprocess(BACKBONE, 224), device="cpu")
    views = []
    for mirror in (False, True):
        source = paths if not mirror else [_mirrored(p, workdir) for p in paths]
        found = image_features(net, source, cache_dir=workdir / "features")
        if found.skipped:
            raise RuntimeError(f"unreadable photos: {found.skipped[:3]}")
        views.append(found.values)
    return Data(np.stack(views, axis=1).astype(np.float32), np.array(owners), status, label, list(defs.class_names),
                np.array([str(p) for p in paths]), project)


def _mirrored(path: Path, workdir: Path) -> Path:
    from PIL import Image, ImageOps

    out = workdir / "mirrored" / path.name
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            ImageOps.mirror(im.convert("RGB")).save(out, quality=95)
    return out


# -- a head on cached features, as train-model's transfer phase --------------------------------
@dataclass
class Head:
    linear: nn.Linear
    temperature: float = 1.0
    threshold: float = 0.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.linear(torch.from_numpy(x)).numpy()


def train_head(x: np.ndarray, y: np.ndarray, n_classes: int, option: Option, *, val: tuple | None,
               epochs: int = 30, seed: int = 0) -> Head:
    """Adam 1e-3, batch 32, dropout 0.2, balanced class weights: train-model's transfer phase;
    ``x`` is (photos, views, d) and every view is a training example."""
    torch.manual_seed(seed)
    flat, targets = x.reshape(-1, x.shape[-1]), np.repeat(y, x.shape[1])
    linear, drop = nn.Linear(flat.shape[1], n_classes), nn.Dropout(0.2)
    counts = np.bincount(targets, minlength=n_classes).astype(np.float32)
    weights = np.where(counts > 0, len(targets) / (n_classes * np.maximum(counts, 1)), 1.0).astype(np.float32)
    loss_fn = nn.CrossEntropyLoss(weight=torch.from_numpy(weights), label_smoothing=option.smoothing)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(flat), torch.from_numpy(targets)
    best, best_state, patience = None, None, 5
    for epoch in range(epochs):
        for batch in torch.randperm(len(xt)).split(32):
            optimizer.zero_grad()
            loss_fn(linear(drop(xt[batch])), yt[batch]).backward()
            optimizer.step()
        if option.early_stopping and val is not None:
            with torch.inference_mode():
                loss = nn.functional.cross_entropy(linear(torch.from_numpy(val[0])), torch.from_numpy(val[1])).item()
            if best is None or loss < best[0]:
                best, best_state = (loss, epoch), {k: v.clone() for k, v in linear.state_dict().items()}
            elif epoch - best[1] >= patience:
                break
    if best_state is not None:
        linear.load_state_dict(best_state)
    return Head(linear)


def calibrate(head: Head, option: Option, val_x: np.ndarray, val_y: np.ndarray, classes: list[str]) -> None:
    from muses.model.calibration import choose_threshold, fit_temperature
    from muses.predictions import OTHER, probabilities

    logits = head.logits(val_x)
    if option.temperature:
        head.temperature = fit_temperature(logits, val_y)
    if option.threshold:
        known = np.array([classes[v] != OTHER for v in val_y])
        head.threshold = choose_threshold(probabilities(logits, head.temperature), val_y, known=known,
                                          refuse=option.refuse)


# -- one fold ----------------------------------------------------------------------------------
def _drop_label_issues(data: Data, photos: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """The photos of ``photos`` whose label cross-validation does not flag (label-issues' method)."""
    from muses.analysis.label_issues import find_label_issues, out_of_sample_probs

    probs = out_of_sample_probs(data.features[photos, 0], y, groups=data.item[photos], folds=5, seed=seed,
                                n_classes=int(y.max()) + 1)
    flagged = np.zeros(len(photos), dtype=bool)
    flagged[find_label_issues(y, probs)] = True
    return ~flagged


def training_set(data: Data, items: set[str], classes: list[str], option: Option, *, cap_seed: int) -> tuple:
    """(photo indices, class indices) of the objects in ``items``: those labeled with one of
    ``classes``, plus with ``other`` the unlabeled ones, capped at the largest class's size."""
    from muses.labeling.matching import UNLABELED
    from muses.predictions import OTHER

    index = {c: i for i, c in enumerate(classes)}
    chosen = {i: index[data.label[i]] for i in items if data.label.get(i) in index}
    if option.other:
        sizes = np.bincount(list(chosen.values()), minlength=len(classes))
        unlabeled = sorted(i for i in items if data.status.get(i) == UNLABELED)
        rng = np.random.default_rng(cap_seed)
        for i in rng.permutation(unlabeled)[: int(sizes.max())]:
            chosen[str(i)] = index[OTHER]
    photos = np.flatnonzero([i in chosen for i in data.item])
    return photos, np.array([chosen[i] for i in data.item[photos]], dtype=int)


def fit_fold(data: Data, train_items: set[str], classes: list[str], option: Option, seed: int) -> Head:
    """A head on ``train_items`` (85 %), calibrated on the rest (15 %, by object)."""
    rng = np.random.default_rng(seed)
    ordered = sorted(train_items)
    val_items = set(rng.permutation(ordered)[: max(1, len(ordered) * 15 // 100)].tolist())
    fit_photos, fit_y = training_set(data, train_items - val_items, classes, option, cap_seed=seed)
    val_photos, val_y = training_set(data, val_items, classes, option, cap_seed=seed)
    if option.drop_issues:
        keep = _drop_label_issues(data, fit_photos, fit_y, seed)
        fit_photos, fit_y = fit_photos[keep], fit_y[keep]
    val = (data.features[val_photos, 0], val_y)
    head = train_head(data.features[fit_photos], fit_y, len(classes), option, val=val, seed=seed)
    calibrate(head, option, *val, classes)
    return head


# -- the product's own recipe: a dataset folder per fold, the train action, the predict action ------
PRODUCT = Option("muses train-model (whole recipe: transfer + fine-tuning, its defaults)", other=True)


def write_fold_dataset(data: Data, out: Path, train_items: set[str], test_items: set[str], classes: list[str],
                       seed: int) -> Path:
    """A dataset folder (docs/CONTRACTS.md) of one fold: train/val from ``train_items`` (15 % of
    the objects for validation, as the exporter splits), test from ``test_items``."""
    rng = np.random.default_rng(seed)
    ordered = sorted(train_items)
    val_items = set(rng.permutation(ordered)[: max(1, len(ordered) * 15 // 100)].tolist())
    rows = []
    for split, items in (("train", train_items - val_items), ("val", val_items), ("test", test_items)):
        photos, y = training_set(data, items, classes, PRODUCT, cap_seed=seed)
        rows += [{"item_id": data.item[p], "image": data.paths[p], "class": classes[c], "split": split,
                  "keyword": "", "field": ""} for p, c in zip(photos, y)]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = {"classes": classes, "definitions_digest": "", "seed": seed, "exporter": "benchmarks.quality",
            "created": dt.datetime.now(dt.timezone.utc).isoformat()}
    (out / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return out


def measure_product(data: Data, k: int, seed: int, checked: dict[str, str], *, epochs: int, workdir: Path,
                    log=lambda msg: None) -> Row:
    """The row of what a curator gets: per fold, the train action (muses' trainer with its
    defaults, fine-tuning and calibration included) and the predict action on the held-out fold."""
    import muses
    from muses.actions import open_predictor
    from muses.analysis.calibration import expected_calibration_error
    from muses.predictions import OTHER, SURE
    from sklearn.metrics import f1_score

    classes = data.classes + [OTHER]
    truth, best, prob_rows, right_checked = [], [], [], []
    for f, test in enumerate(folds_of(data, k, seed)):
        folder = write_fold_dataset(data, workdir / f"fold{f}", set(data.item) - test, test, classes, seed + f)
        log(f"    fold {f + 1}/{k}: train action, {epochs} epochs")
        config = muses.TrainConfig(training=muses.TrainCfg(epochs=epochs, seed=seed + f), dataset=folder,
                                   model_name=f"quality-fold{f}", runtime_files=False)
        model = muses.train(data.project, config).model_path
        clf = open_predictor(data.project, model, "torch")
        photos = np.flatnonzero([i in test and i in data.label for i in data.item])
        said = muses.predict_photos(data.project, muses.PredictConfig(images=tuple(Path(p) for p in data.paths[photos]),
                                                                      top_k=None), predictor=clf)
        for a, item in zip(said.answers, data.item[photos]):
            row = dict((c.name, c.probability) for c in a.classes)
            truth.append(classes.index(data.label[item]))
            best.append(int(np.argmax([row[c] for c in data.classes])))
            prob_rows.append([row[c] for c in classes])
        for item in sorted(test & checked.keys()):
            item_photos = tuple(Path(p) for p in data.paths[data.item == item])
            one = muses.predict_photos(data.project, muses.PredictConfig(images=item_photos, one_object=True),
                                       predictor=clf).answers[0]
            right_checked.append((one.classes[0].name if one.kind == SURE else NONE) == checked[item])
    return Row(PRODUCT.name, macro_f1=float(f1_score(truth, best, average="macro")),
               checked_accuracy=float(np.mean(right_checked)) if right_checked else None,
               ece=expected_calibration_error(np.array(prob_rows), np.array(truth)),
               note=f"{k} trained models, {epochs} epochs each; no held-back-class rows (a model per class and fold)")


# -- the runs ----------------------------------------------------------------------------------
def folds_of(data: Data, k: int, seed: int) -> list[set[str]]:
    items = sorted(set(data.item))
    order = np.random.default_rng(seed).permutation(len(items))
    return [{items[j] for j in order[f::k]} for f in range(k)]


def measure(data: Data, option: Option, k: int, seed: int, checked: dict[str, str]) -> Row:
    from muses.analysis.calibration import expected_calibration_error
    from muses.predictions import NONE as ANSWER_NONE, OTHER, answer, probabilities, ranked

    classes = data.classes + ([OTHER] if option.other else [])
    truth, best, prob_rows, right_checked = [], [], [], []
    for f, test in enumerate(folds_of(data, k, seed)):
        head = fit_fold(data, set(data.item) - test, classes, option, seed + f)
        photos = np.flatnonzero([i in test for i in data.item])
        probs = probabilities(head.logits(data.features[photos, 0]), head.temperature)
        for row, item in zip(probs, data.item[photos]):
            if item in data.label:
                truth.append(classes.index(data.label[item]))
                best.append(int(np.argmax(row[: len(data.classes)])))
                prob_rows.append(row)
        for item in sorted(test & checked.keys()):
            said = answer(ranked(classes, probs[data.item[photos] == item]), head.threshold)
            name = NONE if said.kind == ANSWER_NONE or said.kind == "uncertain" or said.best is None else said.best.name
            right_checked.append(name == checked[item])
    from sklearn.metrics import f1_score

    unknown, refused = held_back_rates(data, option, k, seed)
    return Row(option.name, macro_f1=float(f1_score(truth, best, average="macro")),
               checked_accuracy=float(np.mean(right_checked)) if right_checked else None,
               ece=expected_calibration_error(np.array(prob_rows), np.array(truth)),
               unknown_none=unknown, known_refused=refused)


def held_back_rates(data: Data, option: Option, k: int, seed: int) -> tuple[float, float]:
    """Each class in turn is unknown: trained without it (and without the first fold), are its
    photos answered "none of these" (uncertain counts as refusing too), and how often are the
    first fold's known-class photos refused?"""
    from muses.predictions import OTHER, SURE, answer, probabilities, ranked

    answered_none, refused = [], []
    test = folds_of(data, k, seed)[0]
    for held in data.classes:
        classes = [c for c in data.classes if c != held] + ([OTHER] if option.other else [])
        without = {i for i in set(data.item) if data.label.get(i) != held}
        head = fit_fold(data, without - test, classes, option, seed)
        photos = np.flatnonzero([data.label.get(i) == held or (i in test and data.label.get(i) in data.classes)
                                 for i in data.item])
        probs = probabilities(head.logits(data.features[photos, 0]), head.temperature)
        for row, item in zip(probs, data.item[photos]):
            sure = answer(ranked(classes, row), head.threshold).kind == SURE
            (answered_none if data.label[item] == held else refused).append(not sure)
    return float(np.mean(answered_none)), float(np.mean(refused))


# -- the table ---------------------------------------------------------------------------------
def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


GOALS = "goals: macro-F1 >= 0.85, checked accuracy >= 0.90, ECE <= 0.05, unknown answered none >= 0.60, known refused <= 0.10"


def write_table(rows: list[Row], out: Path, *, extra: list[Row] = (), header: str = "") -> Path:
    """The markdown table of ``rows`` (and ``extra``: rows other benchmarks add) at ``out``."""
    lines = [f"# Quality benchmark, {dt.date.today().isoformat()}", "", header, "", GOALS, "",
             "| option | macro-F1 vs naive | accuracy vs checked | ECE | unknown answered none | known refused | note |",
             "|---|---|---|---|---|---|---|"]
    for r in [*rows, *extra]:
        lines.append(f"| {r.what} | {_cell(r.macro_f1)} | {_cell(r.checked_accuracy)} | {_cell(r.ece)} | "
                     f"{_cell(r.unknown_none)} | {_cell(r.known_refused)} | {r.note} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def load_checked(path: Path = CHECKED) -> dict[str, str]:
    with path.open(encoding="utf-8") as fh:
        return {row["id"]: row["class"] for row in csv.DictReader(fh)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="scratch folder, kept (default: a temporary one)")
    parser.add_argument("--only", action="append", metavar="OPTION", choices=[o.name for o in OPTIONS],
                        help="measure only this head option (repeatable; default: all)")
    parser.add_argument("--product-epochs", type=int, default=muses.TrainCfg.epochs, metavar="N",
                        help="epochs of each fold's model in the product row (default: train-model's, "
                             f"{muses.TrainCfg.epochs}); 0 leaves the row out")
    args = parser.parse_args(argv)
    if not (MET_SAMPLE / "records.jsonl").is_file():
        print(f"no Met sample at {MET_SAMPLE} (set MUSES_MET_SAMPLE)", file=sys.stderr)
        return 2
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="muses-quality-") as tmp:
        data = load_data(args.workdir or Path(tmp), log)
        checked = load_checked()
        rows = []
        if args.product_epochs:
            log(f"  {PRODUCT.name}")
            rows.append(measure_product(data, args.folds, args.seed, checked, epochs=args.product_epochs,
                                        workdir=Path(args.workdir or tmp) / "product", log=log))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny linear heads: threads cost more than they give
        for option in [o for o in OPTIONS if not args.only or o.name in args.only]:
            log(f"  {option.name}")
            rows.append(measure(data, option, args.folds, args.seed, checked))
        torch.set_num_threads(threads)
    header = (f"{args.folds} folds by object over the shared Met sample ({len(set(data.item))} objects, "
              f"{len(data.item)} photos), {len(checked)} hand-checked records; first row: the train action "
              f"(muses' own trainer); the option rows: heads on cached {BACKBONE} features (no fine-tuning), "
              f"an ablation of the recipe's parts; {machine()}; {time.perf_counter() - t0:.0f} s")
    out = write_table(rows, args.results / f"quality-{dt.date.today().isoformat()}.md", header=header)
    print(out.read_text(encoding="utf-8"))
    print(f"table: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
