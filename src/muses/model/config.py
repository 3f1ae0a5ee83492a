"""How to train, as plain dataclasses: the one place a training default is written.

No torch here, so that the command line can show these defaults in ``--help`` and build its
configs without importing it. :mod:`muses.model.training` runs what these describe.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from muses.errors import MusesError
from muses.settings import ComputeSettings

TRANSFER_SHARE = 0.6  # of the epochs, when fine-tuning follows


class TrainingError(MusesError):
    """Training settings, a dataset or a checkpoint that cannot be trained with."""


@dataclass(frozen=True)
class Phase:
    epochs: int
    unfrozen_blocks: int  # backbone blocks that train (0: transfer learning, only the head)
    lr: float
    decay: float = 0.0  # Keras-style learning-rate decay: lr / (1 + decay * step)


@dataclass(frozen=True)
class AugmentCfg:
    """Training-time augmentation of the cached views (see :mod:`muses.model.views`)."""

    flip: bool = True
    degrees: float = 20.0
    translate: float = 0.2
    scale: tuple[float, float] = (0.8, 1.2)
    color_jitter: float = 0.2


@dataclass(frozen=True)
class TrainCfg:
    """How to train (not what: that is the model's :class:`~muses.model.files.ModelCfg`).

    The defaults are the ones ``make bench-quality`` measured; ``muses train-model``, the
    train action and the original's ``setup_classifier`` all start from them.
    """

    epochs: int = 50  # in all, split between transfer learning and fine-tuning (see phases)
    # Fine-tuning did not pay on the Met sample (make bench-quality, 2026-12-06): macro-F1 and
    # calibration no better than the head alone, minutes more per model; --fine-tuning turns it on.
    fine_tuning: bool = False  # fine-tune the backbone's tail after transfer learning
    unfrozen_blocks: int = 4  # backbone blocks fine-tuned, counted from the last
    lr: float = 1e-3  # learning rate of transfer learning
    fine_tune_lr: float = 5e-5  # learning rate of fine-tuning
    decay: float = 0.0  # learning-rate decay per step: lr / (1 + decay * step)
    dropout: float = 0.2  # before the linear head
    # 0.1 made the answers timid (ECE 0.178 on unseen Met photos, issue 23); the bench keeps it off
    label_smoothing: float = 0.0  # share of each target spread over the other classes
    seed: int = 0
    batch_size: int = 32
    views: int = 4  # augmented views cached per training image
    augment: AugmentCfg = AugmentCfg()
    workers: int | None = None  # image decoding processes (None: up to 4)
    cache_dir: Path | None = None  # feature cache (None: in memory only)
    early_stopping: int | None = None  # patience in epochs
    restore_best: bool | None = None  # keep each phase's best epoch (None: when early_stopping is set)
    cache_trunk: bool = True
    # Temperature and "uncertain" threshold fitted on out-of-fold predictions of this many heads
    # over the whole training set (0: on the validation photos alone, which swung T from 0.6 to
    # 0.7 on 41 photos); used when the last phase trains the head alone, else the validation photos.
    calibration_folds: int = 5
    compute: ComputeSettings | None = None  # where frozen features are extracted (None: here)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TrainingError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.views < 1:
            raise TrainingError(f"batch_size and views must be >= 1, got {self.batch_size} and {self.views}")
        if not 0 <= self.label_smoothing < 1:
            raise TrainingError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.dropout < 1:
            raise TrainingError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.fine_tune_lr <= 0 or self.decay < 0:
            raise TrainingError(f"learning rates must be > 0 and decay >= 0, got lr={self.lr}, "
                                f"fine_tune_lr={self.fine_tune_lr}, decay={self.decay}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise TrainingError(f"early_stopping is a patience in epochs (>= 1), got {self.early_stopping}")
        if self.calibration_folds < 0 or self.calibration_folds == 1:
            raise TrainingError(f"calibration_folds must be 0 (validation photos) or >= 2, got {self.calibration_folds}")
        if self.workers is None:
            object.__setattr__(self, "workers", min(4, os.cpu_count() or 1))
        if self.restore_best is None:
            object.__setattr__(self, "restore_best", self.early_stopping is not None)

    def phases(self) -> list[Phase]:
        """``epochs`` split 60/40 between transfer learning and fine-tuning the last
        ``unfrozen_blocks`` blocks; all of them transfer learning without ``fine_tuning``."""
        transfer = max(1, math.ceil(self.epochs * TRANSFER_SHARE)) if self.fine_tuning else self.epochs
        phases = [Phase(transfer, 0, self.lr, self.decay)]
        if self.epochs > transfer:
            phases.append(Phase(self.epochs - transfer, self.unfrozen_blocks, self.fine_tune_lr, self.decay))
        return phases


def calibrates_out_of_fold(train_cfg: TrainCfg, phases: list[Phase]) -> bool:
    """Whether training ``phases`` calibrates on out-of-fold predictions: only when the last phase
    trains the head alone, so that heads fitted on cached features predict like the model (a
    fine-tuned net does not; it is calibrated on the validation photos)."""
    return bool(train_cfg.calibration_folds and phases and phases[-1].unfrozen_blocks == 0)


def default_phases(epochs: int, **options) -> list[Phase]:
    """The phases of :meth:`TrainCfg.phases` for ``epochs`` and the :class:`TrainCfg` ``options``
    given (fine_tuning, unfrozen_blocks, lr, fine_tune_lr, decay)."""
    return TrainCfg(epochs=epochs, **options).phases()
