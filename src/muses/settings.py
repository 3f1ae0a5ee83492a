"""The project folder and its ``muses.toml``.

A project folder holds everything muses writes: the configuration, the collection store,
generated images, datasets, models and plots. Nothing is ever written inside the package.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from muses.errors import MusesError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "muses.toml"
ENV_PROJECT = "MUSES_PROJECT"

# Defaults for every key a command reads; muses.toml overrides them section by section.
DEFAULTS: dict[str, Any] = {
    "store": {"url": ""},
    "images": {
        "dir": "images",
        "max_side": 256,
        "quality": 90,
        "max_pixels": 89_478_485,  # Pillow's own decompression-bomb threshold
        "allow_network": False,
        "workers": 0,  # 0: one per CPU core
    },
    "naive": {"definitions": "definitions.toml", "datasets_dir": "datasets"},
    "classification": {"naive_classification": {"model_path": "models/naive.safetensors"}},
    "training": {"backbone": "tf_efficientnet_lite0", "image_size": 224},
    "plots": {"dir": "plots"},
    "web": {"host": "127.0.0.1", "port": 8000},
}


class ConfigError(MusesError):
    """muses.toml is missing a value or holds a wrong one."""


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Project:
    """A muses project folder and its merged configuration."""

    root: Path
    config: dict[str, Any] = field(default_factory=lambda: _merge(DEFAULTS, {}))

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Project":
        root = Path(root).resolve()
        path = root / CONFIG_NAME
        user: dict[str, Any] = {}
        if path.exists():
            try:
                user = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}. Fix the file or delete it and run `muses init`.") from exc
        return cls(root=root, config=_merge(DEFAULTS, user))

    def path(self, value: str | os.PathLike) -> Path:
        """A path from the configuration, relative paths taken from the project folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def store_url(self) -> str:
        url = self.config["store"]["url"]
        return url or f"sqlite:///{self.root / 'muses.sqlite'}"

    @property
    def images_dir(self) -> Path:
        return self.path(self.config["images"]["dir"])

    @property
    def definitions_path(self) -> Path:
        return self.path(self.config["naive"]["definitions"])

    @property
    def datasets_dir(self) -> Path:
        return self.path(self.config["naive"]["datasets_dir"])

    @property
    def model_path(self) -> Path:
        return self.path(self.config["classification"]["naive_classification"]["model_path"])

    @property
    def models_dir(self) -> Path:
        return self.model_path.parent

    @property
    def plots_dir(self) -> Path:
        return self.path(self.config["plots"]["dir"])


def find_project(project: str | os.PathLike | None = None) -> Project:
    """``--project DIR``, else ``$MUSES_PROJECT``, else the current directory."""
    root = project or os.environ.get(ENV_PROJECT) or os.getcwd()
    root_path = Path(root)
    if not root_path.is_dir():
        raise ConfigError(f"project folder {root_path} does not exist; create it with `muses init {root_path}`")
    return Project.load(root_path)


def init_project(root: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write a commented muses.toml and an example definitions.toml; returns the files written.

    Existing files are kept unless ``force`` is set, so ``init`` never destroys a user's work.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    templates = resources.files("muses") / "templates"
    for name in (CONFIG_NAME, "definitions.toml"):
        target = root / name
        if target.exists() and not force:
            continue
        target.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(target)
    return written
