"""Where the heavy work runs: on this machine (the default) or on a Ray cluster.

    engine = ComputeSettings(engine="ray", address="ray://head:10001", workers=4)   # muses.toml [compute]

Ray is an optional extra (``pip install "muses[ray]"``): nothing here imports it until a run
asks for it, and asking without it installed is a :class:`RayMissing` that says what to install.
The driver (the process a curator started) keeps the store: workers get file paths and send
back results, which the driver writes in batches, so a run stays resumable as on one machine.
"""
from __future__ import annotations

from types import ModuleType

from muses.errors import MusesError
from muses.settings import ENGINES, ComputeSettings


class ComputeError(MusesError):
    """A Ray cluster that cannot be reached."""


class RayMissing(ComputeError):
    """``--engine ray`` without Ray installed."""


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
            ray.init(address=settings.address or None, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise ComputeError(
                f"cannot reach the Ray cluster at {settings.address!r} ({exc}); start it with `ray start --head` "
                "or give its address with --address"
            ) from exc
    return ray


__all__ = ["ENGINES", "ComputeError", "ComputeSettings", "RayMissing", "connect", "require_ray"]
