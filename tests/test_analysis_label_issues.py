"""Confident learning finds labels we flipped on purpose."""
from __future__ import annotations

import numpy as np
import pytest

from muses.analysis import label_issues as li
from muses.analysis.metrics import mean_by_group


def _blobs(n_per_class=60, n_classes=3, dim=16, seed=0, photos_per_item=1):
    """Separable Gaussian blobs as stand-in features; each item has ``photos_per_item`` rows."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(n_classes, dim))
    items = np.repeat(np.arange(n_classes * n_per_class), photos_per_item)
    truth = items // n_per_class
    x = centers[truth] + rng.normal(0, 1, size=(len(items), dim))
    return x, truth, items


def _flip(labels_by_item, fraction, n_classes, seed):
    rng = np.random.default_rng(seed)
    n = len(labels_by_item)
    flipped = rng.choice(n, size=int(round(fraction * n)), replace=False)
    noisy = labels_by_item.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy, set(flipped.tolist())


@pytest.mark.parametrize("photos_per_item", [1, 2])
def test_injected_label_errors_are_found(photos_per_item):
    x, truth, items = _blobs(photos_per_item=photos_per_item)
    item_truth = truth[::photos_per_item]
    item_noisy, flipped = _flip(item_truth, 0.10, 3, seed=1)
    noisy = item_noisy[items]  # an item's photos share its catalog label
    probs = li.out_of_sample_probs(x, noisy, groups=items, folds=5, seed=0)
    assert probs.shape == (len(x), 3) and np.allclose(probs.sum(1), 1)
    _, item_probs = mean_by_group(probs, items)
    found = set(li.find_label_issues(item_noisy, item_probs).tolist())
    hits = len(found & flipped)
    precision, recall = hits / max(1, len(found)), hits / len(flipped)
    print(f"flipped {len(flipped)}, flagged {len(found)}: precision {precision:.2f}, recall {recall:.2f}")
    assert recall >= 0.8 and precision >= 0.6


def test_ranking_puts_the_least_self_confident_first():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.array([[0.9, 0.1]] * 3 + [[0.05, 0.95]] + [[0.1, 0.9]] * 3 + [[0.7, 0.3]])
    # row 3 is labeled 0 with p(0) = 0.05, row 7 labeled 1 with p(1) = 0.3
    assert li.find_label_issues(labels, probs).tolist() == [3, 7]


def test_groups_never_straddle_folds():
    x, truth, items = _blobs(n_per_class=10, photos_per_item=3)
    # A head that sees an item's other photos would predict its twin perfectly; with groups
    # respected, swapping one item's label for all its photos must still leave it flagged.
    noisy = truth.copy()
    noisy[items == 0] = 1
    probs = li.out_of_sample_probs(x, noisy, groups=items, folds=5, seed=0)
    assert probs[items == 0].argmax(1).tolist() == [0, 0, 0]


def test_same_seed_same_probs_and_missing_classes():
    x, truth, items = _blobs(n_per_class=12)
    a = li.out_of_sample_probs(x, truth, items, folds=3, seed=7)
    assert np.array_equal(a, li.out_of_sample_probs(x, truth, items, folds=3, seed=7))
    # a class with a single item: absent from its own fold's training rows, probability 0 there
    labels = truth.copy()
    labels[0] = 3
    p = li.out_of_sample_probs(x, labels, items, folds=3, seed=0, n_classes=4)
    assert p.shape == (len(x), 4) and p[0, 3] == 0


def test_bad_arguments():
    x, truth, items = _blobs(n_per_class=2)
    with pytest.raises(li.ReviewError, match="at least 10 objects"):
        li.out_of_sample_probs(x, truth, items, folds=10)
    with pytest.raises(li.ReviewError, match="folds must be"):
        li.out_of_sample_probs(x, truth, items, folds=1)
    with pytest.raises(ValueError, match="features must be"):
        li.out_of_sample_probs(x[:3], truth, items)
    with pytest.raises(li.ReviewError, match="threshold"):
        li.suggest_labels(np.ones((1, 2)) / 2, threshold=0)


def test_suggest_labels():
    probs = np.array([[0.5, 0.5], [0.95, 0.05], [0.02, 0.98], [0.89, 0.11]])
    assert li.suggest_labels(probs, 0.9).tolist() == [2, 1]
    assert li.suggest_labels(np.zeros((0, 2))).tolist() == []
    # column 1 is the class "other": a record the model calls "none of these" gets no suggestion
    assert li.suggest_labels(probs, 0.9, none_of_these=1).tolist() == [1]


def test_flipped_labels_found_through_the_real_backbone(tmp_path, tiny_model_path):
    """Drawn shapes, 10 % of their labels flipped, features from the tiny model's Lite0 backbone."""
    import csv

    from muses.testing.datasets import SHAPES, make_shapes_dataset
    from muses.datasets.folder import read_dataset
    from muses.model.loading import load_model

    root = make_shapes_dataset(tmp_path / "ds", per_class=20, seed=5)
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(0)
    flipped = {rows[i]["item_id"] for i in rng.choice(len(rows), size=len(rows) // 10, replace=False)}
    truth = {r["item_id"]: r["class"] for r in rows}
    for r in rows:
        if r["item_id"] in flipped:
            r["class"] = SHAPES[(SHAPES.index(r["class"]) + 1 + int(rng.integers(2))) % 3]
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    clf = load_model(tiny_model_path, project=tmp_path)
    review = li.review_labels(clf, read_dataset(root), folds=5, seed=0, cache_dir=tmp_path / "cache")
    found = {r["id"] for r in review.issues}
    hits = len(found & flipped)
    precision, recall = hits / max(1, len(found)), hits / len(flipped)
    print(f"flipped {len(flipped)} of {len(rows)}, flagged {len(found)}: precision {precision:.2f}, recall {recall:.2f}")
    assert review.n_items == 60 and review.n_unlabeled == 0
    assert recall >= 0.8 and precision >= 0.6
    assert all(r["suggested"] == truth[r["id"]] for r in review.issues if r["id"] in flipped)


def test_pretrained_twin_has_the_original_weights(tiny_model_path, tmp_path):
    from muses.model import backbones
    from muses.model.classifier import Classifier
    from muses.model.loading import load_model

    clf = load_model(tiny_model_path, runtime="torch", project=tmp_path)  # compares torch weights
    assert li.feature_extractor(clf, "auto") is clf and li.feature_extractor(clf, "model") is clf  # head-only model
    twin = li.feature_extractor(clf, "pretrained")
    assert twin.cfg.preprocess == clf.cfg.preprocess and twin.class_names == clf.class_names
    # the tiny model trained its head only, so its backbone still holds the pretrained weights
    assert backbones.state_digest(twin.net.backbone) == backbones.state_digest(clf.net.backbone)
    tuned = Classifier.load(tiny_model_path)  # an own copy: load_model's is shared by other tests
    tuned.cfg.unfrozen_blocks = 2  # as if fine-tuned: auto now takes the pretrained twin
    assert li.feature_extractor(tuned, "auto") is not tuned
    with pytest.raises(li.ReviewError, match="features must be one of"):
        li.feature_extractor(clf, "imagenet")


def test_records_that_matched_no_class_are_never_listed(tmp_path, tiny_model_path):
    """An ``other`` photo (a record whose catalog matched no class) makes no catalog claim to
    check; drawn here like triangles, the old ranking listed them as triangles mislabeled."""
    from muses.datasets.folder import read_dataset
    from muses.model.loading import load_model
    from muses.predictions import OTHER
    from muses.testing.datasets import make_shapes_dataset

    root = make_shapes_dataset(tmp_path / "ds", per_class=12, seed=3, classes=("circle", "square", "triangle", OTHER))
    clf = load_model(tiny_model_path, project=tmp_path)
    review = li.review_labels(clf, read_dataset(root), folds=3, seed=0, cache_dir=tmp_path / "cache")
    assert review.n_items == 36 and not [r for r in review.issues if r["id"].startswith(OTHER)]
