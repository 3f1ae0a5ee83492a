"""The dataset folder contract (see docs/CONTRACTS.md): ``manifest.csv`` + ``dataset.json`` +
images. The writer (:mod:`muses.datasets.naive`) and the reader (:func:`read_dataset`) both take
the columns and split names from here. No torch: the views training makes of these images
live in :mod:`muses.model.views`.
"""
from __future__ import annotations

from muses import csvfile
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from muses.errors import MusesError
from muses.imaging import try_open

SPLITS = ("train", "val", "test")
# Every column the writer writes; the reader needs REQUIRED_COLUMNS of them (keyword and field
# say why a record got its label, for people reading the manifest).
MANIFEST_COLUMNS = ("item_id", "image", "class", "split", "keyword", "field")
REQUIRED_COLUMNS = MANIFEST_COLUMNS[:4]
CHECK_SIZE = 32  # pixels a side: decoding this small proves a file readable, at a fraction of the cost


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
        fieldnames, reader = csvfile.records(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in fieldnames]
        if missing:
            raise DatasetError(f"{manifest}: missing column(s) {missing}; expected {MANIFEST_COLUMNS}")
        for line, row in enumerate(reader, start=2):
            if row["class"] not in index:
                raise DatasetError(f"{manifest} line {line}: class {row['class']!r} is not in dataset.json {classes}")
            if row["split"] not in SPLITS:
                raise DatasetError(f"{manifest} line {line}: split {row['split']!r} is not one of {SPLITS}")
            path = root / row["image"]
            why = try_open(path, CHECK_SIZE)  # decode now so a corrupt file is reported, not crashed on
            if isinstance(why, str):
                skipped.append((row["image"], f"cannot be decoded: {why}"))
                continue
            samples.append(Sample(row["item_id"], path, index[row["class"]], row["split"], file_digest(path)))
    if not any(s.split == "train" for s in samples):
        raise DatasetError(f"{manifest}: no usable training images")
    return DatasetFolder(root, classes, samples, str(meta.get("definitions_digest", "")), skipped)
