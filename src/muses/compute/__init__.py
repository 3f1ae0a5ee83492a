"""Where the heavy work runs: on this machine (the default) or on a Ray cluster.

    engine = ComputeSettings(engine="ray", address="ray://head:10001", workers=4)

Ray is an optional extra (``pip install "muses[ray]"``): nothing here imports it until a run
asks for it, and asking without it installed is a :class:`RayMissing` that says what to install.
The driver (the process a curator started) keeps the store: workers get file paths and send
back results, which the driver writes in batches, so a run stays resumable as on one machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from muses.errors import MusesError

ENGINES = ("local", "ray")


class ComputeError(MusesError):
    """A compute setting that cannot work (an unknown engine, a bad worker count)."""


class RayMissing(ComputeError):
    """``--engine ray`` without Ray installed."""


@dataclass(frozen=True)
class ComputeSettings:
    """``[compute]`` in muses.toml, or ``--engine/--address/--ray-workers`` on a command."""

    engine: str = "local"
    address: str | None = None  # a running Ray cluster ("auto", "ray://host:10001"); None: start one here
    workers: int = 2  # Ray actors (each holds one model) or parallel tasks

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ComputeError(f"the compute engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers < 1:
            raise ComputeError(f"Ray workers must be >= 1, got {self.workers}")

    @property
    def uses_ray(self) -> bool:
        return self.engine == "ray"


def require_ray() -> ModuleType:
    """The ``ray`` module, or a clear message of how to get it."""
    try:
        import ray
    except ImportError as exc:
        raise RayMissing(
            'the Ray engine needs Ray, which is not installed: run pip install "muses[ray]" '
            "(or leave out --engine ray to run on this machine)"
        ) from exc
    return ray


def connect(settings: ComputeSettings) -> ModuleType:
    """Ray, connected: to ``settings.address``, to the cluster this process already joined, or
    to a new one-machine cluster (no dashboard) when no address is given."""
    ray = require_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=settings.address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise ComputeError(
                f"cannot reach the Ray cluster at {settings.address!r} ({exc}); start it with `ray start --head` "
                "or give its address with --address"
            ) from exc
    return ray


__all__ = ["ENGINES", "ComputeError", "ComputeSettings", "RayMissing", "connect", "require_ray"]
