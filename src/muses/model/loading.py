"""Loading a model file for prediction: the torch or the ONNX Runtime predictor, cached until
the file changes, with a warning where it was trained under other class definitions.

    predictor = load_model("models/naive.safetensors", project=project)
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from muses.errors import MusesError
from muses.model import RUNTIMES
from muses.model.files import ModelCfg
from muses.model.files import paths as model_paths
from muses.settings import Project

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


def _project(project: Project | str | Path | None) -> Project | None:
    return project if project is None or isinstance(project, Project) else Project.load(project)


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


def load_model(path: str | Path | None = None, runtime: str = "auto", *,
               project: Project | str | Path | None = None) -> Predictor:
    """The model at ``path`` (default: the ``project``'s model_path), cached until its files
    change; with a ``project``, a model trained under other definitions than the project's
    warns (:class:`DefinitionsMismatchWarning`).

    ``runtime``: "torch", "onnx" (ONNX Runtime), or "auto": ONNX Runtime, exporting NAME.onnx
    first where it is missing or stale (once per trained model: train-model writes it, so this
    only happens for models trained before, or copied without it), and torch where ONNX cannot
    be used (the reason is a :class:`RuntimeFallbackWarning`).
    """
    if runtime not in RUNTIMES:
        raise LoadError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    proj = _project(project)
    if path is None and proj is None:
        raise LoadError("load_model needs the model file's path, or the project whose model to load")
    weights, meta = model_paths(path or proj.model_path)
    stamp = tuple(p.stat().st_mtime_ns if p.exists() else None for p in (weights, meta))
    key = (str(weights.resolve()), stamp, runtime)
    if key not in _CACHE:
        clf = _load_runtime(weights, runtime)
        check_definitions(clf.cfg, current_definitions_digest(proj) if proj else None)
        _CACHE.clear()  # one model in memory at a time: the web app reloads after retraining
        _CACHE[key] = clf
    return _CACHE[key]


def open_model(path: str | Path | None = None, runtime: str = "auto", *, project: Project | None = None) -> tuple[Predictor, list[str]]:
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
