"""Exporters turn the collection store into a dataset folder (see docs/CONTRACTS.md).

They are plugins: any installed package can add one under the Python entry-point group
``muses.exporters``; muses itself ships ``naive`` (keyword labels from the catalog).
"""
from __future__ import annotations

from importlib.metadata import entry_points
from muses.errors import MusesError

GROUP = "muses.exporters"


class UnknownExporterError(MusesError):
    """No exporter of that name is installed."""


def available_exporters() -> list[str]:
    """Names of the installed exporters, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_exporter(name: str) -> type:
    """The exporter class registered under ``name``."""
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    names = ", ".join(available_exporters()) or "none"
    raise UnknownExporterError(
        f"unknown exporter {name!r}; available: {names} "
        "(if one is missing, reinstall muses: pip install -e .)"
    )
