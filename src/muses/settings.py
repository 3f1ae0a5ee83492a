"""The project folder and its ``muses.toml``, read into typed, validated settings.

A project folder holds everything muses writes: the configuration, the collection store,
generated images, datasets, models and plots. Nothing is ever written inside the package.
Every key of ``muses.toml`` is optional; an unknown key or a value of the wrong type is
refused with the valid keys listed, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from muses.errors import MusesError, RunFailed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "muses.toml"
ENV_PROJECT = "MUSES_PROJECT"
STORE_URL_ENV = "MUSES_STORE_URL"  # wins over [store] url: one muses.toml, a test or staging database


class ConfigError(MusesError):
    """muses.toml is missing a value or holds a wrong one."""


def _bounded(default, *, low=None, high=None):
    """A dataclass field whose value must lie in [low, high]; checked when muses.toml is read."""
    return field(default=default, metadata={"low": low, "high": high})


def _one_of(default, choices: tuple[str, ...]):
    """A dataclass field whose value must be one of ``choices``; checked when muses.toml is read."""
    return field(default=default, metadata={"choices": choices})


@dataclass(frozen=True)
class StoreSettings:
    url: str = ""  # SQLAlchemy URL; empty: the SQLite file muses.sqlite in the project
    busy_timeout: float = _bounded(30.0, low=0.1)  # seconds to wait for another writer's lock
    connect_timeout: float = _bounded(10.0, low=1.0)  # seconds to wait for a database server to answer


@dataclass(frozen=True)
class ImageSettings:
    dir: str = "images"
    max_side: int = _bounded(256, low=16)
    display_side: int = _bounded(1200, low=0)  # long side of the copy the pages show; 0: none
    quality: int = _bounded(90, low=1, high=100)
    max_pixels: int = _bounded(89_478_485, low=1)  # Pillow's own decompression-bomb threshold
    allow_network: bool = False
    workers: int = _bounded(0, low=0)  # 0: one per CPU core
    roots: tuple[str, ...] = ()  # extra folders image references may point into
    max_original_mb: float = _bounded(100.0, low=0.001)  # an original larger than this is a listed problem
    read_timeout_s: float = _bounded(60.0, low=0.001)  # reading one original may take this long
    allow_private_urls: bool = False  # fetch URLs on loopback, link-local and private addresses too
    url_map: tuple[str, ...] = ()  # "URL_PREFIX=FOLDER": photo URLs under the prefix are read from the folder


@dataclass(frozen=True)
class NaiveSettings:
    definitions: str = "definitions.toml"
    datasets_dir: str = "datasets"


@dataclass(frozen=True)
class NaiveClassificationSettings:
    model_path: str = "models/naive.safetensors"


@dataclass(frozen=True)
class ClassificationSettings:
    naive_classification: NaiveClassificationSettings = field(default_factory=NaiveClassificationSettings)


@dataclass(frozen=True)
class TrainingSettings:
    backbone: str = "tf_efficientnet_lite0"
    image_size: int = _bounded(224, low=32, high=1024)


@dataclass(frozen=True)
class PlotSettings:
    dir: str = "plots"


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = _bounded(8000, low=1, high=65535)
    # Host names the server answers besides localhost, 127.0.0.1, ::1 and `host` (a reverse
    # proxy's public name, a machine name); any other Host header gets 400 (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()


ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ComputeSettings:
    """Where the heavy work runs (classify, generate-images, feature extraction): this machine,
    or a Ray cluster. A command's --engine, --address and --ray-workers override the table."""

    engine: str = _one_of("local", ENGINES)
    address: str = ""  # a running Ray cluster ("auto", "ray://host:10001"); "": start one on this machine
    workers: int = _bounded(2, low=1)  # Ray actors (each holds one model) or parallel tasks

    def __post_init__(self) -> None:  # the same checks for settings made in code as for muses.toml's
        if self.engine not in ENGINES:
            raise ConfigError(f"the compute engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers < 1:
            raise ConfigError(f"Ray workers must be >= 1, got {self.workers}")

    @property
    def uses_ray(self) -> bool:
        return self.engine == "ray"


@dataclass(frozen=True)
class Settings:
    """Everything muses.toml can say; each table is one dataclass."""

    store: StoreSettings = field(default_factory=StoreSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    naive: NaiveSettings = field(default_factory=NaiveSettings)
    classification: ClassificationSettings = field(default_factory=ClassificationSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    plots: PlotSettings = field(default_factory=PlotSettings)
    web: WebSettings = field(default_factory=WebSettings)
    compute: ComputeSettings = field(default_factory=ComputeSettings)


# -- reading muses.toml -----------------------------------------------------------------------
_TYPE_WORDS = {str: "a string in quotes", int: "a whole number", float: "a number", bool: "true or false"}


class _Source:
    """The file being read, to name the line of a bad key."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def where(self, table: str, key: str) -> str:
        """``muses.toml line N, [table] key`` (the line when it can be found)."""
        name = f"[{table}] {key}" if table else f"[{key}]"
        line = self._line(table, key)
        return f"{self.path}{f' line {line}' if line else ''}, {name}"

    def _line(self, table: str, key: str) -> int | None:
        current = ""
        for number, text in enumerate(self.lines, start=1):
            header = re.match(r"\s*\[+\s*([^\]]+?)\s*\]+", text)
            if header:
                current = header.group(1).replace(" ", "")
                if current == (f"{table}.{key}" if table else key):
                    return number
            elif current == table and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", text):
                return number
        return None


def _parse(cls: type, data: Any, source: _Source, table: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source.path}: [{table}] must be a table of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [key for key in data if key not in fields]
    if unknown:
        valid = ", ".join(fields)
        raise ConfigError(
            f"{source.where(table, unknown[0])}: unknown key; valid keys in "
            f"{f'[{table}]' if table else 'muses.toml'}: {valid}. Fix the spelling or delete the line."
        )
    values = {}
    for key, value in data.items():
        child = f"{table}.{key}" if table else key
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            values[key] = _parse(kind, value, source, child)
        else:
            values[key] = _check_value(value, kind, fields[key].metadata, lambda: source.where(table, key))
    return cls(**values)


def _check_value(value: Any, kind: Any, bounds: typing.Mapping, where) -> Any:
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where()}: expected a list of strings in quotes, got {value!r}")
        return tuple(value)
    fits = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        fits, value = True, float(value)
    if not fits:
        raise ConfigError(f"{where()}: expected {_TYPE_WORDS[kind]}, got {value!r}")
    choices = bounds.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where()}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
    low, high = bounds.get("low"), bounds.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        limits = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{where()}: must be {limits}, got {value!r}")
    return value


MAX_TOML_BYTES = 1_000_000  # muses.toml and definitions.toml; a large definitions file is 50 kB


def read_toml(path: Path, error: type[MusesError], fix: str) -> tuple[str, dict[str, Any]]:
    """The text and the data of a TOML file, bounded: at most :data:`MAX_TOML_BYTES`, nesting
    Python can parse, no number of more digits than Python converts, no ``nan`` or ``inf`` (a
    setting is a real number). Every problem is ``error`` naming the file (and key) and ``fix``;
    a missing file raises FileNotFoundError, an unreadable one :class:`RunFailed`."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RunFailed(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions") from exc
    if len(raw) > MAX_TOML_BYTES:
        raise error(f"{path}: larger than {MAX_TOML_BYTES // 1_000_000} MB, which no muses file is; {fix}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from exc
    try:
        data = tomllib.loads(text)
        bad = _not_finite(data)
    except RecursionError as exc:
        raise error(f"{path}: nested too deep to read; {fix}") from exc
    except ValueError as exc:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise error(f"{path}: not valid TOML ({str(exc)[:300]}); {fix}") from exc
    if bad:
        raise error(f"{path}, {bad}: must be a finite number (nan and inf are not); {fix}")
    return text, data


def _not_finite(data: Any, where: str = "") -> str | None:
    """The key of the first nan or inf in ``data`` (``[table] key``), or None."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        here = f"{where}.{key}" if where and isinstance(key, str) else f"{where}[{key}]" if where else str(key)
        if isinstance(value, float) and not math.isfinite(value):
            table, _, name = here.rpartition(".")
            return f"[{table}] {name}" if table else here
        if isinstance(value, dict | list) and (found := _not_finite(value, here)):
            return found
    return None


def read_settings(path: str | os.PathLike) -> Settings:
    """The settings in ``path``; defaults when the file does not exist."""
    path = Path(path)
    try:
        text, data = read_toml(path, ConfigError, "fix the file or delete it and run `muses init`")
    except FileNotFoundError:
        return Settings()
    return _parse(Settings, data, _Source(path, text), "")


# -- the project folder -----------------------------------------------------------------------
@dataclass
class Project:
    """A muses project folder and its settings."""

    root: Path
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Project":
        root = Path(root).resolve()
        return cls(root=root, settings=read_settings(root / CONFIG_NAME))

    def require_config(self) -> None:
        """Refuse a folder that is not a project (no muses.toml), rather than fill it with a
        new store: the user has most likely run the command in the wrong folder."""
        if not (self.root / CONFIG_NAME).is_file():
            raise ConfigError(
                f"{self.root} is not a muses project (it has no {CONFIG_NAME}); create one with "
                f"`muses init {self.root}`, or name an existing project with --project DIR or ${ENV_PROJECT}"
            )

    def path(self, value: str | os.PathLike) -> Path:
        """A path from the configuration, relative paths taken from the project folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def store_url(self) -> str:
        """$MUSES_STORE_URL, else [store] url, else the project's muses.sqlite: the one place
        the store's address is decided."""
        return os.environ.get(STORE_URL_ENV) or self.settings.store.url or f"sqlite:///{self.root / 'muses.sqlite'}"

    @property
    def images_dir(self) -> Path:
        return self.path(self.settings.images.dir)

    @property
    def image_roots(self) -> list[Path]:
        """The extra folders of ``[images] roots``, relative ones taken from the project folder."""
        return [self.path(root) for root in self.settings.images.roots]

    @property
    def definitions_path(self) -> Path:
        return self.path(self.settings.naive.definitions)

    @property
    def datasets_dir(self) -> Path:
        return self.path(self.settings.naive.datasets_dir)

    @property
    def model_path(self) -> Path:
        return self.path(self.settings.classification.naive_classification.model_path)

    @property
    def models_dir(self) -> Path:
        return self.model_path.parent

    @property
    def plots_dir(self) -> Path:
        return self.path(self.settings.plots.dir)


def find_project(project: str | os.PathLike | None = None) -> Project:
    """``--project DIR``, else ``$MUSES_PROJECT``, else the current directory. A folder with no
    muses.toml gets the defaults, enough to read a model or a dataset; the store asks for a
    real project (:meth:`Project.require_config`)."""
    root = Path(project or os.environ.get(ENV_PROJECT) or os.getcwd())
    if not root.is_dir():
        raise ConfigError(f"project folder {root} does not exist; create it with `muses init {root}`")
    return Project.load(root)


def init_project(root: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write a commented muses.toml and an example definitions.toml; returns the files written.

    Existing files are kept unless ``force`` is set, so ``init`` never destroys a user's work.
    """
    root = Path(root)
    written = []
    templates = resources.files("muses") / "templates"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG_NAME, "definitions.toml"):
            target = root / name
            if target.exists() and not force:
                continue
            target.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
            written.append(target)
    except OSError as exc:
        raise RunFailed(
            f"cannot write the project files in {root}: {exc.strerror or exc}; "
            "free some disk space or choose a folder you may write to"
        ) from exc
    return written
