"""Reading a dataset folder (see docs/CONTRACTS.md) and making the views of each image.

A *view* is one preprocessed version of an image: view ``AUGMENTED[i]`` is a random
augmentation seeded by (image content, i, seed), so the same seed always gives the same
views (which is what lets features.py cache them); ``DETERMINISTIC`` is the plain
preprocessing used for validation, test and prediction.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import v2

from muses.model.preprocessing import PAD_FILL, PreprocessCfg, open_image, resize, to_tensor
from muses.errors import MusesError

SPLITS = ("train", "val", "test")
DETERMINISTIC = -1
MANIFEST_COLUMNS = ("item_id", "image", "class", "split", "keyword", "field")


class DatasetError(MusesError):
    """The dataset folder is missing or malformed."""


@dataclass
class Sample:
    item_id: str
    path: Path
    label: int
    split: str
    digest: str = ""  # sha256 of the file's bytes; filled by read_dataset


@dataclass
class DatasetFolder:
    root: Path
    classes: list[str]
    samples: list[Sample]
    definitions_digest: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, why) not usable

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_dataset(root: str | Path) -> DatasetFolder:
    """Read manifest.csv + dataset.json; a missing or undecodable image is skipped and listed."""
    root = Path(root)
    manifest, meta_path = root / "manifest.csv", root / "dataset.json"
    for required in (manifest, meta_path):
        if not required.is_file():
            raise DatasetError(
                f"{required} not found: {root} is not a dataset folder; "
                "create one with `muses export-classification-data --exporter naive`"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        classes = list(meta["classes"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{meta_path}: not a valid dataset.json ({exc}); re-run the exporter") from exc
    if len(classes) < 2:
        raise DatasetError(f"{meta_path}: a classifier needs at least 2 classes, found {classes}")
    index = {name: i for i, name in enumerate(classes)}
    samples, skipped = [], []
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{manifest}: missing column(s) {missing}; expected {MANIFEST_COLUMNS}")
        for line, row in enumerate(reader, start=2):
            if row["class"] not in index:
                raise DatasetError(f"{manifest} line {line}: class {row['class']!r} is not in dataset.json {classes}")
            if row["split"] not in SPLITS:
                raise DatasetError(f"{manifest} line {line}: split {row['split']!r} is not one of {SPLITS}")
            path = root / row["image"]
            try:
                open_image(path, 32)  # decode now so a corrupt file is reported, not crashed on
            except (OSError, UnidentifiedImageError) as exc:
                skipped.append((row["image"], f"cannot be decoded: {exc}"))
                continue
            samples.append(Sample(row["item_id"], path, index[row["class"]], row["split"], file_digest(path)))
    if not any(s.split == "train" for s in samples):
        raise DatasetError(f"{manifest}: no usable training images")
    return DatasetFolder(root, classes, samples, str(meta.get("definitions_digest", "")), skipped)


@dataclass(frozen=True)
class AugmentCfg:
    """Training-time augmentation; see docs in README section *classifier*."""

    flip: bool = True
    degrees: float = 20.0
    translate: float = 0.2
    scale: tuple[float, float] = (0.8, 1.2)
    color_jitter: float = 0.2


def augmenter(cfg: AugmentCfg) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5 if cfg.flip else 0.0),
            v2.RandomAffine(cfg.degrees, translate=(cfg.translate,) * 2, scale=cfg.scale, fill=PAD_FILL),
            v2.ColorJitter(cfg.color_jitter, cfg.color_jitter, cfg.color_jitter),
        ]
    )


def view_seed(digest: str, view: int, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{digest}:{view}:{seed}".encode()).digest()[:8], "little")


class ViewDataset(Dataset):
    """(sample, view) pairs → normalized tensors; decoding runs in DataLoader workers."""

    def __init__(
        self,
        pairs: Sequence[tuple[Sample, int]],
        preprocess: PreprocessCfg,
        augment: AugmentCfg,
        seed: int,
    ):
        self.pairs, self.preprocess, self.seed = list(pairs), preprocess, seed
        self.augment = augmenter(augment)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        sample, view = self.pairs[i]
        img = resize(open_image(sample.path, self.preprocess.input_size), self.preprocess)
        if view != DETERMINISTIC:
            # fork_rng: seeding here must not disturb the training loop's random state.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(view_seed(sample.digest, view, self.seed))
                img = self.augment(img)
        return to_tensor(img, self.preprocess)
