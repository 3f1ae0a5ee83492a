"""Where the heavy work runs: on this machine (the default) or on a Ray cluster.

    engine = ComputeSettings(engine="ray", address="ray://head:10001", workers=4)   # muses.toml [compute]

Ray is an optional extra (``pip install "muses[ray]"``): nothing here imports it until a run
asks for it, and asking without it installed is a :class:`RayMissing` that says what to install.
The driver (the process a curator started) keeps the store: workers get file paths and send
back results, which the driver writes in batches, so a run stays resumable as on one machine.
"""
from __future__ import annotations

import re
import socket
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


CONNECT_TIMEOUT = 10.0  # seconds for a cluster's head to accept a connection
_ADDRESS = re.compile(r"(?:ray://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)"
                      r":(?P<port>[0-9]{1,5})")
_ADDRESS_FORMS = "auto, HOST:6379 (a cluster's head) or ray://HOST:10001 (Ray Client)"


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse an address Ray could not use, or whose head accepts no connection within
    ``timeout``, in one sentence: Ray itself retries an unreachable head for minutes and
    answers a malformed address with a traceback."""
    if address in ("", "auto"):
        return
    m = _ADDRESS.fullmatch(address.strip())
    if m is None or not 0 < int(m["port"]) < 65536:
        raise ComputeError(f"the Ray address {address[:100]!r} is not one of the forms {_ADDRESS_FORMS}; "
                           "fix --address or [compute] address in muses.toml")
    host = m["host"].strip("[]")
    try:
        socket.create_connection((host, int(m["port"])), timeout=timeout).close()
    except OSError as exc:
        raise ComputeError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start it with "
                           "`ray start --head`, or fix --address or [compute] address in muses.toml") from exc


def connect(settings: ComputeSettings) -> ModuleType:
    """Ray, connected: to ``settings.address``, to the cluster this process already joined, or
    to a new one-machine cluster (no dashboard) when no address is given."""
    ray = require_ray()
    if not ray.is_initialized():
        check_address(settings.address)
        try:
            ray.init(address=settings.address or None, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            raise ComputeError(
                f"cannot reach the Ray cluster at {settings.address!r} ({exc}); start it with `ray start --head` "
                "or give its address with --address"
            ) from exc
    return ray


__all__ = ["ENGINES", "ComputeError", "ComputeSettings", "RayMissing", "check_address", "connect", "require_ray"]
