"""``Classifier``: the original's trainable model, with its names and meanings.

A :class:`~muses.model.predictor.TorchPredictor` (it predicts like every predictor) that can
also train: ``unfreeze_layers(n)`` + ``set_optimizer(lr)`` + ``train_model(epochs)`` as in the
original, or :meth:`Classifier.fit` with explicit phases. The training loop is
:class:`muses.model.training.Trainer`; this class keeps the state the original's calls build
up between them (unfrozen blocks, learning rate, history) and where files go.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from muses.datasets.folder import DatasetFolder
from muses.model.files import ModelCfg, backbone_problem, read_model, save_model, too_large
from muses.model.files import paths as model_paths
from muses.model.predictor import ClassifierNet, TorchPredictor, load_net, build_net
from muses.model.preprocessing import PreprocessCfg
from muses.model.training import Phase, TrainCfg, Trainer, TrainingError, num_blocks, unfreeze_blocks

TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainCfg))


def with_options(train_cfg: TrainCfg | None, options: dict) -> TrainCfg:
    """``train_cfg`` (default: TrainCfg's defaults) with the fields named in ``options`` replaced."""
    unknown = sorted(set(options) - TRAIN_FIELDS)
    if unknown:
        raise TrainingError(f"unknown training option(s) {', '.join(unknown)}; the options are the fields "
                            f"of TrainCfg: {', '.join(sorted(TRAIN_FIELDS))}")
    return dataclasses.replace(train_cfg or TrainCfg(), **options)


class Classifier(TorchPredictor):
    """A trainable image classifier. Make one with :func:`new_classifier` (the train action and
    the original's ``setup_classifier`` do), or :meth:`load` a model file."""

    def __init__(
        self,
        net: ClassifierNet,
        cfg: ModelCfg,
        *,
        dataset: DatasetFolder | None = None,
        device: str = "auto",
        models_dir: Path | None = None,
        train_cfg: TrainCfg | None = None,
        **train_options,
    ):
        """``train_cfg`` (default :class:`TrainCfg`'s defaults), with any of its fields given
        as ``train_options`` (seed, batch_size, views, workers, label_smoothing, ...) replaced."""
        self.train_cfg = with_options(train_cfg, train_options)
        super().__init__(net, cfg, device=device)
        self.dataset, self.models_dir = dataset, models_dir
        self.lr, self.decay = self.train_cfg.lr, self.train_cfg.decay
        self.history: list[dict] = list(cfg.history)
        self.unfreeze_layers(cfg.unfrozen_blocks)
        self.net.eval()

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> "Classifier":
        state, cfg = read_model(path)
        clf = cls(load_net(state, cfg, path), cfg, device=device, models_dir=Path(path).parent)
        clf.name = model_paths(path)[0].stem
        return clf

    # -- the original's API ------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        """How many backbone blocks ``unfreeze_layers`` can unfreeze."""
        return num_blocks(self.net)

    def unfreeze_layers(self, n: int) -> None:
        """Train the head and the last ``n`` blocks of the backbone (0: the head only).

        BatchNorm layers never train: their statistics and affine parameters stay as pretrained.
        """
        unfreeze_blocks(self.net, n)
        self.cfg.unfrozen_blocks = n

    def set_optimizer(self, lr: float | None = None, decay: float | None = None) -> None:
        """Adam with learning rate ``lr`` and Keras-style time decay ``lr / (1 + decay * step)``
        (default: the training config's ``lr`` and ``decay``)."""
        lr = self.train_cfg.lr if lr is None else lr
        decay = self.train_cfg.decay if decay is None else decay
        if lr <= 0 or decay < 0:
            raise TrainingError(f"lr must be > 0 and decay >= 0, got lr={lr}, decay={decay}")
        self.lr, self.decay = lr, decay

    def train_model(
        self,
        num_epochs: int,
        weighted: bool = True,
        save: bool = True,
        model_name: str = "naive",
        **kwargs,
    ) -> list[dict]:
        """Train ``num_epochs`` with the current unfreeze state and optimizer settings."""
        phase = Phase(num_epochs, self.cfg.unfrozen_blocks, self.lr, self.decay)
        return self.fit([phase], weighted=weighted, save=save, model_name=model_name, **kwargs)

    # -- training ------------------------------------------------------------------------------
    def fit(
        self,
        phases: Sequence[Phase],
        *,
        weighted: bool = True,
        save: bool = True,
        model_name: str = "naive",
        resume: bool = False,
        callback: Callable[[dict], None] | None = None,
        save_tensors: Callable = save_file,
    ) -> list[dict]:
        """Run the phases in order, then write the model (``save``); returns this run's history.

        A checkpoint beside the model is written after every epoch and removed at the end;
        ``resume=True`` continues from it. ``save_tensors`` writes the files (safetensors'
        ``save_file`` unless a caller needs otherwise).
        """
        self.name = model_name
        if self.dataset is None:
            raise TrainingError("this classifier has no dataset; set it up with mode='train' and a dataset folder")
        checkpoint = self.output_dir() / f"{model_name}.checkpoint.safetensors"
        trainer = Trainer(self.net, self.cfg, self.dataset, self.train_cfg, device=self.device, history=self.history)
        run_history = trainer.fit(phases, checkpoint=checkpoint, weighted=weighted, resume=resume, callback=callback,
                                  save_tensors=save_tensors)
        if save:
            self.save(self.output_dir() / model_name, save_tensors=save_tensors)
        checkpoint.unlink(missing_ok=True)
        return run_history

    def output_dir(self) -> Path:
        """Where the model file and the checkpoint go: ``models_dir``."""
        if self.models_dir is None:
            raise TrainingError("this classifier has no models folder to write to; give models_dir")
        return Path(self.models_dir)

    def save(self, path: str | Path, *, save_tensors: Callable = save_file) -> Path:
        self.cfg.history = self.history
        return save_model(path, self.net.state_dict(), self.cfg, save_tensors=save_tensors)


def new_classifier(
    backbone: str,
    class_names: list[str],
    preprocess_cfg: PreprocessCfg,
    *,
    weights: str | Path | None = None,
    pretrained: bool = True,
    train_cfg: TrainCfg | None = None,
    cls: type[Classifier] | None = None,
    **kwargs,
) -> Classifier:
    """A fresh ``cls`` (default :class:`Classifier`): pretrained backbone, new head with
    ``train_cfg``'s dropout, initialized from its seed (``kwargs``: more :class:`Classifier`
    arguments, and :class:`TrainCfg` fields that replace ``train_cfg``'s)."""
    train_cfg = with_options(train_cfg, {k: kwargs.pop(k) for k in list(kwargs) if k in TRAIN_FIELDS})
    if too_large(backbone):  # refused before building it, not after hours of training
        raise TrainingError(backbone_problem(backbone))
    cfg = ModelCfg(backbone=backbone, class_names=list(class_names), dropout=train_cfg.dropout, seed=train_cfg.seed,
                   **preprocess_cfg.to_dict())
    net = build_net(cfg, weights=weights, pretrained=pretrained, generator=torch.Generator().manual_seed(train_cfg.seed))
    cfg.num_features = net.backbone.num_features
    return (cls or Classifier)(net, cfg, train_cfg=train_cfg, **kwargs)
