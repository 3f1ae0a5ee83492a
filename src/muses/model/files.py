"""Model files: ``NAME.safetensors`` (the whole network) + ``NAME.json`` (a :class:`ModelCfg`).

A model file is self-describing: it loads with no other file, whatever the current
definitions or unfreeze state. Nothing is pickled.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from muses import __version__
from muses.errors import MusesError, RunFailed
from muses.model import PACKAGED
from muses.model.preprocessing import INTERPOLATIONS, RESIZE_MODES, PreprocessCfg

if TYPE_CHECKING:  # reading a model's description (the ONNX path) must not import torch
    import torch

# Sane bounds for a model description: a NAME.json is a file anyone may edit or swap, and its
# input_size decides how much memory every prediction takes (100000 once asked for 8 GB).
INPUT_SIZE_RANGE = (16, 1024)
STD_RANGE = (1e-3, 10.0)
MEAN_RANGE = (-10.0, 10.0)
TEMPERATURE_RANGE = (0.05, 20.0)
# A backbone named in NAME.json is built before its weights are read, so an unknown name could
# ask for any amount of memory ("vit_gigantic_patch14_clip_224" once took 8 GB and 52 s to be
# refused). These are built as named; any other timm model is first built on PyTorch's "meta"
# device (shapes only, no memory, about a second) and refused above MAX_PARAMETERS.
KNOWN_BACKBONES = frozenset({*PACKAGED, "resnet18", "resnet34", "resnet50", "vgg16", "vgg19", "efficientnet_b0",
                             "mobilenetv3_large_100", "convnext_tiny"})
MAX_PARAMETERS = 200_000_000  # vgg19, the original project's backbone, has 144 M
MAX_DESCRIPTION_BYTES = 4_000_000  # a NAME.json with 1,000 epochs of history is about 200 kB


class ModelFileError(MusesError):
    """A model file is missing, incomplete or not a muses model."""


@dataclass
class ModelCfg:
    backbone: str
    class_names: list[str]
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    resize_mode: str = "squash"
    definitions_digest: str = ""
    unfrozen_blocks: int = 0
    dropout: float = 0.2
    num_features: int = 0
    # Calibration, fitted on the validation split after training (1.0 and 0.0: a model file from
    # before calibration, which still loads and answers as it always did).
    temperature: float = 1.0  # logits are divided by it before the softmax
    threshold: float = 0.0  # a top probability below it is answered "uncertain"
    history: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0
    dataset: str = ""
    muses_version: str = __version__
    created: str = ""

    @property
    def preprocess(self) -> PreprocessCfg:
        return PreprocessCfg(self.input_size, self.mean, self.std, self.interpolation, self.resize_mode)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCfg":
        """A model description read from a file, checked: :class:`ValueError` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if "backbone" not in data or "class_names" not in data:
            raise ValueError("it has no backbone or no class_names")
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in known})  # newer keys are ignored
        cfg.mean, cfg.std = _triple("mean", cfg.mean, MEAN_RANGE), _triple("std", cfg.std, STD_RANGE)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise :class:`ValueError` naming the first value outside what a model can have."""
        low, high = INPUT_SIZE_RANGE
        if type(self.input_size) is not int or not low <= self.input_size <= high:
            raise ValueError(f"input_size must be an integer from {low} to {high}, got {self.input_size!r}")
        names = self.class_names
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"class_names must be a list of at least 2 non-empty names, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names has duplicates: {sorted({n for n in names if names.count(n) > 1})}")
        if not isinstance(self.backbone, str):
            raise ValueError(f"backbone must be a name, got {self.backbone!r}")
        problem = backbone_problem(self.backbone)
        if problem:
            raise ValueError(problem)
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not _number(self.temperature) or not TEMPERATURE_RANGE[0] <= self.temperature <= TEMPERATURE_RANGE[1]:
            raise ValueError(f"temperature must be a number from {TEMPERATURE_RANGE[0]} to {TEMPERATURE_RANGE[1]}, "
                             f"got {self.temperature!r}")
        if not _number(self.threshold) or not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be a number in [0, 1), got {self.threshold!r}")
        if type(self.unfrozen_blocks) is not int or self.unfrozen_blocks < 0:
            raise ValueError(f"unfrozen_blocks must be an integer >= 0, got {self.unfrozen_blocks!r}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _triple(name: str, value: Any, bounds: tuple[float, float]) -> tuple[float, float, float]:
    low, high = bounds
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(_number(v) and low <= v <= high
                       for v in value)):
        raise ValueError(f"{name} must be 3 numbers from {low} to {high}, got {value!r}")
    return tuple(float(v) for v in value)


@functools.lru_cache(maxsize=64)
def _parameter_count(name: str) -> int | None:
    """Parameters of timm's ``name`` counted on the "meta" device (no memory); None: not buildable."""
    import timm
    import torch

    if not timm.is_model(name):
        return None
    try:
        with torch.device("meta"):
            return sum(p.numel() for p in timm.create_model(name, pretrained=False).parameters())
    except Exception:  # noqa: BLE001 -- whatever timm cannot build is no backbone for us
        return None


def too_large(name: str) -> bool:
    """Whether ``name`` is a timm model over :data:`MAX_PARAMETERS` (known ones never are)."""
    return name not in KNOWN_BACKBONES and len(name) <= 200 and (_parameter_count(name) or 0) > MAX_PARAMETERS


def backbone_problem(name: str) -> str | None:
    """Why ``name`` cannot be a backbone (unknown to timm, or too large), or None."""
    if name in KNOWN_BACKBONES:  # without importing timm (and torch): the ONNX path needs neither
        return None
    n = _parameter_count(name) if len(name) <= 200 else None
    if n is None:
        return f"backbone {name[:80]!r} is not a model this installation knows"
    if n > MAX_PARAMETERS:
        return (f"backbone {name!r} has {n / 1e6:.0f} M parameters, more than the {MAX_PARAMETERS / 1e6:.0f} M "
                f"muses builds; use one of {', '.join(sorted(KNOWN_BACKBONES))}")
    return None


def paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) for ``models/NAME``, ``models/NAME.safetensors`` or ``models/NAME.json``."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder: --model must name a .safetensors file (or the model name), "
                             f"not a folder; e.g. {path / 'naive.safetensors'}")
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


SaveTensors = Callable[..., None]  # safetensors' save_file(tensors, filename, metadata=None)


def save_file(tensors: dict[str, "torch.Tensor"], filename: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors.torch's save_file, imported only when a file is written."""
    from safetensors.torch import save_file as save

    save(tensors, filename, metadata=metadata)


@contextmanager
def writing(path: Path, tmp: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` (via ``tmp``) into a :class:`RunFailed` saying what to do;
    the half-written ``tmp`` is removed, the previous ``path`` stays as it was."""
    try:
        yield
    except (OSError, SafetensorError) as exc:  # safetensors reports its own write errors as SafetensorError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)
        what = "disk full" if full else f"cannot write ({getattr(exc, 'strerror', None) or exc})"
        raise RunFailed(f"{what} while writing {path}; free space (or fix the folder's permissions) and run the "
                        "same command again with --resume to continue from the last finished epoch") from exc


def save_model(path: str | Path, state: dict[str, torch.Tensor], cfg: ModelCfg, *,
               save_tensors: SaveTensors = save_file) -> Path:
    """Write both files atomically (temp file + rename); returns the weights path."""
    weights, meta = paths(path)
    cfg.created = cfg.created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tmp_w, tmp_m = weights.with_suffix(".safetensors.tmp"), meta.with_suffix(".json.tmp")
    with writing(weights, tmp_w):
        weights.parent.mkdir(parents=True, exist_ok=True)
        save_tensors({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp_w))
        _readable_like_other_files(tmp_w)
    with writing(meta, tmp_m):
        tmp_m.write_text(json.dumps(asdict(cfg), indent=2), encoding="utf-8")
    os.replace(tmp_w, weights)
    os.replace(tmp_m, meta)
    return weights


def _readable_like_other_files(path: Path) -> None:
    # safetensors creates files owner-only; a web server running as another user must read models.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


RETRAIN = "train it again with `muses train-model`, or copy both files of a good model back"


def read_cfg(meta: Path) -> ModelCfg:
    """The checked model description in ``NAME.json``; :class:`ModelFileError` if it is not one."""
    try:
        with meta.open("rb") as fh:
            data = fh.read(MAX_DESCRIPTION_BYTES + 1)
        if len(data) > MAX_DESCRIPTION_BYTES:
            raise ValueError(f"larger than {MAX_DESCRIPTION_BYTES // 1_000_000} MB")
        return ModelCfg.from_dict(json.loads(data.decode("utf-8")))
    except RecursionError as exc:
        raise ModelFileError(f"{meta} is not a muses model description (nested too deep); {RETRAIN}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{meta} is not a muses model description ({_short(exc)}); {RETRAIN}") from exc


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."


def read_model(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelCfg]:
    """The weights and the description of a model file, checked against each other."""
    weights, meta = paths(path)
    for required in (weights, meta):
        if not required.is_file():
            raise ModelFileError(
                f"model file {required} not found; train one with `muses train-model` "
                "or set [classification.naive_classification] model_path in muses.toml"
            )
    cfg = read_cfg(meta)
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{weights} is not a complete safetensors file ({exc}); {RETRAIN}") from exc
    _check_head(weights, meta, state, cfg)
    return state, cfg


def _check_head(weights: Path, meta: Path, state: dict[str, torch.Tensor], cfg: ModelCfg) -> None:
    head = state.get("fc.weight")
    if head is None or head.ndim != 2 or "fc.bias" not in state:
        raise ModelFileError(f"{weights} holds no classifier head (fc.weight, fc.bias): not a muses model; {RETRAIN}")
    if head.shape[0] != len(cfg.class_names):
        raise ModelFileError(
            f"{weights} has a head for {head.shape[0]} classes but {meta} names {len(cfg.class_names)}: "
            f"the two files come from different models; {RETRAIN}"
        )


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], *,
                    save_tensors: SaveTensors = save_file) -> None:
    """One safetensors file with the JSON state in its header, replaced atomically."""
    tmp = path.with_suffix(".tmp")
    with writing(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                     metadata={"muses": json.dumps(meta)})
        os.replace(tmp, path)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("muses", "{}"))
            return {k: fh.get_tensor(k) for k in fh.keys()}, meta
    except (SafetensorError, OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{path} is not a complete checkpoint ({exc}); delete it and train without --resume") from exc
