"""A function over many inputs as Ray tasks, results back in input order, a bounded number in flight."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

from muses.compute import ComputeSettings, connect

A = TypeVar("A")
R = TypeVar("R")


def _apply(fn: Callable[[A], R], chunk: list[A]) -> list[R]:
    return [fn(arg) for arg in chunk]


def map_ordered(fn: Callable[[A], R], args: Iterable[A], *, settings: ComputeSettings, chunk: int = 16) -> Iterator[R]:
    """``fn(arg)`` for every arg, run by ``settings.workers`` Ray tasks at a time (``chunk`` args
    each), yielded in order as they finish: the driver can save as it goes, and an interrupted
    run loses only what was in flight."""
    ray = connect(settings)
    task = ray.remote(num_cpus=1)(_apply)
    it = iter(args)
    pending: deque = deque()
    while batch := list(islice(it, chunk)):
        pending.append(task.remote(fn, batch))
        if len(pending) >= settings.workers:
            yield from ray.get(pending.popleft())
    while pending:
        yield from ray.get(pending.popleft())
