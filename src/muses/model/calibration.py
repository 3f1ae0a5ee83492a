"""The two numbers a trained model file stores beside its weights, fitted on validation photos
after training: a temperature for the logits, and the top probability below which an answer is
"uncertain".

A network trained to a near-zero loss says 99 % about photos it gets wrong. Dividing its logits
by one number (the temperature, fitted by minimising the log loss) makes its probabilities mean
what they say without changing which class comes first; :mod:`muses.analysis.calibration`
measures how well that worked.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.model_selection import StratifiedGroupKFold

from muses.model.files import TEMPERATURE_RANGE
from muses.predictions import probabilities

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


def object_folds(labels: np.ndarray, groups: Sequence, folds: int, seed: int) -> list[np.ndarray]:
    """Row indices of up to ``folds`` held-out folds, stratified by label, all photos of one
    object in one fold (none when there are fewer than two objects)."""
    n_groups = len(set(groups))
    folds = min(folds, n_groups)
    if folds < 2:
        return []
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # a class with fewer objects than folds is simply absent from some of them
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [test for _, test in splitter.split(np.zeros(len(labels)), labels, list(groups))]
