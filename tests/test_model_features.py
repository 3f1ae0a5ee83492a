"""The frozen-feature cache on disk: one shard per save, read back through memory maps."""
from __future__ import annotations

import pytest
import torch

from muses.model.features import FeatureCache


def test_each_save_adds_a_shard_and_a_reopened_cache_reads_them_all(tmp_path):
    path = tmp_path / "pooled-abc.safetensors"
    cache = FeatureCache(path)
    cache.entries["a:0"] = torch.ones(4).half()
    cache.save()
    cache.entries["b:0"] = torch.full((4,), 2.0).half()
    cache.save()
    cache.save()  # nothing new: no empty shard
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.safetensors")) == [
        "pooled-abc.safetensors", "pooled-abc.shards/000001.safetensors"]
    again = FeatureCache(path)
    assert sorted(again.entries) == ["a:0", "b:0"] and len(again.entries) == 2
    assert again.entries.new == {}  # nothing loaded into memory: read on demand from the files
    assert again.stack(["b:0", "a:0"]).tolist() == [[2.0] * 4, [1.0] * 4]
    again.entries["c:0"] = torch.zeros(4).half()
    assert "c:0" in again.entries and "d:0" not in again.entries and len(again.entries) == 3


def test_shards_of_another_setting_are_not_read(tmp_path):
    other = FeatureCache(tmp_path / "pooled-abcd.safetensors")
    other.entries["x:0"] = torch.ones(2)
    other.save()
    cache = FeatureCache(tmp_path / "pooled-abc.safetensors")
    cache.entries["a:0"] = torch.ones(2)
    cache.save()
    assert list(FeatureCache(tmp_path / "pooled-abc.safetensors").entries) == ["a:0"]


def test_entries_are_never_removed_one_by_one(tmp_path):
    cache = FeatureCache(tmp_path / "t.safetensors")
    cache.entries["a:0"] = torch.ones(1)
    with pytest.raises(TypeError, match="delete the cache folder"):
        del cache.entries["a:0"]


def test_without_a_path_the_cache_lives_in_memory_only(tmp_path):
    cache = FeatureCache(None)
    cache.entries["a:0"] = torch.ones(1)
    cache.save()
    assert list(tmp_path.iterdir()) == [] and "a:0" in cache.entries
