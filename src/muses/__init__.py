"""muses: turn a museum catalog into an image classifier.

The public API is the use-case layer (:mod:`muses.actions`): one function per user action,
each taking a :class:`Project` and a config, e.g. ``muses.train(project, muses.TrainConfig())``.
Its names are loaded on first use, so that ``import muses`` stays cheap (no torch).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_ACTIONS = (
    "import_collection", "preview_import", "check_photos", "preview_labels", "export_dataset", "train", "evaluate", "label_issues",
    "classify_collection", "map_collection", "predict_photos", "similar_objects", "record_decision", "undo_decision",
    "export_decisions",
    "ImportConfig", "CheckPhotosConfig", "PreviewConfig", "ExportConfig", "TrainConfig", "TrainCfg", "AugmentCfg",
    "EvaluateConfig", "LabelIssuesConfig", "ClassifyConfig", "MapConfig", "PredictConfig", "SimilarConfig",
    "RecordDecisionConfig", "UndoDecisionConfig", "DecisionsConfig",
)
__all__ = ["__version__", "Project", "find_project", "MusesError", *_ACTIONS]
_HOME = {"Project": "muses.settings", "find_project": "muses.settings", "MusesError": "muses.errors",
         **{name: "muses.actions" for name in _ACTIONS}}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
