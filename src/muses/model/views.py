"""The views of a dataset image that training sees: ``DETERMINISTIC`` (the plain
preprocessing used for validation, test and prediction) or augmented view ``i``, a random
augmentation seeded by (image content, i, seed). The same seed always gives the same views,
which is what lets :mod:`muses.model.features` cache them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from muses.datasets.folder import Sample
from muses.model.config import AugmentCfg
from muses.imaging import open_image
from muses.model.preprocessing import PAD_FILL, PreprocessCfg, resize, to_tensor

DETERMINISTIC = -1


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
            # torchvision's transforms draw from the global generator and take no other: fork it,
            # so that seeding a view leaves the training loop's random state as it was.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(view_seed(sample.digest, view, self.seed))
                img = self.augment(img)
        return to_tensor(img, self.preprocess)
