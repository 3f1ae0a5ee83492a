"""Seeded, per-object, per-class sampling and train/val/test splits.

Each class is shuffled with its own seeded generator (seed and class name), so the same seed
gives the same dataset and adding a class does not reshuffle the others.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from muses.datasets.folder import SPLITS
from muses.errors import MusesError

DEFAULT_SPLIT = (0.7, 0.15, 0.15)


class SplitError(MusesError):
    """A split cannot be made: bad fractions, or a class with too few items."""


def parse_split(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` → (0.7, 0.15, 0.15): three non-negative fractions summing to 1."""
    try:
        parts = [float(p) for p in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise SplitError(f"split {text!r}: give three numbers for train,val,test, like 0.7,0.15,0.15") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or parts[0] <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise SplitError(
            f"split {text!r}: give three fractions train,val,test that are >= 0, sum to 1 and have "
            "train > 0, like 0.7,0.15,0.15"
        )
    return parts[0], parts[1], parts[2]


def _rng(seed: int, cls: str, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{purpose}:{cls}")


def sample_per_class(
    images_by_item: Mapping[str, Mapping[str, int]], max_images: int | None, seed: int = 0
) -> dict[str, list[str]]:
    """For each class (``{class: {item_id: n_images}}``), the items kept: whole items chosen at
    random until the class holds at most ``max_images`` images; all items if it is None."""
    kept: dict[str, list[str]] = {}
    for cls, items in images_by_item.items():
        ids = sorted(items)
        if max_images is None:
            kept[cls] = ids
            continue
        _rng(seed, cls, "sample").shuffle(ids)
        chosen, total = [], 0
        for item_id in ids:
            if total + items[item_id] <= max_images:
                chosen.append(item_id)
                total += items[item_id]
        kept[cls] = sorted(chosen)
    return kept


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """How many of ``n`` items go to train, val, test: every non-zero fraction gets at least one."""
    _, val, test = fractions
    n_val = max(round(n * val), 1) if val > 0 else 0
    n_test = max(round(n * test), 1) if test > 0 else 0
    return n - n_val - n_test, n_val, n_test


def min_items_for(fractions: Sequence[float]) -> int:
    """The fewest items a class needs so that each non-zero split gets one."""
    return sum(1 for f in fractions if f > 0)


def stratified_split(
    items_by_class: Mapping[str, Sequence[str]], fractions: Sequence[float] = DEFAULT_SPLIT, seed: int = 0
) -> dict[str, str]:
    """``{item_id: split}``: each class's items shuffled (seeded) and cut by ``fractions``."""
    need = min_items_for(fractions)
    out: dict[str, str] = {}
    for cls, items in items_by_class.items():
        if len(items) < need:
            raise SplitError(
                f"class {cls!r} has {len(items)} item(s) after sampling; the split needs at least {need} "
                "(one per non-empty split): raise --max-images or add items to the class"
            )
        ids = sorted(items)
        _rng(seed, cls, "split").shuffle(ids)
        n_train, n_val, _ = split_counts(len(ids), fractions)
        for i, item_id in enumerate(ids):
            out[item_id] = SPLITS[0] if i < n_train else SPLITS[1] if i < n_train + n_val else SPLITS[2]
    return out
