"""How good the model is: evaluate it on a dataset split; find records whose label looks wrong."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from muses.actions.predicting import open_predictor
from muses.settings import ComputeSettings, Project

if TYPE_CHECKING:
    from muses.analysis.label_issues import LabelReview
    from muses.analysis.metrics import Evaluation, GoldAgreement
    from muses.datasets.folder import DatasetFolder


@dataclass(frozen=True)
class EvaluateConfig:
    model: Path | None = None  # None: muses.toml's model_path
    dataset: Path | None = None  # None: the project's datasets/naive
    out: Path | None = None  # output folder, from the project folder (None: the plots folder)
    split: str = "test"
    tta: bool = False  # also with test-time augmentation (photo, mirror, centre zoom averaged)
    gold: Path | None = None  # hand-checked id,class CSV, or "decisions": the reviewers' decisions
    top_k: int = 50  # mistakes shown in the gallery
    batch_size: int = 32


@dataclass(frozen=True)
class EvaluateResult:
    report: dict[str, Any]  # what MODEL_SPLIT_evaluation.json holds
    plain: Evaluation
    tta: Evaluation | None
    agreement: GoldAgreement | None  # against the gold labels, when given
    skipped: list[tuple[str, str]]  # (photo, why) not usable


def _model_and_data(project: Project, model: Path | None, dataset: Path | None, out: Path | None):
    from muses.datasets.folder import read_dataset

    clf = open_predictor(project, model)
    return clf, read_dataset(dataset or project.datasets_dir / "naive"), project.path(out) if out else project.plots_dir


def _gold(project: Project, spec: Path) -> dict[str, str]:
    """Hand-checked labels: the reviewers' decisions (``decisions``) or an id,class CSV."""
    from muses.collection.decisions import GOLD_DECISIONS, reviewed_classes
    from muses.collection.store import Store
    from muses.labeling.report import load_gold

    return reviewed_classes(Store.for_project(project)) if str(spec) == GOLD_DECISIONS else load_gold(spec)


def evaluate(project: Project, config: EvaluateConfig = EvaluateConfig()) -> EvaluateResult:
    """Metrics of the model on a dataset split (per photo), the confusion matrix, a reliability
    diagram and a gallery of the most confident mistakes, written into the output folder."""
    from muses.analysis import metrics as ev
    from muses.analysis.reports import catalog_fields, write_evaluation, write_evaluation_report
    from muses.collection.store import Store

    clf, dataset, out_dir = _model_and_data(project, config.model, config.dataset, config.out)
    gold = _gold(project, config.gold) if config.gold else None
    preds = ev.predict_split(clf, dataset, config.split, tta=config.tta, batch_size=config.batch_size)
    names = clf.class_names
    plain = ev.evaluate_predictions(preds.labels, preds.probs, names)
    tta = ev.evaluate_predictions(preds.labels, preds.probs_tta, names) if config.tta else None
    catalog = catalog_fields(Store.for_project(project), {s.item_id for s in preds.samples})
    prefix = f"{clf.name}_{config.split}"
    files = write_evaluation(out_dir, prefix, preds, plain, names, catalog, top_k=config.top_k)
    agreement = ev.gold_agreement(ev.item_classes(preds, names), gold, names) if gold is not None else None
    report = write_evaluation_report(out_dir / f"{prefix}_evaluation.json", model=clf.name, dataset=dataset,
                                     split=config.split, plain=plain, tta=tta, agreement=agreement,
                                     skipped=preds.skipped, files=files)
    return EvaluateResult(report, plain, tta, agreement, list(preds.skipped))


@dataclass(frozen=True)
class LabelIssuesConfig:
    model: Path | None = None  # None: muses.toml's model_path (or, before any, the pretrained backbone)
    dataset: Path | None = None
    out: Path | None = None
    folds: int = 5  # cross-validation folds, >= 2
    seed: int = 0  # seed of the fold assignment
    threshold: float = 0.9  # least probability of a suggested label
    gallery_size: int = 200  # records per HTML page; the CSVs hold all
    features: str = "auto"  # model, pretrained, or auto: pretrained for a fine-tuned model
    compute: ComputeSettings | None = None  # None: muses.toml [compute]


@dataclass(frozen=True)
class LabelIssuesResult:
    review: LabelReview
    files: dict[str, Path]  # caption -> file written
    decided: int  # records a reviewer already decided (not listed)
    notes: list[str] = field(default_factory=list)  # how the features were chosen


def label_issues(project: Project, config: LabelIssuesConfig = LabelIssuesConfig()) -> LabelIssuesResult:
    """Cross-validated predictions for every labeled record, then confident learning: the
    records whose naive label looks wrong, and suggested labels for unlabeled records."""
    from muses.analysis.label_issues import review_labels, unlabeled_photos
    from muses.analysis.reports import write_label_review
    from muses.collection.decisions import current_decisions
    from muses.collection.store import Store
    from muses.model.features import CACHE_DIR

    compute = config.compute or project.settings.compute
    if compute.uses_ray:
        from muses.compute import require_ray

        require_ray()  # before loading the model: say what to install first
    extractor, dataset, out_dir, name, notes = _review_features(project, config)
    store = Store.for_project(project)
    decided = current_decisions(store)
    catalog, unlabeled = unlabeled_photos(store, project, {s.item_id for s in dataset.samples})
    review = review_labels(extractor, dataset, unlabeled, folds=config.folds, seed=config.seed,
                           threshold=config.threshold, catalog=catalog, cache_dir=project.root / CACHE_DIR,
                           decided=set(decided), compute=compute)
    files = write_label_review(out_dir, name, review, gallery_size=config.gallery_size)
    return LabelIssuesResult(review, files, len(decided), notes)


def _review_features(project: Project, config: LabelIssuesConfig) -> tuple[Any, DatasetFolder, Path, str, list[str]]:
    """(feature extractor, dataset, output folder, file prefix, notes): the model's (see
    ``features``), or, before any model is trained, the default pretrained backbone's."""
    from muses.analysis.label_issues import backbone_extractor, feature_extractor
    from muses.datasets.folder import read_dataset
    from muses.model.files import paths as model_paths

    if config.model is None and not model_paths(project.model_path)[0].is_file():
        dataset = read_dataset(config.dataset or project.datasets_dir / "naive")
        training = project.settings.training
        extractor = backbone_extractor(training.backbone, training.image_size, dataset.classes)
        note = (f"no model trained yet: reviewing with the photos' features from the pretrained {training.backbone} "
                "(train later with `muses train-model`)")
        out_dir = project.path(config.out) if config.out else project.plots_dir
        return extractor, dataset, out_dir, extractor.name, [note]
    clf, dataset, out_dir = _model_and_data(project, config.model, config.dataset, config.out)
    notes = []
    if config.features == "model" and clf.cfg.unfrozen_blocks:
        notes.append(f"note: {clf.name} was fine-tuned, so its features have seen the training labels and may "
                     "hide their mistakes; the default --features auto avoids that")
    return feature_extractor(clf, config.features), dataset, out_dir, clf.name, notes
