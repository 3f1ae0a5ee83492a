"""Model files: ``NAME.safetensors`` (the whole network) + ``NAME.json`` (a :class:`ModelCfg`).

A model file is self-describing: it loads with no other file, whatever the current
definitions or unfreeze state. Nothing is pickled.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from muses import __version__
from muses.model.preprocessing import PreprocessCfg
from muses.errors import MusesError


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
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in known})  # newer keys are ignored
        cfg.mean, cfg.std = tuple(cfg.mean), tuple(cfg.std)
        return cfg


def paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) for ``models/NAME``, ``models/NAME.safetensors`` or ``models/NAME.json``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_model(path: str | Path, state: dict[str, torch.Tensor], cfg: ModelCfg) -> Path:
    """Write both files atomically (temp file + rename); returns the weights path."""
    weights, meta = paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    cfg.created = cfg.created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tmp_w, tmp_m = weights.with_suffix(".safetensors.tmp"), meta.with_suffix(".json.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp_w))
    _readable_like_other_files(tmp_w)
    tmp_m.write_text(json.dumps(asdict(cfg), indent=2), encoding="utf-8")
    os.replace(tmp_w, weights)
    os.replace(tmp_m, meta)
    return weights


def _readable_like_other_files(path: Path) -> None:
    # safetensors creates files owner-only; a web server running as another user must read models.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def read_model(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelCfg]:
    weights, meta = paths(path)
    for required in (weights, meta):
        if not required.is_file():
            raise ModelFileError(
                f"model file {required} not found; train one with `muses train-model` "
                "or set [classification.naive_classification] model_path in muses.toml"
            )
    try:
        cfg = ModelCfg.from_dict(json.loads(meta.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelFileError(f"{meta} is not a muses model description: {exc}") from exc
    return load_file(str(weights)), cfg


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """One safetensors file with the JSON state in its header, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata={"muses": json.dumps(meta)})
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("muses", "{}"))
        return {k: fh.get_tensor(k) for k in fh.keys()}, meta
