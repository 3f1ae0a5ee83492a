"""Remedies screened in seconds on the quality bench's cached features, before any is built into
the product and measured as a recipe row of ``benchmarks.quality``:

    python -m benchmarks.quality_screen --workdir /tmp/q23-work             # every remedy, Lite0
    python -m benchmarks.quality_screen --workdir W --backbone tf_efficientnet_lite2 --size 260 --seed 1

Per fold (by object, as the bench), a head trains on the cached pooled features of the photo
and its mirror image like train-model's transfer phase (50 epochs, Adam 1e-3, dropout 0.2,
balanced weights), and ``calibration_folds`` more heads answer the objects they did not see:
the temperature and the "uncertain" threshold are fitted on those answers, as train-model does.
An approximation of the product (two views instead of four augmented ones): say so wherever
these numbers are quoted. The measures are the bench's own (:class:`benchmarks.quality.Answers`).
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

from benchmarks import quality as q


@dataclass(frozen=True)
class Remedy:
    name: str
    option: q.Option = q.Option("", other=True)  # which photos train, and the threshold's refuse share
    mirror: bool = False  # answer from the photo and its mirror image (logits averaged)
    mirror_calibration: bool = False  # ... and fit the temperature on such answers too
    ensemble: bool = False  # one head: the mean of the main head and the out-of-fold heads
    epochs: int = 50


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
]


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


def _answer(head: q.Head, x: np.ndarray, mirror: bool) -> np.ndarray:
    """Logits of the plain view (x[:, 0]), averaged with the mirror image's (x[:, 1]) if asked."""
    return (head.logits(x[:, 0]) + head.logits(x[:, 1])) / 2 if mirror else head.logits(x[:, 0])


def measure(data: q.Data, remedy: Remedy, k: int, seed: int, checked: dict[str, str], *, calibration_folds: int = 5,
            answers: list | None = None) -> q.Row:
    """The bench's measures of ``remedy``; ``answers`` collects one dict per hand-checked object
    (its checked class, naive label and status, and what the model answered)."""
    from muses.model.calibration import choose_threshold, fit_temperature
    from muses.predictions import OTHER, SURE, answer, probabilities, ranked

    classes = data.classes + [OTHER]
    said, t0 = q.Answers(), time.perf_counter()
    for f, test in enumerate(q.folds_of(data, k, seed)):
        photos, y = q.training_set(data, set(data.item) - test, classes, remedy.option, cap_seed=seed + f)
        if remedy.option.drop_issues:
            keep = q._drop_label_issues(data, photos, y, seed)
            photos, y = photos[keep], y[keep]
        x = data.features[photos]
        head = q.train_head(x, y, len(classes), remedy.option, val=None, epochs=remedy.epochs, seed=seed)
        heads, oof = _calibration_heads(x, y, data.item[photos], remedy, calibration_folds, seed)
        if remedy.ensemble:  # the mean of linear heads is one linear head
            with torch.no_grad():
                for name in ("weight", "bias"):
                    getattr(head.linear, name).copy_(torch.stack([getattr(h.linear, name) for h in [head, *heads]]).mean(0))
        temperature = fit_temperature(oof, y)
        known = np.array([classes[v] != OTHER for v in y])
        threshold = choose_threshold(probabilities(oof, temperature), y, known=known, refuse=remedy.option.refuse)
        held = np.flatnonzero([i in test for i in data.item])
        probs = probabilities(_answer(head, data.features[held], remedy.mirror), temperature)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality_screen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the quality bench's --workdir (its feature cache)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default=q.BACKBONE)
    parser.add_argument("--size", type=int, default=224, help="input size of --backbone")
    parser.add_argument("--only", nargs="*", type=int, metavar="I", help="only these remedies (0-based in the list)")
    parser.add_argument("--answers", type=Path, metavar="CSV",
                        help="write the first remedy's answer for every hand-checked object here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny linear heads
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    data = q.load_data(args.workdir, log, backbone=args.backbone, size=args.size)
    checked = q.load_checked()
    answers: list[dict] = []
    for i, remedy in enumerate(REMEDIES):
        if args.only is not None and i not in args.only:
            continue
        first = not answers
        r = measure(data, remedy, args.folds, args.seed, checked, answers=answers if first else None)
        print(f"| {r.what} ({args.backbone}, seed {args.seed}) | {q._cell(r.macro_f1)} | {q._cell(r.checked_accuracy)} "
              f"| {q._cell(r.ece)} | {q._cell(r.unknown_none)} | {q._cell(r.known_refused)} |", flush=True)
    if args.answers:
        with args.answers.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(answers[0]))
            writer.writeheader()
            writer.writerows(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
