"""Calibration measured: the expected calibration error and the reliability diagram (the
temperature and the "uncertain" threshold a model file stores are fitted in
:mod:`muses.model.calibration`, by the trainer).

    ece = expected_calibration_error(probabilities(test_logits, t), test_labels)
    floor = chance_ece(probabilities(test_logits, t))  # what a perfect model would measure there
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BINS = 10


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    confidence: float  # mean top probability of the photos in the bin
    accuracy: float  # share of them whose top class is right


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[Bin]:
    """Photos grouped by their top probability into ``bins`` equal-width bins over [0, 1]."""
    probs, labels = np.atleast_2d(np.asarray(probs, dtype=np.float64)), np.asarray(labels, dtype=int)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        out.append(Bin(b / bins, (b + 1) / bins, n, float(confidence[inside].mean()) if n else 0.0,
                       float(correct[inside].mean()) if n else 0.0))
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """The mean gap between confidence and accuracy over the bins, weighted by their photos."""
    table = reliability(probs, labels, bins)
    total = sum(b.count for b in table)
    return float(sum(b.count * abs(b.confidence - b.accuracy) for b in table) / total) if total else 0.0


def chance_ece(probs: np.ndarray, bins: int = BINS, *, draws: int = 500, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model would measure on these photos: the mean over
    ``draws`` of the ECE when each photo is right with exactly its top probability.

    A bin of a few photos is right 0 or 100 % of the time whatever the model says, so the ECE
    of a small test set is never near 0: on 150 photos about 80 % sure, a perfect model measures
    0.05. A measured ECE near this floor cannot be told from perfect calibration."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    if not len(probs):
        return 0.0
    confidence = probs.max(axis=1)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    right = np.random.default_rng(seed).random((draws, len(confidence))) < confidence
    gaps = np.zeros(draws)
    for b in np.unique(index):
        inside = index == b
        gaps += inside.sum() * np.abs(confidence[inside].mean() - right[:, inside].mean(axis=1))
    return float(gaps.mean() / len(confidence))


def plot_reliability(table: list[Bin], filepath: str | Path, *, title: str = "reliability") -> Path:
    """A reliability diagram: accuracy per confidence bin against the diagonal of perfect
    calibration, with the photos per bin below."""
    from matplotlib.figure import Figure

    filepath = Path(filepath)
    filepath.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5, 6))
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    centres = [(b.low + b.high) / 2 for b in table]
    width = table[0].high - table[0].low if table else 0.1
    top.bar(centres, [b.accuracy for b in table], width=width * 0.9, label="accuracy", color="tab:blue")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    top.plot([c for c, b in zip(centres, table) if b.count], [b.confidence for b in table if b.count], "o",
             color="tab:red", label="mean confidence")
    top.set_ylabel("share right")
    top.set_title(title)
    top.legend(loc="upper left")
    bottom.bar(centres, [b.count for b in table], width=width * 0.9, color="tab:grey")
    bottom.set_xlabel("top probability")
    bottom.set_ylabel("photos")
    fig.tight_layout()
    fig.savefig(filepath, dpi=100)
    return filepath
