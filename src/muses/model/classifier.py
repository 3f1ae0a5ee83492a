"""``Classifier``: a backbone + dropout + linear head, its training and its predictions.

Training runs in *phases* (``Phase``): transfer learning (only the head trains, on cached
pooled features: an epoch costs milliseconds) then fine-tuning (the last n backbone units
train too, on cached outputs of the still-frozen trunk). A checkpoint is written after every
epoch, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from muses.model import backbones, features
from muses.datasets.folder import DETERMINISTIC, AugmentCfg, DatasetFolder, Sample, ViewDataset
from muses.model.files import ModelCfg, read_checkpoint, read_model, save_checkpoint, save_model
from muses.model.files import paths as model_paths
from muses.model.preprocessing import PreprocessCfg, open_image, preprocess


class ClassifierNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.num_features, num_classes)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).flatten(1))


@dataclass(frozen=True)
class Phase:
    epochs: int
    unfrozen: int  # backbone units that train (0: transfer learning, only the head)
    lr: float
    decay: float = 0.0  # Keras-style learning-rate decay: lr / (1 + decay * step)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


class Classifier:
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
    ):
        if batch_size < 1 or views < 1:
            raise ValueError(f"batch_size and views must be >= 1, got {batch_size} and {views}")
        if early_stopping is not None and early_stopping < 1:
            raise ValueError(f"early_stopping is a patience in epochs (>= 1), got {early_stopping}")
        self.net, self.cfg, self.dataset = net, cfg, dataset
        self.device = resolve_device(device)
        self.net.to(self.device)
        self.seed, self.batch_size, self.views, self.augment = seed, batch_size, views, augment
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self.cache_dir, self.models_dir = cache_dir, models_dir
        self.early_stopping, self.restore_best, self.cache_trunk = early_stopping, restore_best, cache_trunk
        self.lr, self.decay = 1e-3, 0.0
        self.name = "naive"  # the model name: file stem and plot name
        self.history: list[dict] = list(cfg.history)
        self.unfreeze_layers(cfg.unfrozen_blocks)
        self.net.eval()

    # -- the original's API ------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.cfg.class_names)

    @property
    def num_units(self) -> int:
        return len(backbones.backbone_units(self.net.backbone))

    def unfreeze_layers(self, n: int) -> None:
        """Train the head and the last ``n`` backbone units (0: the head only).

        BatchNorm layers never train: their statistics and affine parameters stay as pretrained,
        which keeps small-batch fine-tuning stable.
        """
        units = backbones.backbone_units(self.net.backbone)
        if not isinstance(n, int) or not 0 <= n <= len(units):
            raise ValueError(f"unfreeze_layers: n must be between 0 and {len(units)} for {self.cfg.backbone}, got {n!r}")
        self.net.backbone.requires_grad_(False)
        frozen_bn = backbones.batchnorm_params(self.net.backbone)
        for unit in units[len(units) - n :]:
            for p in unit:
                p.requires_grad_(id(p) not in frozen_bn)
        self.net.fc.requires_grad_(True)
        self.cfg.unfrozen_blocks = n

    def set_optimizer(self, lr: float = 1e-3, decay: float = 0.0) -> None:
        """Adam with learning rate ``lr`` and Keras-style time decay ``lr / (1 + decay * step)``."""
        if lr <= 0 or decay < 0:
            raise ValueError(f"lr must be > 0 and decay >= 0, got lr={lr}, decay={decay}")
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
    ) -> list[dict]:
        """Run the phases in order; returns this run's history (one dict per epoch).

        ``callback(record)`` is called after each epoch's checkpoint, so raising from it (or
        Ctrl-C) interrupts a run that ``resume=True`` then continues.
        """
        self.name = model_name
        if self.dataset is None:
            raise ValueError("this classifier has no dataset; set it up with mode='train' and a dataset folder")
        for phase in phases:
            if phase.epochs < 0:
                raise ValueError(f"epochs must be >= 0, got {phase.epochs}")
        train, val = self.dataset.split("train"), self.dataset.split("val")
        if self.early_stopping and not val:
            raise ValueError("early stopping needs a validation split; the dataset has no 'val' images")
        class_weights = self._class_weights(train) if weighted else None
        ckpt_path = self.output_dir() / f"{model_name}.checkpoint.safetensors"
        run_key = self._run_key(phases, weighted)
        state = self._resume_state(ckpt_path, run_key) if resume else None
        if state is None:
            torch.manual_seed(self.seed)
            state = {"phase": 0, "epoch": 0, "step": 0, "history": [], "best": None, "gen": None}
        run_history: list[dict] = state["history"]
        generator = torch.Generator().manual_seed(self.seed)
        if state["gen"] is not None:
            generator.set_state(state["gen"])
        self._prepare_transfer_features(phases[state["phase"] :], train, val)
        for p_index in range(state["phase"], len(phases)):
            phase = phases[p_index]
            self.unfreeze_layers(phase.unfrozen)
            sources = self._sources(phase.unfrozen, train, val)
            params = [p for p in self.net.parameters() if p.requires_grad]
            optimizer = torch.optim.Adam(params, lr=phase.lr)
            if state.get("optimizer") is not None:
                optimizer.load_state_dict(state.pop("optimizer"))
            best, best_state = state["best"], state.pop("best_state", None)
            for epoch in range(state["epoch"], phase.epochs):
                t0 = time.perf_counter()
                train_m, state["step"] = self._train_epoch(
                    sources, train, epoch, optimizer, phase, state["step"], class_weights, generator
                )
                val_m = self._evaluate(sources, val) if val else {}
                record = {
                    "phase": p_index,
                    "epoch": len(self.history) + 1,
                    "unfrozen": phase.unfrozen,
                    "lr": optimizer.param_groups[0]["lr"],
                    **{f"train_{k}": v for k, v in train_m.items()},
                    **{f"val_{k}": v for k, v in val_m.items()},
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                self.history.append(record)
                run_history.append(record)
                monitor = record.get("val_loss", record["train_loss"])
                if best is None or monitor < best["loss"]:
                    best = {"loss": monitor, "epoch": epoch}
                    if self.restore_best:
                        best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                stop = bool(self.early_stopping and epoch - best["epoch"] >= self.early_stopping)
                done_phase = stop or epoch + 1 == phase.epochs
                next_pos = (p_index + 1, 0) if done_phase else (p_index, epoch + 1)
                if self.restore_best and done_phase:
                    self.net.load_state_dict(best_state)
                self._write_checkpoint(
                    ckpt_path, run_key, next_pos, state["step"], run_history,
                    None if done_phase else best, optimizer, generator,
                    best_state if self.restore_best and not done_phase else None,
                )
                if callback is not None:
                    callback(record)
                if stop:
                    tqdm.write(f"early stopping: no validation improvement for {self.early_stopping} epochs")
                    break
            state.update(epoch=0, best=None)
        self.net.eval()
        if save:
            self.save(self.output_dir() / model_name)
        ckpt_path.unlink(missing_ok=True)
        return run_history

    def _class_weights(self, train: list[Sample]) -> torch.Tensor:
        """'balanced' weights from the training split only (the original used the test split)."""
        y = np.array([s.label for s in train])
        present = np.unique(y)
        weights = np.ones(len(self.class_names), dtype=np.float32)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
        return torch.tensor(weights, dtype=torch.float32, device=self.device)

    def output_dir(self) -> Path:
        """Where the model file and the checkpoint go: ``models_dir``, else the project's models folder."""
        if self.models_dir is None:
            from muses.settings import find_project

            self.models_dir = find_project().models_dir
        return Path(self.models_dir)

    def _run_key(self, phases: Sequence[Phase], weighted: bool) -> dict:
        """What a checkpoint must match to be resumed: the same run, flag for flag."""
        return {
            "phases": [dataclasses.asdict(p) for p in phases],
            "weighted": weighted,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "views": self.views,
            "early_stopping": self.early_stopping,
            "restore_best": self.restore_best,
            "backbone": self.cfg.backbone,
            "preprocess": self.cfg.preprocess.to_dict(),
            "images": features.setting_key(images=[(s.digest, s.label, s.split) for s in self.dataset.samples]),
        }

    def _resume_state(self, path: Path, run_key: dict) -> dict | None:
        if not path.is_file():
            tqdm.write(f"no checkpoint at {path}: starting from the beginning")
            return None
        tensors, meta = read_checkpoint(path)
        if meta.get("run") != json.loads(json.dumps(run_key)):
            raise ValueError(
                f"{path} was written by a run with other settings (epochs, lr, seed, batch size, views, "
                "backbone, image size or dataset); run again with the same flags, or without --resume"
            )
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.history = list(self.history) + meta["history"]
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        opt = None
        if meta["optimizer"] is not None:
            opt = {"param_groups": meta["optimizer"], "state": {}}
            for k, v in tensors.items():
                if k.startswith("opt."):
                    _, idx, name = k.split(".", 2)
                    opt["state"].setdefault(int(idx), {})[name] = v
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        phase, epoch = meta["position"]
        tqdm.write(f"resuming from {path}: phase {phase + 1}, epoch {epoch + 1}")
        return {
            "phase": phase, "epoch": epoch, "step": meta["step"], "history": meta["history"],
            "best": meta["best"], "gen": tensors["rng.shuffle"], "optimizer": opt, "best_state": best_state or None,
        }

    def _write_checkpoint(self, path, run_key, position, step, history, best, optimizer, generator, best_state) -> None:
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":  # dropout masks on the GPU come from its own generator
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        tensors["rng.shuffle"] = generator.get_state()
        opt_meta = None
        if position[1] != 0:  # mid-phase: the optimizer carries on; a new phase starts a fresh one
            sd = optimizer.state_dict()
            opt_meta = sd["param_groups"]
            for idx, st in sd["state"].items():
                tensors.update({f"opt.{idx}.{name}": v for name, v in st.items()})
        if best_state is not None:
            tensors.update({f"best.{k}": v for k, v in best_state.items()})
        meta = {"run": run_key, "position": list(position), "step": step, "history": history, "best": best, "optimizer": opt_meta}
        save_checkpoint(path, tensors, meta)

    # -- inputs: cached features, cached trunk outputs, or images ------------------------------
    def _pairs(self, train: list[Sample], val: list[Sample]) -> list[tuple[Sample, int]]:
        return [(s, v) for s in train for v in range(self.views)] + [(s, DETERMINISTIC) for s in val]

    def _view_dataset(self, pairs: list[tuple[Sample, int]]) -> ViewDataset:
        return ViewDataset(pairs, self.cfg.preprocess, self.augment, self.seed)

    def _cache(self, kind: str, module: nn.Module, split: int) -> features.FeatureCache:
        return features.open_cache(
            self.cache_dir, kind,
            backbone=self.cfg.backbone, weights=backbones.state_digest(module), split=split,
            preprocess=self.cfg.preprocess.to_dict(), augment=dataclasses.asdict(self.augment), seed=self.seed,
        )

    def _fill(self, cache: features.FeatureCache, fn: nn.Module, pairs, desc: str) -> None:
        features.fill_from_images(
            cache, fn, pairs, self._view_dataset,
            batch_size=self.batch_size, workers=self.workers, device=self.device, desc=desc,
        )

    def _trunk_cache(self, n: int, pairs) -> tuple[features.FeatureCache, nn.Module] | None:
        """Cached trunk outputs for a split at ``n`` units, or None where caching cannot pay."""
        trunk, tail = backbones.split_backbone(self.net.backbone, n)
        if not self.cache_trunk or isinstance(trunk, nn.Identity):
            return None
        cache = self._cache("trunk", trunk, n)
        trunk.eval()
        self._fill(cache, trunk, pairs, f"frozen trunk ({len(pairs)} views)")
        return cache, tail

    def _prepare_transfer_features(self, phases: Sequence[Phase], train, val) -> None:
        """Pooled features for the transfer phases; via the fine-tune trunk cache when one follows,
        so the whole backbone runs once per view for both phases."""
        if not any(p.unfrozen == 0 for p in phases):
            return
        pairs = self._pairs(train, val)
        self.net.backbone.eval()
        pooled = self._cache("pooled", self.net.backbone, 0)
        keys = [features.entry_key(*p) for p in pairs]
        if all(k in pooled.entries for k in keys):
            self._pooled = pooled
            return
        later = [p.unfrozen for p in phases if p.unfrozen > 0]
        trunk = self._trunk_cache(later[0], pairs) if later else None
        if trunk is not None:
            cache, tail = trunk
            tail.eval()
            features.fill_from_cache(pooled, tail, cache, keys, batch_size=self.batch_size, device=self.device)
        else:
            self._fill(pooled, backbones.split_backbone(self.net.backbone, 0)[0], pairs, f"features ({len(pairs)} views)")
        self._pooled = pooled

    def _sources(self, n: int, train, val) -> dict:
        """How this phase gets its inputs: ``fetch(pairs) -> batches`` and ``forward(x)``."""
        if n == 0:
            return {"cache": self._pooled, "forward": self.net.head}
        trunk = self._trunk_cache(n, self._pairs(train, val))
        if trunk is not None:
            cache, tail = trunk
            return {"cache": cache, "forward": lambda x: self.net.head(tail(x))}
        return {"cache": None, "forward": self.net}

    def _batches(self, source: dict, pairs: list[tuple[Sample, int]]) -> Iterator[torch.Tensor]:
        if source["cache"] is not None:
            keys = [features.entry_key(*p) for p in pairs]
            for start in range(0, len(keys), self.batch_size):
                yield source["cache"].stack(keys[start : start + self.batch_size])
            return
        # An own generator: the loader's seed draw must not shift the dropout masks.
        loader = DataLoader(self._view_dataset(pairs), batch_size=self.batch_size, num_workers=self.workers,
                            generator=torch.Generator())
        yield from loader

    def _set_train_mode(self) -> None:
        self.net.train()
        for m in self.net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def _train_epoch(self, source, train, epoch, optimizer, phase, step, class_weights, generator):
        """One epoch; transfer epochs see every cached view, fine-tune epochs one view per image
        (view ``epoch mod views``) so that an epoch costs one backward pass per image."""
        if phase.unfrozen == 0:
            pairs = [(s, v) for s in train for v in range(self.views)]
        else:
            pairs = [(s, epoch % self.views) for s in train]
        order = torch.randperm(len(pairs), generator=generator).tolist()
        pairs = [pairs[i] for i in order]
        y = torch.tensor([s.label for s, _ in pairs])
        self._set_train_mode()
        loss_fn = nn.CrossEntropyLoss(weight=class_weights)
        total, preds = 0.0, []
        bar = tqdm(total=len(pairs), desc=f"epoch {len(self.history) + 1} ({'fine-tune' if phase.unfrozen else 'transfer'})",
                   unit="view", leave=False)
        for start, x in zip(range(0, len(pairs), self.batch_size), self._batches(source, pairs)):
            yb = y[start : start + len(x)].to(self.device)
            for g in optimizer.param_groups:
                g["lr"] = phase.lr / (1.0 + phase.decay * step)
            with _autocast(self.device):
                logits = source["forward"](x.to(self.device))
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
        return _metrics(total / len(pairs), torch.cat(preds).numpy(), y.numpy()), step

    def _evaluate(self, source, samples: list[Sample]) -> dict:
        pairs = [(s, DETERMINISTIC) for s in samples]
        y = np.array([s.label for s in samples])
        self.net.eval()
        logits = []
        with torch.inference_mode(), _autocast(self.device):
            for x in self._batches(source, pairs):
                logits.append(source["forward"](x.to(self.device)).float().cpu())
        logits_t = torch.cat(logits)
        loss = nn.functional.cross_entropy(logits_t, torch.from_numpy(y)).item()
        return _metrics(loss, logits_t.argmax(1).numpy(), y)

    # -- model files and predictions -----------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        self.cfg.history = self.history
        return save_model(path, self.net.state_dict(), self.cfg)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> "Classifier":
        state, cfg = read_model(path)
        backbone = backbones.create_backbone(cfg.backbone, pretrained=False)
        net = ClassifierNet(backbone, len(cfg.class_names), cfg.dropout)
        net.load_state_dict(state)
        clf = cls(net, cfg, device=device)
        clf.name = model_paths(path)[0].stem
        return clf

    def _logits_batches(self, images: Sequence[Image.Image], batch_size: int, fn) -> np.ndarray:
        if not images:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        self.net.eval()
        out = []
        with torch.inference_mode(), _autocast(self.device):
            for start in range(0, len(images), batch_size):
                x = torch.stack([preprocess(im, self.cfg.preprocess) for im in images[start : start + batch_size]])
                out.append(fn(x.to(self.device)).float().cpu())
        return torch.cat(out).numpy()

    def predict_pil(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Class probabilities, shape (n_images, n_classes), columns in ``class_names`` order."""
        logits = self._logits_batches(list(images), batch_size, self.net)
        return torch.softmax(torch.from_numpy(logits), 1).numpy()

    def predict_new(self, paths: str | Path | Sequence[str | Path], batch_size: int = 32) -> np.ndarray:
        return self.predict_pil(_open_all(paths, self.cfg.input_size), batch_size)

    def extract_features(self, paths: str | Path | Sequence[str | Path], batch_size: int = 32) -> np.ndarray:
        """Pooled backbone features, shape (n_images, num_features)."""
        fn = lambda x: self.net.backbone(x).flatten(1)  # noqa: E731
        return self._logits_batches(_open_all(paths, self.cfg.input_size), batch_size, fn)


def _open_all(paths, size: int) -> list[Image.Image]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    images = []
    for p in paths:
        try:
            images.append(open_image(p, size))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {p}: {exc}") from exc
    return images


def _metrics(loss: float, pred: np.ndarray, y: np.ndarray) -> dict:
    return {
        "loss": round(float(loss), 6),
        "accuracy": round(float((pred == y).mean()), 6),
        "f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 6),
    }


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
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    net_backbone = backbones.create_backbone(backbone, weights=weights, pretrained=pretrained)
    torch.manual_seed(seed)
    net = ClassifierNet(net_backbone, len(class_names), dropout)
    cfg = ModelCfg(
        backbone=backbone, class_names=list(class_names), dropout=dropout, seed=seed,
        num_features=net_backbone.num_features, **preprocess_cfg.to_dict(),
    )
    return Classifier(net, cfg, seed=seed, **kwargs)
