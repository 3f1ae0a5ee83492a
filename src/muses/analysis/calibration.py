"""Calibration: a temperature for the logits, the expected calibration error, the threshold of
"uncertain" answers, and the reliability diagram.

A network trained to a near-zero loss says 99 % about photos it gets wrong. Dividing its logits
by one number (the temperature, fitted on validation photos by minimising the log loss) makes
its probabilities mean what they say without changing which class comes first.

    t = fit_temperature(val_logits, val_labels)
    ece = expected_calibration_error(probabilities(test_logits, t), test_labels)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from muses.model.files import TEMPERATURE_RANGE
from muses.predictions import probabilities

BINS = 10
REFUSE_SHARE = 0.05  # of known-class validation photos answered "uncertain" by the chosen threshold
MAX_THRESHOLD = 0.99  # a validation split the model is sure of to the last digit must not refuse 99.9 %
# A Gaussian prior on log(temperature) around 1 (no change), worth a few photos: on a validation
# split where every photo is right the log loss falls forever as the temperature shrinks, and a
# plain fit on 8 such photos sharpened a model to T = 0.06. Hundreds of photos outweigh the prior.
PRIOR_SD = 0.5


def _penalised_log_loss(logits: np.ndarray, labels: np.ndarray, log_t: float) -> float:
    probs = probabilities(logits, float(np.exp(log_t))).astype(np.float64)
    total = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).sum()
    return float(total + log_t**2 / (2 * PRIOR_SD**2))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the log loss of ``logits`` against ``labels`` plus a prior
    that keeps it near 1 on small splits (1.0 when there is nothing to fit on), searched on a log
    scale within the range a model file allows."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=int)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    low, high = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(lambda log_t: _penalised_log_loss(logits, labels, log_t), bounds=(low, high),
                            method="bounded", options={"xatol": 1e-4})
    return round(float(np.exp(found.x)), 4)


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


def choose_threshold(probs: np.ndarray, labels: np.ndarray, *, known: np.ndarray | None = None,
                     refuse: float = REFUSE_SHARE) -> float:
    """The top probability below which an answer is "uncertain": the ``refuse`` quantile of the
    top probabilities of validation photos of known classes (``known``: a mask; default all)."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    top = probs.max(axis=1) if len(probs) else np.zeros(0)
    if known is not None:
        top = top[np.asarray(known, dtype=bool)]
    if len(top) == 0 or refuse <= 0:
        return 0.0
    return round(min(float(np.quantile(top, refuse, method="lower")), MAX_THRESHOLD), 4)


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
