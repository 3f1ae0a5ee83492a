"""The one preprocessing definition: training, evaluation and prediction all go through it.

The original resized, padded and scaled differently in training and prediction; here a
:class:`PreprocessCfg` (stored in every model file) is the only source of those choices.
The arithmetic is numpy's (:func:`to_array`), so ONNX prediction runs without torch; the torch
side wraps the same arrays.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

from muses.errors import MusesError
from muses.imaging import to_rgb

INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
# squash: stretch to a square (verified best for the Lite0 ImageNet weights on chelsea);
# pad: keep the aspect ratio and fill the borders grey, so a tall vase is never cut;
# crop: resize the short side then cut the centre square.
RESIZE_MODES = ("squash", "pad", "crop")
PAD_FILL = (128, 128, 128)


class PreprocessError(MusesError):
    """An image size, interpolation or resize mode that preprocessing cannot use."""


@dataclass(frozen=True)
class PreprocessCfg:
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    resize_mode: str = "squash"

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, int) or self.input_size < 16:
            raise PreprocessError(f"input_size must be an integer >= 16, got {self.input_size!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise PreprocessError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise PreprocessError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        # JSON gives lists back; keep the dataclass hashable and comparable.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict:
        return asdict(self)


def resize(img: Image.Image, cfg: PreprocessCfg) -> Image.Image:
    size, method = cfg.input_size, INTERPOLATIONS[cfg.interpolation]
    img = to_rgb(img)  # a caller's own image: transparency on white, as the decoder lays it
    if cfg.resize_mode == "squash":
        return img.resize((size, size), method)
    if cfg.resize_mode == "pad":
        return ImageOps.pad(img, (size, size), method=method, color=PAD_FILL)
    return ImageOps.fit(img, (size, size), method=method)


def to_array(img: Image.Image, cfg: PreprocessCfg) -> np.ndarray:
    """An already resized RGB image → normalized CHW float32 array."""
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    mean = np.asarray(cfg.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(cfg.std, dtype=np.float32).reshape(3, 1, 1)
    return (arr - mean) / std


def preprocess_array(img: Image.Image, cfg: PreprocessCfg) -> np.ndarray:
    """The deterministic transform used for validation, test and prediction, as numpy."""
    return to_array(resize(img, cfg), cfg)


def to_tensor(img: Image.Image, cfg: PreprocessCfg) -> "torch.Tensor":
    """:func:`to_array` as a torch tensor (training views)."""
    import torch

    return torch.from_numpy(to_array(img, cfg))


def preprocess(img: Image.Image, cfg: PreprocessCfg) -> "torch.Tensor":
    """:func:`preprocess_array` as a torch tensor."""
    return to_tensor(resize(img, cfg), cfg)
