"""The original CLEO API, with its names and meanings: set up, train, load and predict.

    clf = setup_classifier(224, mode="train", dataset="datasets/naive")
    clf.unfreeze_layers(0); clf.set_optimizer(1e-3); clf.train_model(30, save=False)
    clf.unfreeze_layers(4); clf.set_optimizer(5e-5); clf.train_model(20, model_name="naive")
    predict_image_path_dict(["photo1.jpg", "photo2.jpg"])  # OrderedDict class -> probability
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from muses.errors import MusesError
from muses.model import DEFAULT_BACKBONE, RUNTIMES
from muses.model.files import ModelCfg
from muses.model.files import paths as model_paths
from muses.predictions import ranked
from muses.settings import Project, find_project

# torch (seconds to import) only where a call needs it: predicting with ONNX Runtime never does.
if TYPE_CHECKING:
    from muses.model.classifier import Classifier
    from muses.model.predictor import Predictor


class LoadError(MusesError):
    """A bad argument to one of the loading calls (mode, runtime, no images)."""


class DefinitionsMismatchWarning(UserWarning):
    """The model was trained under other class definitions than the project's current ones."""


class RuntimeFallbackWarning(UserWarning):
    """The ONNX file beside the model cannot be used; torch predicts instead."""


def _project(project: Project | str | Path | None) -> Project:
    return project if isinstance(project, Project) else find_project(project)


def setup_classifier(
    target_size: int = 224,
    mode: str = "train",
    model_path: str | Path | None = None,
    dataset: str | Path | None = None,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: str | Path | None = None,
    pretrained: bool = True,
    resize_mode: str = "squash",
    dropout: float = 0.2,
    seed: int = 0,
    project: Project | str | Path | None = None,
    **options,
) -> Classifier:
    """``mode='train'``: a new classifier for the dataset folder (default ``datasets/naive``);
    ``mode='load'``: the model at ``model_path`` (default: muses.toml's model_path).

    ``options`` go to :class:`Classifier` (device, batch_size, views, workers, cache_dir,
    early_stopping, restore_best, cache_trunk, label_smoothing, compute).
    """
    from muses.datasets.folder import read_dataset
    from muses.model.backbones import default_preprocess
    from muses.model.classifier import Classifier, new_classifier
    from muses.model.features import CACHE_DIR

    if mode not in ("train", "load"):
        raise LoadError(f"mode must be 'train' or 'load', got {mode!r}")
    proj = _project(project)
    if mode == "load":
        return Classifier.load(model_path or proj.model_path, device=options.get("device", "auto"))
    ds = read_dataset(dataset or proj.datasets_dir / "naive")
    pre = default_preprocess(backbone, target_size)
    pre = type(pre)(**{**pre.to_dict(), "resize_mode": resize_mode})
    options.setdefault("cache_dir", proj.root / CACHE_DIR)
    options.setdefault("models_dir", proj.models_dir)
    clf = new_classifier(
        backbone, ds.classes, pre, weights=weights, pretrained=pretrained, dropout=dropout, seed=seed,
        dataset=ds, **options,
    )
    clf.cfg.definitions_digest = ds.definitions_digest
    clf.cfg.dataset = str(ds.root)
    return clf


def current_definitions_digest(project: Project) -> str | None:
    """The digest of the project's definitions file, or None where there is none to compare."""
    if not project.definitions_path.is_file():
        return None
    try:
        from muses.labeling.definitions import load_definitions
    except ImportError:
        return None
    return load_definitions(project.definitions_path).digest


def check_definitions(cfg: ModelCfg, digest: str | None) -> None:
    if digest and cfg.definitions_digest and digest != cfg.definitions_digest:
        warnings.warn(
            f"the model was trained under other class definitions (digest {cfg.definitions_digest[:12]}, "
            f"now {digest[:12]}): its classes are {cfg.class_names}. Retrain to use the current definitions.",
            DefinitionsMismatchWarning,
            stacklevel=3,
        )


_CACHE: dict[tuple, Predictor] = {}


def load_model(path: str | Path | None = None, runtime: str = "auto", *, project=None) -> Predictor:
    """The model at ``path`` (default: muses.toml's model_path), cached until its files change.

    ``runtime``: "torch", "onnx" (ONNX Runtime), or "auto": ONNX Runtime, exporting NAME.onnx
    first where it is missing or stale (once per trained model: train-model writes it, so this
    only happens for models trained before, or copied without it), and torch where ONNX cannot
    be used (the reason is a :class:`RuntimeFallbackWarning`).
    """
    if runtime not in RUNTIMES:
        raise LoadError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    proj = _project(project)
    weights, meta = model_paths(path or proj.model_path)
    stamp = tuple(p.stat().st_mtime_ns if p.exists() else None for p in (weights, meta))
    key = (str(weights.resolve()), stamp, runtime)
    if key not in _CACHE:
        clf = _load_runtime(weights, runtime)
        check_definitions(clf.cfg, current_definitions_digest(proj))
        _CACHE.clear()  # one model in memory at a time: the web app reloads after retraining
        _CACHE[key] = clf
    return _CACHE[key]


def open_model(path: str | Path | None = None, runtime: str = "auto", *, project=None) -> tuple[Predictor, list[str]]:
    """:func:`load_model` for a command: (the predictor, the warnings to show the user, e.g.
    that it was trained under other class definitions). Errors raise, as MusesError."""
    with warnings.catch_warnings(record=True) as caught:
        for shown in (DefinitionsMismatchWarning, RuntimeFallbackWarning):
            warnings.simplefilter("always", shown)
        predictor = load_model(path, runtime, project=project)
    return predictor, [str(w.message) for w in caught
                       if issubclass(w.category, (DefinitionsMismatchWarning, RuntimeFallbackWarning))]


# -- runtime dispatch (the ONNX side lives in model/onnx.py) ------------------------------------
def _load_runtime(weights: Path, runtime: str) -> Predictor:
    """A torch Classifier or an OnnxPredictor: both are Predictors."""
    if runtime == "torch":
        return _torch(weights)
    try:
        from muses.model import onnx as onnx_runtime
    except ImportError as exc:  # onnxruntime not installed
        if runtime == "onnx":
            raise LoadError(f"runtime 'onnx' needs onnx and onnxruntime ({exc}); pip install onnxruntime onnx") from exc
        return _torch(weights)
    if runtime == "onnx":
        return onnx_runtime.load_onnx(weights)
    try:
        return onnx_runtime.load_onnx(weights, reexport=True)
    except (onnx_runtime.OnnxError, ImportError) as exc:  # e.g. a read-only models folder, no onnx package
        warnings.warn(f"{exc}; predicting with torch instead", RuntimeFallbackWarning, stacklevel=3)
    return _torch(weights)


def _torch(weights: Path) -> Classifier:
    from muses.model.classifier import Classifier

    return Classifier.load(weights)


def predict_image_path_dict(paths: str | Path | Sequence[str | Path], model_path=None) -> OrderedDict:
    """Class → probability averaged over the images (one object's photos), most likely first."""
    clf = load_model(model_path)
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise LoadError("predict_image_path_dict needs at least one image path")
    probs = clf.predict_new(paths)
    return OrderedDict((c.name, c.probability) for c in ranked(clf.class_names, probs))


def predict_items(items: Iterable, model_path=None, *, project=None) -> OrderedDict:
    """The same for store Items, over their usable images (``stored_path``, relative to the project)."""
    proj = _project(project)
    paths = [proj.path(im.stored_path) for item in items for im in item.usable_images if im.stored_path]
    if not paths:
        raise LoadError("none of the items has a usable image; run `muses generate-images` first")
    return predict_image_path_dict(paths, model_path or proj.model_path)
