"""The use-case layer: one function per user action, each taking a :class:`~muses.settings.Project`
and a frozen config dataclass and returning a typed result (what the command line prints).

The command line, the web app, the original's ``naive_classification`` names and the
benchmarks call these and nothing else of the internals. Importing this package is cheap:
each action imports torch (or the store) when it runs.

    from muses import Project, TrainConfig, TrainCfg, train
    result = train(Project.load("my-project"), TrainConfig(training=TrainCfg(epochs=20)))
"""
from muses.actions.analysis import (
    EvaluateConfig, EvaluateResult, LabelIssuesConfig, LabelIssuesResult, evaluate, label_issues,
)
from muses.actions.collection import (
    CheckPhotosConfig, CheckPhotosResult, DecisionsConfig, DecisionsResult, ImportConfig, ImportResult, ProblemPhoto,
    RecordDecisionConfig, UndoDecisionConfig, check_photos, export_decisions, import_collection, preview_import,
    record_decision, undo_decision,
)
from muses.actions.labels import ExportConfig, PreviewConfig, export_dataset, preview_labels
from muses.actions.predicting import (
    ClassifyConfig, ClassifyResult, MapConfig, NoQuery, PhotoAnswer, PredictConfig, PredictResult, SimilarConfig,
    SimilarParts, SimilarResult, UnknownItems, classify_collection, map_collection, open_parts, open_predictor, predict_photos,
    similar_objects,
)
from muses.actions.training import TrainConfig, TrainResult, prepare_classifier, train
from muses.model.config import AugmentCfg, TrainCfg

__all__ = [
    # the actions, in the order of the data flow
    "import_collection", "preview_import", "check_photos", "preview_labels", "export_dataset", "train", "evaluate", "label_issues",
    "classify_collection", "map_collection", "predict_photos", "similar_objects", "record_decision", "undo_decision",
    "export_decisions",
    # their configs
    "ImportConfig", "CheckPhotosConfig", "PreviewConfig", "ExportConfig", "TrainConfig", "TrainCfg", "AugmentCfg",
    "EvaluateConfig", "LabelIssuesConfig", "ClassifyConfig", "MapConfig", "PredictConfig", "SimilarConfig",
    "RecordDecisionConfig", "UndoDecisionConfig", "DecisionsConfig",
    # their results
    "ImportResult", "CheckPhotosResult", "ProblemPhoto", "TrainResult", "EvaluateResult", "LabelIssuesResult",
    "ClassifyResult", "PredictResult", "PhotoAnswer", "SimilarResult", "DecisionsResult",
    # parts for callers that keep things open (the web app) or build step by step (the original's API)
    "SimilarParts", "open_parts", "open_predictor", "prepare_classifier", "NoQuery", "UnknownItems",
]
