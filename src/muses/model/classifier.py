"""``Classifier``: the original's trainable model, with its names and meanings.

A :class:`~muses.model.predictor.TorchPredictor` (it predicts like every predictor) that can
also train: ``unfreeze_layers(n)`` + ``set_optimizer(lr)`` + ``train_model(epochs)`` as in the
original, or :meth:`Classifier.fit` with explicit phases. The training loop is
:class:`muses.model.training.Trainer`; this class keeps the state the original's calls build
up between them (unfrozen blocks, learning rate, history) and where files go.
"""
from __future__ import annotations

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
from muses.model.views import AugmentCfg
from muses.settings import ComputeSettings


class Classifier(TorchPredictor):
    """A trainable image classifier. Make one with :func:`muses.model.loading.setup_classifier`."""

    def __init__(
        self,
        net: ClassifierNet,
        cfg: ModelCfg,
        *,
        dataset: DatasetFolder | None = None,
        device: str = "auto",
        seed: int = 0,
        batch_size: int = 32,
        views: int = 4,
        augment: AugmentCfg = AugmentCfg(),
        workers: int | None = None,
        cache_dir: Path | None = None,
        models_dir: Path | None = None,
        early_stopping: int | None = None,
        restore_best: bool = False,
        cache_trunk: bool = True,
        label_smoothing: float = 0.0,
        compute: ComputeSettings | None = None,
    ):
        self.train_cfg = TrainCfg(seed=seed, batch_size=batch_size, views=views, augment=augment, workers=workers,
                                  cache_dir=cache_dir, early_stopping=early_stopping, restore_best=restore_best,
                                  cache_trunk=cache_trunk, label_smoothing=label_smoothing, compute=compute)
        super().__init__(net, cfg, device=device)
        self.dataset, self.models_dir = dataset, models_dir
        self.lr, self.decay = 1e-3, 0.0
        self.history: list[dict] = list(cfg.history)
        self.unfreeze_layers(cfg.unfrozen_blocks)
        self.net.eval()

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> "Classifier":
        state, cfg = read_model(path)
        clf = cls(load_net(state, cfg, path), cfg, device=device)
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

    def set_optimizer(self, lr: float = 1e-3, decay: float = 0.0) -> None:
        """Adam with learning rate ``lr`` and Keras-style time decay ``lr / (1 + decay * step)``."""
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

    def plot_performance(self, filepath: str | Path | None = None) -> Path:
        """PNG of train vs validation accuracy and loss; default ``plots/<model>_performance.png``."""
        from muses.analysis.plots import plot_performance

        return plot_performance(self.history, filepath, name=self.name)

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
        """Where the model file and the checkpoint go: ``models_dir``, else the project's models folder."""
        if self.models_dir is not None:
            return Path(self.models_dir)
        from muses.settings import find_project

        return find_project().models_dir

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
    dropout: float = 0.2,
    seed: int = 0,
    **kwargs,
) -> Classifier:
    """A fresh classifier: pretrained backbone, new head (initialized from ``seed``)."""
    if not 0 <= dropout < 1:
        raise TrainingError(f"dropout must be in [0, 1), got {dropout}")
    if too_large(backbone):  # refused before building it, not after hours of training
        raise TrainingError(backbone_problem(backbone))
    cfg = ModelCfg(backbone=backbone, class_names=list(class_names), dropout=dropout, seed=seed,
                   **preprocess_cfg.to_dict())
    net = build_net(cfg, weights=weights, pretrained=pretrained, generator=torch.Generator().manual_seed(seed))
    cfg.num_features = net.backbone.num_features
    return Classifier(net, cfg, seed=seed, **kwargs)
