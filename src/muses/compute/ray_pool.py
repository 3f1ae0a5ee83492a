"""A pool of Ray actors that each build a worker once (loading a model or a network is the costly
part) and then answer chunks of work, results back in input order.

    for out in map_on_actors(partial(Encoder, net, views), chunks, settings=settings):
        save(out)   # the driver writes as results come, so an interrupted run keeps them

``make_worker`` travels to the cluster once (the object store), not once per actor or chunk.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from muses.compute import ComputeSettings, connect

A = TypeVar("A")
R = TypeVar("R")


class _Actor:
    def __init__(self, make_worker: Callable[[], Callable[[Any], Any]]):
        self.worker = make_worker()

    def run(self, chunk):
        return self.worker(chunk)


def map_on_actors(make_worker: Callable[[], Callable[[A], R]], chunks: Sequence[A], *,
                  settings: ComputeSettings) -> Iterator[R]:
    """``worker(chunk)`` for every chunk, on ``settings.workers`` actors (one CPU each, never more
    actors than chunks), each with its own ``worker = make_worker()``; yielded in order."""
    if not chunks:
        return
    ray = connect(settings)
    from ray.util import ActorPool

    factory = ray.put(make_worker)
    actor = ray.remote(num_cpus=1)(_Actor)
    actors = [actor.remote(factory) for _ in range(min(settings.workers, len(chunks)))]
    try:
        yield from ActorPool(actors).map(lambda a, chunk: a.run.remote(chunk), list(chunks))
    finally:  # free the CPUs for the next step of the run
        for a in actors:
            ray.kill(a)
