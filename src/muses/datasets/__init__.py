"""Dataset folders: the exporter registry, the naive exporter, splitting and the folder contract."""
from muses.datasets.registry import UnknownExporterError, available_exporters, load_exporter

__all__ = ["UnknownExporterError", "available_exporters", "load_exporter"]
