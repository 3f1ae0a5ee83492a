"""Train: a dataset folder → a model file (+ its ONNX twin for fast prediction, and plots)."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from muses.model.config import Phase, TrainCfg, TrainingError, calibrates_out_of_fold
from muses.progress import note
from muses.settings import Project

if TYPE_CHECKING:
    from muses.model.classifier import Classifier

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """What to train and where it goes; ``training`` says how (epochs, learning rates, ...).
    ``None`` means muses.toml's value (backbone, image_size under ``[training]``; the model
    name from ``[classification.naive_classification] model_path``) or the backbone's own
    preprocessing (resize_mode)."""

    training: TrainCfg = field(default_factory=TrainCfg)
    model_name: str | None = None  # file name in the models folder
    dataset: Path | None = None  # dataset folder (None: the project's datasets/naive)
    backbone: str | None = None  # any timm model name
    image_size: int | None = None  # input size in pixels
    weights: Path | None = None  # pretrained weights (.safetensors or .pth) for the backbone
    pretrained: bool = True  # False: random weights, on purpose
    resize_mode: str | None = None  # squash, pad or crop
    resume: bool = False  # continue an interrupted run from its checkpoint
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    plot_performance: bool = False  # write plots/NAME_performance.png
    runtime_files: bool = True  # write NAME.onnx for fast prediction


@dataclass(frozen=True)
class TrainResult:
    model_path: Path  # NAME.safetensors (NAME.json beside it)
    class_names: list[str]
    phases: list[Phase]
    history: list[dict]  # this run's epochs
    n_images: int
    n_val: int  # validation photos: what "val acc" rests on
    skipped: list[tuple[str, str]]  # (image, why) of the dataset not usable
    seconds: float
    temperature: float
    threshold: float  # answers below it are shown as uncertain
    out_of_fold: bool = False  # calibrated on out-of-fold predictions of every training photo (else: validation)
    onnx_path: Path | None = None
    onnx_error: str | None = None  # why the ONNX file could not be written
    plot_path: Path | None = None
    written: bool = True  # False in the processes of a multi-process run that do not write

    @property
    def calibrated(self) -> bool:
        return not (self.temperature == 1.0 and self.threshold == 0.0)


def model_name(project: Project, config: TrainConfig) -> str:
    name = config.model_name or project.model_path.stem
    if not name or Path(name).name != name:
        raise TrainingError(f"the model name must be a plain file name, got {name!r}")
    return name


def prepare_classifier(project: Project, config: TrainConfig, *, cls: type[Classifier] | None = None) -> Classifier:
    """A new classifier for ``config``'s dataset, ready to train: the first half of :func:`train`
    (the original's ``setup_classifier(mode="train")`` stops here)."""
    from muses.datasets.folder import read_dataset
    from muses.model.backbones import default_preprocess
    from muses.model.classifier import new_classifier
    from muses.model.features import CACHE_DIR

    training = project.settings.training
    backbone = config.backbone or training.backbone
    dataset = read_dataset(config.dataset or project.datasets_dir / "naive")
    pre = default_preprocess(backbone, config.image_size or training.image_size)
    if config.resize_mode is not None:
        pre = type(pre)(**{**pre.to_dict(), "resize_mode": config.resize_mode})
    train_cfg = config.training
    if train_cfg.cache_dir is None:
        train_cfg = dataclasses.replace(train_cfg, cache_dir=project.root / CACHE_DIR)
    clf = new_classifier(backbone, dataset.classes, pre, weights=config.weights, pretrained=config.pretrained,
                         train_cfg=train_cfg, cls=cls, dataset=dataset, device=config.device,
                         models_dir=project.models_dir)
    clf.cfg.definitions_digest = dataset.definitions_digest
    clf.cfg.dataset = str(dataset.root)
    return clf


def train(project: Project, config: TrainConfig = TrainConfig(), *, progress: Progress | None = None) -> TrainResult:
    """Train a classifier on the dataset folder with ``config`` and write the model file.

    Under torchrun each process trains its share and one writes the model. ``progress(epochs
    done, epochs in all)`` after every epoch. Ctrl-C leaves a checkpoint that
    ``resume=True`` continues from.
    """
    from muses.model import distributed

    if config.training.compute is not None and config.training.compute.uses_ray:
        from muses.compute import require_ray

        require_ray()  # before minutes of setting up: say what to install first
    name = model_name(project, config)
    device = distributed.setup(config.device)  # under torchrun: join the run, take this process's GPU
    try:
        return _train(project, config, name, device, main=distributed.from_env().main, progress=progress)
    finally:
        distributed.teardown()


def _train(project: Project, config: TrainConfig, name: str, device: str, *, main: bool,
           progress: Progress | None) -> TrainResult:
    t0 = time.perf_counter()
    clf = prepare_classifier(project, dataclasses.replace(config, device=device))
    tc = config.training
    if tc.fine_tuning and tc.unfrozen_blocks > clf.num_blocks:
        raise TrainingError(f"unfrozen_blocks: {clf.cfg.backbone} has {clf.num_blocks} blocks, got {tc.unfrozen_blocks}")
    phases = tc.phases()
    total, done = sum(p.epochs for p in phases), []

    def epoch_done(record: dict) -> None:
        done.append(record)
        if progress is not None:
            progress(len(done), total)

    history = clf.fit(phases, model_name=name, resume=config.resume, save=main, callback=epoch_done)
    out = clf.output_dir() / f"{name}.safetensors"
    result = TrainResult(
        model_path=out, class_names=list(clf.class_names), phases=phases, history=history,
        n_images=len(clf.dataset.samples), n_val=len(clf.dataset.split("val")), skipped=list(clf.dataset.skipped),
        seconds=time.perf_counter() - t0, temperature=clf.cfg.temperature, threshold=clf.cfg.threshold, written=main,
        out_of_fold=calibrates_out_of_fold(tc, phases),
    )
    if not main:
        return result
    if config.runtime_files:
        result = dataclasses.replace(result, **_runtime_files(out))
    if config.plot_performance:
        from muses.analysis.plots import plot_performance

        plot = plot_performance(clf.history, project.plots_dir / f"{name}_performance.png")
        result = dataclasses.replace(result, plot_path=plot)
    return result


def _runtime_files(model: Path) -> dict:
    from muses.model.onnx import OnnxError
    from muses.model.onnx_export import write_runtime_files

    note("writing the ONNX file for fast prediction (10 to 30 seconds)...")
    try:
        return {"onnx_path": write_runtime_files(model)}
    except OnnxError as exc:
        return {"onnx_error": str(exc)}
