"""Remedies screened in seconds on the quality bench's cached features, before any is built into
the product and measured as a recipe row of ``benchmarks.quality``:

    python -m benchmarks.quality_screen --workdir /tmp/q23-work             # every remedy, Lite0
    python -m benchmarks.quality_screen --workdir W --backbone tf_efficientnet_lite2 --size 260 --seeds 0 1 2
    python -m benchmarks.quality_screen --workdir W --concat tf_efficientnet_lite2 --concat-size 260 --only 0

Per fold (by object, as the bench), a head trains on the cached pooled features of the photo
and its mirror image like train-model's transfer phase (50 epochs, Adam 1e-3, dropout 0.2,
balanced weights), and ``calibration_folds`` more heads answer the objects they did not see:
the temperature and the "uncertain" threshold are fitted on those answers, as train-model does.
An approximation of the product (two views instead of four augmented ones): say so wherever
these numbers are quoted. The measures are the bench's own (:class:`benchmarks.quality.Answers`);
with several ``--seeds`` (folds, the cap's draw and the heads' initialisation all change) each
remedy's row gives the mean and the standard deviation over them.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

from benchmarks import quality as q


@dataclass(frozen=True)
class Remedy:
    name: str
    option: q.Option = q.Option("", other=True)  # which photos train, and the threshold's refuse share
    mirror: bool = False  # answer from the photo and its mirror image (logits averaged)
    mirror_calibration: bool = False  # ... and fit the temperature on such answers too
    ensemble: bool = False  # one head: the mean of the main head and the out-of-fold heads
    epochs: int = 50
    # the unlabeled photos of the "other" class that out-of-fold heads call a class at p > cut:
    # "drop" them from training, or "pseudo": train them as that class
    other_fix: str = ""
    cut: float = 0.5
    pool: bool = False  # the unlabeled records the cap left out train as the class a head calls at p > cut
    bias: bool = False  # calibrate with a bias per class besides the temperature
    decisions: bool = False  # the training folds' hand-checked objects as a reviewer's decisions


def _other(**changes) -> q.Option:
    return dataclasses.replace(q.Option("", other=True), **changes)


REMEDIES = [
    Remedy("defaults (head alone, out-of-fold calibration)"),
    Remedy("+ mirror image at prediction (test-time augmentation)", mirror=True),
    Remedy("+ mirror image, calibrated on mirrored answers", mirror=True, mirror_calibration=True),
    Remedy("+ ensemble of the out-of-fold heads", ensemble=True),
    Remedy("+ ensemble and mirror image", ensemble=True, mirror=True),
    Remedy("threshold refusing 2 % instead of 5 %", _other(refuse=0.02)),
    Remedy("no threshold", _other(refuse=0.0)),
    Remedy("other: excluded and conflicting records too", _other(other_all=True)),
    Remedy("other: every unlabeled record (no cap)", _other(other_capped=False)),
    Remedy("other: all of them, no cap", _other(other_all=True, other_capped=False)),
    Remedy("20 epochs", epochs=20),
    Remedy("without the records label-issues flags", _other(drop_issues=True)),
    Remedy("other: drop unlabeled photos out-of-fold heads call a class at p>0.5", other_fix="drop"),
    Remedy("pseudo-labels: those photos relabeled as that class (p>0.7)", other_fix="pseudo", cut=0.7),
    Remedy("pool: pseudo-labels (p>0.7) for the unlabeled records the cap left out", pool=True, cut=0.7),
    Remedy("other: drop (p>0.7) and pool pseudo-labels (p>0.7)", other_fix="drop", pool=True, cut=0.7),
    Remedy("pseudo-labels for both (p>0.7)", other_fix="pseudo", pool=True, cut=0.7),
    Remedy("one temperature + a bias per class (instead of the temperature alone)", bias=True),
    Remedy("a reviewer's decisions on the training folds' hand-checked objects", decisions=True),
]

# The bias's Gaussian prior: as the temperature's (PRIOR_SD on its log), it keeps a small split's
# fit near "no change"; its scale is the lead's scratch screen's, the one its numbers came from.
BIAS_PRIOR_SD = 0.5**0.5


def _calibration_heads(x: np.ndarray, y: np.ndarray, groups: np.ndarray, remedy: Remedy, k: int, seed: int):
    """(heads, their out-of-fold logits): ``k`` heads, each trained without one fold of objects."""
    from muses.model.calibration import object_folds

    heads, logits = [], np.zeros((len(y), int(y.max()) + 1), dtype=np.float32)
    for held in object_folds(y, list(groups), k, seed):
        rest = np.setdiff1d(np.arange(len(y)), held)
        head = q.train_head(x[rest], y[rest], logits.shape[1], remedy.option, val=None, epochs=remedy.epochs, seed=seed)
        heads.append(head)
        logits[held] = _answer(head, x[held], remedy.mirror_calibration)
    return heads, logits


def _relabeled(data: q.Data, photos: np.ndarray, y: np.ndarray, items: set[str], classes: list[str], remedy: Remedy,
               k: int, seed: int, cap_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(photos, y) after ``remedy.other_fix`` and ``remedy.pool``: out-of-fold heads say which
    unlabeled photos of "other" look like a class, a head on every training photo which of the
    records the cap left out do."""
    from muses.model.calibration import fit_temperature
    from muses.predictions import probabilities

    other = len(classes) - 1  # training_set puts OTHER last
    x = data.features[photos]
    _, oof = _calibration_heads(x, y, data.item[photos], remedy, k, seed)
    temperature = fit_temperature(oof, y)
    probs = probabilities(oof, temperature)[:, :other]
    called = (y == other) & (probs.max(1) > remedy.cut)
    added, added_y = np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    if remedy.pool:
        uncapped, uncapped_y = q.training_set(data, items, classes, dataclasses.replace(remedy.option, other_capped=False),
                                              cap_seed=cap_seed)
        pool = np.setdiff1d(uncapped[uncapped_y == other], photos)
        head = q.train_head(x, y, len(classes), remedy.option, val=None, epochs=remedy.epochs, seed=seed)
        pool_probs = probabilities(head.logits(data.features[pool, 0]), temperature)[:, :other]
        sure = pool_probs.max(1) > remedy.cut
        added, added_y = pool[sure], pool_probs[sure].argmax(1)
    if remedy.other_fix == "drop":
        photos, y = photos[~called], y[~called]
    elif remedy.other_fix == "pseudo":
        y = np.where(called, probs.argmax(1), y)
    return np.r_[photos, added], np.r_[y, added_y]


def _calibration(oof: np.ndarray, y: np.ndarray, bias: bool) -> tuple[float, np.ndarray]:
    """(temperature, a bias per class) for ``probabilities(logits / temperature + bias)``: the
    temperature alone as train-model fits it, or both, fitted together under the same kind of prior."""
    from muses.model.calibration import PRIOR_SD, fit_temperature

    if not bias:
        return fit_temperature(oof, y), np.zeros(oof.shape[1])

    def penalised_log_loss(p: np.ndarray) -> float:
        z = oof / np.exp(p[0]) + p[1:]
        z = z - z.max(1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -log_probs[np.arange(len(y)), y].sum() + p[0] ** 2 / (2 * PRIOR_SD**2) + (p[1:] ** 2).sum() / (
            2 * BIAS_PRIOR_SD**2)

    found = minimize(penalised_log_loss, np.zeros(oof.shape[1] + 1), method="L-BFGS-B").x
    return float(np.exp(found[0])), found[1:]


def _answer(head: q.Head, x: np.ndarray, mirror: bool) -> np.ndarray:
    """Logits of the plain view (x[:, 0]), averaged with the mirror image's (x[:, 1]) if asked."""
    return (head.logits(x[:, 0]) + head.logits(x[:, 1])) / 2 if mirror else head.logits(x[:, 0])


def measure(data: q.Data, remedy: Remedy, k: int, seed: int, checked: dict[str, str], *, calibration_folds: int = 5,
            answers: list | None = None) -> q.Row:
    """The bench's measures of ``remedy``; ``answers`` collects one dict per hand-checked object
    (its checked class, naive label and status, and what the model answered)."""
    from muses.model.calibration import choose_threshold
    from muses.predictions import OTHER, SURE, answer, probabilities, ranked

    classes = data.classes + [OTHER]
    said, t0 = q.Answers(), time.perf_counter()
    for f, test in enumerate(q.folds_of(data, k, seed)):
        items = set(data.item) - test
        decided = q.decisions(data, items, checked) if remedy.decisions else None
        photos, y = q.training_set(data, items, classes, remedy.option, cap_seed=seed + f, decided=decided)
        if remedy.option.drop_issues:
            keep = q._drop_label_issues(data, photos, y, seed)
            photos, y = photos[keep], y[keep]
        if remedy.other_fix or remedy.pool:
            photos, y = _relabeled(data, photos, y, items, classes, remedy, calibration_folds, seed, seed + f)
        x = data.features[photos]
        head = q.train_head(x, y, len(classes), remedy.option, val=None, epochs=remedy.epochs, seed=seed)
        heads, oof = _calibration_heads(x, y, data.item[photos], remedy, calibration_folds, seed)
        if remedy.ensemble:  # the mean of linear heads is one linear head
            with torch.no_grad():
                for name in ("weight", "bias"):
                    getattr(head.linear, name).copy_(torch.stack([getattr(h.linear, name) for h in [head, *heads]]).mean(0))
        temperature, bias = _calibration(oof, y, remedy.bias)
        known = np.array([classes[v] != OTHER for v in y])
        threshold = choose_threshold(probabilities(oof / temperature + bias), y, known=known, refuse=remedy.option.refuse)
        held = np.flatnonzero([i in test for i in data.item])
        probs = probabilities(_answer(head, data.features[held], remedy.mirror) / temperature + bias)
        said.add(data, classes, held, probs, threshold, checked)
        for item in sorted(set(data.item[held]) & checked.keys() if answers is not None else ()):
            got = answer(ranked(classes, probs[data.item[held] == item]), threshold)
            answers.append({"id": item, "checked": checked[item], "naive": data.label.get(item, ""),
                            "status": data.status.get(item, ""), "answer": got.kind,
                            "class": got.best.name if got.best else "",
                            "probability": round(got.best.probability, 3) if got.best else "",
                            "right": (got.best.name if got.kind == SURE else q.NONE) == checked[item]})
    seconds = (time.perf_counter() - t0) / k
    return said.row(f"screen: {remedy.name}", data, note="cached photo + mirror features", seconds=seconds)


def _spread(values: list[float | None], *, sd: bool = True) -> str:
    """The mean of ``values`` and, over several seeds, their standard deviation."""
    if any(v is None for v in values):
        return "-"
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values, ddof=1):.3f}" if sd and len(values) > 1 else "")


COLUMNS = "| remedy | F1 ± sd | checked ± sd | ECE ± sd | ECE of a perfect model | none | refused |\n|---|---|---|---|---|---|---|"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality_screen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the quality bench's --workdir (its feature cache)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                        help="measure each remedy with each seed: the mean and sd over them")
    parser.add_argument("--backbone", default=q.BACKBONE)
    parser.add_argument("--size", type=int, default=224, help="input size of --backbone")
    parser.add_argument("--concat", metavar="BACKBONE", help="a second backbone whose features are appended to each photo's")
    parser.add_argument("--concat-size", type=int, default=224, help="input size of --concat")
    parser.add_argument("--only", nargs="*", type=int, metavar="I", help="only these remedies (0-based in the list)")
    parser.add_argument("--answers", type=Path, metavar="CSV",
                        help="write the first remedy's answer (first seed) for every hand-checked object here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny linear heads
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    data = q.load_data(args.workdir, log, backbone=args.backbone, size=args.size)
    features = args.backbone
    if args.concat:
        second = q.load_data(args.workdir, log, backbone=args.concat, size=args.concat_size)
        data = dataclasses.replace(data, features=np.concatenate([data.features, second.features], axis=2))
        features += f" + {args.concat}"
    checked = q.load_checked()
    answers: list[dict] = []
    print(COLUMNS, flush=True)
    for i, remedy in enumerate(REMEDIES):
        if args.only is not None and i not in args.only:
            continue
        rows = [measure(data, remedy, args.folds, seed, checked, answers=answers if not answers else None)
                for seed in args.seeds]
        print(f"| {remedy.name} ({features}) | {_spread([r.macro_f1 for r in rows])} "
              f"| {_spread([r.checked_accuracy for r in rows])} | {_spread([r.ece for r in rows])} "
              f"| {_spread([r.chance_ece for r in rows], sd=False)} | {_spread([r.unknown_none for r in rows], sd=False)} | {_spread([r.known_refused for r in rows], sd=False)} |",
              flush=True)
    if args.answers:
        with args.answers.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(answers[0]))
            writer.writeheader()
            writer.writerows(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
