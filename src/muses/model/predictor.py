"""Prediction: the :class:`Predictor` protocol every runtime implements, and its torch
implementation (the ONNX one is :class:`muses.model.onnx.OnnxPredictor`).

Predictors work on decoded images; decoding is :mod:`muses.imaging`'s job (in parallel:
:func:`muses.model.image_loading.load_images`), so that an unreadable photo is a per-photo
failure for every caller alike.

    predictor = load_model("models/naive.safetensors")      # muses.model.loading
    probs = predictor.predict_pil(images)                     # (n_images, n_classes)
    feats = predictor.extract_features(images)                # (n_images, num_features)
    probs, feats = predictor.predict_with_features(images)   # both from one backbone pass
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import nn

from muses.errors import MusesError
from muses.model import backbones
from muses.model.files import RETRAIN, ModelCfg, ModelFileError, read_model
from muses.model.files import paths as model_paths
from muses.model.image_loading import decode_all
from muses.model.preprocessing import preprocess_array
from muses.predictions import probabilities


class DeviceError(MusesError):
    """The asked-for device does not exist on this machine."""


@runtime_checkable
class Predictor(Protocol):
    """What prediction, evaluation, label review, classify and the web app need of a model."""

    name: str  # the model's name: its file stem
    cfg: ModelCfg  # backbone, preprocessing, class names, training history
    runtime: str  # "torch" or "onnx"

    @property
    def class_names(self) -> list[str]: ...

    @property
    def features_key(self) -> str:
        """Identifies the weights that make the features (a feature-cache key)."""
        ...

    def predict_pil(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Class probabilities, shape (n_images, n_classes), columns in ``class_names`` order."""
        ...

    def extract_features(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Pooled backbone features, shape (n_images, num_features)."""
        ...

    def predict_with_features(self, images: Sequence[Image.Image],
                              batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """``(predict_pil(images), extract_features(images))`` from one pass through the backbone."""
        ...

    def predict_new(self, paths: str | Path | Sequence[str | Path], batch_size: int = 32) -> np.ndarray:
        """The original's call: probabilities of image files; raises :class:`UnreadableImage`."""
        ...


class ClassifierNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.num_features, num_classes)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(pooled))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))


def build_net(cfg: ModelCfg, *, weights: str | Path | None = None, pretrained: bool = False,
              generator: torch.Generator | None = None) -> ClassifierNet:
    """The network a model description names; the new head drawn from ``generator``."""
    backbone = backbones.create_backbone(cfg.backbone, weights=weights, pretrained=pretrained)
    net = ClassifierNet(backbone, len(cfg.class_names), cfg.dropout)
    if generator is not None:
        _init_linear(net.fc, generator)
    return net


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    # nn.Linear's own initialization, drawn from our generator rather than torch's global one.
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise DeviceError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


class TorchPredictor:
    """A :class:`Predictor` running the model's network with torch (CPU or CUDA)."""

    runtime = "torch"

    def __init__(self, net: ClassifierNet, cfg: ModelCfg, *, device: str = "auto", name: str = "naive"):
        self.net, self.cfg, self.name = net, cfg, name
        self.device = resolve_device(device)
        self.net.to(self.device)
        self.net.eval()

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> "TorchPredictor":
        state, cfg = read_model(path)
        return cls(load_net(state, cfg, path), cfg, device=device, name=model_paths(path)[0].stem)

    @property
    def class_names(self) -> list[str]:
        return list(self.cfg.class_names)

    @property
    def features_key(self) -> str:
        return backbones.state_digest(self.net.backbone)

    def _run(self, images: Sequence[Image.Image], batch_size: int, fn, width: int) -> np.ndarray:
        images = list(images)
        if not images:
            return np.zeros((0, width), dtype=np.float32)
        self.net.eval()
        out = []
        with torch.inference_mode(), autocast(self.device):
            for start in range(0, len(images), batch_size):
                x = torch.from_numpy(np.stack([preprocess_array(im, self.cfg.preprocess)
                                              for im in images[start : start + batch_size]]))
                out.append(fn(x.to(self.device)).float().cpu())
        return torch.cat(out).numpy()

    def predict_pil(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        logits = self._run(images, batch_size, self.net, len(self.class_names))
        return probabilities(logits, self.cfg.temperature)

    def extract_features(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        return self._run(images, batch_size, self.net.pooled, self.net.backbone.num_features)

    def predict_with_features(self, images: Sequence[Image.Image],
                              batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.class_names)
        both = self._run(images, batch_size, self._logits_and_pooled, n + self.net.backbone.num_features)
        return probabilities(both[:, :n], self.cfg.temperature), both[:, n:]

    def _logits_and_pooled(self, x: torch.Tensor) -> torch.Tensor:
        # the head is one linear layer on the pooled features: both from one backbone pass
        pooled = self.net.pooled(x)
        return torch.cat([self.net.head(pooled), pooled], dim=1)

    def predict_new(self, paths: str | Path | Sequence[str | Path], batch_size: int = 32) -> np.ndarray:
        return self.predict_pil(decode_all(paths, self.cfg.input_size), batch_size)


def load_net(state: dict[str, torch.Tensor], cfg: ModelCfg, path: str | Path) -> ClassifierNet:
    """The network of a model file read with :func:`~muses.model.files.read_model` from ``path``."""
    net = build_net(cfg)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:  # missing, unexpected or misshapen tensors
        first = str(exc).strip().splitlines()[:2]
        raise ModelFileError(f"{model_paths(path)[0]} does not fit the {cfg.backbone} network its .json describes "
                             f"({' '.join(first)}); the two files come from different models; {RETRAIN}") from exc
    return net
