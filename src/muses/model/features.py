"""The frozen-feature cache: what a frozen part of the network makes of each image view.

While (part of) the backbone is frozen its output for a given view never changes, so it is
computed once and stored: safetensors files per *setting* (the frozen weights' digest,
preprocessing, augmentation, seed, split point), holding one tensor per ``image sha256:view``.
Each save adds a shard with the entries made since the last one (``KIND-KEY.safetensors``, then
``KIND-KEY.shards/000001.safetensors``, ...), and entries are read back through memory maps: a cache of a
million views costs disk, not memory.
A changed weight, size or image gives another key, so stale entries are never used; the
folder (``cache/features/`` in the project) is safe to delete at any time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from muses.datasets.folder import Sample
from muses.settings import ComputeSettings
from muses.model import distributed
from muses.model.files import writing
from muses.model.predictor import autocast
from muses.model.views import ViewDataset
from muses.progress import progress_bar

CACHE_DIR = Path("cache") / "features"
SAVE_EVERY = 20  # batches between cache writes, so an interrupted extraction resumes


def setting_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def entry_key(sample: Sample, view: int) -> str:
    return f"{sample.digest}:{view}"


class _Entries(MutableMapping):
    """Tensors by key: the saved ones read through memory maps of the shard files, the new ones
    held until the next save."""

    def __init__(self) -> None:
        self.new: dict[str, torch.Tensor] = {}
        self.shards: list = []  # open safetensors files (memory-mapped)
        self.where: dict[str, int] = {}  # key -> index in shards

    def add_shard(self, path: Path) -> None:
        shard = safe_open(str(path), framework="pt")
        self.where.update(dict.fromkeys(shard.keys(), len(self.shards)))
        self.shards.append(shard)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key in self.new:
            return self.new[key]
        return self.shards[self.where[key]].get_tensor(key)

    def __setitem__(self, key: str, value: torch.Tensor) -> None:
        self.new[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("cache entries are never removed: delete the cache folder instead")

    def __contains__(self, key: object) -> bool:
        return key in self.new or key in self.where

    def __iter__(self) -> Iterator[str]:
        yield from self.where
        yield from (k for k in self.new if k not in self.where)

    def __len__(self) -> int:
        return len(self.where) + sum(k not in self.where for k in self.new)


class FeatureCache:
    """Tensors by key in safetensors shards on disk (or memory only when ``path`` is None)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries = _Entries()
        for shard in self._shard_paths():
            self.entries.add_shard(shard)

    @property
    def _shard_dir(self) -> Path:
        return self.path.with_suffix(".shards")

    def _shard_paths(self) -> list[Path]:
        if self.path is None or not self.path.is_file():
            return []
        return [self.path] + sorted(p for p in self._shard_dir.glob("*.safetensors") if p.stem.isdigit())

    def save(self) -> None:
        """Write the entries made since the last save as a new shard."""
        if self.path is None or not self.entries.new or not distributed.is_main():  # one writer per run
            return
        shards = len(self.entries.shards)
        target = self.path if shards == 0 else self._shard_dir / f"{shards:06d}.safetensors"
        tmp = target.with_suffix(".tmp")
        with writing(target, tmp):
            target.parent.mkdir(parents=True, exist_ok=True)
            save_file(self.entries.new, str(tmp))
            os.replace(tmp, target)
        self.entries.add_shard(target)
        self.entries.new = {}

    def stack(self, keys: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.entries[k] for k in keys]).float()


def open_cache(cache_dir: Path | None, kind: str, **setting) -> FeatureCache:
    if cache_dir is None:
        return FeatureCache(None)
    return FeatureCache(Path(cache_dir) / f"{kind}-{setting_key(**setting)}.safetensors")


def fill_from_images(
    cache: FeatureCache,
    fn: Callable[[torch.Tensor], torch.Tensor],
    pairs: Sequence[tuple[Sample, int]],
    make_dataset: Callable[[list[tuple[Sample, int]]], ViewDataset],
    *,
    batch_size: int,
    workers: int,
    device: torch.device,
    desc: str,
    compute: ComputeSettings | None = None,
) -> int:
    """Compute ``fn`` (a frozen module, already in eval mode) for every missing view; returns how many.
    In a multi-process run each process computes its share and all of them get every entry.
    ``compute`` with the Ray engine computes them on a Ray cluster's actors (CPU), one copy of
    ``fn`` each; this process writes the same shards as when it computes them itself."""
    dist = distributed.current()
    distributed.barrier()  # every process has read the cache file before the first writes it again
    wanted = {entry_key(*p): p for p in pairs}
    todo = [p for k, p in wanted.items() if k not in cache.entries]
    if not todo:
        return 0
    if compute is not None and compute.uses_ray:
        if dist.active:
            raise distributed.DistributedError("feature extraction runs on Ray or in several processes, not both")
        outputs = _views_on_ray(fn, make_dataset(todo), batch_size=batch_size, compute=compute)
        mine = todo
    else:
        mine = distributed.shard(todo, dist, pad=False)
        outputs = _views_here(fn, make_dataset(mine), batch_size=batch_size, workers=workers, device=device)
    made: dict[str, torch.Tensor] = {}
    with progress_bar(total=len(mine), desc=desc, unit="views", disable=not dist.main) as bar:
        for b, out in enumerate(outputs):
            for pair, value in zip(mine[len(made) : len(made) + len(out)], out):
                made[entry_key(*pair)] = cache.entries[entry_key(*pair)] = value.clone()
            bar.update(len(out))
            if (b + 1) % SAVE_EVERY == 0:
                cache.save()
    for share in distributed.gather(made, dist):
        cache.entries.update(share)
    cache.save()
    return len(todo)


def _views_here(fn, dataset: ViewDataset, *, batch_size: int, workers: int, device: torch.device) -> Iterator[torch.Tensor]:
    """``fn`` of the dataset's views, batch by batch in order, as float16 on the CPU."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, generator=torch.Generator())
    for batch in loader:
        with torch.inference_mode(), autocast(device):  # not around the yield: the caller's code is not ours
            out = fn(batch.to(device)).float().cpu().half()
        yield out


class _ViewEncoder:
    """A Ray worker's copy of the frozen module and the views: chunks of view indices → outputs."""

    def __init__(self, fn: torch.nn.Module, dataset: ViewDataset):
        self.fn, self.dataset = fn.cpu().eval(), dataset

    def __call__(self, indices: range) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(torch.stack([self.dataset[i] for i in indices])).float().half()


def _views_on_ray(fn, dataset: ViewDataset, *, batch_size: int, compute: ComputeSettings) -> Iterator[torch.Tensor]:
    from muses.compute.ray_pool import map_on_actors

    chunks = [range(s, min(s + batch_size, len(dataset))) for s in range(0, len(dataset), batch_size)]
    yield from map_on_actors(functools.partial(_ViewEncoder, fn, dataset), chunks, settings=compute)


def fill_from_cache(
    cache: FeatureCache,
    fn: Callable[[torch.Tensor], torch.Tensor],
    source: FeatureCache,
    keys: Sequence[str],
    *,
    batch_size: int,
    device: torch.device,
) -> int:
    """Compute ``fn`` over another cache's entries (e.g. pooled features from cached trunk outputs)."""
    todo = [k for k in dict.fromkeys(keys) if k not in cache.entries]
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            with autocast(device):
                out = fn(source.stack(chunk).to(device)).float().cpu().half()
            cache.entries.update({k: v.clone() for k, v in zip(chunk, out)})
    cache.save()
    return len(todo)

