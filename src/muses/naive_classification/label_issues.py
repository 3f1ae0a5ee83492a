"""Records whose naive (catalog keyword) label looks wrong, and labels for unlabeled records.

Confident learning needs *out-of-sample* probabilities: for every labeled photo, a prediction
from a model that never saw its label. Refitting the CNN k times would take hours on a CPU,
so the backbone's pooled features are extracted once (and cached) and a linear head is fitted
per fold on them (seconds). All photos of one object stay in one fold, so a second photo of
the same vase cannot vouch for the first. cleanlab then ranks the suspicious labels.

    probs = out_of_sample_probs(features, labels, groups, folds=5, seed=0)
    ranked = find_label_issues(labels, probs)          # indices, most suspicious first
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from cleanlab.filter import find_label_issues as _cleanlab_find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from muses.naive_classification import backbones, features
from muses.naive_classification.data import file_digest

DEFAULT_C = 0.1  # inverse L2 strength: 1280 features and a few hundred photos overfit at C=1


def linear_head(C: float = DEFAULT_C, seed: int = 0) -> Pipeline:
    """Standardized features → multinomial logistic regression with balanced class weights."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed),
    )


def fit_predict_proba(train_x, train_y, test_x, n_classes: int, *, C: float = DEFAULT_C, seed: int = 0) -> np.ndarray:
    """Fit :func:`linear_head` and return probabilities for all ``n_classes`` columns (a class
    missing from the training rows gets probability 0)."""
    out = np.zeros((len(test_x), n_classes))
    present = np.unique(train_y)
    if len(present) == 1:  # nothing to discriminate: the lone class is certain
        out[:, present[0]] = 1.0
        return out
    head = linear_head(C, seed).fit(train_x, train_y)
    out[:, head.classes_] = head.predict_proba(test_x)
    return out


def out_of_sample_probs(
    features: np.ndarray,
    labels: np.ndarray,
    groups: Sequence | None = None,
    folds: int = 5,
    seed: int = 0,
    *,
    n_classes: int | None = None,
    C: float = DEFAULT_C,
) -> np.ndarray:
    """Cross-validated probabilities, shape (n, n_classes): row i comes from a head fitted
    without row i's fold. ``groups`` (e.g. item ids) keeps rows of one group in one fold."""
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=int)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be (n, d) with n = len(labels) = {len(labels)}, got {features.shape}")
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ValueError(f"{folds} folds need at least {folds} objects, got {n_groups}; use fewer --folds")
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    out = np.zeros((len(labels), n_classes))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "least populated class has fewer members than n_splits": that class is simply absent
        # from some folds, which fit_predict_proba handles.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(splitter.split(features, labels, groups))
    for train, test in tqdm(splits, desc="cross-validation", unit="fold", leave=False):
        out[test] = fit_predict_proba(features[train], labels[train], features[test], n_classes, C=C, seed=seed)
    return out


def find_label_issues(labels, pred_probs, *, filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """Indices of the likely mislabeled rows, the least self-confident first (cleanlab's
    confident learning; ``filter_by`` is passed on)."""
    labels, pred_probs = np.asarray(labels, dtype=int), np.asarray(pred_probs, dtype=float)
    if pred_probs.ndim != 2 or len(pred_probs) != len(labels):
        raise ValueError(f"pred_probs must be (n, n_classes) with n = {len(labels)}, got {pred_probs.shape}")
    if len(labels) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(
        _cleanlab_find_label_issues(
            labels, pred_probs, filter_by=filter_by, return_indices_ranked_by="self_confidence", n_jobs=1
        ),
        dtype=int,
    )


def suggest_labels(pred_probs, threshold: float = 0.9) -> np.ndarray:
    """Indices of rows whose most likely class has probability ≥ ``threshold``, most confident first."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    pred_probs = np.asarray(pred_probs, dtype=float)
    if len(pred_probs) == 0:
        return np.zeros(0, dtype=int)
    best = pred_probs.max(axis=1)
    keep = np.flatnonzero(best >= threshold)
    return keep[np.argsort(-best[keep], kind="stable")]


def mean_by_group(values: np.ndarray, groups: Sequence) -> tuple[list, np.ndarray]:
    """(unique groups in first-seen order, the mean row of each group)."""
    order = list(dict.fromkeys(groups))
    index = {g: i for i, g in enumerate(order)}
    rows = np.array([index[g] for g in groups])
    sums = np.zeros((len(order), values.shape[1]))
    np.add.at(sums, rows, values)
    return order, sums / np.bincount(rows, minlength=len(order))[:, None]


# -- features from a trained classifier ---------------------------------------------------------
@dataclass
class Features:
    values: np.ndarray  # (n readable images, d)
    paths: list[Path]  # the readable images, in input order
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (image, why)


def image_features(classifier, paths: Sequence[str | Path], *, cache_dir: Path | None = None, batch_size: int = 32) -> Features:
    """Pooled backbone features of ``paths`` via ``classifier.extract_features``, cached per
    image content and backbone weights; unreadable images are skipped and listed."""
    cache = features.open_cache(
        cache_dir, "pooled-review",
        backbone=classifier.cfg.backbone, weights=backbones.state_digest(classifier.net.backbone),
        preprocess=classifier.cfg.preprocess.to_dict(),
    )
    paths = [Path(p) for p in paths]
    keys: dict[Path, str | None] = {}
    skipped: list[tuple[Path, str]] = []
    for p in paths:
        try:
            keys[p] = file_digest(p)
        except OSError as exc:
            keys[p] = None
            skipped.append((p, f"cannot be read: {exc}"))
    todo = [p for p in paths if keys[p] is not None and keys[p] not in cache.entries]
    with tqdm(total=len(todo), desc="features", unit="image") as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            for p, value in _extract(classifier, chunk, skipped):
                cache.entries[keys[p]] = torch.from_numpy(np.asarray(value, dtype=np.float32)).half()
            bar.update(len(chunk))
    cache.save()
    bad = {p for p, _ in skipped}
    good = [p for p in paths if p not in bad]
    values = np.stack([cache.entries[keys[p]].float().numpy() for p in good]) if good else np.zeros((0, 0))
    return Features(values, good, skipped)


def _extract(classifier, chunk: list[Path], skipped: list[tuple[Path, str]]):
    """(path, features) for the chunk; on a bad image, one at a time to find and skip it."""
    try:
        return list(zip(chunk, classifier.extract_features(chunk)))
    except ValueError:
        pairs = []
        for p in chunk:
            try:
                pairs.append((p, classifier.extract_features([p])[0]))
            except ValueError as exc:
                skipped.append((p, str(exc)))
        return pairs

