"""The flags that say where the heavy work runs: --engine, --address, --ray-workers."""
from __future__ import annotations

import argparse

from muses.cli import positive
from muses.compute import ENGINES, ComputeSettings


def add_compute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINES,
                   help='"ray" runs the work on a Ray cluster (pip install "muses[ray]"); default: muses.toml '
                        "[compute] engine, else local")
    p.add_argument("--address", metavar="ADDRESS",
                   help="a running Ray cluster (auto, or ray://HOST:10001); default: start one on this machine")
    p.add_argument("--ray-workers", type=positive(), metavar="N", help="Ray workers, one model each (default 2)")


def compute_from_args(args: argparse.Namespace) -> ComputeSettings:
    """The engine the command's flags ask for (this machine unless --engine ray)."""
    base = ComputeSettings()
    return ComputeSettings(
        engine=args.engine or base.engine,
        address=args.address or base.address,
        workers=args.ray_workers or base.workers,
    )
