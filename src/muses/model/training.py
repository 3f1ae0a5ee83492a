"""Training: phases, the loop, checkpoints.

Training runs in *phases* (:class:`Phase`): transfer learning (only the head trains, on cached
pooled features: an epoch costs milliseconds) then fine-tuning (the last n backbone blocks
train too, on cached outputs of the still-frozen trunk). A checkpoint (:class:`RunState` +
the weights) is written after every epoch, so an interrupted run resumes where it stopped.

    train_cfg = TrainCfg(epochs=50)  # the defaults live in muses.model.config
    history = Trainer(net, cfg, dataset, train_cfg).fit(train_cfg.phases(), checkpoint=path)
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader

from muses.datasets.folder import DatasetFolder, Sample
from muses.model import backbones, distributed, features
from muses.model.calibration import object_folds
from muses.model.config import (
    AugmentCfg, Phase, TrainCfg, TrainingError, calibrates_out_of_fold, default_phases,
)
from muses.model.files import ModelCfg, read_checkpoint, save_checkpoint
from muses.model.predictor import ClassifierNet, autocast
from muses.model.views import DETERMINISTIC, ViewDataset
from muses.progress import progress_bar, note

# The settings live in muses.model.config (no torch); they are imported from here too.
__all__ = ["AugmentCfg", "Phase", "RunState", "TrainCfg", "Trainer", "TrainingError", "default_phases", "num_blocks",
           "unfreeze_blocks"]

@dataclass
class RunState:
    """Where a run stands: what a checkpoint holds besides the weights."""

    phase: int = 0  # index of the phase to run next
    epoch: int = 0  # epoch within that phase
    step: int = 0  # optimizer steps so far (drives the learning-rate decay)
    history: list[dict[str, Any]] = field(default_factory=list)  # this run's epochs
    best: dict[str, float] | None = None  # {"loss", "epoch"} of the phase's best epoch so far
    shuffle: torch.Tensor | None = None  # the shuffling generator's state
    optimizer: dict[str, Any] | None = None  # Adam's state mid-phase (a new phase starts afresh)
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best epoch (restore_best)


def num_blocks(net: ClassifierNet) -> int:
    return len(backbones.backbone_blocks(net.backbone))


def unfreeze_blocks(net: ClassifierNet, n: int) -> None:
    """Make the head and the last ``n`` backbone blocks trainable (0: the head only).

    BatchNorm layers never train: their statistics and affine parameters stay as pretrained,
    which keeps small-batch fine-tuning stable.
    """
    blocks = backbones.backbone_blocks(net.backbone)
    if not isinstance(n, int) or not 0 <= n <= len(blocks):
        raise TrainingError(f"the number of unfrozen blocks must be between 0 and {len(blocks)}, got {n!r}")
    net.backbone.requires_grad_(False)
    frozen_bn = backbones.batchnorm_params(net.backbone)
    for block in blocks[len(blocks) - n :]:
        for p in block:
            p.requires_grad_(id(p) not in frozen_bn)
    net.fc.requires_grad_(True)


@contextlib.contextmanager
def _one_thread():
    """Tiny linear heads: a second thread costs more than it gives (on 2 busy cores, 50 epochs of
    a head on 560 photos took 13 s with torch's 2 threads, 3.6 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _own_global_rng(device: torch.device):
    """Dropout masks and torchvision's augmentations draw from torch's global generators and
    accept no other; fork them, so that a run's seeding never leaks out of the run."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _metrics(loss: float, pred: np.ndarray, y: np.ndarray) -> dict:
    return {
        "loss": round(float(loss), 6),
        "accuracy": round(float((pred == y).mean()), 6),
        "f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 6),
    }


@dataclass
class _Source:
    """How a phase gets its inputs: a cache of (partial) features, or images (cache None)."""

    cache: features.FeatureCache | None
    forward: nn.Module  # a module, so that DDP can wrap it in a multi-process run


class Trainer:
    """Trains ``net`` (described by ``cfg``) on ``dataset``; ``history`` grows by one dict per epoch."""

    def __init__(self, net: ClassifierNet, cfg: ModelCfg, dataset: DatasetFolder, train_cfg: TrainCfg, *,
                 device: torch.device, history: list[dict] | None = None):
        self.net, self.cfg, self.dataset, self.tc, self.device = net, cfg, dataset, train_cfg, device
        self.history: list[dict] = list(cfg.history) if history is None else history
        self._pooled: features.FeatureCache | None = None
        self.dist = distributed.current()  # one process, or this one's share of a torchrun run

    # -- the run ---------------------------------------------------------------------------------
    def fit(
        self,
        phases: Sequence[Phase],
        *,
        checkpoint: Path,
        weighted: bool = True,
        resume: bool = False,
        callback: Callable[[dict], None] | None = None,
        save_tensors: Callable = save_file,
    ) -> list[dict]:
        """Run the phases in order; returns this run's history (one dict per epoch).

        ``callback(record)`` is called after each epoch's checkpoint, so raising from it (or
        Ctrl-C) interrupts a run that ``resume=True`` then continues. ``save_tensors`` writes
        the checkpoint file (safetensors' ``save_file`` unless a caller needs otherwise).
        """
        for phase in phases:
            if phase.epochs < 0:
                raise TrainingError(f"epochs must be >= 0, got {phase.epochs}")
        train, val = self.dataset.split("train"), self.dataset.split("val")
        if self.tc.early_stopping and not val:
            raise TrainingError("early stopping needs a validation split; the dataset has no 'val' images")
        run_key = self._run_key(phases, weighted)
        with _own_global_rng(self.device):
            state = self._resume_state(checkpoint, run_key) if resume else None
            if state is None:
                torch.manual_seed(self.tc.seed)  # inside _own_global_rng: restored when the run ends
                state = RunState()
            class_weights = self._class_weights(train) if weighted else None
            generator = torch.Generator().manual_seed(self.tc.seed)
            if state.shuffle is not None:
                generator.set_state(state.shuffle)
            self._prepare_transfer_features(phases[state.phase :], train, val)
            source = None
            for p_index in range(state.phase, len(phases)):
                source = self._run_phase(phases, p_index, state, train, val, class_weights, generator,
                                         _Checkpoint(checkpoint, run_key, save_tensors), callback)
        self.net.eval()
        if source is not None and self._cross_fits(phases):
            self.calibrate(*self._cross_fitted_logits(train, val, phases[-1]))
        elif source is not None and val:
            self.calibrate(*self._logits(source, val))
        return state.history

    def _cross_fits(self, phases: Sequence[Phase]) -> bool:
        return calibrates_out_of_fold(self.tc, list(phases))

    def _cross_fitted_logits(self, train: list[Sample], val: list[Sample], phase: Phase) -> tuple[torch.Tensor, np.ndarray]:
        """Logits of every train and val photo from a head that never saw its object: k heads,
        each trained like ``phase`` on the other folds' cached views, by object. A temperature fitted
        on a whole training set's worth of them does not swing with a few validation photos."""
        samples = [*train, *val]
        y = np.array([s.label for s in samples])
        folds = object_folds(y, [s.item_id for s in samples], self.tc.calibration_folds, self.tc.seed)
        rows = {id(s): [(s, v) for v in range(self.tc.views)] for s in train} | {id(s): [(s, DETERMINISTIC)] for s in val}
        out = torch.zeros(len(samples), len(self.cfg.class_names))
        with _one_thread():
            for held in folds:
                held_set = set(held.tolist())
                pairs = [p for i, s in enumerate(samples) if i not in held_set for p in rows[id(s)]]
                head = self._fit_head(pairs, phase)
                x = self._pooled.stack([features.entry_key(samples[i], DETERMINISTIC) for i in held])
                with torch.inference_mode():
                    out[held] = head(x).float()
        return out, y

    def _fit_head(self, pairs: list[tuple[Sample, int]], phase: Phase) -> nn.Module:
        """A fresh dropout + linear head trained on the cached pooled ``pairs`` as ``phase`` trains."""
        x = self._pooled.stack([features.entry_key(*p) for p in pairs])
        y = torch.tensor([s.label for s, _ in pairs])
        head = nn.Sequential(nn.Dropout(self.net.dropout.p), nn.Linear(x.shape[1], len(self.cfg.class_names)))
        weights = self._class_weights([s for s, _ in pairs]).cpu()
        loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=self.tc.label_smoothing)
        optimizer = torch.optim.Adam(head.parameters(), lr=phase.lr)
        generator = torch.Generator().manual_seed(self.tc.seed)
        step = 0
        head.train()
        for _ in range(phase.epochs):
            for batch in torch.randperm(len(y), generator=generator).split(self.tc.batch_size):
                for g in optimizer.param_groups:
                    g["lr"] = phase.lr / (1.0 + phase.decay * step)
                optimizer.zero_grad(set_to_none=True)
                loss_fn(head(x[batch]), y[batch]).backward()
                optimizer.step()
                step += 1
        return head.eval()

    def calibrate(self, logits: torch.Tensor, y: np.ndarray) -> None:
        """Fit the temperature on held-out logits (out-of-fold, or the validation photos') and
        choose the "uncertain" threshold on the calibrated probabilities of their known-class
        photos; both go into the model's cfg."""
        from muses.model.calibration import choose_threshold, fit_temperature
        from muses.predictions import OTHER, probabilities

        logits_np = logits.numpy()
        self.cfg.temperature = fit_temperature(logits_np, y)
        names = self.cfg.class_names
        known = np.array([names[label] != OTHER for label in y], dtype=bool)
        self.cfg.threshold = choose_threshold(probabilities(logits_np, self.cfg.temperature), y, known=known)

    def _run_phase(self, phases, p_index, state: RunState, train, val, class_weights, generator, ckpt, callback) -> _Source:
        phase = phases[p_index]
        unfreeze_blocks(self.net, phase.unfrozen_blocks)
        self.cfg.unfrozen_blocks = phase.unfrozen_blocks
        source = self._source(phase.unfrozen_blocks, train, val)
        optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=phase.lr)
        if state.optimizer is not None:
            optimizer.load_state_dict(state.optimizer)
            state.optimizer = None
        best, best_state = state.best, state.best_state
        state.best_state = None
        trained = _Source(source.cache, distributed.wrap(source.forward, self.dist, self.device))
        for epoch in range(state.epoch, phase.epochs):
            t0 = time.perf_counter()
            train_m, state.step = self._train_epoch(trained, train, epoch, optimizer, phase, state.step, class_weights, generator)
            val_m = self._evaluate(source, val) if val else {}
            record = {
                "phase": p_index,
                "epoch": len(self.history) + 1,
                "unfrozen_blocks": phase.unfrozen_blocks,
                "lr": optimizer.param_groups[0]["lr"],
                **{f"train_{k}": v for k, v in train_m.items()},
                **{f"val_{k}": v for k, v in val_m.items()},
                "seconds": round(time.perf_counter() - t0, 3),
            }
            self.history.append(record)
            state.history.append(record)
            monitor = record.get("val_loss", record["train_loss"])
            if best is None or monitor < best["loss"]:
                best = {"loss": monitor, "epoch": epoch}
                if self.tc.restore_best:
                    best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            stop = bool(self.tc.early_stopping and epoch - best["epoch"] >= self.tc.early_stopping)
            done_phase = stop or epoch + 1 == phase.epochs
            if self.tc.restore_best and done_phase:
                self.net.load_state_dict(best_state)
            state.phase, state.epoch = (p_index + 1, 0) if done_phase else (p_index, epoch + 1)
            state.best = None if done_phase else best
            state.shuffle = generator.get_state()
            state.best_state = best_state if self.tc.restore_best and not done_phase else None
            ckpt.write(self, state, None if done_phase else optimizer)
            state.best_state = None
            if callback is not None:
                callback(record)
            if stop:
                note(f"early stopping: no validation improvement for {self.tc.early_stopping} epochs")
                break
        state.epoch, state.best = 0, None
        return source

    def _class_weights(self, train: list[Sample]) -> torch.Tensor:
        """'balanced' weights from the training split only (the original used the test split)."""
        y = np.array([s.label for s in train])
        present = np.unique(y)
        weights = np.ones(len(self.cfg.class_names), dtype=np.float32)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
        return torch.tensor(weights, dtype=torch.float32, device=self.device)

    def _run_key(self, phases: Sequence[Phase], weighted: bool) -> dict:
        """What a checkpoint must match to be resumed: the same run, flag for flag."""
        return {
            "phases": [dataclasses.asdict(p) for p in phases],
            "weighted": weighted,
            "seed": self.tc.seed,
            "batch_size": self.tc.batch_size,
            "views": self.tc.views,
            "early_stopping": self.tc.early_stopping,
            "restore_best": self.tc.restore_best,
            "label_smoothing": self.tc.label_smoothing,
            "backbone": self.cfg.backbone,
            "preprocess": self.cfg.preprocess.to_dict(),
            "images": features.setting_key(images=[(s.digest, s.label, s.split) for s in self.dataset.samples]),
        }

    def _resume_state(self, path: Path, run_key: dict) -> RunState | None:
        if not path.is_file():
            note(f"no checkpoint at {path}: starting from the beginning")
            return None
        tensors, meta = read_checkpoint(path)
        if meta.get("run") != json.loads(json.dumps(run_key)):
            raise TrainingError(
                f"{path} was written by a run with other settings (epochs, lr, seed, batch size, views, "
                "backbone, image size or dataset); run again with the same flags, or without --resume"
            )
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.history.extend(meta["history"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        optimizer = None
        if meta["optimizer"] is not None:
            optimizer = {"param_groups": meta["optimizer"], "state": {}}
            for k, v in tensors.items():
                if k.startswith("opt."):
                    _, idx, name = k.split(".", 2)
                    optimizer["state"].setdefault(int(idx), {})[name] = v
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        phase, epoch = meta["position"]
        note(f"resuming from {path}: phase {phase + 1}, epoch {epoch + 1}")
        return RunState(phase=phase, epoch=epoch, step=meta["step"], history=meta["history"], best=meta["best"],
                        shuffle=tensors["rng.shuffle"], optimizer=optimizer, best_state=best_state or None)

    # -- inputs: cached features, cached trunk outputs, or images --------------------------------
    def _pairs(self, train: list[Sample], val: list[Sample]) -> list[tuple[Sample, int]]:
        return [(s, v) for s in train for v in range(self.tc.views)] + [(s, DETERMINISTIC) for s in val]

    def _view_dataset(self, pairs: list[tuple[Sample, int]]) -> ViewDataset:
        return ViewDataset(pairs, self.cfg.preprocess, self.tc.augment, self.tc.seed)

    def _cache(self, kind: str, module: nn.Module, split: int) -> features.FeatureCache:
        return features.open_cache(
            self.tc.cache_dir, kind,
            backbone=self.cfg.backbone, weights=backbones.state_digest(module), split=split,
            preprocess=self.cfg.preprocess.to_dict(), augment=dataclasses.asdict(self.tc.augment), seed=self.tc.seed,
        )

    def _fill(self, cache: features.FeatureCache, fn: nn.Module, pairs, desc: str) -> None:
        features.fill_from_images(
            cache, fn, pairs, self._view_dataset,
            batch_size=self.tc.batch_size, workers=self.tc.workers, device=self.device, desc=desc,
            compute=self.tc.compute,
        )

    def _trunk_cache(self, n: int, pairs) -> tuple[features.FeatureCache, nn.Module] | None:
        """Cached trunk outputs for a split at ``n`` blocks, or None where caching cannot pay."""
        trunk, tail = backbones.split_backbone(self.net.backbone, n)
        if not self.tc.cache_trunk or isinstance(trunk, nn.Identity):
            return None
        cache = self._cache("trunk", trunk, n)
        trunk.eval()
        self._fill(cache, trunk, pairs, f"frozen trunk ({len(pairs)} views)")
        return cache, tail

    def _prepare_transfer_features(self, phases: Sequence[Phase], train, val) -> None:
        """Pooled features for the transfer phases; via the fine-tune trunk cache when one follows,
        so the whole backbone runs once per view for both phases."""
        if not any(p.unfrozen_blocks == 0 for p in phases):
            return
        pairs = self._pairs(train, val)
        if self._cross_fits(phases):  # the out-of-fold heads answer the plain view of every photo
            pairs += [(s, DETERMINISTIC) for s in train]
        self.net.backbone.eval()
        pooled = self._cache("pooled", self.net.backbone, 0)
        keys = [features.entry_key(*p) for p in pairs]
        if all(k in pooled.entries for k in keys):
            self._pooled = pooled
            return
        later = [p.unfrozen_blocks for p in phases if p.unfrozen_blocks > 0]
        trunk = self._trunk_cache(later[0], pairs) if later else None
        if trunk is not None:
            cache, tail = trunk
            tail.eval()
            features.fill_from_cache(pooled, tail, cache, keys, batch_size=self.tc.batch_size, device=self.device)
        else:
            self._fill(pooled, backbones.split_backbone(self.net.backbone, 0)[0], pairs, f"features ({len(pairs)} views)")
        self._pooled = pooled

    def _source(self, n: int, train, val) -> _Source:
        head = [self.net.dropout, self.net.fc]  # net.head, as modules
        if n == 0:
            return _Source(self._pooled, nn.Sequential(*head))
        trunk = self._trunk_cache(n, self._pairs(train, val))
        if trunk is not None:
            cache, tail = trunk
            return _Source(cache, nn.Sequential(tail, *head))
        return _Source(None, self.net)

    def _batches(self, source: _Source, pairs: list[tuple[Sample, int]], batch_size: int) -> Iterator[torch.Tensor]:
        if source.cache is not None:
            keys = [features.entry_key(*p) for p in pairs]
            for start in range(0, len(keys), batch_size):
                yield source.cache.stack(keys[start : start + batch_size])
            return
        # An own generator: the loader's seed draw must not shift the dropout masks.
        loader = DataLoader(self._view_dataset(pairs), batch_size=batch_size, num_workers=self.tc.workers,
                            generator=torch.Generator())
        yield from loader

    def _set_train_mode(self) -> None:
        self.net.train()
        for m in self.net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def _train_epoch(self, source: _Source, train, epoch, optimizer, phase: Phase, step, class_weights, generator):
        """One epoch; transfer epochs see every cached view, fine-tune epochs one view per image
        (view ``epoch mod views``) so that an epoch costs one backward pass per image."""
        if phase.unfrozen_blocks == 0:
            pairs = [(s, v) for s in train for v in range(self.tc.views)]
        else:
            pairs = [(s, epoch % self.tc.views) for s in train]
        order = torch.randperm(len(pairs), generator=generator).tolist()
        # every process draws the same order and takes its share; a step's global batch stays batch_size
        pairs = distributed.shard([pairs[i] for i in order], self.dist)
        batch_size = max(1, self.tc.batch_size // self.dist.world)
        y = torch.tensor([s.label for s, _ in pairs])
        self._set_train_mode()
        loss_fn = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=self.tc.label_smoothing)
        total, preds = 0.0, []
        kind = "fine-tune" if phase.unfrozen_blocks else "transfer"
        bar = progress_bar(total=len(pairs), desc=f"epoch {len(self.history) + 1} ({kind})", unit="view", leave=False,
                   disable=not self.dist.main)
        for start, x in zip(range(0, len(pairs), batch_size), self._batches(source, pairs, batch_size)):
            yb = y[start : start + len(x)].to(self.device)
            for g in optimizer.param_groups:
                g["lr"] = phase.lr / (1.0 + phase.decay * step)
            with autocast(self.device):
                logits = source.forward(x.to(self.device))
                loss = loss_fn(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(x)
            preds.append(logits.argmax(1).cpu())
            bar.update(len(x))
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        self.net.eval()
        shares = distributed.gather((total, torch.cat(preds).numpy(), y.numpy()), self.dist)
        return _metrics(sum(t for t, _, _ in shares) / sum(len(ys) for _, _, ys in shares),
                        np.concatenate([p for _, p, _ in shares]), np.concatenate([ys for _, _, ys in shares])), step

    def _logits(self, source: _Source, samples: list[Sample]) -> tuple[torch.Tensor, np.ndarray]:
        """The logits of ``samples`` (their deterministic view) and their labels."""
        pairs = [(s, DETERMINISTIC) for s in samples]
        self.net.eval()
        logits = []
        with torch.inference_mode(), autocast(self.device):
            for x in self._batches(source, pairs, self.tc.batch_size):
                logits.append(source.forward(x.to(self.device)).float().cpu())
        return torch.cat(logits), np.array([s.label for s in samples])

    def _evaluate(self, source: _Source, samples: list[Sample]) -> dict:
        logits_t, y = self._logits(source, samples)
        loss = nn.functional.cross_entropy(logits_t, torch.from_numpy(y)).item()
        return _metrics(loss, logits_t.argmax(1).numpy(), y)


@dataclass
class _Checkpoint:
    path: Path
    run_key: dict
    save_tensors: Callable

    def write(self, trainer: Trainer, state: RunState, optimizer: torch.optim.Optimizer | None) -> None:
        """The weights, the random states and ``state``; the optimizer only mid-phase."""
        tensors = {f"net.{k}": v for k, v in trainer.net.state_dict().items()}
        tensors["rng.torch"] = torch.get_rng_state()
        if trainer.device.type == "cuda":  # dropout masks on the GPU come from its own generator
            tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
        tensors["rng.shuffle"] = state.shuffle
        opt_meta = None
        if optimizer is not None:
            sd = optimizer.state_dict()
            opt_meta = sd["param_groups"]
            for idx, st in sd["state"].items():
                tensors.update({f"opt.{idx}.{name}": v for name, v in st.items()})
        if state.best_state is not None:
            tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
        meta = {"run": self.run_key, "position": [state.phase, state.epoch], "step": state.step,
                "history": state.history, "best": state.best, "optimizer": opt_meta}
        if trainer.dist.main:
            save_checkpoint(self.path, tensors, meta, save_tensors=self.save_tensors)
        distributed.barrier()  # a process that stops now resumes from this checkpoint, like the others
