"""How good a classifier is: metrics as plain functions on arrays, test-time augmentation,
and a model's predictions for a dataset split.

Labels are integer class ids (columns of ``probs``); ``class_names[i]`` names id ``i``.

    ev = evaluate_predictions(y_true, probs, class_names)
    ev.accuracy, ev.macro_f1, ev.per_class, ev.confusion
    most_confused(ev.confusion, class_names)       # [(true, predicted, count), ...]
    top_losses(y_true, probs, k=20)                # the most confident mistakes, worst first
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageOps
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

from muses.analysis.calibration import chance_ece, expected_calibration_error

from muses.errors import MusesError
from muses.imaging import MAX_PIXELS
from muses.model.image_loading import load_images
from muses.progress import progress_bar

TTA_ZOOM = 0.875  # the zoomed view keeps the central 87.5 % of the photo, as a centre crop would
TTA_VIEWS = ("plain", "mirror", "zoom")  # what tta_views returns, in this order


class EvaluationError(MusesError):
    """A model and a dataset that cannot be evaluated together."""


@dataclass
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # true instances of the class


@dataclass
class Evaluation:
    n: int
    accuracy: float
    macro_f1: float  # mean F1 over the classes that occur in y_true or y_pred
    log_loss: float  # mean -ln p(true class): shows calibration changes accuracy does not (e.g. TTA)
    per_class: list[ClassMetrics]
    confusion: np.ndarray  # rows: true class, columns: predicted class
    ece: float = 0.0  # expected calibration error, 10 bins: how far "90 % sure" is from 90 % right
    chance_ece: float = 0.0  # the ECE a perfectly calibrated model would measure on these photos

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "log_loss": self.log_loss,
            "ece": self.ece,
            "chance_ece": self.chance_ece,
            "per_class": [asdict(c) for c in self.per_class],
            "confusion": self.confusion.tolist(),
        }


@dataclass
class GoldAgreement:
    """Predictions against hand-checked labels, for the items that have one."""

    n: int  # items with a usable gold label and a prediction
    accuracy: float | None
    macro_f1: float | None
    unknown_ids: list[str] = field(default_factory=list)  # gold ids with no prediction
    unknown_classes: dict[str, str] = field(default_factory=dict)  # id -> gold class the model lacks

    def to_dict(self) -> dict:
        return asdict(self)


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> None:
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d and of equal length, got {y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} holds class ids outside 0..{n_classes - 1}")


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes): row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    _check_labels(y_true, y_pred, n_classes)
    return _sk_confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def per_class_metrics(y_true, y_pred, class_names: Sequence[str]) -> list[ClassMetrics]:
    """Precision, recall, F1 and support of every class; 0.0 where a ratio has no denominator."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    _check_labels(y_true, y_pred, len(class_names))
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(class_names)), zero_division=0
    )
    return [ClassMetrics(name, float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, name in enumerate(class_names)]


def macro_f1(y_true, y_pred) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred``."""
    if len(y_true) == 0:
        raise ValueError("macro_f1 of no predictions is undefined")
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def evaluate_predictions(y_true, probs, class_names: Sequence[str]) -> Evaluation:
    """All metrics for probabilities ``probs`` (n, n_classes), predicted class = arg-max."""
    probs = np.asarray(probs, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    if probs.ndim != 2 or probs.shape != (len(y_true), len(class_names)):
        raise ValueError(f"probs must have shape (n, n_classes) = ({len(y_true)}, {len(class_names)}), got {probs.shape}")
    if len(y_true) == 0:
        raise ValueError("nothing to evaluate: no predictions")
    y_pred = probs.argmax(axis=1)
    return Evaluation(
        n=len(y_true),
        accuracy=float((y_pred == y_true).mean()),
        macro_f1=macro_f1(y_true, y_pred),
        log_loss=float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-15, 1)).mean()),
        per_class=per_class_metrics(y_true, y_pred, class_names),
        confusion=confusion_matrix(y_true, y_pred, len(class_names)),
        ece=expected_calibration_error(probs, y_true),
        chance_ece=chance_ece(probs),
    )


def most_confused(confusion: np.ndarray, class_names: Sequence[str], min_count: int = 1) -> list[tuple[str, str, int]]:
    """Off-diagonal cells with at least ``min_count`` images, largest first (fastai's most_confused)."""
    pairs = [
        (class_names[t], class_names[p], int(confusion[t, p]))
        for t in range(len(class_names))
        for p in range(len(class_names))
        if t != p and confusion[t, p] >= min_count
    ]
    return sorted(pairs, key=lambda x: -x[2])


def top_losses(y_true, probs, k: int | None = None) -> np.ndarray:
    """Indices of the misclassified rows, the most confident mistake first (highest probability
    of the wrong predicted class; ties broken by the lowest probability of the true class)."""
    probs = np.asarray(probs, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    order = np.lexsort((probs[wrong, y_true[wrong]], -probs[wrong, y_pred[wrong]]))
    ranked = wrong[order]
    return ranked if k is None else ranked[:k]


def gold_agreement(
    predicted: Mapping[str, str], gold: Mapping[str, str], class_names: Sequence[str]
) -> GoldAgreement:
    """Compare ``predicted`` (item id → class name) with ``gold`` (item id → class name).

    Gold ids with no prediction and gold classes the model does not know are listed, not
    counted: they say the gold file and the model disagree on what exists, not who is right.
    """
    known = set(class_names)
    unknown_ids = sorted(i for i in gold if i not in predicted)
    unknown_classes = {i: c for i, c in sorted(gold.items()) if i in predicted and c not in known}
    ids = [i for i in sorted(gold) if i in predicted and gold[i] in known]
    if not ids:
        return GoldAgreement(0, None, None, unknown_ids, unknown_classes)
    truth = [gold[i] for i in ids]
    pred = [predicted[i] for i in ids]
    accuracy = float(np.mean([t == p for t, p in zip(truth, pred)]))
    return GoldAgreement(len(ids), accuracy, macro_f1(truth, pred), unknown_ids, unknown_classes)


def mean_by_group(values: np.ndarray, groups: Sequence) -> tuple[list, np.ndarray]:
    """(unique groups in first-seen order, the mean row of each group)."""
    order = list(dict.fromkeys(groups))
    index = {g: i for i, g in enumerate(order)}
    rows = np.array([index[g] for g in groups])
    sums = np.zeros((len(order), values.shape[1]))
    np.add.at(sums, rows, values)
    return order, sums / np.bincount(rows, minlength=len(order))[:, None]


def tta_views(image: Image.Image, zoom: float = TTA_ZOOM) -> list[Image.Image]:
    """The test-time augmentation views of a photo: as is, mirrored, and a centre zoom."""
    if not 0 < zoom <= 1:
        raise ValueError(f"zoom must be in (0, 1], got {zoom}")
    w, h = image.size
    cw, ch = max(1, round(w * zoom)), max(1, round(h * zoom))
    left, top = (w - cw) // 2, (h - ch) // 2
    return [image, ImageOps.mirror(image), image.crop((left, top, left + cw, top + ch))]


def predict_views(classifier, images: Sequence[Image.Image], batch_size: int = 32, zoom: float = TTA_ZOOM) -> np.ndarray:
    """Class probabilities of every :func:`tta_views` view, shape (n_images, n_views, n_classes):
    ``[:, 0]`` is the plain prediction, ``.mean(axis=1)`` the test-time-augmented one."""
    views = [v for im in images for v in tta_views(im, zoom)]
    probs = classifier.predict_pil(views, batch_size=batch_size)
    return probs.reshape(len(images), len(TTA_VIEWS), len(classifier.class_names))


# -- a trained model on a dataset split ----------------------------------------------------------
@dataclass
class SplitPredictions:
    """A model's probabilities for the photos of one dataset split."""

    samples: list  # data.Sample, the photos that could be read, in manifest order
    labels: np.ndarray  # their naive labels as the *model's* class ids
    probs: np.ndarray  # (n, n_classes), columns in the model's class_names order
    probs_tta: np.ndarray | None = None  # the same with test-time augmentation, when asked for
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, why)


def predict_split(classifier, dataset, split: str = "test", *, tta: bool = False, batch_size: int = 32,
                  max_pixels: int = MAX_PIXELS) -> SplitPredictions:
    """Predict every photo of ``split`` of a :class:`~muses.datasets.folder.DatasetFolder` with a
    :class:`~muses.model.predictor.Predictor`; unreadable photos are listed in ``skipped``."""
    index = {name: i for i, name in enumerate(classifier.class_names)}
    unknown = sorted(set(dataset.classes) - set(index))
    if unknown:
        raise EvaluationError(
            f"the dataset has classes the model does not know: {unknown} (model classes: {classifier.class_names}); "
            "evaluate the model on the dataset it was trained on, or retrain"
        )
    samples = dataset.split(split)
    if not samples:
        raise EvaluationError(f"the dataset {dataset.root} has no images in split {split!r}")
    kept, skipped, probs, probs_tta = [], list(dataset.skipped), [], []
    with progress_bar(total=len(samples), desc=f"predicting {split}", unit="photos") as bar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            images, readable, failed = load_images([s.path for s in chunk], classifier.cfg.input_size,
                                                   max_pixels=max_pixels)
            kept += [chunk[i] for i in readable]
            skipped += [(str(path), f"cannot be decoded: {why}") for _, path, why in failed]
            if tta:  # the plain photo is the first view: predicted once for both
                views = predict_views(classifier, images, batch_size=batch_size)
                probs.append(views[:, 0])
                probs_tta.append(views.mean(axis=1))
            else:
                probs.append(classifier.predict_pil(images, batch_size=batch_size))
            bar.update(min(batch_size, len(samples) - start))
    if not kept:
        raise EvaluationError(f"none of the {len(samples)} images of split {split!r} could be read")
    labels = np.array([index[dataset.classes[s.label]] for s in kept])
    return SplitPredictions(kept, labels, np.concatenate(probs), np.concatenate(probs_tta) if tta else None, skipped)


def item_classes(predictions: SplitPredictions, class_names: Sequence[str]) -> dict[str, str]:
    """Item id → most likely class, the probabilities of the item's photos averaged."""
    ids, probs = mean_by_group(predictions.probs, [s.item_id for s in predictions.samples])
    return {item_id: class_names[int(p.argmax())] for item_id, p in zip(ids, probs)}
