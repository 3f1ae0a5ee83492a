"""The original's ``helpers`` module: set up, train, load and predict, with its names.

    clf = setup_classifier(224, mode="train", dataset="datasets/naive")
    clf.unfreeze_layers(0); clf.set_optimizer(1e-3); clf.train_model(30, save=False)
    clf.unfreeze_layers(4); clf.set_optimizer(5e-5); clf.train_model(20, model_name="naive")
    predict_image_path_dict(["photo1.jpg", "photo2.jpg"])  # OrderedDict class -> probability

Thin wrappers: setting up is :func:`muses.actions.prepare_classifier` (the first half of the
train action), predicting is :func:`muses.actions.predict_photos`; every default is
:class:`muses.model.config.TrainCfg`'s. The one-call recipe is ``muses.train``.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

from muses.actions import PredictConfig, TrainConfig, predict_photos, prepare_classifier
from muses.model import classifier as model_classifier
from muses.model.classifier import TRAIN_FIELDS, with_options
from muses.model.loading import LoadError
from muses.model.loading import load_model as _load_model
from muses.model.predictor import Predictor
from muses.naive_classification import resolve_project
from muses.settings import Project

__all__ = ["Classifier", "load_model", "predict_image_path_dict", "predict_items", "setup_classifier"]
ProjectArg = Project | str | os.PathLike | None


class Classifier(model_classifier.Classifier):
    """The trainable classifier, with the original's ``plot_performance``."""

    def plot_performance(self, filepath: str | Path | None = None, *, project: ProjectArg = None) -> Path:
        """PNG of train vs validation accuracy and loss; default ``plots/<model>_performance.png``."""
        from muses.analysis.plots import plot_performance

        path = filepath or resolve_project(project).plots_dir / f"{self.name}_performance.png"
        return plot_performance(self.history, path)


def setup_classifier(
    target_size: int | None = None,
    mode: str = "train",
    model_path: str | Path | None = None,
    dataset: str | Path | None = None,
    backbone: str | None = None,
    *,
    weights: str | Path | None = None,
    pretrained: bool | None = None,
    resize_mode: str | None = None,
    project: ProjectArg = None,
    device: str | None = None,
    models_dir: str | Path | None = None,
    **options,
) -> Classifier:
    """``mode='train'``: a new classifier for the dataset folder (default ``datasets/naive``);
    ``mode='load'``: the model at ``model_path`` (default: muses.toml's model_path).

    ``target_size`` and ``backbone`` default to muses.toml's ``[training]``; ``options`` are
    fields of :class:`~muses.model.config.TrainCfg` (dropout, seed, batch_size, views, workers,
    cache_dir, early_stopping, label_smoothing, ...), its defaults where not given.
    """
    if mode not in ("train", "load"):
        raise LoadError(f"mode must be 'train' or 'load', got {mode!r}")
    proj = resolve_project(project)
    if mode == "load":
        return Classifier.load(model_path or proj.model_path, device=device or "auto")
    unknown = sorted(set(options) - TRAIN_FIELDS)
    if unknown:
        raise LoadError(f"setup_classifier got unknown option(s) {', '.join(unknown)}; the training options are "
                        f"the fields of TrainCfg: {', '.join(sorted(TRAIN_FIELDS))}")
    given = {"dataset": dataset, "backbone": backbone, "image_size": target_size, "weights": weights,
             "pretrained": pretrained, "resize_mode": resize_mode, "device": device}
    config = TrainConfig(training=with_options(None, options),
                         **{k: (Path(v) if k in ("dataset", "weights") else v) for k, v in given.items() if v is not None})
    clf = prepare_classifier(proj, config, cls=Classifier)
    if models_dir is not None:
        clf.models_dir = Path(models_dir)
    return clf


def load_model(path: str | Path | None = None, runtime: str = "auto", *, project: ProjectArg = None) -> Predictor:
    """The model at ``path`` (default: muses.toml's model_path), cached until its files change."""
    return _load_model(path, runtime, project=resolve_project(project))


def predict_image_path_dict(paths: str | Path | Sequence[str | Path], model_path=None, *,
                            project: ProjectArg = None) -> OrderedDict:
    """Class → probability averaged over the images (one object's photos), most likely first."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise LoadError("predict_image_path_dict needs at least one image path")
    proj = resolve_project(project)
    config = PredictConfig(images=tuple(Path(p) for p in paths), model=model_path, one_object=True, top_k=None)
    result = predict_photos(proj, config, predictor=load_model(model_path, project=proj))
    if result.skipped:  # the original answers for all the photos or for none
        image, why = result.skipped[0]
        raise LoadError(f"cannot read {image}: {why}")
    return OrderedDict((c.name, c.probability) for c in result.answers[0].classes)


def predict_items(items: Iterable, model_path=None, *, project: ProjectArg = None) -> OrderedDict:
    """The same for store Items, over their usable images (``stored_path``, relative to the project)."""
    proj = resolve_project(project)
    paths = [proj.path(im.stored_path) for item in items for im in item.usable_images if im.stored_path]
    if not paths:
        raise LoadError("none of the items has a usable image; run `muses generate-images` first")
    return predict_image_path_dict(paths, model_path or proj.model_path, project=proj)
