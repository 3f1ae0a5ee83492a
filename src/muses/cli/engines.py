"""The flags that say where the heavy work runs: --engine, --address, --ray-workers (over
muses.toml's ``[compute]`` table)."""
from __future__ import annotations

import argparse
import dataclasses

from muses.cli import positive
from muses.settings import ENGINES, ComputeSettings, find_project


def add_compute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINES,
                   help='"ray" runs the work on a Ray cluster (pip install "muses[ray]"); default: muses.toml '
                        "[compute] engine, else local")
    p.add_argument("--address", metavar="ADDRESS",
                   help="a running Ray cluster (auto, or ray://HOST:10001); default: muses.toml [compute] address, "
                        "else start one on this machine")
    p.add_argument("--ray-workers", type=positive(), metavar="N",
                   help="Ray workers, one model each (default: muses.toml [compute] workers, else 2)")


def compute_from_args(args: argparse.Namespace) -> ComputeSettings | None:
    """The project's ``[compute]`` settings, each flag given on the command line overriding its
    key; None when no flag is given (the actions then take muses.toml's table as it is)."""
    flags = {"engine": args.engine, "address": args.address, "workers": args.ray_workers}
    given = {key: value for key, value in flags.items() if value is not None}
    if not given:
        return None
    return dataclasses.replace(find_project(getattr(args, "project", None)).settings.compute, **given)
