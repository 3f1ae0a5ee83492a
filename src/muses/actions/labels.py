"""Labels: preview how the definitions label the collection; export the training data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from muses.settings import Project

if TYPE_CHECKING:
    from muses.datasets.naive import ExportResult


@dataclass(frozen=True)
class PreviewConfig:
    definitions: Path | None = None  # definitions.toml (None: the project's)
    gold: Path | None = None  # a hand-checked id,class CSV: the report then gives precision
    left_out: Path | None = None  # write every conflicting, excluded and unlabeled record to this CSV
    report: Path = Path("reports/label-preview")  # report.html and report.json (no photos needed)
    compare: str | None = None  # a catalog field holding a classification to score the labels against
    progress: bool = True  # show the labeling's progress bar


def preview_labels(project: Project, config: PreviewConfig = PreviewConfig()) -> dict[str, Any]:
    """The labeling report (coverage, per-class counts, keyword hits, conflicts) of the
    definitions on the project's store, writing no dataset, and its HTML page in ``report``;
    ``left_out`` and ``report`` are taken from the project folder. With ``compare``, the report's
    ``"compare"`` scores the labels against that catalog field."""
    from muses.datasets.naive import compare_with_catalog, preview
    from muses.search import refresh_project_indexes

    left_out = project.path(config.left_out) if config.left_out else None
    report = preview(project, definitions=config.definitions, gold=config.gold, left_out=left_out,
                     report_dir=project.path(config.report), progress=config.progress)
    if config.compare:
        report["compare"] = compare_with_catalog(project, config.compare, definitions=config.definitions)
    if config.definitions is None:  # a draft's labels are not the collection's
        refresh_project_indexes(project)
    return report


@dataclass(frozen=True)
class ExportConfig:
    """The exporter and its options; an option left None takes the exporter's own default
    (see :class:`muses.datasets.naive.NaiveExporter`)."""

    exporter: str = "naive"  # how the labels are made (an installed exporter's name)
    definitions: Path | None = None
    gold: Path | None = None
    max_images: int | None = None  # at most this many images per class
    seed: int | None = None  # sampling and split seed
    split: str | None = None  # "train,val,test" fractions, per class and object
    min_items: int | None = None  # a class with fewer labeled items with images is an error
    other: bool | None = None  # an "other" class of records that match no class
    out: Path | None = None  # dataset folder, from the project folder (None: datasets/<exporter>)


OPTIONS = ("definitions", "gold", "max_images", "seed", "split", "min_items", "other")


def export_dataset(project: Project, config: ExportConfig = ExportConfig()) -> ExportResult:
    """Label the collection with the exporter and write the dataset folder (photos split into
    train/val/test per object, a manifest and the labeling report)."""
    from muses.datasets.registry import load_exporter
    from muses.search import refresh_project_indexes

    options = {name: getattr(config, name) for name in OPTIONS if getattr(config, name) is not None}
    result = load_exporter(config.exporter)(**options).export(project, out=config.out)
    refresh_project_indexes(project)  # the browse index's catalog labels follow definitions.toml
    return result
